"""The dask executor's parts that need no cluster: where a task runs, what a try does on its
worker (output captured, errors returned, the timeout watchdog, usage), how task functions
travel, and a scheduler that cannot be reached (bounded, remembered, reported). The runner on
real clusters is tests/integration/test_dask_runner.py."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from monitor.errors import PipelineDefinitionError
from monitor.model import State
from monitor.runner import Pipeline, Runner
from monitor.runner.dask_executor import DaskCluster, DaskOptions, DaskUnavailable, _Shipped, run_on_worker
from monitor.runner.logs import log_path
from monitor.sources.embedded import EmbeddedSource


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_task_runs_where_it_says_else_where_its_pipeline_is_configured_else_coded_else_the_source_default(data_dir):
    coded = Pipeline("coded", executor="process")
    coded.task(lambda: 1, name="own", executor="thread")
    coded.task(lambda: 2, name="default")
    plain = Pipeline("plain")
    plain.task(lambda: 3, name="t")
    runner = Runner(data_dir=data_dir, default_executor="dask", pipeline_executors={"plain": "thread"})
    assert runner.executor_of(coded, coded.tasks["own"]) == "thread"
    assert runner.executor_of(coded, coded.tasks["default"]) == "process"
    assert runner.executor_of(plain, plain.tasks["t"]) == "thread"
    assert Runner(data_dir=data_dir, default_executor="dask").executor_of(plain, plain.tasks["t"]) == "dask"
    assert Runner(data_dir=data_dir, pipeline_executors={"coded": "dask"}).executor_of(coded, coded.tasks["default"]) == "dask"


def test_an_unknown_executor_is_refused_where_it_is_written(data_dir):
    with pytest.raises(PipelineDefinitionError, match="executor must be one of"):
        Pipeline("p", executor="gpu")  # type: ignore[arg-type]
    p = Pipeline("p")
    with pytest.raises(PipelineDefinitionError, match="executor must be one of"):
        p.task(lambda: 1, name="t", executor="cluster")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="executor must be one of"):
        Runner(data_dir=data_dir, default_executor="spark")  # type: ignore[arg-type]


def test_a_try_on_its_worker_returns_its_value_output_and_usage():
    def task(x):
        print(f"printing {x}")
        logging.getLogger("task").warning("logged %s", x)
        return sum(i * i for i in range(x))

    kind, value, text, usage = run_on_worker(_Shipped.of(task), {"x": 10_000}, None)
    assert (kind, value) == ("ok", sum(i * i for i in range(10_000)))
    assert "printing 10000\n" in text and "WARNING task: logged 10000" in text
    assert usage.cpu_seconds > 0 and usage.max_rss_bytes > 0 and usage.memory_scope == "process"


def test_a_failing_try_returns_its_error_and_traceback_instead_of_raising():
    def task():
        print("about to fail")
        raise KeyError("column 'age'")

    kind, error, text, _ = run_on_worker(_Shipped.of(task), {}, None)
    assert kind == "err" and error["error_type"] == "KeyError" and "column 'age'" in error["error"]
    assert "about to fail" in text and "Traceback" in text and "KeyError" in error["traceback"]
    assert "run_on_worker" not in error["traceback"]  # dagwatch's own frame is dropped


def test_an_unpicklable_result_is_a_failed_try():
    kind, error, _, _ = run_on_worker(_Shipped.of(lambda: (x for x in ())), {}, None)
    assert kind == "err" and error["error_type"] == "TypeError"


def test_the_workers_watchdog_interrupts_a_try_past_its_timeout(tmp_path):
    marker = tmp_path / "ended"

    def hang():  # shipped as a copy, like to a worker: it reports through a file
        try:
            for _ in range(200):  # 10 s in Python bytecode
                time.sleep(0.05)
        finally:
            marker.write_text("finally")

    kind, error, _, _ = run_on_worker(_Shipped.of(hang), {}, 0.2)
    assert kind == "err" and error["error_type"] == "Interrupted" and marker.read_text() == "finally"
    # and a try that ends in time is not interrupted afterwards
    assert run_on_worker(_Shipped.of(lambda: "quick"), {}, 0.2)[:2] == ("ok", "quick")
    time.sleep(0.3)


def test_a_task_function_is_pickled_once_and_unpickled_once_per_worker(data_dir):
    def defined_here(a):
        return a + 1

    cluster = DaskCluster(DaskOptions())
    shipped = cluster.shipped(defined_here)
    assert cluster.shipped(defined_here) is shipped  # the runner pickles it once
    copy = _Shipped(shipped.digest, shipped.data)
    loaded = copy.load()
    assert loaded(1) == 2 and copy.load() is loaded  # the worker keeps it by digest


def test_an_unreachable_scheduler_fails_fast_is_remembered_and_makes_the_source_unhealthy(store, data_dir):
    address = f"tcp://127.0.0.1:{closed_port()}"
    cluster = DaskCluster(DaskOptions(scheduler_address=address, connect_timeout=1))
    with pytest.raises(DaskUnavailable, match="cannot reach the Dask scheduler at " + address) as first:
        cluster.client()
    started = time.monotonic()
    with pytest.raises(DaskUnavailable) as again:
        cluster.client()
    assert again.value is first.value and time.monotonic() - started < 0.5  # remembered, not retried per try
    healthy, problem, _ = cluster.health()
    assert not healthy and address in problem
    cluster.close()

    p = Pipeline("remote", executor="dask")
    p.task(lambda: 1, name="t")
    runner = Runner(data_dir=data_dir, dask=DaskOptions(scheduler_address=address, connect_timeout=1))
    source = EmbeddedSource("embedded", store, data_dir / "logs", runner=runner, pipelines=[p])
    health = source.health()
    assert not health.healthy and "cannot reach the Dask scheduler" in health.problems[0]
    result = runner.run(p)
    task = result.task("t")
    assert result.state is State.FAILED and task.state is State.FAILED and task.error.startswith("DaskUnavailable: cannot reach")
    assert "dagwatch: cannot reach the Dask scheduler" in log_path(data_dir / "logs", "remote", result.run_id, "t", -1, 1).read_text()
    runner.close()


def test_a_local_cluster_not_started_is_healthy_and_stays_unstarted(store, data_dir):
    runner = Runner(data_dir=data_dir)
    p = Pipeline("local", executor="dask")
    p.task(lambda: 1, name="t")
    source = EmbeddedSource("embedded", store, data_dir / "logs", runner=runner, pipelines=[p])
    assert source.health().healthy and not runner.dask.started
    runner.close()
    with pytest.raises(DaskUnavailable, match="closed"):
        runner.dask.client()


class _FinishingAsTheWaitTimesOut:
    """A future whose try finishes just as a wait for it times out: `result` raises the wait's
    TimeoutError while the future turns done (distributed's `Future.result(timeout=…)` raises
    `TimeoutError("timed out after 1.0 s.")`, and the future may settle in between)."""

    def __init__(self, outcome):
        self.outcome, self.settled, self.waits = outcome, False, 0

    def done(self):
        return self.settled

    def result(self, timeout=None):
        self.waits += 1
        if not self.settled:
            self.settled = True
            raise TimeoutError(f"timed out after {timeout} s.")
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class _Running:
    status = "running"


def test_a_try_that_finishes_as_the_wait_times_out_is_read_not_failed(tmp_path):
    # Seen in CI: a try done between the wait's timeout and the check was recorded as
    # "DaskUnavailable: the Dask cluster failed this try (TimeoutError: timed out after 1.0 s.)".
    from monitor.runner.dask_executor import _wait
    from monitor.runner.executors import Attempt, Usage
    from monitor.runner.logs import TrySink

    attempt = Attempt(call=lambda: None, sink=TrySink(tmp_path / "try.log"), done=lambda *_: None, kind="dask")
    future = _FinishingAsTheWaitTimesOut(("ok", 42, "printed\n", Usage(0.0, 0, "process")))
    outcome, note = _wait(_Running(), future, attempt)
    assert outcome.ok and outcome.value == 42 and note == "" and future.waits == 2

    # A communication error on a future already settled is the try's failure, retried as one.
    future = _FinishingAsTheWaitTimesOut(OSError("connection reset"))
    future.settled = True
    outcome, note = _wait(_Running(), future, attempt)
    assert not outcome.ok and outcome.error_type == "DaskUnavailable" and "connection reset" in note and future.waits == 1
