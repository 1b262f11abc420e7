"""Runbooks through `dagwatch up` as a user meets them: the HTTP API (auth, 202/200, the
execution's steps), a policy that starts a runbook by itself, and the CLI on the same store."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

CONFIG = """
data_dir: {data_dir}
sources: [{{name: embedded, kind: embedded, pipelines: []}}]
alerting: {{group_wait: 0s, group_interval: 1s}}
runbooks:
  folder: {folder}
  rate_limit: {{count: 20, per: 1h}}
  policies:
    - {{runbook: diagnose, match: {{pipeline: auto_fixed}}}}
"""

DIAGNOSE = """
name: diagnose
description: Look, escalate, change nothing.
match: {kind: "~task_failed|run_failed"}
steps:
  - {name: health, action: orchestrator_health}
  - {name: logs, action: task_logs, when: {health.healthy: "true"}}
  - {name: classify, action: classify_failure}
  - {name: escalate, action: escalate, when: {classify.category: "!transient"}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runbooks")
    (tmp / "runbooks").mkdir()
    (tmp / "runbooks" / "diagnose.yaml").write_text(DIAGNOSE)
    config = tmp / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp / "data", folder=tmp / "runbooks"))
    tokens = {"operator": create_token(config, "ops"), "viewer": create_token(config, "dash", "viewer")}
    proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
    proc.wait_healthy()
    yield proc, tokens, config
    proc.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def push_failure(proc, token: str, pipeline: str, error: str) -> int:
    event = {
        "kind": "task_failed",
        "source": "embedded",
        "pipeline": pipeline,
        "run_id": "r1",
        "task_id": "fit",
        "summary": f"fit failed: {error}",
        "details": {"error": error, "traceback": f"Traceback (most recent call last):\n{error}"},
    }
    answer = httpx.post(f"{proc.url}/api/v1/events", json=event, headers=auth(token)).json()
    return answer["items"][0]["fired"][0]


def test_listing_shows_shipped_and_configured_runbooks(server):
    proc, _, _ = server
    listed = {r["name"]: r for r in httpx.get(f"{proc.url}/api/v1/runbooks").json()}
    assert {"pipeline-failure", "retry-failed", "diagnose"} <= set(listed)
    clear = next(s for s in listed["pipeline-failure"]["steps"] if s["name"] == "clear")
    assert clear["mutating"] and clear["when"] == {"classify.category": "transient", "health.healthy": "true", "inputs.ok": "true"}


def test_starting_needs_an_operator_runs_in_the_background_and_runs_once(server):
    proc, tokens, _ = server
    alert_id = push_failure(proc, tokens["operator"], "train", "KeyError: 'user_id'")
    url = f"{proc.url}/api/v1/runbooks/diagnose/executions"
    assert httpx.post(url, json={"alert_id": alert_id}).status_code == 401
    viewer = httpx.post(url, json={"alert_id": alert_id}, headers=auth(tokens["viewer"]))
    assert viewer.status_code == 403 and "needs operator" in viewer.json()["detail"]
    started = httpx.post(url, json={"alert_id": alert_id}, headers=auth(tokens["operator"]))
    assert started.status_code == 202 and started.json()["started_by"] == "ops"
    again = httpx.post(url, json={"alert_id": alert_id}, headers=auth(tokens["operator"]))
    assert again.status_code == 200 and again.json()["id"] == started.json()["id"]

    def finished():
        body = httpx.get(f"{proc.url}/api/v1/runbooks/executions/{started.json()['id']}").json()
        return body if body["status"] in ("succeeded", "failed") else None

    done = wait_for(finished, limit=60, step=0.2)
    steps = {s["name"]: s for s in done["steps"]}
    assert done["status"] == "succeeded"
    assert steps["classify"]["data"]["category"] == "persistent" and steps["classify"]["data"]["rule"]
    assert steps["escalate"]["status"] == "succeeded"
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert alert["tier"] == "P1"


def test_bad_starts_are_refused_with_the_reason(server):
    proc, tokens, _ = server
    alert_id = push_failure(proc, tokens["operator"], "etl", "boom")
    url = f"{proc.url}/api/v1/runbooks"
    assert httpx.post(f"{url}/nope/executions", json={"alert_id": alert_id}, headers=auth(tokens["operator"])).status_code == 404
    assert httpx.post(f"{url}/diagnose/executions", json={"alert_id": 2**40}, headers=auth(tokens["operator"])).status_code == 422
    assert httpx.post(f"{url}/diagnose/executions", json={"alert_id": 987654}, headers=auth(tokens["operator"])).status_code == 404
    odd = httpx.post(f"{url}/diagnose/executions", json={"alert_id": alert_id, "params": {"x": 1}}, headers=auth(tokens["operator"]))
    assert odd.status_code == 422 and "no parameter" in odd.json()["detail"]
    assert httpx.get(f"{url}/executions/{2**40}").status_code == 422


def test_a_policy_starts_its_runbook_by_itself(server):
    proc, tokens, _ = server
    alert_id = push_failure(proc, tokens["operator"], "auto_fixed", "ValueError: could not convert string to float: 'n/a'")

    def execution_for_alert():
        return httpx.get(f"{proc.url}/api/v1/runbooks/executions", params={"alert_id": alert_id}).json()

    [found] = wait_for(execution_for_alert, limit=30, step=0.3)
    assert found["started_by"] == "policy:diagnose" and found["runbook"] == "diagnose"


def test_the_cli_runs_a_runbook_and_shows_each_step(server):
    proc, tokens, config = server
    alert_id = push_failure(proc, tokens["operator"], "cli_pipeline", "ConnectionResetError(104, 'Connection reset by peer')")
    out = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "runbook", "run", "diagnose", "--alert", str(alert_id), "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    execution = json.loads(out.stdout)
    assert execution["started_by"].startswith("cli:") and execution["status"] == "succeeded"
    assert {s["name"]: s["status"] for s in execution["steps"]}["escalate"] == "skipped"  # transient: nothing to escalate
    again = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "runbook", "run", "diagnose", "--alert", str(alert_id), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "already ran" in again.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "runbook", "list", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and "diagnose: Look, escalate, change nothing." in listed.stdout
