"""Drives a real Prefect server through its REST API the way its own services, workers and users
do: creates flow runs and task runs and forces them into states (crashed, failed, cancelled, with
the message Prefect would write), and creates, pauses and deletes deployments. A test sees an
orchestrator-made outcome in a second instead of staging one with processes and waiting for it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

_RETRY_STATUSES = frozenset({429, 502, 503})
_RETRIES = 5


class PrefectDriver:
    def __init__(self, api_url: str) -> None:
        self.client = httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=30)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call that must succeed; the JSON answer (None when empty).

        Retried on 429/502/503 as Prefect's own client does (`PREFECT_CLIENT_MAX_RETRIES`): the
        server answers 503 when its SQLite database is locked by its own services for a moment,
        and the request's transaction was rolled back, so sending it again is safe."""
        for attempt in range(_RETRIES + 1):
            response = self.client.request(method, path.lstrip("/"), json=body)
            if response.status_code not in _RETRY_STATUSES or attempt == _RETRIES:
                break
            time.sleep(0.2 * 2**attempt)
        response.raise_for_status()
        return response.json() if response.content else None

    def flow_run(self, flow: str) -> str:
        """A new RUNNING flow run of `flow` (created if needed), with no deployment."""
        flow_id = self.call("POST", "flows/", {"name": flow})["id"]
        run_id = self.call("POST", "flow_runs/", {"flow_id": flow_id})["id"]
        self.set_state("flow_runs", run_id, "RUNNING", "Running")
        return run_id

    def task_run(self, flow_run_id: str, task: str) -> str:
        """A RUNNING task run named as Prefect names them: `task-<first 3 of dynamic_key>`."""
        dynamic_key = uuid.uuid4().hex
        return self.call(
            "POST",
            "task_runs/",
            {
                "flow_run_id": flow_run_id,
                "task_key": f"{task}-key",
                "dynamic_key": dynamic_key,
                "name": f"{task}-{dynamic_key[:3]}",
                "state": {"type": "RUNNING", "name": "Running"},
            },
        )["id"]

    def set_state(self, kind: str, run_id: str, state_type: str, name: str, message: str | None = None) -> None:
        """Force a flow run (`kind="flow_runs"`) or task run (`"task_runs"`) into a state."""
        answer = self.call(
            "POST",
            f"{kind}/{run_id}/set_state",
            {
                "state": {"type": state_type, "name": name, "message": message},
                "force": True,
            },
        )
        assert answer["status"] == "ACCEPT", answer

    def deployment(self, flow: str, name: str, **fields: Any) -> str:
        flow_id = self.call("POST", "flows/", {"name": flow})["id"]
        return self.call("POST", "deployments/", {"name": name, "flow_id": flow_id, **fields})["id"]

    def task_runs(self, flow_run_id: str) -> list[tuple[str, int, str, int]]:
        """What Prefect has for each task run of a flow run, for "what ran again?": sorted
        (task key without its suffix — `fetch` for `fetch-1a2b` —, the flow run's run count it
        ran in, state name, the task run's own run count)."""
        found = self.call("POST", "task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}})
        return sorted((t["task_key"].rsplit("-", 1)[0], t["flow_run_run_count"], t["state_name"], t["run_count"]) for t in found)

    def wait_flow_run(self, flow_run_id: str, states: tuple[str, ...], timeout: float = 90) -> tuple[str, int]:
        """(state name, run count) of the flow run once its state is one of `states` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.call("GET", f"flow_runs/{flow_run_id}")
            if run["state_name"] in states:
                return run["state_name"], run["run_count"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {flow_run_id} not in {states} after {timeout}s: {run['state_name']}")
            time.sleep(0.5)
