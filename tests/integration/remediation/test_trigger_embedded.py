"""Starting new runs on the embedded runner, on real parts (Runner → StoreRecorder → SQLite store
in a temp data dir, the embedded source built with its runner and pipelines), and the shipped
drift-retrain runbook end to end through the Engine: a drift alert → the new data verified → the
configured training pipeline runs with its parameters → follow_run sees it succeed → notify writes
the alert's history note and replies in the alert's Slack thread (a local Slack-compatible
server). New data that fails its checks trains nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers.slack import SlackNotifier
from monitor.config import RunbookInputSettings, RunbookSettings, load_settings
from monitor.errors import PipelineNotFound
from monitor.model import Event, EventKind, ExecutionStatus, State, StepStatus
from monitor.remediation.engine import Engine, StartRequest
from monitor.remediation.runbook import load_all
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.sources.base import ActionUnsupported, Triggerable
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import open_store, runs
from monitor.store.db import Store
from monitor.store.recorder import StoreRecorder
from tests.fakes.slack import FakeSlack, Message
from tests.integration.server import wait_for

TOKEN = "xoxb-drift-token"


def retrain_pipeline(gate: threading.Event, seen: list[dict]) -> Pipeline:
    """fit → evaluate. `fit` waits for `gate` (so a test sees the run while it runs) and fails
    unless it was given the parameters the runbook passes."""
    p = Pipeline("retrain", params={"epochs": 1, "dataset": "old"})

    @p.task
    def fit(ctx):
        gate.wait(60)
        seen.append(dict(ctx.params))
        if ctx.params["epochs"] != 3:
            raise ValueError(f"trained with epochs={ctx.params['epochs']}, not the runbook's 3")
        return {"weights": ctx.params["epochs"] * 10}

    @p.task(upstream=[fit])
    def evaluate(fit):
        return fit["weights"] / 10

    return p


@dataclass
class World:
    store: Store
    sources: registry.Sources
    gate: threading.Event
    seen: list[dict]
    slack: FakeSlack
    policy: ingest.AlertPolicy
    notifier: SlackNotifier
    data_dir: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    slack = FakeSlack(tokens={TOKEN}).start()
    config = {
        "data_dir": str(tmp_path / "data"),
        "sources": [{"name": "embedded", "kind": "embedded"}, {"name": "trainer", "kind": "embedded"}],
        "receivers": [{"name": "chat", "kind": "slack", "token": TOKEN, "channel": "#alerts", "api_url": slack.api_url}],
        # Drift is P3 (dashboard only by default): this team wants it in Slack.
        "routes": [{"match": {"kind": "drift_detected"}, "receivers": ["chat"]}],
        "alerting": {"group_wait": "0s", "group_interval": "1s"},
    }
    path = tmp_path / "dagwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    settings.data_dir.mkdir(parents=True)
    store = open_store(settings.store_url)
    recorder = StoreRecorder(store)
    gate, seen = threading.Event(), []
    pipeline = retrain_pipeline(gate, seen)
    runners = {name: Runner(data_dir=settings.data_dir, recorder=recorder, source=name) for name in ("embedded", "trainer")}
    sources = registry.build_all(
        settings.sources,
        store=store,
        log_root=settings.data_dir / "logs",
        runners=runners,
        pipelines={"embedded": [pipeline], "trainer": [pipeline]},
    )
    policy = ingest.AlertPolicy.from_settings(settings)
    notifier = SlackNotifier(settings.receivers[0])  # the service's notifier of receiver `chat`
    yield World(store, sources, gate, seen, slack, policy, notifier, settings.data_dir)
    gate.set()  # never leave a run waiting
    recorder.close()
    store.close()
    slack.stop()


@pytest.fixture
def engine(world: World) -> Iterator[Engine]:
    built = Engine(
        world.store,
        load_all(),
        world.sources.find,
        services={"policy": world.policy, "notifiers": {"chat": world.notifier}, "sources": world.sources.find},
    )
    yield built
    built.shutdown()


def run_view(world: World, run_id: str, source: str = "embedded"):
    with world.store.session() as session:
        return runs.get(session, source=source, pipeline="retrain", run_id=run_id)


def all_runs(world: World) -> list:
    with world.store.session() as session:
        return runs.recent(session, pipeline="retrain")


def drift_alert_in_slack(world: World) -> tuple[int, Message]:
    """A drift alert, routed and delivered to Slack (so it has a message and thread)."""
    event = Event(kind=EventKind.DRIFT_DETECTED, source="embedded", pipeline="features", summary="feature amount drifted: PSI 0.41")
    alert_id = ingest.submit(world.store, [event], world.policy)[0].fired[0]
    state = dispatch.TickState()
    [message] = wait_for(
        lambda: dispatch.tick(world.store, {"chat": world.notifier}, world.policy, state=state) >= 0 and list(world.slack.messages.values())
    )
    return alert_id, message


def history_notes(world: World, alert_id: int) -> list[str]:
    with world.store.session() as session:
        return [h.note or "" for h in alert_store.history(session, alert_id=alert_id) if h.change == "runbook"]


# --- the source ---------------------------------------------------------------------------------


def test_trigger_returns_the_run_id_at_once_and_the_run_runs_in_the_background(world):
    source = world.sources.get("embedded")
    assert isinstance(source, Triggerable)
    result = source.trigger("retrain", {"epochs": 3}, dry_run=False)
    assert result.run_id and not result.dry_run and result.run_id in result.message
    # fit is held by the gate: the call returned while the run is running, recorded under its id.
    running = wait_for(lambda: run_view(world, result.run_id))
    assert running.state is State.RUNNING and not world.seen
    world.gate.set()
    done = wait_for(lambda: (view := run_view(world, result.run_id)) is not None and view.state.terminal and view)
    assert done.state is State.SUCCESS
    assert done.params == {"epochs": 3, "dataset": "old"}  # the trigger's params over the pipeline's own
    assert world.seen == [{"epochs": 3, "dataset": "old"}]


def test_dry_run_names_what_would_run_and_starts_nothing(world):
    result = world.sources.get("embedded").trigger("retrain", {"epochs": 3}, dry_run=True)
    assert result.run_id is None and result.dry_run
    assert result.message == "would start a run of retrain with params {'epochs': 3, 'dataset': 'old'}"
    assert all_runs(world) == []


def test_unknown_pipeline_and_a_source_without_its_runner_refuse(world):
    with pytest.raises(PipelineNotFound, match=r"has no pipeline 'nightly' configured \(it has \['retrain'\]\), so it cannot start it"):
        world.sources.get("embedded").trigger("nightly", {}, dry_run=True)
    bare = EmbeddedSource("embedded", world.store, world.data_dir / "logs")
    with pytest.raises(ActionUnsupported, match="was built without its runner, so it cannot start runs"):
        bare.trigger("retrain", {}, dry_run=False)
    assert all_runs(world) == []


# --- the drift-retrain runbook through the engine ----------------------------------------------


def test_drift_retrain_trains_follows_the_run_and_reports_to_the_alert_and_its_slack_thread(world, engine):
    alert_id, message = drift_alert_in_slack(world)
    world.gate.set()
    started = engine.start(
        StartRequest(
            "drift-retrain", alert_id, started_by="policy:drift", params={"training_pipeline": "retrain", "training_params": {"epochs": 3}}
        )
    )
    done = engine.wait(started.execution.id, timeout=120)

    assert done.status is ExecutionStatus.SUCCEEDED, [(s.name, s.status, s.summary) for s in done.steps]
    steps = {s.name: s for s in done.steps}
    assert [s.name for s in done.steps] == ["health", "inputs", "train", "training", "report"]
    assert all(s.status is StepStatus.SUCCEEDED for s in done.steps)
    run_id = steps["train"].data["run_id"]
    assert steps["train"].data | {"triggered_at": None} == {
        "ok": True,
        "triggered": True,
        "dry_run": False,
        "run_id": run_id,
        "source": "embedded",
        "pipeline": "retrain",
        "params": {"epochs": 3},
        "triggered_at": None,
    }
    # follow_run followed the triggered run (not the alert's pipeline, `features`) to its success.
    assert steps["training"].data["state"] == "success" and steps["training"].data["run_id"] == run_id
    view = run_view(world, run_id)
    assert view.state is State.SUCCESS and view.params == {"epochs": 3, "dataset": "old"}
    assert world.seen == [{"epochs": 3, "dataset": "old"}]

    [note] = history_notes(world, alert_id)
    assert note.startswith(f"drift-retrain (alert #{alert_id})")
    assert f"• train — ok: started run {run_id} of retrain" in note
    assert f"• training — ok: run {run_id} of retrain ended success" in note
    replies = [m.text for m in world.slack.thread(message.channel, message.ts)]
    assert note in replies
    assert steps["report"].data["slack_threads"] == [f"chat:{message.channel}/{message.ts}"]


def test_drift_retrain_on_another_source_follows_the_run_there(world, engine):
    """`training_source` names another source: the run starts there, follow_run reads it there."""
    alert_id, _ = drift_alert_in_slack(world)
    world.gate.set()
    started = engine.start(
        StartRequest(
            "drift-retrain",
            alert_id,
            started_by="op",
            params={"training_pipeline": "retrain", "training_source": "trainer", "training_params": {"epochs": 3}},
        )
    )
    done = engine.wait(started.execution.id, timeout=120)
    assert done.status is ExecutionStatus.SUCCEEDED
    steps = {s.name: s for s in done.steps}
    run_id = steps["train"].data["run_id"]
    assert steps["train"].data["source"] == "trainer" and steps["training"].data["state"] == "success"
    assert run_view(world, run_id, source="trainer").state is State.SUCCESS
    assert run_view(world, run_id, source="embedded") is None


def test_drift_retrain_without_a_training_pipeline_triggers_nothing_and_still_reports(world, engine):
    alert_id, message = drift_alert_in_slack(world)
    done = engine.wait(engine.start(StartRequest("drift-retrain", alert_id, started_by="op")).execution.id, timeout=60)
    assert done.status is ExecutionStatus.SUCCEEDED
    steps = {s.name: s for s in done.steps}
    assert steps["train"].status is StepStatus.SUCCEEDED and steps["train"].data == {"ok": False, "triggered": False, "dry_run": False}
    assert "nothing triggered" in steps["train"].summary
    assert steps["training"].status is StepStatus.SKIPPED
    assert steps["report"].status is StepStatus.SUCCEEDED
    assert all_runs(world) == []
    [note] = history_notes(world, alert_id)
    assert "• train — not ok: no pipeline to trigger" in note
    assert note in [m.text for m in world.slack.thread(message.channel, message.ts)]


def test_drift_retrain_dry_run_previews_and_changes_nothing(world, engine):
    alert_id, message = drift_alert_in_slack(world)
    started = engine.start(
        StartRequest(
            "drift-retrain",
            alert_id,
            started_by="op",
            dry_run=True,
            params={"training_pipeline": "retrain", "training_params": {"epochs": 3}},
        )
    )
    done = engine.wait(started.execution.id, timeout=60)
    steps = {s.name: s for s in done.steps}
    assert steps["train"].status is StepStatus.PREVIEWED
    assert steps["train"].summary == "would start a run of retrain with params {'epochs': 3, 'dataset': 'old'}"
    assert steps["training"].summary == "dry run: would wait for the new run to end"
    assert steps["report"].data["dry_run"] is True and "would note on alert" in steps["report"].summary
    assert all_runs(world) == [] and history_notes(world, alert_id) == []
    assert world.slack.thread(message.channel, message.ts) == []


def test_a_policy_that_may_not_change_things_skips_the_training_but_reports(world, engine):
    alert_id, _ = drift_alert_in_slack(world)
    started = engine.start(
        StartRequest("drift-retrain", alert_id, started_by="policy", allow_mutating=False, params={"training_pipeline": "retrain"})
    )
    done = engine.wait(started.execution.id, timeout=60)
    steps = {s.name: s for s in done.steps}
    assert steps["train"].status is StepStatus.SKIPPED and steps["training"].status is StepStatus.SKIPPED
    assert steps["report"].status is StepStatus.SUCCEEDED
    assert all_runs(world) == []
    [note] = history_notes(world, alert_id)
    assert "• health — ok" in note and "train" not in note.split("\n", 1)[1]


def test_slack_refusing_the_reply_is_reported_and_the_alert_page_still_gets_the_note(world, engine):
    alert_id, message = drift_alert_in_slack(world)
    world.slack.rate_limit(1)  # notify's thread reply is the next Slack call
    done = engine.wait(engine.start(StartRequest("drift-retrain", alert_id, started_by="op")).execution.id, timeout=60)
    report = next(s for s in done.steps if s.name == "report")
    assert report.status is StepStatus.SUCCEEDED and report.data["ok"] is False
    assert "noted on the alert page; Slack refused: chat: Slack API answered HTTP 429" in report.summary
    assert done.status is ExecutionStatus.SUCCEEDED  # a finding that is not ok does not fail the execution
    assert len(history_notes(world, alert_id)) == 1
    assert world.slack.thread(message.channel, message.ts) == []


def test_new_data_that_fails_its_checks_trains_nothing(world, tmp_path):
    """The drifting pipeline declares its input (runbooks.inputs); the file is short of rows."""
    data = tmp_path / "features.csv"
    data.write_text("amount\n1\n2\n")
    settings = RunbookSettings(inputs={"features": [RunbookInputSettings(path=str(data), min_rows=100)]})
    engine = Engine(
        world.store,
        load_all(),
        world.sources.find,
        services={"policy": world.policy, "notifiers": {"chat": world.notifier}, "runbook_settings": settings},
    )
    try:
        alert_id, _ = drift_alert_in_slack(world)
        done = engine.wait(
            engine.start(
                StartRequest(
                    "drift-retrain", alert_id, started_by="op", params={"training_pipeline": "retrain", "training_params": {"epochs": 3}}
                )
            ).execution.id,
            timeout=60,
        )
    finally:
        engine.shutdown()
    steps = {s.name: s for s in done.steps}
    assert steps["inputs"].data["ok"] is False and "1 of 1 input(s) of features fail" in steps["inputs"].summary
    assert steps["train"].status is StepStatus.SKIPPED and steps["training"].status is StepStatus.SKIPPED
    assert all_runs(world) == []
    [note] = history_notes(world, alert_id)
    assert "• inputs — not ok: 1 of 1 input(s) of features fail" in note
