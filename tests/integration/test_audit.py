"""The audit log on real servers: every changing path — the API, the pages' forms, Slack clicks,
the CLI and a trusted auth proxy — leaves one entry with who, what, target, via and where from,
and refusals of known callers are entries too; no token or secret ever appears in it.
`GET /api/v1/audit` filters by time, actor and action. The trusted proxy is believed only from
its configured peer addresses: the same headers from another loopback address are ignored."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from monitor.alerting.notifiers import slack
from monitor.alerting.notifiers.slack import SlackNotifier
from monitor.api.app import create_app
from monitor.config import SlackReceiverSettings
from monitor.model import utcnow
from monitor.remediation.engine import Engine
from monitor.store import audit, open_store, tokens
from monitor.store.db import Store
from tests.fakes.slack import signed
from tests.integration.server import DagwatchProcess, free_port, serve_app, wait_for
from tests.integration.test_pages_runbooks import POLICY, diagnosing_engine, fire

SIGNING = "audit-signing-secret-7f3a"
SLACK_TOKEN = "xoxb-audit-token-1"
ALICE, MALLORY = "U0ALICE01", "U0MALLORY"


@dataclass
class Served:
    store: Store
    url: str
    engine: Engine
    tokens: dict[str, str]

    def audit(self, **query: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/audit", params=query, headers=bearer(self.tokens["admin"]))
        assert answer.status_code == 200, answer.text
        for secret in (*self.tokens.values(), SIGNING, SLACK_TOKEN):
            assert secret not in answer.text
        return answer.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def entry(entries: list[dict], **wanted: str) -> dict:
    found = [e for e in entries if all(e[k] == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, entries)
    return found[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("audit")
    store = open_store(f"sqlite:///{folder / 'dagwatch.db'}")
    engine = diagnosing_engine(store, folder / "runbooks")
    with store.session() as db:
        made = {role: tokens.create(db, name=f"{role}-token", role=role, now=utcnow()) for role in tokens.ROLES}
    chat = SlackNotifier(
        SlackReceiverSettings(
            kind="slack",
            name="chat",
            token=SLACK_TOKEN,
            channel="#alerts",
            api_url="http://127.0.0.1:9/",
            signing_secret=SIGNING,
            operators={ALICE: "alice"},
        )
    )
    app = create_app(store, POLICY, runbook_engine=engine, slack_signing_secrets=[SIGNING], notifiers={"chat": chat})
    try:
        with serve_app(app) as url:
            yield Served(store, url, engine, made)
    finally:
        engine.shutdown()
        store.close()


def test_api_changes_are_audited_with_who_what_target_and_via(served: Served) -> None:
    op = bearer(served.tokens["operator"])
    events = [
        {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": "a1", "summary": "failed"},
        {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": "a2", "summary": "failed"},
        {"kind": "nonsense"},
    ]
    answer = httpx.post(f"{served.url}/api/v1/events", json=events, headers=bearer(served.tokens["ingest"])).json()
    alert_id = answer["items"][0]["fired"][0]
    assert httpx.post(f"{served.url}/api/v1/alerts/{alert_id}/ack", json={"comment": "on it"}, headers=op).status_code == 200
    silence = httpx.post(f"{served.url}/api/v1/silences", json={"matchers": {"pipeline": "train"}, "duration": "1h"}, headers=op).json()
    assert httpx.delete(f"{served.url}/api/v1/silences/{silence['id']}", headers=op).status_code == 200
    report = {"kind": "quality", "name": "orders_suite", "status": "failed", "pipeline": "train"}
    assert httpx.post(f"{served.url}/api/v1/check-results", json=report, headers=bearer(served.tokens["ingest"])).status_code == 202
    started = httpx.post(
        f"{served.url}/api/v1/runbooks/diagnose/executions", json={"alert_id": alert_id, "dry_run": True}, headers=op
    ).json()
    refused = httpx.post(f"{served.url}/api/v1/alerts/{alert_id}/ack", headers=bearer(served.tokens["viewer"]))
    assert refused.status_code == 403

    ingested = served.audit(actor="ingest-token")
    posted = entry(ingested, action="post_events")
    assert (posted["via"], posted["target"], posted["detail"], posted["outcome"]) == ("api", "af", "2 accepted, 1 rejected", "ok")
    assert posted["address"] == "127.0.0.1"
    assert entry(ingested, action="post_check_result")["target"] == "quality check orders_suite of train"
    ops = served.audit(actor="operator-token")
    assert entry(ops, action="ack")["target"] == f"alert #{alert_id}"
    assert entry(ops, action="silence")["target"] == f"silence #{silence['id']}"
    assert entry(ops, action="expire_silence")["target"] == f"silence #{silence['id']}"
    run = entry(ops, action="run_runbook")
    assert run["target"] == f"diagnose for alert #{alert_id}" and run["detail"] == f"execution #{started['id']} dry run"
    no = entry(served.audit(actor="viewer-token"), action="ack")
    assert no["outcome"] == "refused" and "needs operator" in no["reason"] and no["target"] == f"/api/v1/alerts/{alert_id}/ack"

    assert [e["action"] for e in served.audit(actor="operator-token", action="ack")] == ["ack"]
    assert len(served.audit(limit="2")) == 2
    assert served.audit(since="2199-01-01T00:00:00Z") == []
    for role in ("viewer", "operator", "ingest"):
        assert httpx.get(f"{served.url}/api/v1/audit", headers=bearer(served.tokens[role])).status_code == 403
    assert httpx.get(f"{served.url}/api/v1/audit").status_code == 401


def test_page_forms_and_logins_are_audited(served: Served) -> None:
    site = {"Origin": served.url}
    alert_id = fire(served.store, run_id="page-1")
    with httpx.Client(base_url=served.url, headers=site) as browser:
        assert browser.post("/login", data={"token": served.tokens["operator"], "next": "/"}).status_code == 303
        page = browser.get(f"/alerts/{alert_id}").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        assert browser.post(f"/alerts/{alert_id}/ack", data={"csrf": csrf}).status_code == 303
        assert browser.post(f"/alerts/{alert_id}/silence", data={"csrf": csrf, "duration": "30m"}).status_code == 303
        assert browser.post("/logout").status_code == 303
    with httpx.Client(base_url=served.url, headers=site) as pipeline:
        assert pipeline.post("/login", data={"token": served.tokens["ingest"], "next": "/"}).status_code == 403
    with httpx.Client(base_url=served.url, headers=site) as viewer:
        assert viewer.post("/login", data={"token": served.tokens["viewer"], "next": "/"}).status_code == 303
        assert viewer.post(f"/alerts/{alert_id}/ack", data={"csrf": "x"}).status_code == 403

    ops = [e for e in served.audit(actor="operator-token") if e["via"] == "page"]
    assert entry(ops, action="login")["outcome"] == "ok"
    assert entry(ops, action="ack")["target"] == f"alert #{alert_id}"
    assert re.fullmatch(r"silence #\d+ for 0:30:00", entry(ops, action="silence", target=f"alert #{alert_id}")["detail"])
    assert entry(ops, action="logout")["address"] == "127.0.0.1"
    ingest_login = entry(served.audit(actor="ingest-token"), action="login")
    assert ingest_login["outcome"] == "refused" and "cannot use the pages" in ingest_login["reason"]
    viewer_ack = entry(served.audit(actor="viewer-token"), action="ack", via="page")
    assert viewer_ack["outcome"] == "refused" and "needs operator" in viewer_ack["reason"]


def click(served: Served, user: str, action_id: str, alert_id: int, trigger: str, runbook: str | None = None) -> httpx.Response:
    value = json.dumps({"alert_id": alert_id, "group_key": "g", **({"runbook": runbook} if runbook else {})})
    payload = {"type": "block_actions", "user": {"id": user}, "trigger_id": trigger, "actions": [{"action_id": action_id, "value": value}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return httpx.post(f"{served.url}/slack/actions", content=body, headers=signed(body, SIGNING))


def test_slack_clicks_and_refused_clicks_are_audited(served: Served) -> None:
    alert_id = fire(served.store, run_id="slack-1")
    assert "acknowledged by slack:alice" in click(served, ALICE, slack.ACTION_ACK, alert_id, "t1").json()["text"]
    assert "Silenced" in click(served, ALICE, slack.ACTION_SILENCE, alert_id, "t2").json()["text"]
    assert "Started runbook diagnose" in click(served, ALICE, slack.ACTION_RUN_RUNBOOK, alert_id, "t3", runbook="diagnose").json()["text"]
    assert "not mapped" in click(served, MALLORY, slack.ACTION_RETRY, alert_id, "t4", runbook="retry-failed").json()["text"]

    alice = served.audit(actor="slack:alice")
    assert {e["via"] for e in alice} == {"slack"}
    assert entry(alice, action="ack")["target"] == f"alert #{alert_id}"
    assert entry(alice, action="silence")["detail"].startswith("silence #")
    assert entry(alice, action="run_runbook")["target"] == f"diagnose for alert #{alert_id}"
    mallory = entry(served.audit(actor=f"slack-user:{MALLORY}"), action="retry")
    assert (mallory["outcome"], mallory["reason"], mallory["target"]) == (
        "refused",
        "not mapped to a dagwatch operator",
        f"retry-failed for alert #{alert_id}",
    )


def test_cli_commands_are_audited_without_the_token(tmp_path: Path) -> None:
    config = tmp_path / "dagwatch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsources: []\n")
    cli = [sys.executable, "-m", "monitor.cli"]
    token = subprocess.run(
        [*cli, "token", "create", "--name", "airflow-listener", "--role", "ingest", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([*cli, "token", "revoke", "--name", "airflow-listener", "--config", str(config)], capture_output=True, check=True)
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'dagwatch.db'}")
    alert_id = fire(store, run_id="cli-1")
    store.close()
    subprocess.run([*cli, "alerts", "ack", str(alert_id), "--config", str(config)], capture_output=True, check=True)
    silenced = subprocess.run(
        [*cli, "alerts", "silence", str(alert_id), "--for", "2h", "--config", str(config)], capture_output=True, text=True, check=True
    ).stdout
    refused = subprocess.run([*cli, "alerts", "ack", "999999", "--config", str(config)], capture_output=True, text=True)
    assert refused.returncode == 2 and "999999" in refused.stderr
    silence_id = re.search(r"silence (\d+)", silenced).group(1)
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'dagwatch.db'}")
    try:
        with store.session() as db:
            rows = [(r.via, r.action, r.target, r.detail) for r in reversed(audit.query(db))]
            texts = [" ".join(map(str, vars(r).values())) for r in audit.query(db)]
            actors = {r.actor for r in audit.query(db)}
    finally:
        store.close()
    assert rows == [
        ("cli", "token_create", "airflow-listener", "role ingest"),
        ("cli", "token_revoke", "airflow-listener", ""),
        ("cli", "ack", f"alert #{alert_id}", ""),
        ("cli", "silence", f"alert #{alert_id}", f"silence #{silence_id} for 2:00:00"),
    ]
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
    assert token.startswith(tokens.PREFIX) and not any(token in t or tokens.digest(token) in t for t in texts)


PROXY_CONFIG = """
data_dir: {data_dir}
sources: []
server:
  read_auth: true
  trusted_proxy:
    header: X-Forwarded-User
    role_header: X-Forwarded-Role
    from: [127.0.0.1/32]
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[tuple[DagwatchProcess, str]]:
    tmp = tmp_path_factory.mktemp("proxy")
    config = tmp / "dagwatch.yaml"
    config.write_text(PROXY_CONFIG.format(data_dir=tmp / "data"))
    admin = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "token", "create", "--name", "root", "--role", "admin", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
    proc.wait_healthy()
    yield proc, admin
    proc.stop()
    assert admin not in (tmp / "dagwatch.log").read_text()


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches 127.0.0.1 on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_trusted_proxy_is_believed_from_its_address_only(proxied: tuple[DagwatchProcess, str]) -> None:
    proc, admin = proxied
    alice = {"X-Forwarded-User": "alice", "X-Forwarded-Role": "operator", "X-Forwarded-For": "203.0.113.7"}
    event = {"kind": "run_failed", "source": "af", "pipeline": "train", "run_id": "p1", "summary": "failed"}
    with from_address("127.0.0.2") as outsider:
        assert outsider.get(f"{proc.url}/api/v1/alerts", headers=alice).status_code == 401
        assert outsider.post(f"{proc.url}/api/v1/events", json=event, headers=alice).status_code == 401
        assert outsider.get(f"{proc.url}/", headers=alice).status_code == 401
    with from_address("127.0.0.1") as proxy:
        answer = proxy.post(f"{proc.url}/api/v1/events", json=event, headers=alice)
        assert answer.status_code == 200, answer.text
        alert_id = answer.json()["items"][0]["fired"][0]
        assert proxy.post(f"{proc.url}/api/v1/alerts/{alert_id}/ack", headers=alice).json()["acked_by"] == "alice"
        assert proxy.get(f"{proc.url}/api/v1/alerts", headers=alice).status_code == 200
        assert "alice" in proxy.get(f"{proc.url}/", headers=alice).text
        cross_site = proxy.post(f"{proc.url}/api/v1/alerts/{alert_id}/ack", headers={**alice, "Origin": "https://evil.example"})
        assert cross_site.status_code == 403
        bob = {"X-Forwarded-User": "bob"}  # no role header: server.trusted_proxy.default_role, a viewer
        assert proxy.get(f"{proc.url}/api/v1/alerts", headers=bob).status_code == 200
        assert proxy.post(f"{proc.url}/api/v1/alerts/{alert_id}/ack", headers=bob).status_code == 403
        assert proxy.get(f"{proc.url}/api/v1/alerts", headers={**alice, "X-Forwarded-Role": "root"}).status_code == 403
        assert proxy.get(f"{proc.url}/api/v1/alerts").status_code == 401  # read_auth: the proxy named nobody
    entries = httpx.get(f"{proc.url}/api/v1/audit", params={"actor": "alice"}, headers=bearer(admin)).json()
    ack = entry(entries, action="ack", outcome="ok")
    assert (ack["via"], ack["target"], ack["address"]) == ("proxy", f"alert #{alert_id}", "203.0.113.7 via 127.0.0.1")
    assert entry(entries, action="ack", outcome="refused")["reason"].startswith("a change through the auth proxy must come from this site")
    assert entry(entries, action="post_events")["via"] == "proxy"
    assert (
        entry(httpx.get(f"{proc.url}/api/v1/audit", params={"actor": "bob"}, headers=bearer(admin)).json(), action="ack")["outcome"]
        == "refused"
    )
    assert "believing the X-Forwarded-User header from 127.0.0.1/32 only" in wait_for(lambda: proc.log_path.read_text(), limit=5)
    assert "reads need a viewer" in proc.log_path.read_text()
