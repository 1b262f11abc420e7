"""The runner end to end on threads and processes: states, retries, timeouts, caching, mapping,
hooks, checkpoints, logs, isolated task runs."""

from __future__ import annotations

import os
import threading
import time

import pytest

from monitor.model import State
from monitor.runner import Pipeline, RunError, Runner
from tests.unit.runner import tasks_for_process


class ListRecorder:
    """Keeps every recorded task state in order (a real Recorder, in memory)."""

    def __init__(self):
        self.states: list[tuple[str, int, str, int]] = []
        self.runs: list[str] = []
        self.flushed = 0

    def next_run_number(self, source, pipeline):
        return len(set(self.runs))

    def record(self, run, tasks):
        self.runs.append(run.run_id)
        for t in tasks:
            self.states.append((t.task_id, t.map_index, t.state.value, t.try_number))

    def flush(self):
        self.flushed += 1

    def of(self, task):
        return [(s, n) for name, _, s, n in self.states if name == task]


def test_linear_pipeline_passes_results_downstream(data_dir):
    p = Pipeline("p")

    @p.task
    def a():
        return 2

    @p.task(upstream=[a])
    def b(a):
        return a * 10

    @p.task(upstream=[a, b])
    def c(ctx, a, b):
        return (a, b, ctx.params["k"])

    result = Runner(data_dir=data_dir).run(p, {"k": "v"})
    assert result.state is State.SUCCESS
    assert result.results["c"] == (2, 20, "v")


def test_independent_tasks_run_in_parallel(data_dir):
    barrier = threading.Barrier(3, timeout=10)
    p = Pipeline("p")
    for name in ("x", "y", "z"):

        def meet():
            barrier.wait()  # only passes if all three run at the same time
            return threading.get_ident()

        meet.__name__ = name
        p.task(meet)
    result = Runner(data_dir=data_dir, max_workers=3).run(p)
    assert result.state is State.SUCCESS
    assert len({result.results[n] for n in "xyz"}) == 3


def test_failure_marks_downstream_upstream_failed_and_run_failed(data_dir):
    p = Pipeline("p")

    @p.task
    def a():
        raise RuntimeError("disk full")

    @p.task(upstream=[a])
    def b(a):
        return a

    @p.task(upstream=[b])
    def c(b):
        return b

    @p.task
    def independent():
        return "fine"

    recorder = ListRecorder()
    result = Runner(data_dir=data_dir, recorder=recorder).run(p)
    assert result.state is State.FAILED
    assert result.task("a").state is State.FAILED
    assert result.task("a").error == "RuntimeError: disk full"
    assert "disk full" in result.task("a").traceback
    assert result.task("b").state is State.UPSTREAM_FAILED
    assert result.task("c").state is State.UPSTREAM_FAILED
    assert result.task("independent").state is State.SUCCESS
    assert ("upstream_failed", 1) in recorder.of("c")
    assert recorder.flushed == 1


def test_retries_until_success_with_states_recorded(data_dir):
    calls = []
    p = Pipeline("p")

    @p.task(retries=3, retry_delay=0.01, jitter=0)
    def flaky(ctx):
        calls.append(ctx.try_number)
        if ctx.try_number < 3:
            raise ConnectionError(f"blip {ctx.try_number}")
        return "ok"

    recorder = ListRecorder()
    result = Runner(data_dir=data_dir, recorder=recorder).run(p)
    assert result.state is State.SUCCESS
    assert calls == [1, 2, 3]
    assert result.task("flaky").try_number == 3
    assert recorder.of("flaky") == [
        ("scheduled", 1),
        ("running", 1),
        ("retrying", 1),
        ("running", 2),
        ("retrying", 2),
        ("running", 3),
        ("success", 3),
    ]


def test_retries_exhausted_fails_and_calls_on_failure_once(data_dir):
    hook_calls = []
    p = Pipeline("p")

    @p.task(retries=2, retry_delay=0.01, on_failure=lambda ctx, exc: hook_calls.append((ctx.try_number, str(exc))))
    def always():
        raise ValueError("bad schema")

    result = Runner(data_dir=data_dir).run(p)
    assert result.task("always").state is State.FAILED
    assert result.task("always").try_number == 3
    assert hook_calls == [(3, "bad schema")]


def test_broken_on_failure_hook_does_not_break_the_run(data_dir):
    def hook(ctx, exc):
        raise KeyError("hook bug")

    p = Pipeline("p")

    @p.task(on_failure=hook)
    def always():
        raise ValueError("x")

    result = Runner(data_dir=data_dir).run(p)
    assert result.state is State.FAILED
    assert "on_failure hook raised" in result.task("always").error


