"""The pipeline-failure runbook end to end against the real Prefect 3 (issue 9, "Must show"):
deployments served by a `serve` process, dagwatch's Collector polling the server into the store
in the background, the runbook started through the HTTP API with an operator's token and run
with no human; its steps are read back through the API.

- a transient failure (ConnectionResetError in `fetch` on the first run) is diagnosed and the
  flow run is retried — Prefect retries a flow run as a whole (AwaitingRetry), the `serve`
  process runs it again, it succeeds and the alerts resolve;
- a persistent failure (KeyError: 'user_id') is not retried — neither the flow run's nor the
  task's run count moves — and is escalated to `alerting.escalate_to`.

Flows: tests/integration/prefect/runbook_flows.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.model import AlertKind, AlertStatus, Tier
from tests.integration.prefect.conftest import deployment_id, start_run
from tests.integration.runbook_live import ESCALATION, FIXED, NOT_RETRIED, POLICY, LiveDagwatch, report
from tests.integration.server import wait_for

FLOWS = Path(__file__).with_name("runbook_flows.py")
TRANSIENT, PERSISTENT = "dw-rb-transient/runbook", "dw-rb-persistent/runbook"


@pytest.fixture(scope="module")
def served(prefect_server):
    """The two deployments, served by one `serve` process for the module; stopped by pid."""
    proc = prefect_server.start_flow("serve", script=FLOWS)
    api = prefect_server.api_url
    yield {name: deployment_id(api, name.split("/")[0], "runbook") for name in (TRANSIENT, PERSISTENT)}
    prefect_server.stop_child(proc)


@pytest.fixture
def live(watch, store):
    w = watch([f"^{TRANSIENT}$", f"^{PERSISTENT}$"], policy=POLICY)
    with LiveDagwatch(store, w.collector) as running:
        yield running
    # A poll may fail on a loaded machine (dagwatch tolerates that); none may raise.
    assert running.poll_errors == [] and any(p.ok for p in running.polls)


def test_transient_failure_is_retried_by_prefect_and_resolved_with_no_human(prefect_server, served, live, driver, tmp_path):
    marker = tmp_path / "fetch.marker"
    run_id = start_run(prefect_server.api_url, served[TRANSIENT], {"marker": str(marker)})
    alert = live.wait_alert(TRANSIENT, run_id, AlertKind.TASK_FAILED, AlertStatus.FIRING, timeout=120)
    assert (alert.task_id, alert.try_number, alert.tier) == ("fetch", 1, Tier.P1), alert
    # The alert may fire before Prefect has the error's log lines (its summary then says "no error
    # text"); the runbook's logs step reads the log afresh.
    assert marker.exists()
    # The task alert can come before the flow run ends; the run's own alert follows.
    run_alert = live.wait_alert(TRANSIENT, run_id, AlertKind.RUN_FAILED, AlertStatus.FIRING, timeout=60)
    assert driver.wait_flow_run(run_id, ("Failed",)) == ("Failed", 1)
    # Task run states reach Prefect's API through its event pipeline, a little later: bounded waits.
    wait_for(lambda: driver.task_runs(run_id) == [("extract", 1, "Completed", 1), ("fetch", 1, "Failed", 1)], limit=30)  # no `publish`

    execution, found = live.run_pipeline_failure(
        alert, FIXED, error="ConnectionResetError: [Errno 104] Connection reset by peer", verdict=("transient", "connection"), timeout=300
    )
    resolved = live.wait_alert(TRANSIENT, run_id, AlertKind.TASK_FAILED, AlertStatus.RESOLVED, timeout=90)
    print("\n" + report(execution, alert, resolved))
    assert "raise ConnectionResetError(104" in found["logs"]["data"]["traceback"]
    assert found["clear"]["data"]["tasks"] == ["fetch"] and "AwaitingRetry" in found["clear"]["summary"]
    assert (found["rerun"]["data"]["state"], found["rerun"]["data"]["run_id"]) == ("success", run_id)

    # What Prefect did: the same flow run ran a second time, as a whole, and completed. A flow
    # retry makes new task runs for the second run — `extract` ran again too (this flow persists
    # no results), the failed `fetch` try of the first run stays on record.
    assert driver.wait_flow_run(run_id, ("Completed",), timeout=5) == ("Completed", 2)
    retried = [
        ("extract", 1, "Completed", 1),
        ("extract", 2, "Completed", 1),
        ("fetch", 1, "Failed", 1),
        ("fetch", 2, "Completed", 1),
        ("publish", 2, "Completed", 1),
    ]
    wait_for(lambda: driver.task_runs(run_id) == retried, limit=30)
    print(f"  task runs (task, flow run count, state, run count) after the retry: {retried}")
    run_resolved = live.wait_alert(TRANSIENT, run_id, AlertKind.RUN_FAILED, AlertStatus.RESOLVED, timeout=90)
    assert run_resolved.id == run_alert.id and resolved.resolved_at is not None and run_resolved.resolved_at is not None
    live.check_escalation(alert, escalated=False)


def test_persistent_failure_is_not_retried_and_is_escalated(prefect_server, served, live, driver):
    run_id = start_run(prefect_server.api_url, served[PERSISTENT])
    alert = live.wait_alert(PERSISTENT, run_id, AlertKind.TASK_FAILED, AlertStatus.FIRING, timeout=120)
    assert (alert.task_id, alert.try_number, alert.tier) == ("join_users", 1, Tier.P1), alert
    assert driver.wait_flow_run(run_id, ("Failed",)) == ("Failed", 1)
    before = [("extract", 1, "Completed", 1), ("join_users", 1, "Failed", 1)]
    wait_for(lambda: driver.task_runs(run_id) == before, limit=30)

    execution, found = live.run_pipeline_failure(
        alert, NOT_RETRIED, error="KeyError: 'user_id'", verdict=("persistent", "missing_column"), timeout=180
    )
    print("\n" + report(execution, alert))
    assert ESCALATION in found["escalate"]["summary"]

    # No new try in Prefect: the flow run and its task runs have run once.
    assert driver.wait_flow_run(run_id, ("Failed",), timeout=5) == ("Failed", 1) and driver.task_runs(run_id) == before
    # Escalated: the alert (already P1) is sent to alerting.escalate_to through the outbox.
    live.check_escalation(alert, escalated=True)
