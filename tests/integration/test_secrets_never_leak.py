"""Secrets never leave the process (issue 11, "must show"): a real `dagwatch up` whose config holds
every kind of secret through `${ENV}` — a PagerDuty routing key, a Slack bot token, a Slack
incoming-webhook URL and signing secret, an SMTP password, a webhook's HMAC key, an Airflow
password, a Prefect API key — and whose API is called with real tokens. Everything it talks to
fails in the most revealing way: the receivers and orchestrators answer errors that echo the
whole request back (headers with credentials, bodies with the routing key), the SMTP server
refuses the login, the webhook never answers in time. The failures become source_down alerts,
retries and dead notifications, so the error texts travel everywhere an operator looks.

Then every place is scanned for every secret: the process's own log, every page, every API
answer, /metrics, and the whole database file (alerts, events, the outbox's last errors). A scan
looks for any 12-character piece of a secret, as sent and base64-encoded as in a Basic header, so
a secret cut in half by a truncation is found too."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply
from tests.fakes.slack import signed
from tests.fakes.smtp import FakeSMTP
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

PIECE = 12  # a secret's piece this long found anywhere is a leak

CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s, max_attempts: 2}}
sources:
  - name: af
    kind: airflow
    url: {airflow}
    poll_interval: 0.5s
    timeout: 2s
    health: {{down_after_failures: 2}}
    auth: {{username: dagwatch, password: "${{LEAK_AIRFLOW_PASSWORD}}"}}
  - name: pf
    kind: prefect
    url: {prefect}/api
    poll_interval: 0.5s
    timeout: 2s
    health: {{down_after_failures: 2}}
    auth: {{api_key: "${{LEAK_PREFECT_KEY}}"}}
receivers:
  - {{name: console, kind: console}}
  - {{name: pd, kind: pagerduty, routing_key: "${{LEAK_PD_KEY}}", events_url: "{echo}/v2/enqueue", timeout: 2s}}
  - name: chat
    kind: slack
    token: "${{LEAK_SLACK_TOKEN}}"
    channel: "#alerts"
    api_url: "{echo}/api/"
    signing_secret: "${{LEAK_SLACK_SIGNING}}"
    timeout: 2s
  - {{name: chat-hook, kind: slack, webhook_url: "${{LEAK_SLACK_HOOK}}", timeout: 2s}}
  - name: mail
    kind: email
    host: 127.0.0.1
    port: {smtp_port}
    starttls: false
    username: dagwatch
    password: "${{LEAK_SMTP_PASSWORD}}"
    from: dagwatch@example.test
    to: [oncall@example.test]
    timeout: 2s
  - {{name: hook, kind: webhook, url: "{slow}/hook", secret: "${{LEAK_WEBHOOK_SECRET}}", timeout: 1s}}
routes:
  - {{match: {{}}, receivers: [console, pd, chat, chat-hook, mail, hook]}}
"""


class EchoingServer(FakeHTTPServer):
    """Answers every request with an error that quotes it whole — its headers (credentials) and
    its body (a routing key) — on one line, padded so that the first secret in it straddles a
    place where receivers' error texts are cut (200 or 300 characters, in turn): a redaction
    applied after the cut would miss the 20 characters before it."""

    CUTS = (300, 200)

    def __init__(self, status: int, known: list[str]) -> None:
        super().__init__()
        self.status, self.known = status, known

    def respond(self, request: Recorded) -> Reply:
        line = " | ".join(
            [
                f"{request.method} {request.path}",
                *(f"{k}: {v}" for k, v in request.headers.items()),
                request.body.decode("utf-8", "replace").replace("\n", " "),
            ]
        )
        head = "upstream refused: "
        first = min((line.find(s) for s in self.known if s in line), default=-1)
        cut = self.CUTS[len(self.requests) % len(self.CUTS)]
        pad = "." * max(0, cut - 20 - len(head) - first) if first >= 0 else ""
        return Reply(self.status, f"{head}{pad}{line}")


