"""`checks.gate` inside a real Prefect 3 flow, reporting to a real `dagwatch up`, end to end.

examples/prefect_flows/gated.py runs in the Prefect venv (dagwatch's `checks` on PYTHONPATH,
numpy from tests/servers/prefect/install.sh) against the session's Prefect server. A failing gate
must fail the task and the flow run in Prefect, stop what comes after it, and raise the alert of its
kind and tier in dagwatch under the flow run's id; a later run whose gate passes resolves it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.gates import gate_dagwatch, pipeline_alerts
from tests.servers.prefect.server import PYTHON, PrefectServer

ROOT = Path(__file__).resolve().parents[3]
FLOW = ROOT / "examples" / "prefect_flows" / "gated.py"
PIPELINE = "dw-gated-train"


@pytest.fixture
def dagwatch(tmp_path):
    with gate_dagwatch(tmp_path, "prefect-flows") as server:
        yield server


class Gated:
    """Runs gated.py scenarios as the Prefect worker would: Prefect's venv, Prefect's API URL."""

    def __init__(self, server: PrefectServer, dagwatch_url: str, token: str, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        pythonpath = [str(ROOT)] + ([server.env["PYTHONPATH"]] if server.env.get("PYTHONPATH") else [])
        self.env = {**server.env, "PYTHONPATH": os.pathsep.join(pythonpath), "DAGWATCH_URL": dagwatch_url, "DAGWATCH_TOKEN": token}
        self.prefect = httpx.Client(base_url=server.api_url + "/", timeout=10)
        self.procs: list[subprocess.Popen] = []

    def start(self, scenario: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(PYTHON), str(FLOW), scenario, str(self.workdir)],
            env=self.env,
            cwd=self.server.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.server.stop_child(proc)  # by pid: SIGTERM, then SIGKILL
        self.prefect.close()

    def run(self, scenario: str) -> str:
        """Run one scenario to its end; its flow run id. The exit code says whether the flow failed."""
        proc = self.start(scenario)
        run_id = self.finish(proc)
        assert proc.returncode == (0 if scenario == "healthy" else 1), f"{scenario}: exit {proc.returncode}"
        return run_id

    def finish(self, proc: subprocess.Popen, timeout: float = 60) -> str:
        """Wait for the run (bounded) and return its flow run id, printed by gated.py's main()."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
            raise
        lines = [line for line in out.splitlines() if line.startswith('{"flow_run_id"')]
        assert lines, f"gated.py printed no flow run id (exit {proc.returncode}):\n{err[-3000:]}"
        return json.loads(lines[-1])["flow_run_id"]

    def flow_state(self, run_id: str) -> str:
        return self.prefect.get(f"flow_runs/{run_id}").json()["state_type"]

    def task_states(self, run_id: str) -> dict[str, str]:
        runs = self.prefect.post("task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}, "limit": 50}).json()
        return {r["name"].rsplit("-", 1)[0]: r["state_type"] for r in runs}


def alerts_of(url: str, run_id: str | None = None) -> list[dict]:
    return [a for a in pipeline_alerts(url, PIPELINE) if run_id is None or a["run_id"] == run_id]


@pytest.fixture
def gated(prefect_server, dagwatch, tmp_path):
    runner = Gated(prefect_server, *dagwatch, tmp_path / "work")
    yield runner
    runner.close()


def test_failing_gates_fail_the_flow_raise_their_alerts_and_passing_gates_resolve_them(gated, dagwatch):
    """Runs in sequence: a passing report resolves the same check's alert whatever run raised it
    (matched on source, pipeline and check name), so concurrent runs would resolve each other's."""
    url, _ = dagwatch

    # 1. A NaN in training: the convergence gate fails the task and the flow run; nothing after it runs.
    nan_run = gated.run("nan_loss")
    assert gated.flow_state(nan_run) == "FAILED"
    tasks = gated.task_states(nan_run)
    assert tasks["train"] == "COMPLETED" and tasks["check_convergence"] == "FAILED"
    assert "evaluate_model" not in tasks and "deploy" not in tasks
    [convergence] = alerts_of(url)  # validate_input passed: it fired nothing
    assert (convergence["kind"], convergence["tier"], convergence["status"]) == ("convergence_failed", "P1", "firing")
    assert (convergence["run_id"], convergence["task_id"]) == (nan_run, "check_convergence")
    assert convergence["details"]["check"] == "train_metrics"
    assert {"early_stopping", "grad_norm"} <= {i["name"] for i in convergence["details"]["not_passing"]}

    # 2. A useless model: training converges (that gate passes and resolves the P1), the output gate fails.
    low_run = gated.run("low_accuracy")
    assert gated.flow_state(low_run) == "FAILED"
    tasks = gated.task_states(low_run)
    assert tasks["check_convergence"] == "COMPLETED" and tasks["evaluate_model"] == "FAILED" and "deploy" not in tasks
    [output] = alerts_of(url, low_run)
    assert (output["kind"], output["tier"], output["status"]) == ("output_failed", "P2", "firing")
    assert output["task_id"] == "evaluate_model" and "accuracy" in output["summary"]
    assert alerts_of(url, nan_run)[0]["status"] == "resolved"

    # 3. A healthy run passes every gate and deploys; its passing output report resolves the P2.
    healthy = gated.run("healthy")
    assert gated.flow_state(healthy) == "COMPLETED" and gated.task_states(healthy)["deploy"] == "COMPLETED"
    assert alerts_of(url, low_run)[0]["status"] == "resolved"
    assert alerts_of(url, healthy) == []
    assert sorted((a["kind"], a["status"]) for a in alerts_of(url)) == [("convergence_failed", "resolved"), ("output_failed", "resolved")]
