"""Slack's runbook buttons on real parts: the alert of a failed embedded run is posted (Block Kit,
through slack_sdk) to the local Slack-compatible server; a mapped operator clicks "Run runbook" or
"Retry failed tasks" (a signed form POST, as Slack sends it) on a real app served by uvicorn; the
answer is immediate, the execution runs in the engine's workers with `started_by` slack:<operator>,
and its result lands in the alert message's thread. A replayed click is refused by the app that saw
it and joins, never re-runs, on another app instance (a restart: its replay guard is empty) that
shares the store."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers.slack import SlackNotifier
from monitor.api.app import create_app
from monitor.config import load_settings
from monitor.model import ExecutionStatus, State
from monitor.remediation.engine import Engine
from monitor.remediation.runbook import load_all
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.store import open_store, runs
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector
from tests.fakes.slack import FakeSlack, Message, click_body, signed
from tests.integration.server import serve_app, wait_for

TOKEN = "xoxb-runbook-token"
SIGNING = "runbook-signing-secret"
ALICE = "U024BE7LH"


def config(data_dir: Path, api_url: str) -> dict:
    receiver = {
        "name": "chat",
        "kind": "slack",
        "token": TOKEN,
        "channel": "#alerts",
        "api_url": api_url,
        "signing_secret": SIGNING,
        "operators": {ALICE: "alice"},
    }
    return {
        "data_dir": str(data_dir),
        "server": {"public_url": "http://dagwatch.test"},
        "sources": [{"name": "embedded", "kind": "embedded"}],
        "alerting": {"group_wait": "0s", "group_interval": "1s"},
        "receivers": [receiver],
    }


def flaky_pipeline(flag: Path) -> Pipeline:
    """prepare → train: train fails with a schema error the first time (a persistent-looking
    failure: the runbook does not retry it), and succeeds when it is run again."""
    p = Pipeline("nightly_training")

    @p.task
    def prepare():
        return [1, 2, 3]

    @p.task(upstream=[prepare])
    def train(prepare):
        if not flag.exists():
            flag.touch()
            raise KeyError("column 'label' missing from the feature table (schema mismatch)")
        return sum(prepare)

    return p


@dataclass
class World:
    settings: object
    pipeline: Pipeline
    runner: Runner
    slack: FakeSlack


@dataclass
class Instance:
    """One dagwatch process: its own store connection, engine, Slack notifier and app."""

    url: str
    engine: Engine


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    slack = FakeSlack(tokens={TOKEN}).start()
    path = tmp_path / "dagwatch.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "data", slack.api_url)))
    settings = load_settings(path)
    settings.data_dir.mkdir(parents=True)
    store = open_store(settings.store_url)  # migrates; the runner records into it
    recorder = StoreRecorder(store)
    yield World(settings, flaky_pipeline(tmp_path / "train.flag"), Runner(data_dir=settings.data_dir, recorder=recorder), slack)
    recorder.close()
    store.close()
    slack.stop()


@contextmanager
def instance(world: World) -> Iterator[Instance]:
    settings = world.settings
    store = open_store(settings.store_url)
    sources = registry.build_all(
        settings.sources,
        store=store,
        log_root=settings.data_dir / "logs",
        runners={"embedded": world.runner},
        pipelines={"embedded": [world.pipeline]},
    )
    engine = Engine.from_settings(settings.runbooks, load_all(settings.runbooks.folder), store, sources.find)
    policy = ingest.AlertPolicy.from_settings(settings)
    notifiers = {"chat": SlackNotifier(settings.receivers[0], runbooks=engine.runbooks.values())}
    app = create_app(store, policy, slack_signing_secrets=[SIGNING], sources=sources, runbook_engine=engine, notifiers=notifiers)
    try:
        with serve_app(app) as url:
            yield Instance(url, engine)
    finally:
        engine.shutdown()
        store.close()


def fail_and_post(world: World) -> tuple[str, Message]:
    """One failed run of the pipeline, polled into alerts and delivered to Slack."""
    store = open_store(world.settings.store_url)
    try:
        failed = world.runner.run(world.pipeline)
        assert failed.state is State.FAILED
        sources = registry.build_all(world.settings.sources, store=store, log_root=world.settings.data_dir / "logs")
        policy = ingest.AlertPolicy.from_settings(world.settings)
        Collector(sources.get("embedded"), store, policy).poll_once()
        notifiers = {"chat": SlackNotifier(world.settings.receivers[0], runbooks=load_all().values())}
        state = dispatch.TickState()
        [message] = wait_for(lambda: dispatch.tick(store, notifiers, policy, state=state) >= 0 and list(world.slack.messages.values()))
        return failed.run_id, message
    finally:
        store.close()


def press(
    inst: Instance, message: Message, action_id: str, trigger: str, user: str = ALICE
) -> tuple[bytes, dict[str, str], httpx.Response]:
    body = click_body(message.blocks, action_id, user, trigger)
    headers = signed(body, SIGNING)
    return body, headers, httpx.post(f"{inst.url}/slack/actions", content=body, headers=headers, timeout=10)


def thread_texts(world: World, message: Message) -> list[str]:
    return [m.text for m in world.slack.thread(message.channel, message.ts)]


def test_run_runbook_click_runs_once_and_reports_in_the_thread(world):
    _run_id, message = fail_and_post(world)
    ids = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert {"dagwatch_run_runbook", "dagwatch_retry", "dagwatch_ack", "dagwatch_silence"} <= set(ids)

    with instance(world) as first:
        body, headers, answer = press(first, message, "dagwatch_run_runbook", "trig-run-1")
        assert answer.status_code == 200 and answer.json()["response_type"] == "ephemeral"
        assert "Started runbook pipeline-failure" in answer.json()["text"]
        execution_id = int(answer.json()["text"].split("(execution #")[1].split(")")[0])

        # The same signed request again, to the app that saw it: refused before anything is read.
        assert httpx.post(f"{first.url}/slack/actions", content=body, headers=headers).status_code == 401

        done = first.engine.wait(execution_id, timeout=120)
        assert done.started_by == "slack:alice" and done.runbook == "pipeline-failure" and done.status.finished
        replies = wait_for(lambda: len(thread_texts(world, message)) >= 2 and thread_texts(world, message))
        assert "slack:alice started runbook *pipeline-failure*" in replies[0] and f"execution #{execution_id}" in replies[0]
        report = replies[1]
        assert f"runbook *pipeline-failure* (execution #{execution_id}, started by slack:alice) {done.status.value}" in report
        for step in done.steps:
            assert f"• {step.name} — {step.status.value}" in report
        assert TOKEN not in report and SIGNING not in report

    # A restart (another instance, same store): the replay guard lives in the database, so the
    # replayed request is still refused; a new click (another trigger) joins by run-once.
    with instance(world) as second:
        assert httpx.post(f"{second.url}/slack/actions", content=body, headers=headers).status_code == 401
        _body, _headers, answer = press(second, message, "dagwatch_run_runbook", "trig-after-restart")
        assert answer.status_code == 200
        assert f"pipeline-failure already ran ({done.status.value}) for alert" in answer.json()["text"]
        assert f"execution #{execution_id}, started by slack:alice; nothing new was started" in answer.json()["text"]
        listed = httpx.get(f"{second.url}/api/v1/runbooks/executions/{execution_id + 1}")
        assert listed.status_code == 404  # no second execution exists
    assert len(thread_texts(world, message)) == 2  # and nothing new was posted


def test_replay_to_another_instance_is_refused_and_a_second_click_joins(world):
    """Two instances up at once, sharing the store: the click goes to one; its replay to the other
    is refused (the guard is in the database); a second click there, while the first execution
    may still be running, joins it: one execution, both answers name it."""
    _run_id, message = fail_and_post(world)
    with instance(world) as one, instance(world) as two:
        body, headers, first = press(one, message, "dagwatch_run_runbook", "trig-twice")
        assert httpx.post(f"{two.url}/slack/actions", content=body, headers=headers).status_code == 401
        _body, _headers, second = press(two, message, "dagwatch_run_runbook", "trig-twice-again")
        assert first.status_code == second.status_code == 200
        execution = first.json()["text"].split("(execution #")[1].split(")")[0]
        assert "Started runbook" in first.json()["text"]
        assert "nothing new was started" in second.json()["text"] and f"execution #{execution}," in second.json()["text"]
        one.engine.wait(int(execution), timeout=120)


def test_retry_button_reruns_the_failed_tasks_and_reports(world):
    run_id, message = fail_and_post(world)
    with instance(world) as inst:
        _body, _headers, answer = press(inst, message, "dagwatch_retry", "trig-retry")
        assert "Started runbook retry-failed" in answer.json()["text"]
        execution_id = int(answer.json()["text"].split("(execution #")[1].split(")")[0])
        done = inst.engine.wait(execution_id, timeout=120)
        assert done.runbook == "retry-failed" and done.started_by == "slack:alice"
        assert done.status is ExecutionStatus.SUCCEEDED, done
        with inst.engine.store.session() as session:
            assert runs.get(session, source="embedded", pipeline="nightly_training", run_id=run_id).state is State.SUCCESS
        report = wait_for(lambda: len(thread_texts(world, message)) >= 2 and thread_texts(world, message)[1])
        assert f"runbook *retry-failed* (execution #{execution_id}, started by slack:alice) succeeded" in report
        assert "• clear — succeeded" in report and "• rerun — succeeded" in report


def test_unmapped_user_starts_nothing(world):
    _run_id, message = fail_and_post(world)
    with instance(world) as inst:
        for action_id in ("dagwatch_run_runbook", "dagwatch_retry"):
            _body, _headers, answer = press(inst, message, action_id, f"trig-{action_id}", user="U0STRANGER")
            assert "add your Slack id U0STRANGER to receivers[chat].operators" in answer.json()["text"]
        assert httpx.get(f"{inst.url}/api/v1/runbooks/executions/1").status_code == 404
    assert thread_texts(world, message) == []
