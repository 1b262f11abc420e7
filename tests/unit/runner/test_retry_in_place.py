"""A failed run retried in place: only its failed tasks and their downstream run again, under the
same run id, with the run's own upstream results and try numbers that continue; what a retry
cannot do (results no longer kept, a needed upstream that did not succeed) is refused up front."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monitor.errors import Conflict, InvalidRequest
from monitor.model import RunSnapshot, State
from monitor.runner import Pipeline, RetryImpossible, Runner, RunResult
from monitor.runner.cache import ResultStore, RunRecord
from tests.unit.runner.test_engine import ListRecorder

WAIT = 30  # seconds a retry may take before the test gives up (never reached when it works)


def bump(path: Path) -> int:
    """Count one execution in a file; returns the count so far."""
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


def as_recorded(result: RunResult) -> RunSnapshot:
    """The run as the store would hand it to the embedded source."""
    return RunSnapshot(
        source="embedded", pipeline=result.pipeline, run_id=result.run_id, state=result.state, tasks=tuple(result.tasks.values())
    )


def diamond(tmp: Path, *, fail_times: int = 1, retries: int = 0) -> Pipeline:
    """prepare → train → evaluate, and prepare → report; train fails its first `fail_times` calls."""
    p = Pipeline("diamond", params={"lr": 0.1})

    @p.task
    def prepare():
        bump(tmp / "prepare")
        return [1, 2, 3]

    @p.task(upstream=[prepare], retries=retries, retry_delay=0, jitter=0)
    def train(ctx, prepare):
        print(f"training, try {ctx.try_number} of {ctx.max_tries}")
        if bump(tmp / "train") <= fail_times:
            raise RuntimeError("CUDA out of memory")
        return sum(prepare) * ctx.params["lr"]

    @p.task(upstream=[train])
    def evaluate(train):
        bump(tmp / "evaluate")
        return train * 2

    @p.task(upstream=[prepare])
    def report(prepare):
        bump(tmp / "report")
        return len(prepare)

    return p


def test_plan_names_the_failed_task_its_downstream_and_the_reused_upstream(data_dir, tmp_path):
    p = diamond(tmp_path)
    failed = Runner(data_dir=data_dir).run(p)
    assert failed.state is State.FAILED

    plan = Runner(data_dir=data_dir).plan_retry(p, as_recorded(failed))

    assert plan.tasks == ("train", "evaluate")
    assert plan.reused == ("prepare",)
    assert plan.last_try == {"train": 1, "evaluate": 0}  # evaluate never ran: its retry is its first try
    assert plan.params == {"lr": 0.1} and plan.run_id == failed.run_id


def test_retry_reruns_only_those_tasks_with_the_runs_upstream_results_and_next_tries(data_dir, tmp_path):
    p = diamond(tmp_path)
    recorder = ListRecorder()
    runner = Runner(data_dir=data_dir, recorder=recorder)
    failed = runner.run(p)
    recorder.states.clear()

    result = runner.start_retry(runner.plan_retry(p, as_recorded(failed))).result(timeout=WAIT)

    assert result.state is State.SUCCESS and result.run_id == failed.run_id
    assert result.results["evaluate"] == pytest.approx(1.2)
    assert result.results["report"] == 3  # the run's other results are still the run's
    assert {name: int((tmp_path / name).read_text()) for name in ("prepare", "train", "evaluate", "report")} == {
        "prepare": 1,
        "train": 2,
        "evaluate": 1,
        "report": 1,
    }
    assert recorder.of("train") == [("scheduled", 2), ("running", 2), ("success", 2)]
    assert recorder.of("evaluate") == [("scheduled", 1), ("running", 1), ("success", 1)]
    assert recorder.of("prepare") == [] and recorder.of("report") == []
    assert result.task("train").max_tries == 2
    assert set(recorder.runs) == {failed.run_id}
    logs = data_dir / "logs" / "diamond" / failed.run_id / "train"
    assert "training, try 2 of 2" in (logs / "try-2.log").read_text()
    assert "CUDA out of memory" in (logs / "try-1.log").read_text()  # the failed try's log is kept


def test_a_retry_gets_the_tasks_retries_again_counting_on_from_the_last_try(data_dir, tmp_path):
    p = diamond(tmp_path, fail_times=3, retries=1)
    recorder = ListRecorder()
    runner = Runner(data_dir=data_dir, recorder=recorder)
    failed = runner.run(p)
    assert failed.task("train").try_number == 2 and failed.state is State.FAILED
    recorder.states.clear()

    result = runner.start_retry(runner.plan_retry(p, as_recorded(failed))).result(timeout=WAIT)

    assert result.state is State.SUCCESS
    assert recorder.of("train") == [("scheduled", 3), ("running", 3), ("retrying", 3), ("running", 4), ("success", 4)]
    assert result.task("train").max_tries == 4


def test_a_retry_that_fails_again_can_be_retried_again(data_dir, tmp_path):
    p = diamond(tmp_path, fail_times=2)
    runner = Runner(data_dir=data_dir)
    first = runner.run(p)
    again = runner.start_retry(runner.plan_retry(p, as_recorded(first))).result(timeout=WAIT)
    assert again.state is State.FAILED and again.task("train").try_number == 2
    assert again.task("evaluate").state is State.UPSTREAM_FAILED

    last = runner.start_retry(runner.plan_retry(p, as_recorded(again))).result(timeout=WAIT)

    assert last.state is State.SUCCESS and last.task("train").try_number == 3
    assert int((tmp_path / "prepare").read_text()) == 1


def test_task_ids_narrow_the_retry_to_those_failed_tasks(data_dir, tmp_path):
    p = Pipeline("two_branches")

    @p.task
    def source():
        return 1

    @p.task(upstream=[source])
    def left(source):
        if bump(tmp_path / "left") == 1:
            raise ValueError("left broke")

    @p.task(upstream=[source])
    def right(source):
        raise ValueError("right always breaks")

    @p.task(upstream=[right])
    def after_right(right):
        return right

    runner = Runner(data_dir=data_dir)
    run = as_recorded(runner.run(p))

    assert runner.plan_retry(p, run).tasks == ("left", "right", "after_right")
    assert runner.plan_retry(p, run, ["left"]).tasks == ("left",)
    assert runner.plan_retry(p, run, ["source"]).tasks == ()  # it did not fail: nothing to retry
    with pytest.raises(InvalidRequest, match=r"no task\(s\) \['nope'\].*its tasks: \['source', 'left', 'right', 'after_right'\]"):
        runner.plan_retry(p, run, ["nope"])
    with pytest.raises(RetryImpossible, match=r"\['right'\] did not succeed.*include them in task_ids") as refused:
        runner.plan_retry(p, run, ["after_right"])
    assert isinstance(refused.value, Conflict)

    result = runner.start_retry(runner.plan_retry(p, run, ["left"])).result(timeout=WAIT)
    assert result.state is State.FAILED  # right is still failed
    assert result.task("left").state is State.SUCCESS and result.task("left").try_number == 2


def test_a_successful_run_has_nothing_to_retry(data_dir):
    p = Pipeline("fine")

    @p.task
    def only():
        return 1

    runner = Runner(data_dir=data_dir)
    plan = runner.plan_retry(p, as_recorded(runner.run(p)))
    assert plan.tasks == ()
    with pytest.raises(InvalidRequest, match="no failed task to retry"):
        runner.start_retry(plan)


def test_a_run_whose_results_are_no_longer_kept_is_refused_with_what_to_do(data_dir, tmp_path):
    p = diamond(tmp_path, fail_times=10)
    runner = Runner(data_dir=data_dir, keep_runs=2)
    oldest, *_ = [runner.run(p) for _ in range(3)]

    with pytest.raises(RetryImpossible, match=r"no longer kept \(the last 2 runs.*start a new run"):
        runner.plan_retry(p, as_recorded(oldest))
    assert len(list((data_dir / "results" / "runs" / "diamond").glob("*.pkl"))) == 2


def test_an_upstream_result_that_cannot_be_pickled_is_named(data_dir):
    p = Pipeline("locked")

    @p.task
    def make_lock():
        return threading.Lock()

    @p.task(upstream=[make_lock])
    def use(make_lock):
        raise RuntimeError("broken")

    @p.task(upstream=[make_lock])
    def after_only(ctx):  # ordered after make_lock, does not take its result
        raise RuntimeError("broken too")

    runner = Runner(data_dir=data_dir)
    run = as_recorded(runner.run(p))
    with pytest.raises(RetryImpossible, match=r"kept no result of \['make_lock'\].*picklable"):
        runner.plan_retry(p, run)
    plan = runner.plan_retry(p, run, ["after_only"])
    assert plan.tasks == ("after_only",) and plan.reused == ()


def test_a_failed_mapped_task_is_rerun_as_a_whole_over_the_runs_list(data_dir, tmp_path):
    p = Pipeline("mapped")

    @p.task
    def items():
        bump(tmp_path / "items")
        return [1, 2, 3]

    @p.task(map_over=items)
    def square(items):
        if items == 2 and bump(tmp_path / "flag") == 1:
            raise RuntimeError("flaky item")
        return items * items

    @p.task(upstream=[square])
    def total(square):
        return sum(square)

    runner = Runner(data_dir=data_dir)
    failed = runner.run(p)
    assert failed.state is State.FAILED and failed.task("square", 1).state is State.FAILED

    result = runner.start_retry(runner.plan_retry(p, as_recorded(failed))).result(timeout=WAIT)

    assert result.state is State.SUCCESS and result.results["total"] == 14
    assert result.task("square", 1).try_number == 2 and int((tmp_path / "items").read_text()) == 1


def test_result_store_keeps_each_runs_record_bounded(tmp_path):
    results = ResultStore(tmp_path, keep_runs=2)
    for run_id in ("r1", "r/2 with odd characters", "r3"):
        assert results.put_run("p", run_id, RunRecord({"k": 1}, 0, {"a": run_id, "bad": threading.Lock()})) == ["bad"]
    assert results.run("p", "r1") is None
    assert results.run("p", "r3") == RunRecord({"k": 1}, 0, {"a": "r3"})
    assert results.run("p", "r/2 with odd characters").results == {"a": "r/2 with odd characters"}
    with pytest.raises(ValueError, match="keep_runs must be at least 1"):
        ResultStore(tmp_path, keep_runs=0)
