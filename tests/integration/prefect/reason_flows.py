"""Flows stopped by Prefect itself, for the reasons tests. Run by the Prefect venv's python:
`python reason_flows.py SCENARIO`, with PREFECT_API_URL pointing at the test server.

    flow_timeout  the flow's timeout_seconds ends it while a task sleeps → flow TimedOut, task Crashed
    task_timeout  a task's timeout_seconds ends it                      → task TimedOut, flow TimedOut
"""

from __future__ import annotations

import sys
import time

from prefect import flow, task


@task
def slow_step(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(timeout_seconds=1)
def bounded_step() -> None:
    time.sleep(30)


@flow(name="dw-reason-flow-timeout", timeout_seconds=2)
def flow_timeout() -> float:
    return slow_step(30)


@flow(name="dw-reason-task-timeout")
def task_timeout() -> None:
    bounded_step()


if __name__ == "__main__":
    {"flow_timeout": flow_timeout, "task_timeout": task_timeout}[sys.argv[1]]()