def _secret(prefix: str = "") -> str:
    return prefix + secrets.token_hex(16)


def _pieces(value: str) -> set[str]:
    return {value[i : i + PIECE] for i in range(len(value) - PIECE + 1)}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("leak")
    values = {
        "LEAK_PD_KEY": _secret(),  # 32 characters, as PagerDuty's
        "LEAK_SLACK_TOKEN": _secret("xoxb-"),
        "LEAK_SLACK_SIGNING": _secret(),
        "LEAK_SMTP_PASSWORD": _secret("pw-"),
        "LEAK_WEBHOOK_SECRET": _secret("wh-"),
        "LEAK_AIRFLOW_PASSWORD": _secret("af-"),
        "LEAK_PREFECT_KEY": _secret("pnu_"),
    }
    echo = EchoingServer(500, list(values.values())).start()
    refusing_orchestrator = EchoingServer(401, list(values.values())).start()
    broken_orchestrator = EchoingServer(500, list(values.values())).start()
    slow = FakeHTTPServer().start()
    slow.delay = 3.0  # past the webhook's 1 s timeout, every time
    smtp = FakeSMTP(users={"dagwatch": "not-the-configured-password"}).start()
    hook_secret = _secret()
    values["LEAK_SLACK_HOOK"] = f"{echo.url}/services/T0/B0/{hook_secret}"
    config = tmp / "dagwatch.yaml"
    config.write_text(
        CONFIG.format(
            data_dir=tmp / "data",
            airflow=refusing_orchestrator.url,
            prefect=broken_orchestrator.url,
            echo=echo.url,
            slow=slow.url,
            smtp_port=smtp.port,
        )
    )
    proc = None
    with pytest.MonkeyPatch.context() as env:
        for name, value in values.items():
            env.setenv(name, value)
        try:
            tokens = {role: create_token(config, f"leak-{role}", role) for role in ("operator", "viewer", "admin")}
            proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
            proc.wait_healthy()
            # The webhook URL's host and /services/ are no secret; its last part is.
            scanned = {
                **{k: v for k, v in values.items() if k != "LEAK_SLACK_HOOK"},
                "slack webhook path": hook_secret,
                **{f"{r} token": t for r, t in tokens.items()},
                "refused token": "dw_" + secrets.token_urlsafe(32),
            }
            encoded = {
                f"{name} (base64)": base64.b64encode(f"dagwatch:{value}".encode()).decode()
                for name, value in values.items()
                if name == "LEAK_AIRFLOW_PASSWORD"
            }
            yield {
                "proc": proc,
                "tokens": tokens,
                "secrets": {**scanned, **encoded},
                "db": tmp / "data" / "dagwatch.db",
                "echo": echo,
                "orchestrators": (refusing_orchestrator, broken_orchestrator),
                "smtp": smtp,
                "slow": slow,
            }
        finally:
            if proc is not None:
                proc.stop()
            for server in (echo, refusing_orchestrator, broken_orchestrator, slow):
                server.stop()
            smtp.stop()


def _leaks(where: str, text: str, found: dict[str, str]) -> list[str]:
    return [f"{name} in {where}" for name, value in found.items() if any(piece in text for piece in _pieces(value))]


