"""Deployment runs on a real server: a `serve` process runs them, a crash leaves task runs open,
clear_failed retries a failed run through the API, a schedule nobody serves goes Late, and
health names the work pool that has no worker."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from monitor.config import PrefectSourceSettings
from monitor.model import AlertKind, AlertStatus, State, Tier
from monitor.sources.base import SourceUnavailable
from monitor.sources.prefect import PrefectSource, RetryRefused
from tests.integration.prefect.conftest import deployment_id, start_run


@pytest.fixture(scope="module")
def served(prefect_server):
    proc = prefect_server.start_flow("serve")
    api = prefect_server.api_url
    ids = {name: deployment_id(api, flow, name) for flow, name in [("dw-retryable", "api-retry"), ("dw-crash", "crash")]}
    yield ids
    prefect_server.stop_child(proc)


def test_crash_is_run_failed_once_and_open_task_runs_do_not_alert(prefect_server, served, watch):
    w = watch(["^dw-crash/crash$"])
    w.baseline()
    run_id = start_run(prefect_server.api_url, served["crash"])
    alerts = w.poll_until(lambda a: any(x.kind is AlertKind.RUN_FAILED for x in a), timeout=90)
    # On a loaded machine the serve process may pick the run up after Prefect marked it Late:
    # that is a (P3) run_late alert of its own, resolved when the run starts, not a failure alert.
    late = [a for a in alerts if a.kind is AlertKind.RUN_LATE]
    assert all(a.tier is Tier.P3 and a.status is AlertStatus.RESOLVED for a in late)
    alerts = [a for a in alerts if a.kind is not AlertKind.RUN_LATE]
    assert {(a.kind, a.task_id, a.tier) for a in alerts} == {
        (AlertKind.RUN_FAILED, "(flow)", Tier.P1),
        (AlertKind.TASK_FAILED, "(flow)", Tier.P1),
    }
    run_alert = next(a for a in alerts if a.kind is AlertKind.RUN_FAILED)
    assert run_alert.run_id == run_id and run_alert.pipeline == "dw-crash/crash"
    assert "exit" in run_alert.summary.lower() or "crash" in run_alert.summary.lower()
    for _ in range(3):
        w.collector.poll_once()
        time.sleep(1)
    again = {(a.kind, a.task_id) for a in w.alerts() if a.kind is not AlertKind.RUN_LATE}
    assert again == {(AlertKind.RUN_FAILED, "(flow)"), (AlertKind.TASK_FAILED, "(flow)")}  # nothing new on later polls
    snap = next(s for s in w.source.poll(None) if s.run_id == run_id)
    assert snap.state is State.FAILED and snap.labels["prefect_state"] == "Crashed"
    assert all(t.state is not State.RUNNING for t in snap.tasks)


def test_clear_failed_retries_a_deployment_run_and_the_alert_resolves(prefect_server, served, watch):
    w = watch(["^dw-retryable/api-retry$"])
    w.baseline()
    run_id = start_run(prefect_server.api_url, served["api-retry"])
    w.poll_until(lambda a: any(x.kind is AlertKind.RUN_FAILED and x.run_id == run_id for x in a), timeout=90)

    dry = w.source.clear_failed("dw-retryable/api-retry", run_id, None, dry_run=True)
    assert dry.dry_run and dry.tasks == ("(flow)",) and "AwaitingRetry" in dry.message
    done = w.source.clear_failed("dw-retryable/api-retry", run_id, None, dry_run=False)
    assert not done.dry_run and "AwaitingRetry" in done.message

    alerts = w.poll_until(lambda a: all(x.status is AlertStatus.RESOLVED for x in a if x.kind is AlertKind.RUN_FAILED), timeout=90)
    run_failed = [a for a in alerts if a.kind is AlertKind.RUN_FAILED]
    assert len(run_failed) == 1 and run_failed[0].resolved_at is not None
    snap = next(s for s in w.source.poll(None) if s.run_id == run_id)
    assert snap.state is State.SUCCESS and next(t for t in snap.tasks if t.task_id == "(flow)").try_number == 2


def test_clear_failed_on_an_ad_hoc_run_is_a_clear_refusal(prefect_server, watch):
    w = watch(["^dw-flow-error$"])
    assert prefect_server.run_flow("flow_error").returncode == 1
    run = next(s for s in w.source.poll(None) if s.pipeline == "dw-flow-error" and s.state is State.FAILED)
    assert "will refuse" in w.source.clear_failed("dw-flow-error", run.run_id, None, dry_run=True).message
    with pytest.raises(RetryRefused, match="without an associated deployment"):
        w.source.clear_failed("dw-flow-error", run.run_id, None, dry_run=False)


def test_missed_schedule_goes_late_and_health_names_the_pool_without_workers(prefect_server, watch):
    api = prefect_server.api_url
    httpx.post(f"{api}/work_pools/", json={"name": "dw-pool", "type": "process"}).raise_for_status()
    flow_id = httpx.post(f"{api}/flows/", json={"name": "dw-nightly"}).json()["id"]
    httpx.post(
        f"{api}/deployments/",
        json={
            "name": "unserved",
            "flow_id": flow_id,
            "work_pool_name": "dw-pool",
            "tags": ["ml"],
            "schedules": [{"schedule": {"interval": 5}, "active": True}],
        },
    ).raise_for_status()
    w = watch(["^dw-nightly/unserved$"])
    w.baseline()
    deadline = time.monotonic() + 60
    late = []
    while not late and time.monotonic() < deadline:
        late = [s for s in w.source.poll(None) if s.labels.get("prefect_state") == "Late"]
        time.sleep(1)
    assert late and late[0].state is State.SCHEDULED and late[0].pipeline == "dw-nightly/unserved"

    health = w.source.health()
    assert not health.healthy
    assert "work pool dw-pool is NOT_READY" in health.problems[0] and "dw-nightly/unserved" in health.problems[0]
    other = PrefectSource(PrefectSourceSettings(kind="prefect", name="p2", url=api, include=["^dw-fail$"]))
    assert other.health().healthy  # a pool none of the watched deployments use is not our alarm
    other.close()

    [definition] = w.source.definitions()
    assert definition.pipeline == "dw-nightly/unserved" and definition.schedule == "every 5s"
    assert definition.next_run_expected_at is not None and not definition.paused
    assert set(definition.tags) == {"ml", "work_pool:dw-pool"}


def test_unreachable_server_is_source_unavailable_then_backs_off(prefect_server):
    from tests.servers.prefect.server import free_port

    source = PrefectSource(
        PrefectSourceSettings(kind="prefect", name="gone", url=f"http://127.0.0.1:{free_port()}/api", poll_interval=timedelta(seconds=30))
    )
    with pytest.raises(SourceUnavailable, match="unreachable") as first:
        source.health()
    assert first.value.retry_after == 30
    with pytest.raises(SourceUnavailable, match="backing off") as second:
        source.poll(None)
    assert 0 < second.value.retry_after <= 30
    source.close()
