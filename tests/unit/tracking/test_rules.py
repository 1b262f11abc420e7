"""Stuck, missing, policy and silent-failure rules, one case at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.model import PipelineDefinition, RunSnapshot, State, TaskDefinition, TaskSnapshot
from monitor.tracking import rules

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def running(seconds: float, task="train", pipeline="p"):
    return rules.Running(pipeline, "r1", task, NOW - timedelta(seconds=seconds))


def test_p95_needs_three_samples_and_uses_nearest_rank():
    assert rules.p95([10, 20]) is None
    assert rules.p95([10, 20, 30]) == 30
    assert rules.p95(list(range(1, 101))) == 95


def test_stuck_over_1_5x_p95_of_its_history():
    history = {("p", "train"): [100.0] * 18 + [120.0] * 2}  # nearest-rank p95 of 20 = the 19th = 120
    assert rules.stuck([running(179)], history, {}, 1.5, NOW) == []
    [finding] = rules.stuck([running(181)], history, {}, 1.5, NOW)
    assert finding.limit == 180 and "p95 of its last 20" in finding.basis


def test_no_history_no_verdict_but_explicit_expected_duration_overrides():
    assert rules.stuck([running(10_000)], {}, {}, 1.5, NOW) == []
    [finding] = rules.stuck([running(61)], {("p", "train"): [1000.0] * 5}, {"p.train": timedelta(seconds=60)}, 1.5, NOW)
    assert finding.basis == "expected duration"
    [whole] = rules.stuck([running(61, task="other")], {}, {"p": timedelta(seconds=60)}, 1.5, NOW)
    assert whole.task.task_id == "other"


def definition(**kw):
    base = {"source": "s", "pipeline": "p", "next_run_expected_at": NOW - timedelta(minutes=20), "schedule": "0 * * * *"}
    return PipelineDefinition(**{**base, **kw})


def test_missing_run_after_grace():
    grace = timedelta(minutes=10)
    assert rules.missing([definition()], {}, grace, NOW) == [definition()]
    assert rules.missing([definition()], {"p": NOW - timedelta(minutes=19)}, grace, NOW) == []  # it started
    assert rules.missing([definition(next_run_expected_at=NOW - timedelta(minutes=5))], {}, grace, NOW) == []  # within grace
    assert rules.missing([definition(paused=True)], {}, grace, NOW) == []
    assert rules.missing([definition(next_run_expected_at=None)], {}, grace, NOW) == []


def test_policy_flags_ml_tasks_without_retries_or_timeout():
    d = definition(
        tasks=(
            TaskDefinition(task_id="train", retries=0, timeout_seconds=None, tags=("ml",)),
            TaskDefinition(task_id="eval", retries=2, timeout_seconds=600, tags=("ml",)),
            TaskDefinition(task_id="copy", retries=0, timeout_seconds=None),
        )
    )
    [finding] = rules.policy([d], ["ml"])
    assert finding.task_id == "train" and len(finding.problems) == 2
    pipeline_tagged = definition(tags=("ml",), tasks=(TaskDefinition(task_id="copy", retries=1, timeout_seconds=None),))
    assert [f.task_id for f in rules.policy([pipeline_tagged], ["ml"])] == ["copy"]


RISKY = (TaskDefinition(task_id="train", retries=0, timeout_seconds=None, tags=("ml",)),)


def test_policy_skips_paused_pipelines():
    """A paused DAG never runs, so its settings risk nothing until it is resumed."""
    assert rules.policy([definition(paused=True, tasks=RISKY)], ["ml"]) == []
    assert [f.pipeline for f in rules.policy([definition(paused=True, tasks=RISKY), definition(pipeline="q", tasks=RISKY)], ["ml"])] == [
        "q"
    ]


@pytest.mark.parametrize(
    ("definitions", "why"),
    [
        (
            [definition(tasks=(TaskDefinition(task_id="train", retries=2, timeout_seconds=600, tags=("ml",)),))],
            "train of p now has retries and a timeout",
        ),
        ([definition(paused=True, tasks=RISKY)], "p is paused: its policy no longer applies"),
        ([definition(pipeline="other", tasks=RISKY)], "p is no longer defined (or no longer watched)"),
        ([definition(tasks=())], "train is no longer a task of p"),
    ],
)
def test_policy_cleared_says_why(definitions, why):
    findings = rules.policy(definitions, ["ml"])
    assert rules.policy_cleared({("p", "train")}, findings, definitions) == [("p", "train", why)]


def test_policy_still_broken_is_not_cleared():
    definitions = [definition(tasks=RISKY)]
    assert rules.policy_cleared({("p", "train")}, rules.policy(definitions, ["ml"]), definitions) == []


def test_silent_failure_when_the_output_task_was_skipped():
    snap = RunSnapshot(
        source="s", pipeline="p", run_id="r", state=State.SUCCESS, tasks=(TaskSnapshot(task_id="publish", state=State.SKIPPED),)
    )
    assert "was skipped" in rules.silent_failure(snap, "publish")
    assert rules.silent_failure(snap, None) is None
    assert "did not run" in rules.silent_failure(snap, "export")
    ok = snap.model_copy(update={"tasks": (TaskSnapshot(task_id="publish", state=State.SUCCESS),)})
    assert rules.silent_failure(ok, "publish") is None


def test_queued_too_long():
    queued = [rules.Running("p", "r1", "train", NOW - timedelta(minutes=31)), rules.Running("p", "r1", "eval", NOW - timedelta(minutes=5))]
    [finding] = rules.queued_too_long(queued, timedelta(minutes=30), NOW)
    assert finding.task.task_id == "train" and finding.basis == "queued limit"
