"""`dagwatch alerts list|ack|silence` against a real `dagwatch up`: through its HTTP API with a
token, audited under the token's name; every refusal is one line and exit 2. The same server
runs with `--log-format json`, and its log is checked line by line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from tests.integration.server import create_token, free_port, wait_for

CONFIG = """
data_dir: {data_dir}
server: {{port: {port}}}
sources: []
alerting: {{group_wait: 0s, group_interval: 1s}}
"""
ESCAPE = "\x1b[2J\x1b[31m"  # clear the screen, go red: a pipeline's summary must not do that to a terminal


@dataclass
class Served:
    url: str
    config: Path
    tokens: dict[str, str]
    stderr: Path

    def get(self, path: str, **params: str) -> list | dict:
        answer = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.tokens['admin']}"})
        assert answer.status_code == 200, answer.text
        return answer.json()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DAGWATCH_")} | {"PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("cli-remote")
    port = free_port()
    config = tmp / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp / "data", port=port))
    tokens = {
        "operator": create_token(config, "alice-ops"),
        "viewer": create_token(config, "dash", "viewer"),
        "admin": create_token(config, "root", "admin"),
    }
    stderr = tmp / "stderr.log"
    with stderr.open("wb") as err, (tmp / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "up", "--config", str(config), "--log-format", "json", "--log-level", "info"],
            stdout=out,
            stderr=err,
            env=clean_env(),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or proc.poll() is not None, limit=60)
        assert proc.poll() is None, stderr.read_text()
        events = [
            {"kind": "run_failed", "source": "airflow-prod", "pipeline": "train", "run_id": "r1", "summary": f"fit failed {ESCAPE}OOM"},
            {"kind": "run_failed", "source": "prefect-prod", "pipeline": "etl", "run_id": "r2", "summary": "etl failed"},
        ]
        for event in events:
            posted = httpx.post(f"{url}/api/v1/events", json=event, headers={"Authorization": f"Bearer {tokens['operator']}"})
            assert posted.status_code < 300, posted.text
        yield Served(url, config, tokens, stderr)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def cli(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env={**{k: None for k in os.environ if k.startswith("DAGWATCH_")}, **env})


def test_list_filters_and_prints_a_table_or_json(served: Served) -> None:
    wait_for(lambda: len(served.get("/api/v1/alerts")) == 2)
    listed = cli("alerts", "list", "--url", served.url, "--json", DAGWATCH_TOKEN=served.tokens["viewer"])
    assert listed.exit_code == 0, listed.output
    assert {(a["pipeline"], a["source"]) for a in json.loads(listed.stdout)} == {("train", "airflow-prod"), ("etl", "prefect-prod")}
    by_source = cli("alerts", "list", "--url", served.url, "--source", "prefect-prod", "--tier", "p1", "--status", "firing", "--json")
    assert [a["pipeline"] for a in json.loads(by_source.stdout)] == ["etl"]  # reads are open (server.read_auth off)
    assert json.loads(cli("alerts", "list", "--url", served.url, "--pipeline", "nope", "--json").stdout) == []
    table = cli("alerts", "list", "--url", served.url)
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "TIER", "STATE", "KIND"] and len(rows) == 2
    assert any("train" in r and "fit failed" in r and "OOM" in r for r in rows)
    assert "\x1b" not in table.stdout


def test_ack_and_silence_go_through_the_api_and_are_audited_under_the_token(served: Served) -> None:
    [train] = served.get("/api/v1/alerts", pipeline="train")
    env = {"DAGWATCH_URL": served.url, "DAGWATCH_TOKEN": served.tokens["operator"]}
    acked = cli("alerts", "ack", str(train["id"]), "--comment", "on it", **env)
    assert acked.exit_code == 0, acked.output
    assert acked.stdout.strip() == f"alert {train['id']} acknowledged by alice-ops"
    assert served.get(f"/api/v1/alerts/{train['id']}")["acked_by"] == "alice-ops"

    by_alert = cli("alerts", "silence", str(train["id"]), "--for", "2h", "--json", **env)
    assert by_alert.exit_code == 0, by_alert.output
    made = json.loads(by_alert.stdout)
    assert made["created_by"] == "alice-ops"
    assert made["matchers"] == {"source": "=airflow-prod", "kind": "=run_failed", "pipeline": "=train"}
    by_matchers = cli("alerts", "silence", "-m", "tier=P3", "-m", "pipeline=~nightly_.*", "--for", "30m", "--comment", "window", **env)
    assert by_matchers.exit_code == 0, by_matchers.output
    silences = {s["id"]: s for s in served.get("/api/v1/silences")}
    assert {"tier": "P3", "pipeline": "~nightly_.*"} in [s["matchers"] for s in silences.values()]
    assert silences[made["id"]]["created_by"] == "alice-ops"

    audit = served.get("/api/v1/audit", actor="alice-ops")
    assert {(e["action"], e["via"]) for e in audit} >= {("ack", "api"), ("silence", "api")}
    assert not [e for e in served.get("/api/v1/audit") if e["actor"].startswith("cli:") and e["action"] in ("ack", "silence")]


def test_the_configured_server_is_used_when_it_answers(served: Served) -> None:
    """No --url: the config's server answers, so the command goes through it, not the store."""
    [etl] = served.get("/api/v1/alerts", pipeline="etl")
    acked = cli("alerts", "ack", str(etl["id"]), "--config", str(served.config), DAGWATCH_TOKEN=served.tokens["operator"])
    assert acked.exit_code == 0, acked.output
    assert "acting on the store directly" not in acked.output and acked.stdout.strip().endswith("by alice-ops")


@pytest.mark.parametrize(
    ("token", "args", "words"),
    [
        (None, ("ack", "{id}"), "HTTP 401"),
        ("viewer", ("ack", "{id}"), "HTTP 403"),
        ("operator", ("ack", "999999"), "HTTP 404"),
        ("operator", ("silence", "-m", "pipeline=~(", "--for", "1h"), "--match: "),
        ("operator", ("silence", "{id}", "--for", "1000d"), "HTTP 422: body.duration: a silence lasts at most 90 days"),
    ],
)
def test_refusals_are_one_line_and_exit_2(served: Served, token, args, words) -> None:
    [alert] = served.get("/api/v1/alerts", pipeline="train")
    secret = served.tokens.get(token, "dw_bogus-token-value")
    env = {"DAGWATCH_TOKEN": secret} if token else {}
    result = cli("alerts", *(a.format(id=alert["id"]) for a in args), "--url", served.url, **env)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and (words is None or words in result.stderr)
    assert secret not in result.output and "Traceback" not in result.output
    if words == "HTTP 401":
        assert "DAGWATCH_TOKEN" in result.stderr


def test_an_unreachable_url_is_one_line_and_exit_2() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = cli("alerts", "list", "--url", closed)
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"error: cannot reach dagwatch at {closed} (connection refused or no route): is `dagwatch up` running there? Set --url or DAGWATCH_URL"
    ]


def test_the_server_logs_json_lines_without_secrets(served: Served) -> None:
    lines = [line for line in served.stderr.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") and r["level"] in ("debug", "info", "warning", "error", "critical") for r in records)
    assert any(r["message"].startswith("dagwatch: serving on http://") for r in records)
    assert not any(secret in line for line in lines for secret in served.tokens.values())
