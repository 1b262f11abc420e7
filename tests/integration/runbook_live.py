"""dagwatch wired as `dagwatch up` wires it, inside the test process, for end-to-end runbook tests
against a real orchestrator: the real Collector polling the source into the real store in a
background thread, the runbook engine with the shipped runbooks acting through the same built
source, the app served by uvicorn on 127.0.0.1, and an operator's API token. Runbooks are started
and read only through the HTTP API, as a person or a script on call would.

The policy pages P1 alerts to the console and names an escalation receiver
(`alerting.escalate_to`), so what the `escalate` step did is visible in the store.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Self

import httpx

from monitor.alerting import ingest
from monitor.api.app import create_app
from monitor.config import AlertingSettings, RunbookSettings
from monitor.model import Alert, AlertKind, AlertStatus, ExecutionStatus, Tier, utcnow
from monitor.remediation.engine import Engine
from monitor.remediation.runbook import load_all
from monitor.sources.registry import Sources
from monitor.store import alerts as alert_store
from monitor.store import tokens
from monitor.store.db import Store
from monitor.tracking.collector import Collector, PollResult
from tests.integration.server import serve_app, wait_for

ESCALATION = "oncall-lead"
RUNBOOKS = load_all()  # the shipped runbooks, as `dagwatch up` loads them with no runbooks.folder
POLICY = ingest.AlertPolicy(
    receivers=[("console", "console"), (ESCALATION, "webhook")],
    base_url="http://127.0.0.1:8000",
    alerting=AlertingSettings(escalate_to=[ESCALATION]),
    runbooks=tuple(RUNBOOKS.values()),
)

# How the pipeline-failure runbook's steps end (the API's step statuses) for a transient failure it
# fixes, and for a persistent one it must not retry.
FIXED = {
    "health": "succeeded",
    "logs": "succeeded",
    "classify": "succeeded",
    "clear": "succeeded",
    "rerun": "succeeded",
    "escalate": "skipped",
}
NOT_RETRIED = {
    "health": "succeeded",
    "logs": "succeeded",
    "classify": "succeeded",
    "clear": "skipped",
    "rerun": "skipped",
    "escalate": "succeeded",
}


class LiveDagwatch:
    """Use as a context manager around one test; `collector` must use `POLICY`."""

    def __init__(self, store: Store, collector: Collector, *, poll_every: float = 1.0) -> None:
        assert collector.policy is POLICY, "build the collector with runbook_live.POLICY"
        self.store, self.collector, self.poll_every = store, collector, poll_every
        self.sources = Sources([collector.source])
        # Wired as monitor/service.py wires it (default `runbooks:` settings, no notifiers).
        self.engine = Engine.from_settings(
            RunbookSettings(),
            RUNBOOKS,
            store,
            self.sources.find,
            services={"policy": POLICY, "notifiers": {}, "sources": self.sources.find},
        )
        self.polls: list[PollResult] = []
        self.poll_errors: list[BaseException] = []
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="dagwatch-test-poller", daemon=True)

    def __enter__(self) -> Self:
        self._poller.start()
        self._served = serve_app(create_app(self.store, POLICY, sources=self.sources, runbook_engine=self.engine))
        url = self._served.__enter__()
        self.operator = f"on-call-{id(self)}"
        with self.store.session() as session:
            token = tokens.create(session, name=self.operator, role="operator", now=utcnow())
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._poller.join(timeout=60)
        self.http.close()
        self._served.__exit__(None, None, None)
        self.engine.shutdown()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.polls.append(self.collector.poll_once())
            except Exception as exc:  # noqa: BLE001 - kept for the test to assert on, never swallowed
                self.poll_errors.append(exc)
            self._stop.wait(self.poll_every)

    # ---- the store, as the collector keeps it ------------------------------------------------
    def alerts(self, pipeline: str, run_id: str | None = None) -> list[Alert]:
        with self.store.session() as session:
            rows = [a for a in alert_store.list_alerts(session, limit=10_000) if a.pipeline == pipeline]
        return sorted((a for a in rows if run_id is None or a.run_id == run_id), key=lambda a: a.id)

    def wait_alert(self, pipeline: str, run_id: str, kind: AlertKind, status: AlertStatus, timeout: float) -> Alert:
        """The alert of this kind about this run once it has this status (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            alerts = self.alerts(pipeline, run_id)
            found = next((a for a in alerts if a.kind is kind and a.status is status), None)
            if found is not None:
                return found
            seen = [(a.kind.value, a.task_id, a.status.value, a.summary[:80]) for a in alerts]
            assert time.monotonic() < deadline, f"no {status.value} {kind.value} alert of {pipeline} {run_id} in {timeout}s; alerts: {seen}"
            time.sleep(0.5)

    def history(self, alert_id: int) -> list[tuple[str, str | None]]:
        with self.store.session() as session:
            return [(row.change, row.note) for row in alert_store.history(session, alert_id=alert_id)]

    def notified(self, alert_id: int) -> list[str]:
        """Receivers an outbox notification of this alert firing was queued for."""
        with self.store.session() as session:
            return sorted(alert_store.notified_receivers(session, alert_id=alert_id))

    def check_escalation(self, alert: Alert, *, escalated: bool) -> None:
        """What the `escalate` step left in the store: for a P1 alert, an 'escalated' history row
        and an outbox notification to `alerting.escalate_to`, the alert still firing as P1 — or,
        when the runbook fixed it, neither."""
        notes = [note for change, note in self.history(alert.id) if change == "escalated"]
        if not escalated:
            assert notes == [] and self.notified(alert.id) == []
            return
        assert notes == [f"{ESCALATION}: the pipeline-failure runbook could not fix it"]
        assert self.notified(alert.id) == [ESCALATION]
        [now] = [a for a in self.alerts(alert.pipeline or "", alert.run_id) if a.id == alert.id]
        assert (now.status, now.tier) == (AlertStatus.FIRING, Tier.P1)

    # ---- runbooks, through the HTTP API ------------------------------------------------------
    def start(self, runbook: str, alert_id: int, *, dry_run: bool = False) -> dict:
        """POST …/executions as the operator: accepted (202), the steps run in the background."""
        response = self.http.post(f"/api/v1/runbooks/{runbook}/executions", json={"alert_id": alert_id, "dry_run": dry_run})
        assert response.status_code == 202, response.text
        return response.json()

    def run_pipeline_failure(
        self, alert: Alert, expected: dict[str, str], *, error: str, verdict: tuple[str, str], timeout: float
    ) -> tuple[dict, dict[str, dict]]:
        """Start the shipped pipeline-failure runbook for `alert` through the API, wait for it to end,
        and check what every such execution shows through the API: it succeeded with its steps
        ending as `expected` (FIXED or NOT_RETRIED), the orchestrator was healthy, the failed try's
        log was read with its traceback and the error line `error`, and the classifier's
        (category, rule) is `verdict`. Returns the execution and its steps by name."""
        started = self.start("pipeline-failure", alert.id)
        assert (started["alert_id"], started["dry_run"], started["started_by"]) == (alert.id, False, self.operator)
        execution = self.wait_finished(started["id"], timeout=timeout)
        assert execution["status"] == "succeeded", execution
        assert outcomes(execution, expected) == expected
        found = steps(execution)
        assert found["health"]["data"]["healthy"] is True and found["health"]["data"]["problems"] == []
        assert found["logs"]["data"]["try_number"] == alert.try_number == 1
        assert found["logs"]["data"]["traceback"].startswith("Traceback (most recent call last)")
        assert found["logs"]["data"]["error_line"] == error
        assert (found["classify"]["data"]["category"], found["classify"]["data"]["rule"]) == verdict
        return execution, found

    def execution(self, execution_id: int) -> dict:
        response = self.http.get(f"/api/v1/runbooks/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_finished(self, execution_id: int, timeout: float) -> dict:
        """The execution, read through the API, once it has ended (bounded wait)."""

        def finished() -> dict | None:
            execution = self.execution(execution_id)
            return execution if ExecutionStatus(execution["status"]).finished else None

        return wait_for(finished, limit=timeout, step=0.5)


def steps(execution: dict) -> dict[str, dict]:
    """An execution's steps by name."""
    return {step["name"]: step for step in execution["steps"]}


def outcomes(execution: dict, expected: dict[str, str]) -> dict[str, str]:
    """The status of each step named in `expected`, after checking that no step of the execution
    failed (the shipped runbook may gain diagnosis steps; none of them may break it)."""
    statuses = {step["name"]: step["status"] for step in execution["steps"]}
    assert "failed" not in statuses.values(), statuses
    return {name: statuses.get(name, "absent") for name in expected}


def report(execution: dict, alert: Alert, resolved: Alert | None = None) -> str:
    """What a test measured, printed for the record (`pytest -s`): each step's status, duration
    and summary, the execution's length and, when it resolved, the alert's time to resolution."""

    def took(start: str | None, end: str | None) -> str:
        if not (start and end):
            return "-"
        return f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds():.1f}s"

    head = (
        f"execution {execution['id']} of {execution['runbook']} for alert {alert.id} ({alert.kind.value} {alert.pipeline}.{alert.task_id})"
    )
    lines = [f"{head}: {execution['status']} in {took(execution['started_at'], execution['ended_at'])}"]
    lines += [
        f"  {s['name']:<9} {s['status']:<9} {took(s['started_at'], s['ended_at']):>6}  {s['summary'][:150]}" for s in execution["steps"]
    ]
    if resolved is not None and resolved.resolved_at is not None:
        lines.append(
            f"  alert fired {alert.started_at:%H:%M:%S}, resolved {resolved.resolved_at:%H:%M:%S}:"
            f" {(resolved.resolved_at - alert.started_at).total_seconds():.1f}s from alert to resolved"
        )
    return "\n".join(lines)
