"""Per-task overhead of dagwatch's embedded runner, next to plain Python calls and Prefect 3.

    .venv/bin/python bench/runner_overhead.py                   # 1,000 tasks, median of 3, with Prefect
    .venv/bin/python bench/runner_overhead.py --quick --no-prefect   # CI smoke: 100 tasks, 1 repetition
    .venv/bin/python bench/runner_overhead.py --dask            # 200 tasks on Dask, next to Prefect's DaskTaskRunner

Two shapes, each with trivial tasks (`return None`):
  fan    N independent tasks
  chain  N dependent tasks, each taking the previous one's result

Modes:
  plain           the task functions called directly (the floor)
  dagwatch-store  Runner + StoreRecorder on a SQLite file (WAL): every task state recorded, and
                  durable when `run()` returns (it ends with the recorder's flush)
  dagwatch-null   Runner + NullRecorder (nothing recorded), for reference
  prefect         Prefect (the tests' own venv: tests/servers/prefect/install.sh, tests/servers/.cache/prefect-venv)
                  against a local `prefect server start` on 127.0.0.1, started here with its own
                  PREFECT_HOME in a temporary folder, analytics off, and stopped by its pid at the
                  end; fan = `.submit()` on the default thread runner + wait, chain = direct calls

Dask (`--dask`, instead of the modes above), both on a LocalCluster of the same shape (2 worker
processes, 1 thread each, 127.0.0.1), started before the timing (dagwatch: a warm-up run; Prefect:
the flow's task runner starts it before the flow body):
  dagwatch-dask   Runner + StoreRecorder, the pipeline's executor "dask": every try a Dask task
  prefect-dask    prefect-dask's DaskTaskRunner (installed into the Prefect venv, pinned below);
                  fan = `.submit()` + wait, chain = each `.submit()`ed with its upstream's future
                  (bench/prefect_dask_flows.py)

Per-task wall = wall time / N, the median of the repetitions. dagwatch is timed around the whole
`Runner.run()` (run setup, scheduling, executing, recording, final flush); Prefect around the
tasks inside the flow body only (flow-run creation and its ~1 s teardown are reported apart),
so the ratio does not flatter dagwatch. All dagwatch and plain measurements run before the
Prefect server starts: it keeps ingesting task-run events for tens of seconds after a flow.

Results: a table on stdout, JSON in bench/results/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from monitor.model import State  # noqa: E402
from monitor.runner import NullRecorder, Pipeline, Runner  # noqa: E402

SHAPES = ("fan", "chain")
GOAL_RATIO = 1 / 50  # dagwatch (durable recording) per-task wall vs Prefect's
DASK_GOAL_RATIO = 0.5  # dagwatch on Dask vs Prefect's DaskTaskRunner, same cluster shape
PREFECT_DASK = "prefect-dask==0.3.7"  # the release for Prefect 3.4.7+ (the venv pins 3.9.1)


# -- the tasks -----------------------------------------------------------------------------


LOOPS = 200  # one call of the plain-Python body is far below the clock's resolution


def make_functions(n: int, shape: str) -> list[Callable[..., Any]]:
    """N distinct trivial functions t0..tN-1; in a chain, t<i> takes `t<i-1>` (its upstream's result)."""
    fns = []
    for i in range(n):
        ns: dict[str, Any] = {}
        arg = f"t{i - 1}" if shape == "chain" and i > 0 else ""
        exec(f"def t{i}({arg}):\n    return None\n", ns)
        fns.append(ns[f"t{i}"])
    return fns


def make_pipeline(n: int, shape: str) -> Pipeline:
    pipeline = Pipeline(f"bench_{shape}")
    previous = None
    for fn in make_functions(n, shape):
        pipeline.task(fn, upstream=[previous] if shape == "chain" and previous is not None else [])
        previous = fn
    return pipeline


# -- measurements ----------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, t0 = time.process_time(), time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, time.process_time() - c0, value


def bench_plain(n: int, shape: str, reps: int) -> list[dict[str, float]]:
    fns = make_functions(n, shape)

    def fan() -> None:
        for f in fns:
            f()

    def chain() -> None:
        value = None
        f0, rest = fns[0], fns[1:]
        value = f0()
        for f in rest:
            value = f(value)

    body = fan if shape == "fan" else chain
    out = []
    for _ in range(reps):
        # one call is far below the clock's resolution: repeat the whole loop and divide
        wall, cpu, _ = _timed(lambda: [body() for _ in range(LOOPS)])
        out.append({"wall_s": wall / LOOPS, "cpu_s": cpu / LOOPS})
    return out


def bench_dagwatch(n: int, shape: str, reps: int, recorder_kind: str, workdir: Path, dask: bool = False) -> list[dict[str, float]]:
    """`dask`: every task on a local Dask cluster of 2 worker processes with 1 thread each."""
    from monitor.runner.dask_executor import DaskOptions
    from monitor.store import open_store
    from monitor.store.recorder import StoreRecorder

    pipeline = make_pipeline(n, shape)
    if dask:
        pipeline.executor = "dask"
    data_dir = workdir / f"dagwatch-{recorder_kind}-{shape}{'-dask' if dask else ''}"
    store = recorder = None
    if recorder_kind == "store":
        store = open_store(f"sqlite:///{data_dir}/dagwatch.db")
        recorder = StoreRecorder(store)
    runner = Runner(
        data_dir=data_dir,
        recorder=recorder or NullRecorder(),
        dask=DaskOptions(workers=2, threads_per_worker=1, dashboard=False) if dask else None,
    )
    runner.run(pipeline)  # warm-up: imports, first-run paths, thread start-up (and the Dask cluster)
    out = []
    try:
        for _ in range(reps):
            wall, cpu, result = _timed(lambda: runner.run(pipeline))
            if result.state is not State.SUCCESS or len(result.tasks) != n:
                raise SystemExit(f"dagwatch run failed: {result.state}, {len(result.tasks)} tasks")
            row: dict[str, float] = {"wall_s": wall, "cpu_s": cpu}
            if store is not None:
                row["recorded_success"] = _check_recorded(store, result.run_id, n)
            out.append(row)
    finally:
        runner.close()
        if recorder is not None:
            recorder.close()
        if store is not None:
            store.close()
    return out


def _check_recorded(store: Any, run_id: str, n: int) -> int:
    """What `run()` promised: every task's final state is in the store when it returns."""
    from sqlalchemy import func, select

    from monitor.store.tables import RunRow, TaskRunRow

    with store.session() as session:
        run = session.scalar(select(RunRow).where(RunRow.run_id == run_id))
        done = session.scalar(
            select(func.count()).select_from(TaskRunRow).where(TaskRunRow.run_pk == run.id, TaskRunRow.state == State.SUCCESS.value)
        )
    if run.state != State.SUCCESS.value or done != n:
        raise SystemExit(f"store has run state {run.state!r} and {done}/{n} successful tasks right after run()")
    return int(done)


# -- Prefect -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Descendants of pid, from /proc (Linux); empty elsewhere."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


class PrefectServer:
    """`prefect server start` on 127.0.0.1 with a throw-away PREFECT_HOME; stopped by pid."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.venv, self.home = venv, home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_API_URL": self.url,
        }

    def start(self, timeout: float = 90) -> float:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pid = self.proc.pid
        descendants = _children(pid)
        os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for child in descendants:  # anything it started and left behind, by pid
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass


def ensure_prefect_venv(venv: Path) -> None:
    if not (venv / "bin" / "prefect").exists():
        print(f"setting up {venv} (tests/servers/prefect/install.sh) ...", file=sys.stderr, flush=True)
        subprocess.run(
            ["bash", str(HERE.parent / "tests" / "servers" / "prefect" / "install.sh")],
            check=True,
            env={**os.environ, "DAGWATCH_PREFECT_CACHE": str(venv.parent)},
        )


def ensure_prefect_dask(venv: Path) -> None:
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import prefect_dask"], capture_output=True, check=False)
    if found.returncode != 0:
        print(f"installing {PREFECT_DASK} into {venv} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", PREFECT_DASK, "prefect==3.9.1"], check=True
        )


def bench_prefect(n: int, reps: int, venv: Path, workdir: Path, settle: bool = True, script: str = "prefect_flows.py") -> dict[str, Any]:
    ensure_prefect_venv(venv)
    if script == "prefect_dask_flows.py":
        ensure_prefect_dask(venv)
    home = workdir / "prefect-home"
    home.mkdir()
    server = PrefectServer(venv, home)
    try:
        startup_s = server.start()
        print(f"prefect server up on 127.0.0.1:{server.port} after {startup_s:.1f}s (pid {server.proc.pid})", file=sys.stderr, flush=True)
        with (home / "client.log").open("wb") as client_log:
            done = subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    str(HERE / script),
                    "--tasks",
                    str(n),
                    "--reps",
                    str(reps),
                    *(["--server-pid", str(server.proc.pid)] if settle else []),
                ],
                env=server.env,
                stdout=subprocess.PIPE,
                stderr=client_log,
                check=False,
                timeout=3600,
            )
        lines = [line for line in done.stdout.decode().splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"prefect client failed ({done.returncode}); see {home / 'client.log'}")
        out = json.loads(lines[-1][len("RESULT ") :])
        out["server_startup_s"] = startup_s
        return out
    finally:
        server.stop()


# -- report --------------------------------------------------------------------------------------


def per_task(reps: list[dict[str, float]], n: int, key: str) -> float:
    return statistics.median(r[key] for r in reps) / n


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    if us >= 1000:
        return f"{us / 1000:,.2f} ms"
    if us >= 10:
        return f"{us:,.1f} µs"
    return f"{us:,.3f} µs"


def write_record(
    path: Path,
    head: dict[str, Any],
    load_before: tuple[float, float, float],
    prefect: dict[str, Any] | None,
    results: dict[str, Any],
    summary: dict[str, Any],
    goal_ratio: float,
    goal: dict[str, bool],
) -> None:
    """The JSON result of either bench, with the machine and its load around the run, so results
    taken on a busy machine can be told apart later."""
    record = {
        **head,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "prefect": None if prefect is None else {k: v for k, v in prefect.items() if k != "results"},
        "raw": results,
        "summary": summary,
        "goal_ratio_to_prefect": goal_ratio,
        "goal_met": goal or None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"\nJSON: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=None, help="tasks per run (default 1000; 200 with --dask)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; the median is reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 tasks, 1 repetition")
    parser.add_argument("--no-prefect", action="store_true", help="skip Prefect (no venv, no server)")
    parser.add_argument("--dask", action="store_true", help="dagwatch on Dask next to Prefect's DaskTaskRunner (same cluster shape)")
    parser.add_argument("--prefect-venv", type=Path, default=HERE.parent / "tests" / "servers" / ".cache" / "prefect-venv")
    parser.add_argument(
        "--prefect-back-to-back",
        action="store_true",
        help="do not wait for the Prefect server to go idle between flow runs (slower Prefect numbers)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON result")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.reps = 100, 1
    if args.dask:
        return main_dask(args)
    n, reps = args.tasks or 1000, args.reps

    workdir = Path(tempfile.mkdtemp(prefix="dagwatch-bench-"))
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, float]]]] = {shape: {} for shape in SHAPES}
    prefect: dict[str, Any] | None = None
    try:
        for shape in SHAPES:
            print(f"{shape}: plain ...", file=sys.stderr, flush=True)
            results[shape]["plain"] = bench_plain(n, shape, reps)
            for kind in ("store", "null"):
                print(f"{shape}: dagwatch-{kind} ...", file=sys.stderr, flush=True)
                results[shape][f"dagwatch-{kind}"] = bench_dagwatch(n, shape, reps, kind, workdir)
        if not args.no_prefect:
            print("prefect ...", file=sys.stderr, flush=True)
            prefect = bench_prefect(n, reps, args.prefect_venv, workdir, settle=not args.prefect_back_to_back)
            for shape in SHAPES:
                results[shape]["prefect"] = [
                    {"wall_s": r["body_s"], "flow_call_s": r["call_s"], "server_settle_s": r.get("settle_s", 0.0)}
                    for r in prefect["results"][shape]
                ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summary: dict[str, Any] = {}
    print()
    print(f"Per-task overhead, {n} trivial tasks, median of {reps}  ({os.cpu_count()} CPUs, load {load_before[0]:.2f} at start)")
    header = f"{'shape':6} {'mode':16} {'wall/task':>11} {'CPU/task':>11} {'÷ plain':>9} {'÷ Prefect':>10}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        modes = results[shape]
        plain = per_task(modes["plain"], n, "wall_s")
        pf = per_task(modes["prefect"], n, "wall_s") if "prefect" in modes else None
        summary[shape] = {}
        for mode in ("plain", "dagwatch-store", "dagwatch-null", "prefect"):
            if mode not in modes:
                continue
            wall = per_task(modes[mode], n, "wall_s")
            cpu = per_task(modes[mode], n, "cpu_s") if "cpu_s" in modes[mode][0] else None
            vs_plain = wall / plain
            vs_prefect = wall / pf if pf else None
            summary[shape][mode] = {
                "wall_per_task_s": wall,
                "cpu_per_task_s": cpu,
                "ratio_to_plain": vs_plain,
                "ratio_to_prefect": vs_prefect,
            }
            print(
                f"{shape:6} {mode:16} {fmt_us(wall):>11} {fmt_us(cpu) if cpu is not None else '(client)':>11} "
                f"{vs_plain:>8,.0f}x {('1/' + format(1 / vs_prefect, ',.0f')) if vs_prefect else '-':>10}"
            )
        if pf:
            flow_call = statistics.median(r["flow_call_s"] for r in modes["prefect"])
            summary[shape]["prefect"]["flow_call_s"] = flow_call
            print(f"{'':6} {'':16} prefect flow call incl. run creation + teardown: {flow_call:.2f}s")
    print()
    goal = {}
    if prefect is not None:
        for shape in SHAPES:
            ratio = summary[shape]["dagwatch-store"]["ratio_to_prefect"]
            goal[shape] = ratio <= GOAL_RATIO
            print(
                f"{shape}: dagwatch with durable recording = 1/{1 / ratio:,.0f} of Prefect's per-task wall "
                f"(goal ≤ 1/{1 / GOAL_RATIO:.0f}): {'met' if goal[shape] else 'NOT met'}"
            )

    head = {"bench": "runner_overhead", "started_at": started.isoformat(), "tasks": n, "repetitions": reps}
    name = f"runner_overhead-{started:%Y%m%dT%H%M%S}{'-quick' if args.quick else ''}.json"
    write_record(args.out / name, head, load_before, prefect, results, summary, GOAL_RATIO, goal)
    return 0


def main_dask(args: argparse.Namespace) -> int:
    """dagwatch-dask next to prefect-dask: per-task wall of each, and the ratio against the goal."""
    n, reps = args.tasks or 200, args.reps
    workdir = Path(tempfile.mkdtemp(prefix="dagwatch-bench-dask-"))
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, float]]]] = {shape: {} for shape in SHAPES}
    prefect: dict[str, Any] | None = None
    try:
        for shape in SHAPES:
            print(f"{shape}: dagwatch-dask ...", file=sys.stderr, flush=True)
            results[shape]["dagwatch-dask"] = bench_dagwatch(n, shape, reps, "store", workdir, dask=True)
        if not args.no_prefect:
            print("prefect-dask ...", file=sys.stderr, flush=True)
            prefect = bench_prefect(
                n, reps, args.prefect_venv, workdir, settle=not args.prefect_back_to_back, script="prefect_dask_flows.py"
            )
            for shape in SHAPES:
                results[shape]["prefect-dask"] = [{"wall_s": r["body_s"], "flow_call_s": r["call_s"]} for r in prefect["results"][shape]]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"Per-task overhead on Dask (LocalCluster: 2 worker processes x 1 thread), {n} trivial tasks, median of {reps}  "
        f"({os.cpu_count()} CPUs, load {load_before[0]:.2f} at start)"
    )
    header = f"{'shape':6} {'mode':14} {'wall/task':>11} {'÷ Prefect':>10}"
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    goal: dict[str, bool] = {}
    for shape in SHAPES:
        modes = results[shape]
        pf = per_task(modes["prefect-dask"], n, "wall_s") if "prefect-dask" in modes else None
        summary[shape] = {}
        for mode in ("dagwatch-dask", "prefect-dask"):
            if mode not in modes:
                continue
            wall = per_task(modes[mode], n, "wall_s")
            ratio = wall / pf if pf else None
            summary[shape][mode] = {"wall_per_task_s": wall, "ratio_to_prefect": ratio}
            print(f"{shape:6} {mode:14} {fmt_us(wall):>11} {format(ratio, '.3f') if ratio else '-':>10}")
        if pf:
            ratio = summary[shape]["dagwatch-dask"]["ratio_to_prefect"]
            goal[shape] = ratio <= DASK_GOAL_RATIO
    print()
    for shape, met in goal.items():
        ratio = summary[shape]["dagwatch-dask"]["ratio_to_prefect"]
        print(
            f"{shape}: dagwatch on Dask = {ratio:.3f}x Prefect DaskTaskRunner's per-task wall (goal ≤ {DASK_GOAL_RATIO}x): {'met' if met else 'NOT met'}"
        )
    head = {
        "bench": "runner_overhead_dask",
        "started_at": started.isoformat(),
        "tasks": n,
        "repetitions": reps,
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": True},
    }
    write_record(
        args.out / f"runner_overhead-dask-{started:%Y%m%dT%H%M%S}.json", head, load_before, prefect, results, summary, DASK_GOAL_RATIO, goal
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
