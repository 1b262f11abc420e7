"""The embedded runner on a real Dask cluster: a `LocalCluster` of 2 worker processes (1 thread
each) on 127.0.0.1, or a `dask scheduler` + `dask worker` started here by pid.

One DAG of 200 tasks runs with retries, a timeout, a cache hit, a checkpoint and one worker
killed (SIGKILL, by its pid) in the middle of a task; every task's state and try number in the
store and every try's log file are checked. A cluster that cannot be reached makes the embedded
source unhealthy (a `source_down` alert) and fails the run's tries instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from monitor.alerting import ingest
from monitor.model import AlertKind, AlertStatus, State
from monitor.runner import Pipeline, Runner
from monitor.runner.dask_executor import DaskOptions
from monitor.runner.logs import log_path
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import runs
from monitor.store.recorder import StoreRecorder
from monitor.tracking.collector import Collector
from tests.integration.test_pages_runbooks import diagnosing_app, diagnosing_engine, login

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")
PARTS = 189
MERGES = 8
FLAKY = {7, 61, 133}  # parts failing their first try
VICTIM = 150  # the part whose worker is killed while it runs
HANG = 99  # the part that hangs past its timeout on its first try


def wait_until(condition, what: str, limit: float = 60.0):
    """Bounded wait for something another process does; fails naming it, never on speed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting {limit:g}s for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def features():
    """The cached task: its result comes from the cache in the 200-task run."""
    print("computing features")
    return {"scale": 3}


def dag(tmp: Path) -> Pipeline:
    """prepare, features (cached) → part_0..part_188 → merge_0..merge_7 → report: 200 tasks,
    every one on Dask (the pipeline's default executor)."""
    p = Pipeline("dask_dag", executor="dask")
    p.task(features, cache=True)

    @p.task
    def prepare(ctx):
        print(f"prepare on pid {os.getpid()}")
        return list(range(10))

    def part_fn(i: int):
        def part(ctx, prepare, features):
            print(f"part {i} try {ctx.try_number} on pid {os.getpid()}")
            if i in FLAKY and ctx.try_number == 1:
                raise ConnectionResetError(f"part {i}: feature store reset")
            if i == HANG and ctx.try_number == 1:
                try:
                    for _ in range(600):  # 30 s, in Python: the worker's watchdog interrupts it
                        time.sleep(0.05)
                finally:
                    (tmp / "hang-ended").write_text("interrupted")
            if i == VICTIM:
                step = ctx.checkpoint_dir / "step"
                if ctx.try_number == 1:
                    step.write_text("epoch 3")
                    (tmp / "victim.pid").write_text(str(os.getpid()))
                    for _ in range(1200):  # until its worker is killed
                        time.sleep(0.05)
                    raise AssertionError("the victim's worker was not killed")
                return {"i": i, "pid": os.getpid(), "resumed": step.read_text()}
            return {"i": i, "pid": os.getpid(), "value": sum(prepare) * features["scale"] + i}

        part.__name__ = f"part_{i}"
        return part

    parts = [f"part_{i}" for i in range(PARTS)]
    for i, name in enumerate(parts):
        retries = 1 if i in FLAKY | {VICTIM, HANG} else 0
        p.task(part_fn(i), name=name, upstream=["prepare", "features"], retries=retries, retry_delay=0.1, timeout=2 if i == HANG else None)
    per = PARTS // MERGES + 1
    for j in range(MERGES):
        deps = parts[j * per : (j + 1) * per]

        def merge(ctx, **inputs):
            print(f"merging {len(inputs)}")
            return sorted(v["i"] for v in inputs.values())

        merge.__name__ = f"merge_{j}"
        p.task(merge, name=f"merge_{j}", upstream=deps)

    def report(ctx, **merged):
        return sum(len(v) for v in merged.values())

    p.task(report, upstream=[f"merge_{j}" for j in range(MERGES)])
    assert len(p.tasks) == 200
    return p


@pytest.fixture
def runner(store, data_dir):
    recorder = StoreRecorder(store)
    runner = Runner(data_dir=data_dir, recorder=recorder, max_workers=8, dask=DaskOptions(workers=2, threads_per_worker=1))
    yield runner
    runner.close()
    recorder.close()


