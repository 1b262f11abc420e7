"""Triggering a deployment on the real Prefect 3 server: a flow run is created from the
deployment named as the source names pipelines (`flow/deployment`) with the runbook's
parameters, a `serve` process runs it (the flow fails unless it got them), and the source's
poll stores it ended, which is what follow_run reads. A dry run creates nothing; an ad-hoc flow
name and an unknown deployment are refused with their reasons."""

from __future__ import annotations

import subprocess
import textwrap

import httpx
import pytest

from monitor.errors import PipelineNotFound
from monitor.model import State
from monitor.sources.base import ActionUnsupported, Triggerable
from monitor.store import runs
from tests.integration.server import wait_for
from tests.servers.prefect.server import PYTHON

FLOW = textwrap.dedent("""
    from prefect import flow


    @flow(name="dw-trigger")
    def retrain(model: str = "none", epochs: int = 1):
        if model != "churn" or epochs != 3:
            raise ValueError(f"retrain got model={model!r} epochs={epochs!r}, not the runbook's")
        return epochs


    if __name__ == "__main__":
        retrain.serve(name="retrain")
""")


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):
    script = tmp_path_factory.mktemp("trigger-flows") / "retrain_flow.py"
    script.write_text(FLOW)
    proc = subprocess.Popen(
        [str(PYTHON), str(script)], env=prefect_server.env, cwd=prefect_server.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api = prefect_server.api_url
    body = {"deployments": {"name": {"any_": ["retrain"]}}, "flows": {"name": {"any_": ["dw-trigger"]}}}
    deployment = wait_for(lambda: httpx.post(f"{api}/deployments/filter", json=body).json(), limit=120, step=0.5)[0]
    yield deployment["id"]
    prefect_server.stop_child(proc)


def runs_of(api: str, deployment_id: str) -> set[str]:
    found = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}).json()
    return {r["id"] for r in found}


def test_trigger_creates_a_flow_run_of_the_deployment_with_the_parameters(prefect_server, served, watch, store):
    w = watch(["^dw-trigger/retrain$"])
    w.baseline()
    assert isinstance(w.source, Triggerable)
    before = runs_of(prefect_server.api_url, served)

    preview = w.source.trigger("dw-trigger/retrain", {"model": "churn", "epochs": 3}, dry_run=True)
    assert preview.run_id is None and preview.dry_run
    assert preview.message == "would create a flow run of deployment dw-trigger/retrain with parameters {'model': 'churn', 'epochs': 3}"
    assert runs_of(prefect_server.api_url, served) == before

    result = w.source.trigger("dw-trigger/retrain", {"model": "churn", "epochs": 3}, dry_run=False)
    assert result.run_id and result.run_id not in before and not result.dry_run
    assert result.message.startswith(f"created flow run {result.run_id} of deployment dw-trigger/retrain (")
    run = httpx.get(f"{prefect_server.api_url}/flow_runs/{result.run_id}").json()
    assert run["deployment_id"] == served and run["parameters"] == {"model": "churn", "epochs": 3}

    # Polled into the store like any run: follow_run reads it there (source, pipeline, run id).
    def ended():
        w.collector.poll_once()
        with store.session() as session:
            view = runs.get(session, source="prefect", pipeline="dw-trigger/retrain", run_id=result.run_id)
        return view if view is not None and view.state.terminal and view.ended_at is not None else None

    view = wait_for(ended, limit=180, step=1)
    assert view.state is State.SUCCESS


def test_only_deployments_can_be_triggered_and_unknown_ones_are_named(prefect_server, served, watch):
    source = watch(["^dw-trigger/retrain$"]).source
    with pytest.raises(ActionUnsupported, match=r"'dw-trigger' is not a deployment \(`flow/deployment`\)"):
        source.trigger("dw-trigger", {}, dry_run=False)
    with pytest.raises(PipelineNotFound, match="has no deployment 'dw-trigger/nightly'"):
        source.trigger("dw-trigger/nightly", {}, dry_run=False)
    with pytest.raises(PipelineNotFound, match="has no deployment 'other-flow/retrain'"):
        source.trigger("other-flow/retrain", {}, dry_run=True)