def test_retry_waits_follow_the_policy(data_dir):
    """The delays come from the task's RetryPolicy (fixed rng, no jitter): 0.05 then 0.1 s."""
    starts = []
    p = Pipeline("p")

    @p.task(retries=2, retry_delay=0.05, backoff=2, jitter=0)
    def flaky(ctx):
        starts.append(time.monotonic())
        if ctx.try_number < 3:
            raise OSError("again")

    Runner(data_dir=data_dir).run(p)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # never earlier than the policy says


def test_timeout_interrupts_a_thread_task_and_retries_it(data_dir):
    p = Pipeline("p")
    finished = []

    @p.task(timeout=0.2, retries=1, retry_delay=0.01)
    def slow(ctx):
        if ctx.try_number == 2:
            return "second try is fast"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.01)
        finished.append("ran to the end")  # must not happen: the timeout interrupts it

    recorder = ListRecorder()
    result = Runner(data_dir=data_dir, recorder=recorder).run(p)
    assert result.state is State.SUCCESS
    assert result.results["slow"] == "second try is fast"
    assert ("retrying", 1) in recorder.of("slow")
    assert finished == []


def test_timeout_exhausted_reports_task_timeout(data_dir):
    p = Pipeline("p")

    @p.task(timeout=0.1)
    def slow():
        while True:
            time.sleep(0.01)

    result = Runner(data_dir=data_dir).run(p)
    assert result.task("slow").state is State.FAILED
    assert result.task("slow").error.startswith("TaskTimeout: timed out after 0.1s")


def test_user_except_exception_does_not_swallow_the_timeout(data_dir):
    p = Pipeline("p")

    @p.task(timeout=0.1)
    def stubborn():
        for _ in range(2000):
            try:
                time.sleep(0.01)
            except Exception:
                pass
        return "escaped"

    result = Runner(data_dir=data_dir).run(p)
    assert result.task("stubborn").state is State.FAILED


def test_cache_hit_skips_work_survives_restart_and_changes_with_inputs(data_dir):
    calls = []
    p = Pipeline("p", params={"n": 3})

    @p.task
    def source(ctx):
        return ctx.params["n"]

    @p.task(upstream=[source], cache=True)
    def expensive(source):
        calls.append(source)
        return source**2

    assert Runner(data_dir=data_dir).run(p).results["expensive"] == 9
    # a new Runner on the same folder is a restart
    restarted = Runner(data_dir=data_dir)
    result = restarted.run(p)
    assert result.results["expensive"] == 9
    assert result.task("expensive").state is State.SUCCESS
    assert calls == [3]  # second run was a cache hit
    assert restarted.run(p, {"n": 4}).results["expensive"] == 16
    assert calls == [3, 4]  # different input, recomputed


def test_custom_cache_key_function(data_dir):
    calls = []
    p = Pipeline("p", params={"date": "2026-11-01", "noise": 1})

    @p.task(cache_key=lambda params, inputs: params["date"])
    def daily(ctx):
        calls.append(ctx.params["noise"])
        return ctx.params["date"]

    runner = Runner(data_dir=data_dir)
    runner.run(p)
    runner.run(p, {"noise": 2})  # same date → same key → cached
    runner.run(p, {"date": "2026-11-02"})
    assert calls == [1, 1]


def test_failed_task_result_is_not_cached(data_dir):
    calls = []
    p = Pipeline("p")

    @p.task(cache=True)
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return "ok"

    runner = Runner(data_dir=data_dir)
    assert runner.run(p).state is State.FAILED
    assert runner.run(p).state is State.SUCCESS
    assert runner.run(p).state is State.SUCCESS
    assert len(calls) == 2


def test_mapping_over_a_list_known_at_run_time(data_dir):
    p = Pipeline("p")

    @p.task
    def shards(ctx):
        return list(range(ctx.params["n"]))

    @p.task(map_over=shards)
    def square(shards):
        return shards * shards

    @p.task(upstream=[square])
    def total(square):
        return sum(square)

    result = Runner(data_dir=data_dir, max_workers=4).run(p, {"n": 5})
    assert result.results["square"] == [0, 1, 4, 9, 16]
    assert result.results["total"] == 30
    assert {result.task("square", i).state for i in range(5)} == {State.SUCCESS}
    assert result.task("square").state is State.SUCCESS
    empty = Runner(data_dir=data_dir).run(p, {"n": 0})
    assert empty.results["total"] == 0


