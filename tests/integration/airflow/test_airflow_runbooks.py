"""The pipeline-failure runbook end to end against the real Airflow 3 (issue 9, "Must show"):
dagwatch's Collector polls Airflow into the store in the background, the task's failure alert
fires, the runbook is started through the HTTP API with an operator's token and runs with no
human; its steps are read back through the API.

- a transient failure (ConnectionResetError on the first run of `fetch`) is diagnosed, only the
  failed task and what depends on it are cleared, the re-run succeeds and the alerts resolve;
- a persistent failure (KeyError: 'user_id') is not retried — the task's try number in Airflow
  does not move — and is escalated to `alerting.escalate_to`.

DAGs: examples/airflow_dags/dagwatch_runbooks.py.
"""

from __future__ import annotations

import pytest

from monitor.model import AlertKind, AlertStatus, Tier
from monitor.tracking.collector import Collector
from tests.integration.airflow.conftest import source_for
from tests.integration.runbook_live import ESCALATION, FIXED, NOT_RETRIED, POLICY, LiveDagwatch, report, steps

TRANSIENT, PERSISTENT = "dw_rb_transient", "dw_rb_persistent"


@pytest.fixture
def live(airflow3, store):
    collector = Collector(source_for(airflow3, include=[f"^{TRANSIENT}$", f"^{PERSISTENT}$"]), store, POLICY)
    with LiveDagwatch(store, collector) as running:
        yield running
    # A poll may fail on a loaded machine (dagwatch tolerates that); none may raise.
    assert running.poll_errors == [] and any(p.ok for p in running.polls)


def tries(api, dag_id: str, run_id: str, *task_ids: str) -> dict[str, tuple[str, int]]:
    """(state, try_number) of each task instance, as Airflow has them now."""
    return {t: (ti["state"], ti["try_number"]) for t in task_ids for ti in [api.task(dag_id, run_id, t)]}


def test_transient_failure_is_cleared_rerun_and_resolved_with_no_human(api3, live):
    run_id = api3.trigger(TRANSIENT)
    alert = live.wait_alert(TRANSIENT, run_id, AlertKind.TASK_FAILED, AlertStatus.FIRING, timeout=120)
    assert (alert.task_id, alert.try_number, alert.tier) == ("fetch", 1, Tier.P1), alert
    assert "ConnectionResetError" in alert.summary
    # The task alert can come before the run ends; the run's own alert follows.
    run_alert = live.wait_alert(TRANSIENT, run_id, AlertKind.RUN_FAILED, AlertStatus.FIRING, timeout=60)
    assert api3.run(TRANSIENT, run_id)["state"] == "failed"
    failed = tries(api3, TRANSIENT, run_id, "extract", "fetch", "publish")
    assert {t: state for t, (state, _) in failed.items()} == {"extract": "success", "fetch": "failed", "publish": "upstream_failed"}

    # An operator may look first: a dry run lists what would be cleared and changes nothing.
    preview = live.wait_finished(live.start("pipeline-failure", alert.id, dry_run=True)["id"], timeout=120)
    assert steps(preview)["clear"]["status"] == "previewed" and steps(preview)["clear"]["data"]["tasks"] == ["fetch", "publish"]
    assert api3.run(TRANSIENT, run_id)["state"] == "failed" and tries(api3, TRANSIENT, run_id, "extract", "fetch", "publish") == failed

    execution, found = live.run_pipeline_failure(
        alert, FIXED, error="ConnectionResetError: [Errno 104] Connection reset by peer", verdict=("transient", "connection"), timeout=300
    )
    resolved = live.wait_alert(TRANSIENT, run_id, AlertKind.TASK_FAILED, AlertStatus.RESOLVED, timeout=60)
    print("\n" + report(execution, alert, resolved))
    assert "in _fetch" in found["logs"]["data"]["traceback"]
    assert found["clear"]["data"]["tasks"] == ["fetch", "publish"] and found["clear"]["data"]["run_id"] == run_id
    assert (found["rerun"]["data"]["state"], found["rerun"]["data"]["run_id"]) == ("success", run_id)

    # Airflow re-ran only what had failed: `extract` kept its one try, `fetch` ran a second time.
    assert api3.run(TRANSIENT, run_id)["state"] == "success"
    after = tries(api3, TRANSIENT, run_id, "extract", "fetch", "publish")
    print(f"  (state, try) before the runbook {failed}, after {after}")
    assert after["extract"] == failed["extract"] == ("success", 1)
    assert after["fetch"] == ("success", failed["fetch"][1] + 1)
    assert after["publish"][0] == "success" and after["publish"][1] == failed["publish"][1] + 1

    run_resolved = live.wait_alert(TRANSIENT, run_id, AlertKind.RUN_FAILED, AlertStatus.RESOLVED, timeout=60)
    assert run_resolved.id == run_alert.id and resolved.resolved_at is not None and run_resolved.resolved_at is not None
    live.check_escalation(alert, escalated=False)


def test_persistent_failure_is_not_retried_and_is_escalated(api3, live):
    run_id = api3.trigger(PERSISTENT)
    alert = live.wait_alert(PERSISTENT, run_id, AlertKind.TASK_FAILED, AlertStatus.FIRING, timeout=120)
    assert (alert.task_id, alert.try_number, alert.tier) == ("join_users", 1, Tier.P1)
    assert api3.wait_run(PERSISTENT, run_id)["state"] == "failed"
    before = tries(api3, PERSISTENT, run_id, "extract", "join_users")
    assert before == {"extract": ("success", 1), "join_users": ("failed", 1)}

    execution, found = live.run_pipeline_failure(
        alert, NOT_RETRIED, error="KeyError: 'user_id'", verdict=("persistent", "missing_column"), timeout=180
    )
    print("\n" + report(execution, alert))
    assert "when" in found["clear"]["summary"]
    assert ESCALATION in found["escalate"]["summary"]

    # No new try in Airflow: the run is still failed and the task still on its first try.
    assert api3.run(PERSISTENT, run_id)["state"] == "failed"
    assert tries(api3, PERSISTENT, run_id, "extract", "join_users") == before
    # Escalated: the alert (already P1) is sent to alerting.escalate_to through the outbox.
    live.check_escalation(alert, escalated=True)
