"""The pages against the real app and store (events through the real API, runs through the
store's own save, notifications through the outbox's own functions): filters and their
validation, pipelines and runs, silences, hostile text, hidden secrets and the headers every
page answers with. The browser-driven side is tests/e2e/test_pages_act.py."""

from __future__ import annotations

import html
import itertools
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from monitor.api import page_render
from monitor.model import RunSnapshot, State, TaskSnapshot, utcnow
from monitor.store import alerts as alert_store
from monitor.store import outbox
from monitor.store import runs as run_store
from monitor.store import silences as silence_store
from monitor.store.tables import NotificationRow
from tests.integration.test_pages_runbooks import (
    SITE,
    csrf,
    diagnosing_app,
    diagnosing_engine,
    fire,
    login,
    token,
)

HOSTILE = '<script>alert("x")</script>'
_PUSHERS = itertools.count()  # token names are unique


@pytest.fixture
def client(store, engine):
    with TestClient(diagnosing_app(store, engine)) as c:
        yield c


@pytest.fixture
def engine(store, tmp_path):
    built = diagnosing_engine(store, tmp_path / "runbooks")
    yield built
    built.shutdown()


def push(client: TestClient, store, events: list[dict]) -> list[int]:
    """Events through the real API, as a pipeline or a collector pushes them; the fired ids."""
    bearer = {"Authorization": f"Bearer {token(store, f'pusher-{next(_PUSHERS)}', 'operator')}"}
    answer = client.post("/api/v1/events", json=events, headers=bearer)
    assert answer.status_code in (200, 202), answer.text
    return [i for item in answer.json()["items"] for i in item["fired"]]


def event(
    kind: str = "task_failed", *, source: str = "embedded", pipeline: str = "train", run_id: str = "r1", summary: str = "boom", **extra
) -> dict:
    return {"kind": kind, "source": source, "pipeline": pipeline, "run_id": run_id, "task_id": "fit", "summary": summary, **extra}


def rows(page: str) -> list[tuple[str, str]]:
    """(alert id, tier) of the alerts list's rows."""
    return re.findall(r'class="alert-row" data-id="(\d+)" data-status="\w+" data-tier="(P\d)"', page)


def test_every_page_answers_with_the_security_headers(store, client):
    alert_id = fire(store)
    login(client, store)
    page = client.get(f"/alerts/{alert_id}")
    answers = [
        client.get(path)
        for path in (
            "/",
            f"/alerts/{alert_id}",
            "/silences",
            "/pipelines",
            "/pipelines/runs?source=embedded&pipeline=train",
            "/runbooks",
            "/login",
            "/alerts/999",
            "/runbooks/diagnose/start?alert_id=1",
            "/?tier=P9",
        )
    ]
    answers.append(client.post(f"/alerts/{alert_id}/ack", data={"csrf": csrf(page.text)}, headers=SITE, follow_redirects=False))
    answers.append(client.post(f"/alerts/{alert_id}/ack", data={"csrf": "forged"}, headers=SITE))
    for answer in answers:
        assert answer.headers["content-security-policy"] == page_render.CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["referrer-policy"] == "same-origin"
    assert [a.status_code for a in answers[-5:]] == [404, 200, 422, 303, 403]
    assert "default-src 'self'" in page_render.CSP and "'unsafe-inline'" not in page_render.CSP
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline for the CSP to block
    css, js = client.get("/static/dagwatch.css"), client.get("/static/refresh.js")
    assert css.status_code == js.status_code == 200 and "@media (max-width" in css.text and "location.reload" in js.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text


def test_the_alerts_list_filters_by_tier_status_source_and_pipeline(store, client):
    fired = push(
        client,
        store,
        [
            event(pipeline="train"),
            event(pipeline="score", run_id="r2"),
            event("run_late", pipeline="train", run_id="r3"),
            event(source="airflow", pipeline="train", run_id="r4"),
        ],
    )
    train, score, late, airflow = fired
    push(client, store, [event("run_succeeded", pipeline="score", run_id="r5")])  # resolves score's failure

    everything = client.get("/").text
    assert {i for i, _ in rows(everything)} == {str(x) for x in fired}
    assert [i for i, _ in rows(client.get("/?tier=P3").text)] == [str(late)]
    assert {i for i, _ in rows(client.get("/?status=resolved").text)} == {str(score)}
    assert {i for i, _ in rows(client.get("/?source=airflow").text)} == {str(airflow)}
    both = client.get("/", params={"source": "embedded", "pipeline": "train", "tier": "P1", "status": "firing", "refresh": "0"}).text
    assert [i for i, _ in rows(both)] == [str(train)]
    # the form shows the filters it applied, and pausing keeps them
    assert '<option value="P1" selected>' in both and 'id="f-pipeline" list="pipelines" value="train"' in both
    resume = re.search(r'id="resume" href="/\?([^"]+)"', both).group(1)
    assert "pipeline=train" in resume and "tier=P1" in resume and "refresh=30" in resume
    assert 'data-refresh="0"' in both and 'data-refresh="30"' in everything
    assert {i for i, _ in rows(client.get("/?tier=&status=&source=&pipeline=").text)} == {str(x) for x in fired}  # empty = any


