"""The Prefect side of bench/runner_overhead.py; runs in bench/.prefect-venv, never imports dagwatch.

Runs the same trivial tasks as the dagwatch side inside Prefect flows, against the server named
by PREFECT_API_URL (set by the parent), and prints one JSON line with the timings:

- fan:   N independent tasks, `.submit()`ed to the flow's default ThreadPoolTaskRunner, then waited on;
- chain: N dependent tasks, each called with the previous one's result.

`body_s` is the time spent inside the flow function (the tasks); `call_s` is the whole flow call,
flow-run creation and teardown included. With `--server-pid`, each flow run waits until the server
has digested the previous one (its CPU use drops below 10% of a core), so every repetition meets
an idle server: the server keeps ingesting task-run events for tens of seconds after a flow, and
back to back the next flow's tasks run 2-4x slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

t_import = time.perf_counter()
from prefect import flow, task  # noqa: E402
from prefect.futures import wait  # noqa: E402

IMPORT_S = time.perf_counter() - t_import


def _noop() -> None:
    return None


def _step(prev: object = None) -> None:
    return None


def build(n: int) -> tuple[list, list]:
    fan = [task(_noop, name=f"t{i}") for i in range(n)]
    chain = [task(_step, name=f"t{i}") for i in range(n)]
    return fan, chain


def settle(pid: int, idle: float = 0.10, limit: float = 240.0) -> float:
    """Wait until process `pid` uses less than `idle` of a core over one second (Linux /proc)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        before = cpu()
        time.sleep(1.0)
        if cpu() - before < idle:
            break
    return time.perf_counter() - t0


def parse_args(default_tasks: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=default_tasks)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--shapes", default="fan,chain")
    parser.add_argument("--server-pid", type=int, default=None)
    return parser.parse_args()


def fan_body(fan_tasks: list, body: dict[str, float]) -> int:
    """The fan flow's body, the same on either task runner, so both scripts time the same thing."""
    t0 = time.perf_counter()
    futures = [t.submit() for t in fan_tasks]
    wait(futures)
    states = [f.state for f in futures]
    body["s"] = time.perf_counter() - t0
    if not all(s.is_completed() for s in states):
        raise RuntimeError("a task did not complete")
    return len(states)


def measure(label: str, flows: dict, body: dict[str, float], args: argparse.Namespace, out: dict[str, object]) -> None:
    """Run each shape's flow `args.reps` times (each on a settled server) and print the RESULT line."""
    out["results"] = {}
    for shape in args.shapes.split(","):
        reps = []
        for _ in range(args.reps):
            settled = settle(args.server_pid) if args.server_pid else 0.0
            body.clear()
            t0 = time.perf_counter()
            done = flows[shape]()
            call_s = time.perf_counter() - t0
            assert done == args.tasks
            reps.append({"body_s": body["s"], "call_s": call_s, "settle_s": settled})
            print(
                f"{label} {shape}: server settled in {settled:.0f}s; body {body['s']:.2f}s, flow call {call_s:.2f}s",
                file=sys.stderr,
                flush=True,
            )
        out["results"][shape] = reps  # type: ignore[index]
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    args = parse_args(default_tasks=1000)
    fan_tasks, chain_tasks = build(args.tasks)
    body: dict[str, float] = {}

    @flow(name="bench-fan")
    def fan_flow() -> int:
        return fan_body(fan_tasks, body)

    @flow(name="bench-chain")
    def chain_flow() -> int:
        t0 = time.perf_counter()
        value = None
        for t in chain_tasks:
            value = t(value)
        body["s"] = time.perf_counter() - t0
        return len(chain_tasks)

    import prefect

    out: dict[str, object] = {"prefect_import_s": IMPORT_S, "prefect_version": prefect.__version__}
    measure("prefect", {"fan": fan_flow, "chain": chain_flow}, body, args, out)


if __name__ == "__main__":
    main()
