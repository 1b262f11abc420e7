"""Prefect flows the dagwatch integration tests run against a real Prefect server.

Run by the Prefect venv's python (never by dagwatch's): `python flows.py SCENARIO [ARG]`, with
PREFECT_API_URL pointing at the server. Each scenario is one behaviour dagwatch must tell apart:

    fail        a task raises on every call, no retries      → task_failed + run_failed
    flaky_task  a task fails once, then succeeds on its retry → task_retrying (P3), resolved
    flaky_flow  the flow body fails once, flow-level retry    → run shown RETRYING, then succeeds
    flow_error  the flow body itself raises (no task failed)  → run_failed with the flow's error
    ok          succeeds                                      → nothing
    long        sleeps ARG seconds (default 20), then succeeds → nothing, run tracked while open
    crash       a task kills its process (os._exit)           → flow Crashed, task left RUNNING
    fail_many   N failing runs in one process, GAP seconds apart (latency samples)
    serve       serves the deployments below until killed (deployment runs, retry via the API)

A marker file next to PREFECT_HOME makes "fail once" deterministic across processes and retries.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from prefect import flow, task


def _marker(name: str) -> Path:
    return Path(os.environ.get("DAGWATCH_MARKER_DIR", os.environ.get("PREFECT_HOME", "."))) / f"{name}.marker"


def _first_time(name: str, token: str) -> bool:
    """True the first time for this (name, token): the marker file remembers across retries."""
    path = _marker(f"{name}-{token}")
    if path.exists():
        return False
    path.write_text("seen")
    return True


@task
def load(n: int = 3) -> list[int]:
    return list(range(n))


@task
def train_bad(rows: list[int]) -> float:
    raise ValueError(f"loss diverged to NaN after {len(rows)} batches")


@task(retries=2, retry_delay_seconds=1)
def train_flaky(rows: list[int], token: str) -> float:
    if _first_time("train_flaky", token):
        raise ConnectionError("feature store timed out (transient)")
    return 0.5


@task
def evaluate(score: float) -> float:
    return score


@task
def crash_hard() -> None:
    sys.stdout.flush()
    os._exit(3)


@flow(name="dw-fail")
def fail_flow() -> float:
    return evaluate(train_bad(load()))


@flow(name="dw-flaky-task")
def flaky_task_flow(token: str = "t") -> float:
    return evaluate(train_flaky(load(), token))


@flow(name="dw-flaky-flow", retries=1, retry_delay_seconds=1)
def flaky_flow(token: str = "t") -> float:
    rows = load()
    if _first_time("flaky_flow", token):
        raise RuntimeError("upstream bucket not ready yet (transient)")
    return evaluate(len(rows) / 10)


@flow(name="dw-flow-error")
def flow_error_flow() -> None:
    load()
    raise KeyError("config key 'learning_rate' missing")


@flow(name="dw-ok")
def ok_flow() -> float:
    return evaluate(len(load()) / 10)


@flow(name="dw-long")
def long_flow(seconds: float = 20) -> float:
    rows = load()
    time.sleep(seconds)
    return evaluate(len(rows) / 10)


@flow(name="dw-crash")
def crash_flow() -> None:
    load()
    crash_hard()


@flow(name="dw-retryable")
def retryable_flow(token: str = "t") -> float:
    """Fails on its first run; a retry requested through the API (set_state) succeeds."""
    rows = load()
    if _first_time("retryable", token):
        raise RuntimeError("GPU node lost (transient)")
    return evaluate(len(rows) / 10)


def serve() -> None:
    """Deployments that need a running process: API retries and crashes (the runner reports them)."""
    from prefect import serve as prefect_serve

    prefect_serve(
        retryable_flow.to_deployment(name="api-retry"),
        crash_flow.to_deployment(name="crash"),
        ok_flow.to_deployment(name="ok"),
        limit=4,
    )


SCENARIOS = {
    "fail": fail_flow,
    "flaky_task": flaky_task_flow,
    "flaky_flow": flaky_flow,
    "flow_error": flow_error_flow,
    "ok": ok_flow,
    "long": long_flow,
    "crash": crash_flow,
}


def fail_many(count: int, gap: float) -> None:
    """`count` failing runs in one process, `gap` seconds apart (detection-latency samples)."""
    for _ in range(count):
        try:
            fail_flow()
        except ValueError as exc:  # the failure is the sample; the server recorded it
            print(f"failed as intended: {exc}", file=sys.stderr)
        time.sleep(gap)


def main(argv: list[str]) -> int:
    name = argv[1]
    if name == "serve":
        serve()
        return 0
    if name == "fail_many":
        fail_many(int(argv[2]), float(argv[3]))
        return 0
    fn = SCENARIOS[name]
    args = argv[2:]
    try:
        if name == "long":
            fn(float(args[0]) if args else 20)
        elif name in ("flaky_task", "flaky_flow"):
            fn(args[0] if args else "t")
        else:
            fn()
    except Exception as exc:  # noqa: BLE001 - any flow failure is the point; the server has recorded it
        print(f"flow {name} ended with {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