def test_a_bad_filter_is_shown_on_the_page_not_answered_with_json(store, client):
    fire(store)
    for query, says in (
        ("tier=P9", "tier: Input should be 'P1', 'P2' or 'P3'"),
        ("status=burning", "status: Input should be"),
        ("refresh=1", "refresh: Value error, choose one of 0, 10, 30, 60, 300 seconds"),
        ("pipeline=" + "x" * 501, "pipeline: String should have at most 500"),
    ):
        answer = client.get(f"/?{query}")
        assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html"), query
        assert says in html.unescape(answer.text) and 'id="problems"' in answer.text and 'id="alerts"' not in answer.text
        assert 'data-refresh="0"' in answer.text  # a page with a mistake does not reload over it
    kept = client.get("/?tier=P9&source=embedded").text
    assert 'id="f-source" list="sources" value="embedded"' in kept


def test_pipelines_and_their_runs_with_task_states_durations_and_tries(store, client):
    start = utcnow() - timedelta(minutes=10)
    names = ["team/train", "..", HOSTILE]
    with store.session() as s:
        run_store.save(
            s,
            [
                (
                    RunSnapshot(
                        source="embedded",
                        pipeline=name,
                        run_id=f"{name}-r{i}",
                        state=state,
                        started_at=start + timedelta(minutes=i),
                        ended_at=start + timedelta(minutes=i, seconds=125) if state.terminal else None,
                    ),
                    [
                        TaskSnapshot(
                            task_id="extract", state=State.SUCCESS, try_number=1, started_at=start, ended_at=start + timedelta(seconds=4.25)
                        ),
                        TaskSnapshot(
                            task_id="fit",
                            state=state if state.terminal else State.RUNNING,
                            try_number=3,
                            started_at=start + timedelta(seconds=5),
                            ended_at=start + timedelta(seconds=65) if state.terminal else None,
                        ),
                    ],
                )
                for name in names
                for i, state in enumerate((State.FAILED, State.RUNNING))
            ],
            utcnow(),
        )

    index = client.get("/pipelines").text
    assert index.count('class="pipeline-row"') == 3 and HOSTILE not in index and "&lt;script&gt;" in index
    assert client.get("/pipelines?q=team").text.count('class="pipeline-row"') == 1
    for name in names:
        link = page_render.runs_url("embedded", name)
        assert f'href="{link.replace("&", "&amp;")}"' in index  # the index links each pipeline's runs page
        page = client.get(link)
        assert page.status_code == 200 and HOSTILE not in page.text
        runs = re.findall(r'class="run-row" data-run="[^"]+" data-state="(\w+)" data-duration="([^"]*)"', page.text)
        assert runs == [("running", ""), ("failed", "2m 05s")]  # newest first, a run still going has no duration yet
        failed = page.text.split('data-state="failed"', 1)[1]
        tasks = re.findall(r'data-task="(\w+)" data-state="(\w+)"\s+data-tries="(\d+)" data-duration="([^"]*)"', failed)
        assert tasks == [("extract", "success", "1", "4.2 s"), ("fit", "failed", "3", "1m 00s")]
    assert client.get("/pipelines/runs?source=embedded").status_code == 422  # which pipeline?
    assert "No runs of this pipeline" in client.get("/pipelines/runs?source=embedded&pipeline=nope").text


def test_hostile_pipeline_text_and_links_render_inert(store, client):
    [alert_id] = push(
        client,
        store,
        [event(pipeline=HOSTILE, summary=f"failed: {HOSTILE}", details={"url": "javascript:alert(document.cookie)", "traceback": HOSTILE})],
    )
    [linked] = push(client, store, [event(pipeline="ok", run_id="r9", details={"url": "https://airflow.example/dags/ok/grid?x=1&y=2"})])
    for page in (client.get(f"/alerts/{alert_id}").text, client.get("/").text):
        assert HOSTILE not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    detail = client.get(f"/alerts/{alert_id}").text
    assert "javascript:" not in detail and 'data-link="orchestrator"' not in detail  # never a link, not even shown as one
    good = client.get(f"/alerts/{linked}").text
    assert '<tr class="link" data-link="orchestrator">' in good
    assert '<a href="https://airflow.example/dags/ok/grid?x=1&amp;y=2" rel="noopener noreferrer">' in good
    unsafe = page_render.templates().env.from_string("{% if url|http_url %}<a href='{{ url }}'>{% else %}<code>{{ url }}</code>{% endif %}")
    assert unsafe.render(url="javascript:alert(1)") == "<code>javascript:alert(1)</code>"  # the template's own guard


