"""The runbook pages and the alert page's controls against the real app, store and engine: a GET
shows what would run and changes nothing; only a logged-in operator's POST of the page's form
(same site, with the session's CSRF field) acts; a second start joins the first; a revoked
token ends its page sessions; every alert a runbook applies to links to its start page."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from monitor.alerting import ingest
from monitor.api import web_session
from monitor.api.app import create_app
from monitor.model import Event, EventKind, ExecutionStatus, StepStatus, utcnow
from monitor.remediation import runbook as runbooks
from monitor.remediation.engine import Engine, RateLimit
from monitor.sources.embedded import EmbeddedSource
from monitor.store import alerts as alert_store
from monitor.store import silences as silence_store
from monitor.store import tokens
from monitor.store.db import Store
from monitor.store.tables import AlertHistoryRow, ApiTokenRow, RunbookExecutionRow

BASE_URL = "http://127.0.0.1:8000"
POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url=BASE_URL)
SITE = {"Origin": "http://testserver"}  # what a browser sends with a form posted from a page of this app

DIAGNOSE = """
name: diagnose
description: Look at the orchestrator and page if it is healthy (the failure is the pipeline's own).
match: {kind: "~task_failed|run_failed"}
steps:
  - name: health
    action: orchestrator_health
    timeout: 30s
  - name: clear
    action: clear_failed
    when: {health.healthy: "false"}
  - name: escalate
    action: escalate
    when: {health.healthy: "true"}
    args: {tier: P1, note: diagnosed from the page}
"""


def diagnosing_engine(store: Store, folder: Path) -> Engine:
    """An engine with one runbook from a runbooks folder, acting on an embedded source only:
    its health step needs no orchestrator, and its one changing step never matches."""
    folder.mkdir(exist_ok=True)
    (folder / "diagnose.yaml").write_text(DIAGNOSE)
    found = runbooks.load_file(folder / "diagnose.yaml")
    return Engine(
        store,
        {found.name: found},
        lambda name: EmbeddedSource(name, store, folder / "logs"),
        services={"policy": POLICY},
        rate_limit=RateLimit(count=50),
    )


def diagnosing_app(store: Store, engine: Engine) -> FastAPI:
    return create_app(store, POLICY, runbook_engine=engine)


def fire(
    store: Store, *, summary: str = "fit failed: boom", kind: EventKind = EventKind.TASK_FAILED, run_id: str = "r1", pipeline: str = "train"
) -> int:
    event = Event(kind=kind, source="embedded", pipeline=pipeline, run_id=run_id, task_id="fit", summary=summary)
    return ingest.submit(store, [event], POLICY)[0].fired[0]


def token(store: Store, name: str, role: str) -> str:
    with store.session() as s:
        return tokens.create(s, name=name, role=role, now=utcnow())


def executions(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(RunbookExecutionRow))


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
def engine(store, tmp_path):
    built = diagnosing_engine(store, tmp_path / "runbooks")
    yield built
    built.shutdown()


@pytest.fixture
def client(store, engine):
    with TestClient(diagnosing_app(store, engine)) as c:
        yield c


def login(client: TestClient, store: Store, name: str = "ops", role: str = "operator") -> None:
    answer = client.post("/login", data={"token": token(store, name, role), "next": "/"}, headers=SITE, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def start_form(client: TestClient, alert_id: int, **extra: str) -> dict[str, str]:
    page = client.get(f"/runbooks/diagnose/start?alert_id={alert_id}")
    return {"alert_id": str(alert_id), "csrf": csrf(page.text), **extra}


def test_the_start_page_shows_what_would_run_and_a_get_changes_nothing(store, client):
    alert_id = fire(store, summary="fit failed: <script>alert(1)</script>")
    with store.session() as s:
        history = s.scalar(select(func.count()).select_from(AlertHistoryRow))
    before = executions(store)

    anonymous = client.get(f"/runbooks/diagnose/start?alert_id={alert_id}")
    login(client, store)
    page = client.get(f"/runbooks/diagnose/start?alert_id={alert_id}")

    assert anonymous.status_code == page.status_code == 200
    assert 'action="/runbooks/diagnose/start"' not in anonymous.text and "/login?next=" in anonymous.text
    rows = re.findall(r'<tr class="step" data-step="(\w+)">(.*?)</tr>', page.text, re.S)
    assert [name for name, _ in rows] == ["health", "clear", "escalate"]
    assert [('class="mutating">yes' in row) for _, row in rows] == [False, True, False]
    assert "<code>health.healthy</code> is <code>false</code>" in rows[1][1] and "always" in rows[0][1]
    assert 'id="confirm"' in page.text and 'name="dry_run"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert(1)" not in page.text
    assert executions(store) == before == 0
    with store.session() as s:
        row = alert_store.get(s, alert_id=alert_id)
        assert row.tier == "P1" and row.acked_at is None
        assert s.scalar(select(func.count()).select_from(AlertHistoryRow)) == history


def test_the_start_page_finds_the_newest_firing_alert_from_a_panels_fields(store, client):
    older = fire(store, run_id="r1")
    newer = fire(store, run_id="r2")
    page = client.get("/runbooks/diagnose/start", params={"source": "embedded", "pipeline": "train", "task_id": "fit"})
    assert page.status_code == 200 and f'href="/alerts/{newer}"' in page.text
    exact = client.get("/runbooks/diagnose/start", params={"source": "embedded", "pipeline": "train", "run_id": "r1", "task_id": "fit"})
    assert f'href="/alerts/{older}"' in exact.text
    missing = client.get("/runbooks/diagnose/start", params={"source": "embedded", "pipeline": "train", "run_id": "r9"})
    assert missing.status_code == 404 and "no firing alert has source=embedded, pipeline=train, run_id=r9" in missing.text
    assert client.get("/runbooks/nope/start?alert_id=1").status_code == 404
    assert client.get("/runbooks/diagnose/start?alert_id=999").status_code == 404
    assert client.get("/runbooks/diagnose/start").status_code == 422
    assert executions(store) == 0


def test_starting_needs_a_session_an_operator_and_the_sessions_csrf_field(store, client):
    alert_id = fire(store)
    anonymous = client.post("/runbooks/diagnose/start", data={"alert_id": str(alert_id), "csrf": "x"}, headers=SITE)
    assert anonymous.status_code == 401 and 'href="/login?next=' in anonymous.text

    login(client, store, "dash", "viewer")
    assert 'action="/runbooks/diagnose/start"' not in client.get(f"/runbooks/diagnose/start?alert_id={alert_id}").text
    viewer = client.post("/runbooks/diagnose/start", data={"alert_id": str(alert_id), "csrf": "x"}, headers=SITE)
    assert viewer.status_code == 403 and "has role viewer; this needs operator" in viewer.text

    login(client, store)
    good = start_form(client, alert_id)
    assert client.post("/runbooks/diagnose/start", data={**good, "csrf": "0" * 64}, headers=SITE).status_code == 403
    assert client.post("/runbooks/diagnose/start", data={"alert_id": str(alert_id)}, headers=SITE).status_code == 403
    cross_site = client.post("/runbooks/diagnose/start", data=good, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    assert client.post("/runbooks/diagnose/start", data=good).status_code == 403  # neither Origin nor Referer
    from_page = client.post(
        "/runbooks/diagnose/start", data=good, headers={"Referer": f"{BASE_URL}/runbooks/diagnose/start"}, follow_redirects=False
    )
    assert from_page.status_code == 303
    assert executions(store) == 1  # only the last, complete request started anything


def test_an_operator_starts_it_once_and_lands_on_the_execution(store, client, engine):
    alert_id = fire(store)
    login(client, store)
    form = start_form(client, alert_id)

    first = client.post("/runbooks/diagnose/start", data=form, headers=SITE, follow_redirects=False)
    second = client.post("/runbooks/diagnose/start", data=form, headers=SITE, follow_redirects=False)

    assert first.status_code == second.status_code == 303
    execution_id = int(re.fullmatch(r"/runbooks/executions/(\d+)", first.headers["location"]).group(1))
    assert second.headers["location"] == f"/runbooks/executions/{execution_id}?joined=true"
    assert executions(store) == 1
    done = engine.wait(execution_id, timeout=30)
    assert done.started_by == "ops" and done.status is ExecutionStatus.SUCCEEDED and not done.dry_run
    assert [s.status for s in done.steps] == [StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.SUCCEEDED]

    page = client.get(second.headers["location"])
    assert page.status_code == 200 and 'id="joined"' in page.text and 'http-equiv="refresh"' not in page.text
    steps = re.findall(r'data-step="(\w+)" data-status="(\w+)"', page.text)
    assert steps == [("health", "succeeded"), ("clear", "skipped"), ("escalate", "succeeded")]
    assert "embedded is healthy" in page.text and re.search(r"\d+\.\d s</td>", page.text)


def test_a_dry_run_from_the_page_previews_and_a_running_execution_page_refreshes(store, client, engine):
    alert_id = fire(store)
    login(client, store)
    answer = client.post("/runbooks/diagnose/start", data=start_form(client, alert_id, dry_run="1"), headers=SITE, follow_redirects=False)
    execution_id = int(answer.headers["location"].rsplit("/", 1)[1])
    finished = engine.wait(execution_id, timeout=30)
    assert finished.dry_run and finished.status is ExecutionStatus.SUCCEEDED and "dry run: would escalate" in finished.steps[2].summary
    assert 'http-equiv="refresh"' not in client.get(f"/runbooks/executions/{execution_id}").text
    with store.session() as s:  # as the page sees an execution that has not finished yet
        s.get(RunbookExecutionRow, execution_id).status = ExecutionStatus.RUNNING.value
    assert '<meta http-equiv="refresh" content="2">' in client.get(f"/runbooks/executions/{execution_id}").text
    assert client.get("/runbooks/executions/999").status_code == 404


def test_a_revoked_token_ends_its_page_session(store, client):
    alert_id = fire(store)
    login(client, store)
    form = start_form(client, alert_id)
    with store.session() as s:
        assert tokens.revoke(s, name="ops", now=utcnow())
    refused = client.post("/runbooks/diagnose/start", data=form, headers=SITE)
    assert refused.status_code == 401 and executions(store) == 0
    assert "ops" not in client.get("/").text.split("<main>")[0]  # the header no longer shows anyone logged in


def test_logging_in_and_out(store, client):
    operator = token(store, "ops", "operator")
    bad = client.post("/login", data={"token": "dw_not-a-token"}, headers=SITE)
    assert bad.status_code == 401 and "unknown or revoked token" in bad.text and "dagwatch_session" not in client.cookies
    assert client.post("/login", data={"token": operator}, headers={"Origin": "https://evil.example"}).status_code == 403

    answer = client.post("/login", data={"token": operator, "next": "//evil.example/x"}, headers=SITE, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and operator not in cookie
    assert "ops" in client.get("/").text.split("<main>")[0]

    onward = client.post(
        "/login", data={"token": operator, "next": "/runbooks/diagnose/start?alert_id=1"}, headers=SITE, follow_redirects=False
    )
    assert onward.headers["location"] == "/runbooks/diagnose/start?alert_id=1"

    signed = client.cookies["dagwatch_session"]
    client.cookies.clear()
    client.cookies.set("dagwatch_session", signed[:-2] + ("AA" if not signed.endswith("AA") else "BB"))  # a forged signature
    assert "ops" not in client.get("/").text.split("<main>")[0]
    client.cookies.clear()
    client.post("/login", data={"token": operator}, headers=SITE)
    assert "ops" in client.get("/").text.split("<main>")[0]
    out = client.post("/logout", headers=SITE, follow_redirects=False)
    assert out.status_code == 303 and "dagwatch_session" not in client.cookies


def test_the_alert_page_acks_silences_and_links_its_runbooks_and_executions(store, client, engine):
    alert_id = fire(store)
    anonymous = client.get(f"/alerts/{alert_id}")
    assert 'id="ack" disabled' in anonymous.text and 'name="csrf"' not in anonymous.text  # shown, not usable
    assert f'href="/runbooks/diagnose/start?alert_id={alert_id}"' in anonymous.text
    assert f"{BASE_URL}/runbooks/diagnose/start?alert_id={alert_id}" in anonymous.text  # links.runbook
    assert client.post(f"/alerts/{alert_id}/ack", data={"csrf": "x"}, headers=SITE).status_code == 401

    login(client, store)
    page = client.get(f"/alerts/{alert_id}").text
    assert 'id="ack">' in page and 'id="silence">' in page and 'id="run-diagnose">' in page  # enabled
    assert client.post(f"/alerts/{alert_id}/ack", data={"csrf": "wrong"}, headers=SITE).status_code == 403
    acked = client.post(f"/alerts/{alert_id}/ack", data={"csrf": csrf(page)}, headers=SITE, follow_redirects=False)
    assert acked.status_code == 303 and acked.headers["location"] == f"/alerts/{alert_id}"
    silenced = client.post(f"/alerts/{alert_id}/silence", data={"csrf": csrf(page)}, headers=SITE, follow_redirects=False)
    assert silenced.status_code == 303
    with store.session() as s:
        row = alert_store.get(s, alert_id=alert_id)
        assert row.acked_by == "ops"
        [silence] = [x for x in silence_store.get_all(s, include_expired=False, now=utcnow()) if x.created_by == "ops"]
        assert silence.matchers == {"source": "=embedded", "kind": "=task_failed", "pipeline": "=train"}

    started = client.post("/runbooks/diagnose/start", data=start_form(client, alert_id), headers=SITE, follow_redirects=False)
    execution_id = int(started.headers["location"].rsplit("/", 1)[1])
    engine.wait(execution_id, timeout=30)
    after = client.get(f"/alerts/{alert_id}").text
    assert 'id="ack"' not in after and f'href="/runbooks/executions/{execution_id}"' in after and "acknowledged" in after

    assert client.post("/alerts/999/ack", data={"csrf": csrf(page)}, headers=SITE).status_code == 404


def test_links_runbook_names_the_first_runbook_that_applies(store, engine):
    failed = fire(store)
    late = fire(store, kind=EventKind.RUN_LATE, run_id="r3")
    with store.session() as s:
        rows = [alert_store.get(s, alert_id=failed), alert_store.get(s, alert_id=late)]
        linked, unlinked = alert_store.to_models(s, rows, base_url=BASE_URL, runbooks=engine.runbooks.values())
        plain = alert_store.to_models(s, rows[:1], base_url=BASE_URL)[0]
    assert linked.links["runbook"] == f"{BASE_URL}/runbooks/diagnose/start?alert_id={failed}"
    assert "runbook" not in unlinked.links and "runbook" not in plain.links
    assert linked.links["dashboard"] == f"{BASE_URL}/alerts/{failed}"


def test_an_expired_session_and_an_oversized_form_are_refused(store, client):
    alert_id = fire(store)
    token(store, "ops", "operator")
    with store.session() as s:
        row = s.scalar(select(ApiTokenRow).where(ApiTokenRow.name == "ops"))
        stale = web_session.issue(row, utcnow() - web_session.LIFETIME - timedelta(minutes=1))
        fresh = web_session.issue(row, utcnow())
    client.cookies.set("dagwatch_session", stale)
    assert 'id="confirm"' not in client.get(f"/runbooks/diagnose/start?alert_id={alert_id}").text
    client.cookies.clear()
    client.cookies.set("dagwatch_session", fresh)
    form = start_form(client, alert_id)
    huge = client.post("/runbooks/diagnose/start", data={**form, "pad": "x" * (web_session.MAX_FORM + 1)}, headers=SITE)
    assert huge.status_code == 413 and executions(store) == 0