def _drive(world: dict) -> list[tuple[str, str]]:
    """Make everything fail and be looked at; returns (where, text) of every answer read."""
    proc, tokens = world["proc"], world["tokens"]
    op = {"Authorization": f"Bearer {tokens['operator']}"}
    seen: list[tuple[str, str]] = []

    def read(path: str, **kwargs) -> httpx.Response:
        answer = httpx.get(proc.url + path, timeout=30, **kwargs)
        seen.append((f"GET {path}", answer.text))
        return answer

    events = [
        {"kind": "run_failed", "source": "batch", "pipeline": "train", "run_id": f"r{i}", "summary": "train failed"} for i in range(3)
    ] + [{"kind": "data_quality_failed", "source": "batch", "pipeline": "train", "run_id": "r0", "summary": "nulls"}]
    posted = httpx.post(f"{proc.url}/api/v1/events", json=events, headers=op, timeout=30)
    assert posted.status_code == 200, posted.text
    seen.append(("POST /api/v1/events", posted.text))
    # Refused credentials: a revoked-looking token, a viewer acting, a forged and a genuine Slack signature.
    for headers in ({"Authorization": f"Bearer {world['secrets']['refused token']}"}, {"Authorization": f"Bearer {tokens['viewer']}"}):
        refused = httpx.post(f"{proc.url}/api/v1/events", json=events[0], headers=headers)
        assert refused.status_code in (401, 403)
        seen.append(("refused POST", refused.text))
    login = httpx.post(f"{proc.url}/login", data={"token": world["secrets"]["refused token"], "next": "/"}, headers={"Origin": proc.url})
    seen.append(("POST /login (refused)", login.text))
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    for secret in (world["secrets"]["LEAK_SLACK_SIGNING"], "a-forged-secret-of-some-length"):
        click = httpx.post(
            f"{proc.url}/slack/actions", content=body, headers={**signed(body, secret), "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert click.status_code in (400, 401), click.text
        seen.append(("POST /slack/actions", click.text))

    # Every receiver has failed to death (max_attempts 2) and both sources are down.
    # A receiver whose notification died is itself a down source, `receiver/NAME`.
    def settled() -> bool:
        alerts = httpx.get(f"{proc.url}/api/v1/alerts", params={"limit": 500}).json()
        down = {a["source"] for a in alerts if a["kind"] == "source_down"}
        return {"af", "pf", *(f"receiver/{r}" for r in ("pd", "chat", "chat-hook", "mail", "hook"))} <= down

    wait_for(settled, limit=90, step=0.5)
    rows = sqlite3.connect(world["db"]).execute("select receiver, attempts, last_error from notifications").fetchall()
    failed = {receiver for receiver, attempts, error in rows if attempts >= 1 and error}
    assert {"pd", "chat", "chat-hook", "mail", "hook"} <= failed, rows
    assert world["smtp"].auth_attempts and not any(ok for _, ok in world["smtp"].auth_attempts)
    assert any("/v2/enqueue" in r.path for r in world["echo"].requests)

    alerts = read("/api/v1/alerts", params={"limit": 500}).json()
    for alert in alerts:
        read(f"/api/v1/alerts/{alert['id']}")
        read(f"/alerts/{alert['id']}")
        read("/runbooks/pipeline-failure/start", params={"alert": alert["id"]})
    for path in (
        "/",
        "/pipelines",
        "/silences",
        "/runbooks",
        "/login",
        "/api/v1/runs",
        "/api/v1/silences",
        "/api/v1/runbooks",
        "/api/v1/runbooks/executions",
        "/readyz",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ):
        read(path)
    for source in ("af", "pf", "batch"):
        read("/", params={"source": source})
        read("/pipelines/runs", params={"source": source, "pipeline": "train"})
    return seen


def test_no_secret_in_logs_pages_answers_metrics_or_the_store(world):
    seen = _drive(world)
    found = world["secrets"]
    leaks: list[str] = []
    for where, text in seen:
        leaks += _leaks(where, text, found)
    time.sleep(1.5)  # one more dispatcher pass and poll: their log lines are part of the scan
    log = world["proc"].log_path.read_text(errors="replace")
    assert "delivery" in log and "failed" in log, "the receivers' failures were not logged: nothing was scanned"
    leaks += _leaks("the process log", log, found)
    with sqlite3.connect(world["db"]) as db:
        for (table,) in db.execute("select name from sqlite_master where type = 'table'"):
            for row in db.execute(f'select * from "{table}"'):
                leaks += _leaks(f"table {table}", " ".join(map(str, row)), found)
    leaks += _leaks("the database file", world["db"].read_bytes().decode("latin-1"), found)
    assert not leaks, "\n".join(sorted(set(leaks)))