def test_the_notifications_table_shows_no_secrets(store, client):
    alert_id = fire(store)
    with store.session() as s:
        alert_store.add_notifications(s, alert_id=alert_id, receivers=["webhook"], action="firing", now=utcnow())
        s.flush()
        row = s.query(NotificationRow).filter(NotificationRow.alert_id == alert_id, NotificationRow.receiver == "webhook").one()
        outbox.mark_failed(
            row,
            now=utcnow(),
            retryable=False,
            max_attempts=3,
            error=(
                "webhook answered HTTP 401 for https://ops:hunter2@hooks.example/in?token=s3cr3t&sig=abc; Authorization: Bearer abc.def "
                "xoxb-1234-5678-abcdefgh https://hooks.slack.com/services/T000/B000/XXXXXXXX dw_aaaaaaaaaaaaaaaa api_key=k123"
            ),
        )
    page = client.get(f"/alerts/{alert_id}").text
    table = page.split('id="notifications"')[1].split("</table>")[0]
    assert "dead" in table and "webhook answered HTTP 401" in table
    for secret in ("hunter2", "s3cr3t", "sig=abc", "abc.def", "xoxb-1234", "XXXXXXXX", "dw_aaaa", "k123"):
        assert secret not in page, secret


def test_silences_are_created_validated_and_expired_by_an_operator(store, client):
    page = client.get("/silences").text
    assert 'id="s-create" disabled' in page and 'name="csrf"' not in page
    form = {"matchers": "pipeline=~train.*\nkind=task_failed", "duration": "2h", "comment": "maintenance"}
    assert client.post("/silences", data={**form, "csrf": "x"}, headers=SITE).status_code == 401
    login(client, store, "dash", "viewer")
    assert 'id="s-create" disabled' in client.get("/silences").text
    viewer = client.post("/silences", data={**form, "csrf": "x"}, headers=SITE)
    assert viewer.status_code == 403 and "has role viewer; this needs operator" in viewer.text

    login(client, store)
    token_field = csrf(client.get("/silences").text)
    assert client.post("/silences", data=form | {"csrf": token_field}, headers={"Origin": "https://evil.example"}).status_code == 403
    for matchers, duration, says in (
        ("pipeline=~train(", "2h", "invalid regex"),
        ("no equals sign", "2h", "line 1: write key=value"),
        ("", "2h", "at least one key=value"),
        ("pipeline=a", "forever", "invalid duration"),
        ("pipeline=a", "91d", "at most 90 days"),
        ("pipeline=a\npipeline=b", "1h", "given twice"),
        ("pipeline=a", "0s", "ends_at must be after starts_at"),
    ):
        bad = client.post("/silences", data={"matchers": matchers, "duration": duration, "csrf": token_field}, headers=SITE)
        assert bad.status_code == 422 and says in bad.text, (matchers, duration, bad.text[-800:])
        assert f">{matchers}</textarea>" in bad.text  # what was typed stays in the form
    with store.session() as s:
        assert silence_store.get_all(s, include_expired=True, now=utcnow()) == []

    made = client.post("/silences", data={**form, "csrf": token_field}, headers=SITE, follow_redirects=False)
    assert made.status_code == 303
    silence_id = int(made.headers["location"].rsplit("=", 1)[1])
    listed = client.get(made.headers["location"]).text
    assert (
        f'data-id="{silence_id}" data-status="active"' in listed and "<code>pipeline=~train.*</code>" in listed and "maintenance" in listed
    )
    with store.session() as s:
        [row] = silence_store.get_all(s, include_expired=False, now=utcnow())
        assert row.matchers == {"pipeline": "~train.*", "kind": "task_failed"} and row.created_by == "ops"
        assert timedelta(hours=2) == row.ends_at - row.starts_at

    assert client.post(f"/silences/{silence_id}/expire", data={"csrf": "stale"}, headers=SITE).status_code == 403
    expired = client.post(f"/silences/{silence_id}/expire", data={"csrf": token_field}, headers=SITE, follow_redirects=False)
    assert expired.status_code == 303
    assert f'data-id="{silence_id}" data-status="expired"' in client.get("/silences").text
    assert client.post("/silences/999/expire", data={"csrf": token_field}, headers=SITE).status_code == 404
    assert client.post(f"/silences/{2**40}/expire", data={"csrf": token_field}, headers=SITE).status_code == 404


def test_the_alert_pages_silence_takes_a_duration_and_a_comment(store, client):
    alert_id = fire(store)
    login(client, store)
    page = client.get(f"/alerts/{alert_id}").text
    done = client.post(
        f"/alerts/{alert_id}/silence",
        data={"csrf": csrf(page), "duration": "4h", "comment": "deploying"},
        headers=SITE,
        follow_redirects=False,
    )
    assert done.status_code == 303
    with store.session() as s:
        [row] = silence_store.get_all(s, include_expired=False, now=utcnow())
    assert row.ends_at - row.starts_at == timedelta(hours=4) and row.comment == "deploying"
    bad = client.post(f"/alerts/{alert_id}/silence", data={"csrf": csrf(page), "duration": "soon"}, headers=SITE)
    assert bad.status_code == 422 and "invalid duration" in bad.text
    assert 'id="muted"' in client.get(f"/alerts/{alert_id}").text
    assert client.get(f"/alerts/{2**40}").status_code == 404