def test_failed_mapped_instance_fails_the_group_and_downstream(data_dir):
    p = Pipeline("p")

    @p.task
    def items():
        return [1, 0, 2]

    @p.task(map_over=items)
    def invert(items):
        return 1 / items

    @p.task(upstream=[invert])
    def after(invert):
        return invert

    result = Runner(data_dir=data_dir).run(p)
    assert result.task("invert", 1).state is State.FAILED
    assert result.task("invert", 0).state is State.SUCCESS
    assert result.task("invert").state is State.FAILED
    assert result.task("after").state is State.UPSTREAM_FAILED


def test_mapping_over_a_non_list_fails_clearly(data_dir):
    p = Pipeline("p")

    @p.task
    def notalist():
        return 5

    @p.task(map_over=notalist)
    def each(notalist):
        return notalist

    result = Runner(data_dir=data_dir).run(p)
    assert "not a list" in result.task("each").error


def test_checkpoint_folder_survives_retries(data_dir):
    p = Pipeline("p")

    @p.task(retries=1, retry_delay=0.01)
    def train(ctx):
        marker = ctx.checkpoint_dir / "epoch"
        if ctx.try_number == 1:
            marker.write_text("3")
            raise ConnectionError("lost the parameter server")
        return int(marker.read_text())

    assert Runner(data_dir=data_dir).run(p).results["train"] == 3


def test_logs_are_kept_per_try(data_dir):
    p = Pipeline("p")

    @p.task(retries=1, retry_delay=0.01)
    def chatty(ctx):
        print(f"hello from try {ctx.try_number}")
        ctx.log.info("logged on try %d", ctx.try_number)
        if ctx.try_number == 1:
            raise RuntimeError("first try fails")

    result = Runner(data_dir=data_dir).run(p)
    folder = data_dir / "logs" / "p" / result.run_id / "chatty"
    first = (folder / "try-1.log").read_text()
    second = (folder / "try-2.log").read_text()
    assert "hello from try 1" in first and "logged on try 1" in first
    assert "RuntimeError: first try fails" in first  # the traceback lands in the log
    assert "hello from try 2" in second and "try 1" not in second


def test_process_executor_runs_in_another_process(data_dir):
    p = Pipeline("p")

    @p.task
    def source():
        return 7

    p.task(tasks_for_process.cpu_square, upstream=[source], executor="process")
    result = Runner(data_dir=data_dir).run(p)
    assert result.state is State.SUCCESS
    assert result.results["cpu_square"]["value"] == 49
    assert result.results["cpu_square"]["pid"] != os.getpid()
    log = (data_dir / "logs" / "p" / result.run_id / "cpu_square" / "try-1.log").read_text()
    assert "squaring 7" in log


def test_process_executor_kills_on_timeout_and_reports_errors(data_dir):
    p = Pipeline("p")
    p.task(tasks_for_process.hang, executor="process", timeout=1)
    p.task(tasks_for_process.boom, executor="process")
    result = Runner(data_dir=data_dir).run(p)
    assert result.task("hang").error.startswith("TaskTimeout")
    assert result.task("boom").error == "ValueError: process task exploded"
    assert "process task exploded" in result.task("boom").traceback


def test_single_task_in_isolation_uses_the_last_results(data_dir, capsys):
    calls = []
    p = Pipeline("p")

    @p.task
    def a():
        calls.append("a")
        return 5

    @p.task(upstream=[a])
    def b(a):
        print("b got", a)
        return a + 1

    runner = Runner(data_dir=data_dir)
    with pytest.raises(RunError, match=r"no stored result for upstream task\(s\) \['a'\]"):
        runner.run(p, only_task="b")
    runner.run(p)
    import io

    stream = io.StringIO()
    result = runner.run(p, only_task="b", tee=stream)
    assert result.results["b"] == 6
    assert calls == ["a"]  # a was not run again
    assert "[b] b got 5" in stream.getvalue()
    with pytest.raises(RunError, match="has no task 'zzz'"):
        runner.run(p, only_task="zzz")


def test_store_recorder_makes_every_state_durable(store, data_dir):
    from monitor.store import runs
    from monitor.store.recorder import StoreRecorder

    p = Pipeline("p")

    @p.task(retries=1, retry_delay=0.01)
    def flaky(ctx):
        if ctx.try_number == 1:
            raise RuntimeError("x")

    @p.task(upstream=[flaky])
    def after():
        return 1

    recorder = StoreRecorder(store)
    result = Runner(data_dir=data_dir, recorder=recorder).run(p)
    with store.session() as session:
        [view] = runs.recent(session)
    assert view.run_id == result.run_id and view.state is State.SUCCESS
    assert {(t.task_id, t.state, t.try_number) for t in view.tasks} == {("flaky", State.SUCCESS, 2), ("after", State.SUCCESS, 1)}
    assert recorder.next_run_number("embedded", "p") == 1
    recorder.close()
