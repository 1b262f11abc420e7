"""The runbook engine on the real store, with a real source (the embedded one): steps in order,
`when:` conditions, run-once as a database fact, force, dry runs, timeouts, the rate limit, and
executions a stopped process left behind."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerting import ingest
from monitor.errors import ConfigError, InvalidRequest, NotFound
from monitor.model import Event, EventKind, ExecutionStatus, StepStatus, Tier
from monitor.remediation import runbook as runbooks
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import Finding, NoArgs, StepContext
from monitor.remediation.engine import Engine, RateLimit, RateLimited, StartRequest
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import runbooks as execution_store

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")

DIAGNOSE = runbooks.parse(
    {
        "name": "diagnose",
        "match": {"kind": "~task_failed|run_failed"},
        "params": {"note": "diagnosed"},
        "steps": [
            {"name": "health", "action": "orchestrator_health"},
            {"name": "escalate", "action": "escalate", "when": {"health.healthy": "true"}, "args": {"tier": "P1"}},
            {"name": "never", "action": "escalate", "when": {"health.healthy": "false"}},
        ],
    },
    "test",
)


class Touch:
    """A mutating action that only counts what it did: the engine's rules for changing things
    (dry run, allow_mutating) are about the step, whatever the action touches."""

    name, mutating, Args = "touch", True, NoArgs

    def __init__(self) -> None:
        self.touched = 0

    def run(self, ctx: StepContext, args: NoArgs) -> Finding:
        if ctx.dry_run:
            return Finding(summary="would touch", data={"dry_run": True})
        self.touched += 1
        return Finding(summary="touched", data={"touched": self.touched})


class Hang:
    """An action stuck in a call that never returns (a hung orchestrator API)."""

    name, mutating, Args = "hang", False, NoArgs

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, ctx: StepContext, args: NoArgs) -> Finding:
        self.release.wait(30)
        return Finding(summary="late")


@pytest.fixture
def test_actions(monkeypatch):
    touch, hang = Touch(), Hang()
    monkeypatch.setitem(ACTIONS, "touch", touch)
    monkeypatch.setitem(ACTIONS, "hang", hang)
    yield touch, hang
    hang.release.set()


def hangs() -> runbooks.Runbook:
    return runbooks.parse(
        {
            "name": "hangs",
            "steps": [
                {"name": "touch", "action": "touch"},
                {"name": "stuck", "action": "hang", "timeout": "0.3s"},
                {"name": "after", "action": "orchestrator_health"},
            ],
        },
        "test",
    )


def failed_alert(store, kind=EventKind.TASK_FAILED, pipeline="train", run_id="r1") -> int:
    event = Event(kind=kind, source="embedded", pipeline=pipeline, run_id=run_id, task_id="fit", summary="fit failed: boom")
    return ingest.submit(store, [event], POLICY)[0].fired[0]


@pytest.fixture
def engine(store, tmp_path: Path, test_actions):
    built = Engine(
        store,
        {r.name: r for r in (DIAGNOSE, hangs())},
        lambda name: EmbeddedSource(name, store, tmp_path / "logs"),
        services={"policy": POLICY},
        rate_limit=RateLimit(count=3, per=timedelta(hours=1)),
    )
    yield built
    built.shutdown()


def test_steps_run_in_order_with_when_conditions_and_every_step_is_recorded(store, engine):
    alert_id = failed_alert(store, kind=EventKind.RUN_FAILED)
    started = engine.start(StartRequest("diagnose", alert_id, started_by="op"))
    assert not started.joined and started.execution.status is ExecutionStatus.PENDING
    done = engine.wait(started.execution.id, timeout=30)
    assert done.status is ExecutionStatus.SUCCEEDED and done.started_by == "op" and done.params == {"note": "diagnosed"}
    assert [(s.name, s.status) for s in done.steps] == [
        ("health", StepStatus.SUCCEEDED),
        ("escalate", StepStatus.SUCCEEDED),
        ("never", StepStatus.SKIPPED),
    ]
    assert done.steps[0].data["healthy"] is True and done.steps[0].started_at <= done.steps[0].ended_at
    assert "did not match" in done.steps[2].summary
    with store.session() as s:
        assert alert_store.get(s, alert_id=alert_id).tier == Tier.P1.value  # run_failed was P1 already: escalate_to is empty
    assert "no alerting.escalate_to" in done.steps[1].summary


def test_a_second_start_joins_and_force_runs_again_once_finished(store, engine):
    alert_id = failed_alert(store)
    first = engine.start(StartRequest("diagnose", alert_id, started_by="alice"))
    again = engine.start(StartRequest("diagnose", alert_id, started_by="bob"))
    assert again.joined and again.execution.id == first.execution.id
    engine.wait(first.execution.id, timeout=30)
    after = engine.start(StartRequest("diagnose", alert_id, started_by="bob"))
    assert after.joined and after.execution.id == first.execution.id  # ran once: not again without force
    forced = engine.start(StartRequest("diagnose", alert_id, started_by="bob", force=True))
    assert not forced.joined and forced.execution.attempt == 2
    assert engine.wait(forced.execution.id, timeout=30).status is ExecutionStatus.SUCCEEDED


def test_two_engines_sharing_the_store_create_one_execution(store, tmp_path):
    """The run-once rule lives in the database: a second process (or a Slack replay) joins."""
    alert_id = failed_alert(store)
    one, two = (
        Engine(store, {"diagnose": DIAGNOSE}, lambda name: EmbeddedSource(name, store, tmp_path), services={"policy": POLICY})
        for _ in range(2)
    )
    try:
        a = one.start(StartRequest("diagnose", alert_id, started_by="slack:alice"))
        b = two.start(StartRequest("diagnose", alert_id, started_by="slack:alice"))
        assert b.joined and b.execution.id == a.execution.id
        one.wait(a.execution.id, timeout=30)
    finally:
        one.shutdown(), two.shutdown()
    with store.session() as s:
        assert len(execution_store.for_alert(s, alert_id=alert_id)) == 1


def test_dry_run_previews_mutating_steps_and_does_not_count(store, engine, test_actions):
    touch, hang = test_actions
    hang.release.set()
    alert_id = failed_alert(store)
    dry = engine.run_now(StartRequest("hangs", alert_id, started_by="op", dry_run=True)).execution
    assert dry.dry_run and dry.steps[0].status is StepStatus.PREVIEWED and dry.steps[0].summary == "would touch"
    assert touch.touched == 0
    real = engine.run_now(StartRequest("hangs", alert_id, started_by="op")).execution
    assert real.attempt == 1 and real.steps[0].status is StepStatus.SUCCEEDED and touch.touched == 1


def test_mutating_steps_are_skipped_when_the_start_may_not_change_things(store, engine, test_actions):
    touch, hang = test_actions
    hang.release.set()
    done = engine.run_now(StartRequest("hangs", failed_alert(store), started_by="policy:diagnose-only", allow_mutating=False)).execution
    assert done.steps[0].status is StepStatus.SKIPPED and "not allowed" in done.steps[0].summary and touch.touched == 0
    assert done.status is ExecutionStatus.SUCCEEDED


def test_a_step_past_its_timeout_fails_and_stops_the_execution(store, engine):
    done = engine.run_now(StartRequest("hangs", failed_alert(store), started_by="op")).execution
    assert done.status is ExecutionStatus.FAILED and done.result == "step stuck failed"
    assert [s.status for s in done.steps] == [StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED]
    assert done.steps[1].summary == "timed out after 0.3s" and "step stuck failed" in done.steps[2].summary


def test_rate_limit_per_pipeline(store, engine):
    for run in range(3):
        engine.run_now(StartRequest("diagnose", failed_alert(store, run_id=f"r{run}"), started_by="op"))
    with pytest.raises(RateLimited, match="the limit is 3"):
        engine.start(StartRequest("diagnose", failed_alert(store, run_id="r9"), started_by="op"))
    engine.start(StartRequest("diagnose", failed_alert(store, pipeline="other"), started_by="op"))  # another pipeline is free


def test_refuses_unknown_runbooks_alerts_params_and_alerts_it_does_not_apply_to(store, engine):
    alert_id = failed_alert(store)
    with pytest.raises(NotFound, match="no runbook named 'nope'; known: diagnose, hangs"):
        engine.start(StartRequest("nope", alert_id, started_by="op"))
    with pytest.raises(NotFound):
        engine.start(StartRequest("diagnose", 999, started_by="op"))
    with pytest.raises(InvalidRequest, match="no parameter"):
        engine.start(StartRequest("diagnose", alert_id, started_by="op", params={"epochs": 3}))
    drift = ingest.submit(store, [Event(kind=EventKind.DRIFT_DETECTED, source="embedded", pipeline="train", summary="psi 0.4")], POLICY)[
        0
    ].fired[0]
    with pytest.raises(InvalidRequest, match="does not apply"):
        engine.start(StartRequest("diagnose", drift, started_by="op"))


def test_an_execution_left_running_by_a_stopped_process_is_marked_interrupted(store, engine):
    alert_id = failed_alert(store)
    with store.session() as s:
        row = execution_store.create(
            s,
            runbook="diagnose",
            alert_id=alert_id,
            attempt=1,
            source="embedded",
            pipeline="train",
            dry_run=False,
            started_by="op",
            params={},
            steps=[("health", "orchestrator_health", False)],
            now=engine.clock(),
        )
        row.status = ExecutionStatus.RUNNING.value
        row.steps[0].status, row.steps[0].started_at = StepStatus.RUNNING.value, engine.clock()
        left = row.id
    assert engine.recover() == [left]
    view = engine.get(left)
    assert view.status is ExecutionStatus.INTERRUPTED and view.steps[0].status is StepStatus.INTERRUPTED
    assert "start it again" in view.result
    again = engine.start(StartRequest("diagnose", alert_id, started_by="op"))
    assert again.joined  # not repeated silently: a person decides (force)


@pytest.mark.parametrize(
    ("document", "where", "reason"),
    [
        ({"name": "x", "steps": [{"name": "a", "action": "nope"}]}, "steps[0] (a)", "unknown action 'nope'"),
        (
            {"name": "x", "steps": [{"name": "a", "action": "clear_failed", "args": {"max_per_run": 0}}]},
            "steps[0] (a).args.max_per_run",
            "greater than or equal to 1",
        ),
        (
            {"name": "x", "steps": [{"name": "a", "action": "escalate", "when": {"b.ok": "true"}}]},
            "steps[0] (a).when",
            "names no earlier step",
        ),
        (
            {"name": "x", "steps": [{"name": "a", "action": "escalate"}, {"name": "a", "action": "escalate"}]},
            "steps[1] (a)",
            "must be unique",
        ),
        ({"name": "x", "steps": [{"name": "a", "action": "escalate", "colour": "red"}]}, "steps[0] (a).colour", "Extra inputs"),
        ({"name": "x", "steps": []}, "steps", "at least 1"),
    ],
)
def test_a_broken_runbook_names_the_file_the_step_and_the_reason(document, where, reason):
    with pytest.raises(ConfigError) as caught:
        runbooks.parse(document, "runbooks/x.yaml")
    assert caught.value.file == "runbooks/x.yaml" and caught.value.key == where and reason in caught.value.reason


def test_the_configured_folder_adds_and_replaces_shipped_runbooks(tmp_path):
    (tmp_path / "pipeline-failure.yaml").write_text("name: pipeline-failure\nsteps: [{name: h, action: orchestrator_health}]\n")
    (tmp_path / "mine.yml").write_text("name: mine\nsteps: [{name: h, action: orchestrator_health}]\n")
    loaded = runbooks.load_all(tmp_path)
    assert [s.name for s in loaded["pipeline-failure"].steps] == ["h"] and "mine" in loaded
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        runbooks.load_all(tmp_path)


def test_configured_failure_patterns_are_checked_when_loaded_and_reach_the_classifier(store, tmp_path):
    from monitor.config import RunbookSettings

    with pytest.raises(ConfigError) as caught:
        runbooks.failure_patterns(
            [{"name": "ok", "category": "transient", "regex": "x"}, {"name": "slow", "category": "transient", "regex": "(a+)+"}]
        )
    assert caught.value.key == "runbooks.patterns[1].regex" and "nested quantifiers" in caught.value.reason
    settings = RunbookSettings(patterns=[{"name": "vendor_flake", "category": "transient", "regex": "VendorAPI busy"}])
    engine = Engine.from_settings(settings, {"diagnose": DIAGNOSE}, store, lambda name: EmbeddedSource(name, store, tmp_path))
    try:
        classify = ACTIONS["classify_failure"]
        alert_id = failed_alert(store)
        with store.session() as s:
            alert = alert_store.to_models(s, [alert_store.get(s, alert_id=alert_id)], deliveries=False)[0]
        alert = alert.model_copy(update={"details": {"error": "RuntimeError: VendorAPI busy, try later"}})
        ctx = StepContext(alert=alert, source=None, params={}, results={}, dry_run=False, clock=engine.clock, services=engine.services)
        finding = classify.run(ctx, classify.Args())
        assert (finding.data["category"], finding.data["rule"]) == ("transient", "vendor_flake")
    finally:
        engine.shutdown()
