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

import sys
import time

from prefect import flow
from prefect.futures import wait
from prefect_dask import DaskTaskRunner

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from prefect_flows import build, fan_body, measure, parse_args  # noqa: E402

CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}


def main() -> None:
    args = parse_args(default_tasks=200)
    fan_tasks, chain_tasks = build(args.tasks)
    body: dict[str, float] = {}

    @flow(name="bench-dask-fan", task_runner=DaskTaskRunner(cluster_kwargs=CLUSTER))
    def fan_flow() -> int:
        return fan_body(fan_tasks, body)

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

    import prefect
    import prefect_dask

    out: dict[str, object] = {"prefect_version": prefect.__version__, "prefect_dask_version": prefect_dask.__version__}
    measure("prefect-dask", {"fan": fan_flow, "chain": chain_flow}, body, args, out)


if __name__ == "__main__":
    main()
