"""Deployment definitions and what polling costs the server, against a real Prefect server: a paused
deployment (or one whose schedules are all off) is a paused definition, a deleted one drops out,
and every request a poll, a health check, a definitions refresh or a log read makes is a read."""

from __future__ import annotations

from datetime import timedelta

import httpx

from monitor.config import PrefectSourceSettings
from monitor.sources.prefect import PrefectSource


def _definitions(source: PrefectSource) -> dict[str, tuple[bool, str | None]]:
    return {d.pipeline: (d.paused, d.schedule) for d in source.definitions()}


def test_paused_deployment_is_a_paused_definition_until_resumed(driver, watch):
    dep = driver.deployment("dw-pausable", "nightly", schedules=[{"schedule": {"cron": "0 2 * * *"}, "active": True}])
    source = watch(["^dw-pausable/"]).source
    assert _definitions(source) == {"dw-pausable/nightly": (False, "0 2 * * *")}

    driver.call("POST", f"deployments/{dep}/pause_deployment")
    assert _definitions(source) == {"dw-pausable/nightly": (True, "0 2 * * *")}  # Prefect keeps the schedule active
    driver.call("POST", f"deployments/{dep}/resume_deployment")
    assert _definitions(source) == {"dw-pausable/nightly": (False, "0 2 * * *")}

    driver.call("PATCH", f"deployments/{dep}", {"paused": True})
    assert _definitions(source) == {"dw-pausable/nightly": (True, "0 2 * * *")}
    driver.call("PATCH", f"deployments/{dep}", {"paused": False})

    [schedule] = driver.call("GET", f"deployments/{dep}")["schedules"]
    driver.call("PATCH", f"deployments/{dep}/schedules/{schedule['id']}", {"active": False})
    assert _definitions(source) == {"dw-pausable/nightly": (True, None)}  # nothing will start it on its own


def test_deleted_deployment_leaves_the_definitions(driver, watch):
    driver.deployment("dw-deletable", "kept")
    gone = driver.deployment("dw-deletable", "gone")
    source = watch(["^dw-deletable/"]).source
    assert set(_definitions(source)) == {"dw-deletable/kept", "dw-deletable/gone"}
    driver.call("DELETE", f"deployments/{gone}")
    assert set(_definitions(source)) == {"dw-deletable/kept"}


class _Recording(httpx.HTTPTransport):
    """The real transport, noting each request's method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return super().handle_request(request)


def test_polling_health_definitions_and_logs_only_read(prefect_server, driver):
    """Prefect's `POST …/filter` endpoints are its read API (the server reads them in a session with
    no transaction, and keeps no audit rows); everything else dagwatch sends while watching is a GET."""
    driver.call("POST", "work_pools/", {"name": "dw-read-pool", "type": "process"})
    driver.deployment("dw-read", "nightly", work_pool_name="dw-read-pool")
    run_id = driver.flow_run("dw-read")
    driver.set_state("task_runs", driver.task_run(run_id, "train"), "FAILED", "Failed", "Task run encountered an exception ValueError: x")
    driver.set_state("flow_runs", run_id, "FAILED", "Failed", "Flow run encountered an exception: ValueError: x")
    before = driver.call("GET", f"flow_runs/{run_id}")["updated"]

    recording = _Recording()
    settings = PrefectSourceSettings(
        kind="prefect", name="reader", url=prefect_server.api_url, include=["^dw-read"], poll_interval=timedelta(seconds=1)
    )
    source = PrefectSource(settings, transport=recording)
    try:
        [snap] = [s for s in source.poll(None) if s.run_id == run_id]
        assert not source.health().healthy  # the pool has no worker: health read pools and workers
        assert [d.pipeline for d in source.definitions()] == ["dw-read/nightly"]
        source.task_log(snap.pipeline, run_id, "train", 1)
    finally:
        source.close()

    paths = {path.removeprefix("/api/") for _, path in recording.calls}
    assert {
        "flow_runs/filter",
        "task_runs/filter",
        "logs/filter",
        "deployments/filter",
        "flows/filter",
        "work_pools/filter",
        "work_pools/dw-read-pool/workers/filter",
        "health",
    } <= paths
    writes = [(m, p) for m, p in recording.calls if not (m == "GET" or (m == "POST" and p.endswith("/filter")))]
    assert writes == []
    assert driver.call("GET", f"flow_runs/{run_id}")["updated"] == before
