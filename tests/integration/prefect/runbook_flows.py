"""Deployments for the runbook tests, served by the Prefect venv's python:
`python runbook_flows.py serve`, with PREFECT_API_URL pointing at the test server.

    dw-rb-transient/runbook   extract → fetch → publish; `fetch` raises
                              ConnectionResetError(104, 'Connection reset by peer') the first time
                              (the `marker` file, in the test's tmp dir, remembers), no retries, so
                              the flow run fails; retried, it succeeds
    dw-rb-persistent/runbook  extract → join_users; `join_users` raises KeyError('user_id') always
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, serve, task


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def fetch(rows: list[int], marker: str) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise ConnectionResetError(104, "Connection reset by peer")
    return len(rows)


@task
def publish(count: int) -> int:
    return count


@task
def join_users(rows: list[int]) -> str:
    row = {"id": rows[0], "email": "a@example.invalid"}
    return row["user_id"]


@flow(name="dw-rb-transient")
def transient(marker: str) -> int:
    return publish(fetch(extract(), marker))


@flow(name="dw-rb-persistent")
def persistent() -> str:
    return join_users(extract())


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve(transient.to_deployment(name="runbook"), persistent.to_deployment(name="runbook"), limit=4)
