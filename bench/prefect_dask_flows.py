"""The Prefect side of `bench/runner_overhead.py --dask`; runs in the Prefect venv with prefect-dask,
never imports dagwatch.

The same trivial tasks as the dagwatch side, on Prefect's `DaskTaskRunner` over a `LocalCluster`
of the same shape (2 worker processes, 1 thread each, 127.0.0.1, no dashboard), against the
server named by PREFECT_API_URL:

- fan:   N independent tasks `.submit()`ed, then waited on;
- chain: N tasks each `.submit()`ed with the previous one's future (it runs on a worker once its
         upstream is done), then the last waited on.

`body_s` is the time inside the flow function (the cluster is up by then, as dagwatch's is after
its warm-up run); `call_s` the whole flow call. With `--server-pid`, each flow run first waits
until the server is idle (see prefect_flows.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from prefect import flow, task
from prefect.futures import wait
from prefect_dask import DaskTaskRunner

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from prefect_flows import settle  # noqa: E402

CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}


def _noop() -> None:
    return None


def _step(prev: object = None) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--shapes", default="fan,chain")
    parser.add_argument("--server-pid", type=int, default=None)
    args = parser.parse_args()
    fan_tasks = [task(_noop, name=f"t{i}") for i in range(args.tasks)]
    chain_tasks = [task(_step, name=f"t{i}") for i in range(args.tasks)]
    body: dict[str, float] = {}

    @flow(name="bench-dask-fan", task_runner=DaskTaskRunner(cluster_kwargs=CLUSTER))
    def fan_flow() -> int:
        t0 = time.perf_counter()
        futures = [t.submit() for t in fan_tasks]
        wait(futures)
        states = [f.state for f in futures]
        body["s"] = time.perf_counter() - t0
        if not all(s.is_completed() for s in states):
            raise RuntimeError("a task did not complete")
        return len(states)

    @flow(name="bench-dask-chain", task_runner=DaskTaskRunner(cluster_kwargs=CLUSTER))
    def chain_flow() -> int:
        t0 = time.perf_counter()
        future = None
        futures = []
        for t in chain_tasks:
            future = t.submit(future)
            futures.append(future)
        wait([future])
        body["s"] = time.perf_counter() - t0
        if not all(f.state.is_completed() for f in futures):
            raise RuntimeError("a task did not complete")
        return len(futures)

    flows = {"fan": fan_flow, "chain": chain_flow}
    import prefect
    import prefect_dask

    out: dict[str, object] = {"prefect_version": prefect.__version__, "prefect_dask_version": prefect_dask.__version__, "results": {}}
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
                f"prefect-dask {shape}: server settled in {settled:.0f}s; body {body['s']:.2f}s, flow call {call_s:.2f}s",
                file=sys.stderr,
                flush=True,
            )
        out["results"][shape] = reps  # type: ignore[index]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