def test_a_200_task_dag_on_a_local_cluster_with_retries_a_cache_hit_and_a_killed_worker(runner, store, data_dir, tmp_path):
    warm = Pipeline("dask_dag", executor="dask")
    warm.task(features, cache=True)
    assert runner.run(warm).state is State.SUCCESS  # fills the cache the big run hits

    killed: list[int] = []

    def kill_victim() -> None:
        pid = int(wait_until(lambda: (tmp_path / "victim.pid").exists() and (tmp_path / "victim.pid").read_text(), "the victim to start"))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_victim, daemon=True)
    killer.start()
    pipeline = dag(tmp_path)
    result = runner.run(pipeline)
    killer.join(timeout=60)
    assert killed, "the victim's worker was never killed"

    # The run and every task as the store has them.
    with store.session() as s:
        run = runs.get(s, source="embedded", pipeline="dask_dag", run_id=result.run_id)
    assert run is not None and run.state is State.SUCCESS, [
        (t.task_id, t.state, t.error) for t in run.tasks if t.state is not State.SUCCESS
    ]
    tasks = {t.task_id: t for t in run.tasks}
    assert len(tasks) == 200 and all(t.state is State.SUCCESS for t in tasks.values())
    expected_tries = {name: 1 for name in pipeline.tasks}
    expected_tries.update({f"part_{i}": 2 for i in FLAKY | {VICTIM, HANG}})
    assert {name: t.try_number for name, t in tasks.items()} == expected_tries
    hit = result.task("features")  # from the cache: no try ran, so it took no time and left no log
    assert hit.started_at == hit.ended_at

    # Results crossed the cluster: from the cache, from the checkpoint across the kill, downstream.
    assert result.results["features"] == {"scale": 3}
    assert result.results[f"part_{VICTIM}"]["resumed"] == "epoch 3"
    assert result.results[f"part_{VICTIM}"]["pid"] != killed[0]
    assert result.results["part_5"]["value"] == 45 * 3 + 5
    assert result.results["report"] == PARTS
    worker_pids = {v["pid"] for k, v in result.results.items() if k.startswith("part_")}
    assert len(worker_pids) >= 2  # parts ran on both workers

    # Each try's own log, captured on its worker and written here.
    def log(task: str, try_number: int) -> str:
        path = log_path(data_dir / "logs", "dask_dag", result.run_id, task, -1, try_number)
        return path.read_text() if path.exists() else ""

    assert not log("features", 1)  # a cache hit runs nothing
    for i in range(PARTS):
        last = expected_tries[f"part_{i}"]
        assert f"part {i} try {last} on pid" in log(f"part_{i}", last)
    for i in FLAKY:
        assert "ConnectionResetError: part" in log(f"part_{i}", 1) and "Traceback" in log(f"part_{i}", 1)
        assert tasks[f"part_{i}"].error is None
    victim = log(f"part_{VICTIM}", 1)
    assert "dagwatch: the Dask worker running this try died" in victim and "KilledWorker" in victim
    assert "dagwatch: timed out after 2s (try 1)" in log(f"part_{HANG}", 1)
    wait_until(lambda: (tmp_path / "hang-ended").exists(), "the worker's watchdog to interrupt the hung try")
    assert "merging" in log("merge_0", 1)

    # What each try used, measured on its worker.
    assert tasks["part_5"].state is State.SUCCESS
    with store.session() as s:
        usage = runs.task_usage(s, source="embedded", pipeline="dask_dag", run_id=result.run_id, task_id="part_5")
    assert usage is not None and usage["cpu_seconds"] is not None and usage["memory_scope"] == "process"
    assert usage["max_rss_bytes"] > 10 * 2**20

    # The run carries the cluster's dashboard (served on 127.0.0.1), and its runs page links it.
    link = runner.dask.dashboard_link
    assert link and link.startswith("http://127.0.0.1:") and run.url == link
    engine = diagnosing_engine(store, tmp_path / "runbooks")
    try:
        with TestClient(diagnosing_app(store, engine)) as client:
            login(client, store)
            page = client.get("/pipelines/runs", params={"source": "embedded", "pipeline": "dask_dag"}).text
    finally:
        engine.shutdown()
    assert f'class="run-dashboard" href="{link}"' in page

    # Closing the runner stops every worker process.
    runner.close()
    for pid in worker_pids:
        wait_until(lambda pid=pid: not alive(pid), f"worker {pid} to stop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def remote_cluster(tmp_path):
    """`dask scheduler` and one `dask worker` on 127.0.0.1, stopped by pid."""
    port, dash = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])}
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", f"127.0.0.1:{dash}"],
            stdout=(tmp_path / "scheduler.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "dask"), "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                stdout=(tmp_path / "worker.log").open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        yield address, procs
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_a_scheduler_address_runs_there_and_an_unreachable_cluster_is_source_down(store, data_dir, remote_cluster):
    address, (scheduler, worker) = remote_cluster
    recorder = StoreRecorder(store)
    pipeline = Pipeline("remote_dag", executor="dask")

    @pipeline.task(retries=1, retry_delay=0.1)
    def hello(ctx):
        print(f"hello from {os.getpid()}")
        return os.getpid()

    runner = Runner(data_dir=data_dir, recorder=recorder, dask=DaskOptions(scheduler_address=address, connect_timeout=2))
    source = EmbeddedSource("embedded", store, data_dir / "logs", runner=runner, pipelines=[pipeline])
    collector = Collector(source, store, POLICY)
    try:
        wait_until(lambda: source.health().healthy, "the worker to join the scheduler")
        result = runner.run(pipeline)
        assert result.state is State.SUCCESS and result.results["hello"] != os.getpid()
        assert runner.dask.dashboard_link and runner.dask.dashboard_link.startswith("http://127.0.0.1:")
        assert collector.poll_once().ok

        stop(worker)
        stop(scheduler)
        for _ in range(3):  # health.down_after_failures
            assert not collector.poll_once().ok
        with store.session() as s:
            [alert] = [a for a in alert_store.list_alerts(s) if a.kind is AlertKind.SOURCE_DOWN]
        assert alert.status is AlertStatus.FIRING and "Dask scheduler" in alert.summary

        done: list = []
        thread = threading.Thread(target=lambda: done.append(runner.run(pipeline)), daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert done, "a run on an unreachable cluster hung"
        failed = done[0]
        assert failed.state is State.FAILED
        hello = failed.task("hello")
        assert hello.state is State.FAILED and hello.try_number == 2 and "DaskUnavailable" in hello.error
        text = log_path(data_dir / "logs", "remote_dag", failed.run_id, "hello", -1, 2).read_text()
        assert "dagwatch: " in text and address in text
    finally:
        runner.close()
        recorder.close()
