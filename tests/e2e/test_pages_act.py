"""Acting from the pages in a real headless Chromium (Selenium, Debian's chromedriver) against a
real server on loopback, with alerts pushed through the real events API: filters and the
auto-refresh keep what was chosen; ack, silence and run work for an operator and are refused
without a session and for a viewer; silences are created and expired; every link leads where it
says; hostile pipeline text stays text; the execution page follows a running runbook.

Screenshots (the alerts list on a laptop, an alert on a phone) go to $DAGWATCH_SCREENSHOTS, or
the test's own folder."""

from __future__ import annotations

import itertools
import os
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from monitor.api.page_render import runs_url
from monitor.model import RunSnapshot, State, TaskSnapshot, utcnow
from monitor.remediation import runbook as runbooks
from monitor.remediation.engine import Engine, RateLimit
from monitor.sources.base import Health
from monitor.sources.embedded import EmbeddedSource
from monitor.store import runs as run_store
from tests.e2e.test_runbook_pages import browser  # noqa: F401 - the shared Chromium fixture
from tests.fakes.httpserver import RecordingServer
from tests.integration.server import serve_app
from tests.integration.test_pages_runbooks import (
    DIAGNOSE,
    POLICY,
    diagnosing_app,
    token,
)

_PUSHERS = itertools.count()  # token names are unique
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


class GatedSource(EmbeddedSource):
    """The embedded source whose health check waits until the test opens `gate` (bounded), so
    the browser can watch an execution while its first step runs."""

    def __init__(self, name: str, store, log_root: Path, gate: threading.Event) -> None:
        super().__init__(name, store, log_root)
        self.gate = gate

    def health(self) -> Health:
        self.gate.wait(timeout=120)
        return super().health()


@pytest.fixture
def gate():
    opened = threading.Event()
    opened.set()
    yield opened
    opened.set()  # never leave a runbook worker waiting


@pytest.fixture
def site(store, tmp_path, gate):
    """The app with the diagnosing runbook, served on a free loopback port."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "diagnose.yaml").write_text(DIAGNOSE)
    found = runbooks.load_file(folder / "diagnose.yaml")
    engine = Engine(
        store,
        {found.name: found},
        lambda name: GatedSource(name, store, folder / "logs", gate),
        services={"policy": POLICY},
        rate_limit=RateLimit(count=50),
    )
    try:
        with serve_app(diagnosing_app(store, engine)) as url:
            yield url
    finally:
        gate.set()
        engine.shutdown()


@pytest.fixture
def orchestrator():
    """A stand-in orchestrator UI on loopback: the alert's `details.url` points here."""
    with RecordingServer() as server:
        yield server


def push(site: str, store, *events: dict) -> list[int]:
    """Events through the real API with an operator's bearer token; the ids of the fired alerts."""
    bearer = token(store, f"pusher-{next(_PUSHERS)}", "operator")
    answer = httpx.post(f"{site}/api/v1/events", json=list(events), headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    assert answer.status_code in (200, 202), answer.text
    return [i for item in answer.json()["items"] for i in item["fired"]]


def failure(pipeline: str = "train", *, kind: str = "task_failed", source: str = "embedded", run_id: str = "r1", **extra) -> dict:
    return {
        "kind": kind,
        "source": source,
        "pipeline": pipeline,
        "run_id": run_id,
        "task_id": "fit",
        "summary": f"{kind} in {pipeline}",
        **extra,
    }


def api(site: str, path: str):
    return httpx.get(f"{site}{path}", timeout=30).json()


def log_in(browser, site: str, store, name: str, role: str, then: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{site}/login?next={then}")
    browser.find_element(By.ID, "token").send_keys(token(store, name, role))
    browser.find_element(By.ID, "login-form").submit()
    until(browser, lambda b: name in b.find_element(By.CSS_SELECTOR, "header .who").text)


def until(browser, predicate, timeout: float = 60):
    """Wait for `predicate(browser)` on a page that may reload itself meanwhile (an element found
    just before a reload is stale: look again)."""
    return WebDriverWait(browser, timeout, poll_frequency=0.25, ignored_exceptions=(StaleElementReferenceException,)).until(predicate)


def shown_ids(browser) -> set[int]:
    return {int(row.get_attribute("data-id")) for row in browser.find_elements(By.CSS_SELECTOR, "#alerts tr.alert-row")}


def force_submit(browser, button_id: str) -> None:
    """What a person with the developer tools open could do: enable a disabled button, press it."""
    browser.execute_script(f"document.getElementById({button_id!r}).disabled = false")
    browser.find_element(By.ID, button_id).click()
    until(browser, lambda b: b.find_elements(By.ID, "message"))


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DAGWATCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_filters_and_auto_refresh_keep_what_was_chosen(store, site, browser, tmp_path):
    paged, late, other = push(
        site, store, failure(), failure(kind="run_late", run_id="r2"), failure("score", source="airflow", run_id="r3")
    )
    browser.set_window_size(1280, 800)
    browser.get(f"{site}/")
    assert shown_ids(browser) == {paged, late, other}
    browser.save_screenshot(str(screenshot_dir(tmp_path) / "alerts-laptop.png"))

    Select(browser.find_element(By.ID, "f-tier")).select_by_value("P1")
    browser.find_element(By.ID, "f-source").send_keys("embedded")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda b: "tier=P1" in b.current_url)
    assert shown_ids(browser) == {paged}

    Select(browser.find_element(By.ID, "f-refresh")).select_by_value("10")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda b: "refresh=10" in b.current_url)
    browser.execute_script("window.__before_reload = true")
    newer = push(site, store, failure(run_id="r4", kind="run_failed"))[0]  # appears on the next reload, filters kept
    until(browser, lambda b: b.execute_script("return window.__before_reload") is None, 40)
    assert shown_ids(browser) == {paged, newer}
    assert Select(browser.find_element(By.ID, "f-tier")).first_selected_option.get_attribute("value") == "P1"
    assert browser.find_element(By.ID, "f-source").get_attribute("value") == "embedded"

    browser.find_element(By.ID, "pause").click()
    until(browser, lambda b: "refresh=0" in b.current_url)
    assert "tier=P1" in browser.current_url and "source=embedded" in browser.current_url
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-refresh") == "0" and browser.find_elements(By.ID, "resume")

    browser.get(f"{site}/?tier=P7&status=firing")
    assert "tier: Input should be 'P1', 'P2' or 'P3'" in browser.find_element(By.ID, "problems").text
    assert Select(browser.find_element(By.ID, "f-status")).first_selected_option.get_attribute("value") == "firing"


def test_ack_silence_and_run_work_for_an_operator_and_are_refused_otherwise(store, site, browser, tmp_path):
    [alert_id] = push(site, store, failure())
    page = f"{site}/alerts/{alert_id}"

    browser.get(page)
    for button in ("ack", "silence", "run-diagnose"):
        assert not browser.find_element(By.ID, button).is_enabled()
    assert "Log in" in browser.find_element(By.ID, "why-disabled").text
    force_submit(browser, "ack")
    assert "log in first" in browser.find_element(By.ID, "message").text

    log_in(browser, site, store, "dash", "viewer", then=f"/alerts/{alert_id}")
    assert "dash is a viewer" in browser.find_element(By.ID, "why-disabled").text and not browser.find_element(By.ID, "ack").is_enabled()
    force_submit(browser, "ack")
    assert "has role viewer; this needs operator" in browser.find_element(By.ID, "message").text
    browser.get(page)
    force_submit(browser, "run-diagnose")
    assert "has role viewer" in browser.find_element(By.ID, "message").text
    assert api(site, f"/api/v1/alerts/{alert_id}")["acked_by"] is None and api(site, "/api/v1/silences") == []
    assert api(site, f"/api/v1/runbooks/executions?alert_id={alert_id}") == []

    log_in(browser, site, store, "ops", "operator", then=f"/alerts/{alert_id}")
    browser.find_element(By.ID, "ack").click()
    until(browser, lambda b: "ops at" in b.find_element(By.ID, "acked").text)
    assert not browser.find_elements(By.ID, "ack")  # acknowledged once; the button is gone

    Select(browser.find_element(By.ID, "silence-duration")).select_by_value("4h")
    browser.find_element(By.ID, "silence-comment").send_keys("deploying a fix")
    browser.find_element(By.ID, "silence").click()
    until(browser, lambda b: b.find_elements(By.ID, "muted"))
    [silence] = api(site, "/api/v1/silences")
    assert silence["created_by"] == "ops" and silence["comment"] == "deploying a fix"
    assert silence["matchers"] == {"source": "=embedded", "kind": "=task_failed", "pipeline": "=train"}

    browser.set_window_size(390, 844)  # a phone: nothing but the tables' own boxes scrolls sideways
    browser.get(page)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(screenshot_dir(tmp_path) / "alert-phone.png"))
    browser.set_window_size(1200, 900)

    browser.find_element(By.ID, "run-diagnose").click()
    until(browser, lambda b: "/runbooks/executions/" in b.current_url)
    until(browser, lambda b: b.find_element(By.ID, "status").text == "succeeded")
    [execution] = api(site, f"/api/v1/runbooks/executions?alert_id={alert_id}")
    assert execution["started_by"] == "ops" and execution["status"] == "succeeded"


def test_silences_are_created_and_expired_in_the_browser(store, site, browser):
    [muted] = push(site, store, failure("train_v2"))
    log_in(browser, site, store, "ops", "operator", then="/")
    browser.find_element(By.ID, "nav-silences").click()
    until(browser, lambda b: b.current_url.endswith("/silences"))

    browser.find_element(By.ID, "s-matchers").send_keys("pipeline=~train(")
    browser.find_element(By.ID, "s-create").click()
    until(browser, lambda b: b.find_elements(By.ID, "problems"))
    assert "invalid regex" in browser.find_element(By.ID, "problems").text
    assert browser.find_element(By.ID, "s-matchers").get_attribute("value") == "pipeline=~train("  # kept to be fixed

    matchers = browser.find_element(By.ID, "s-matchers")
    matchers.clear()
    matchers.send_keys("pipeline=~train.*\nkind=task_failed")
    duration = browser.find_element(By.ID, "s-duration")
    duration.clear()
    duration.send_keys("90m")
    browser.find_element(By.ID, "s-comment").send_keys("maintenance window")
    browser.find_element(By.ID, "s-create").click()
    until(browser, lambda b: b.find_elements(By.ID, "created"))
    [silence] = api(site, "/api/v1/silences")
    assert silence["matchers"] == {"pipeline": "~train.*", "kind": "task_failed"} and silence["status"] == "active"
    row = browser.find_element(By.CSS_SELECTOR, f'tr.silence-row[data-id="{silence["id"]}"]')
    assert row.get_attribute("data-status") == "active" and "maintenance window" in row.text

    assert api(site, f"/api/v1/alerts/{muted}")["muted_by"] == f"silence:{silence['id']}"

    browser.find_element(By.ID, f"expire-{silence['id']}").click()
    until(browser, lambda b: b.find_elements(By.ID, "expired"))
    assert browser.find_element(By.CSS_SELECTOR, f'tr.silence-row[data-id="{silence["id"]}"]').get_attribute("data-status") == "expired"
    assert api(site, "/api/v1/silences") == [] and api(site, f"/api/v1/alerts/{muted}")["muted_by"] is None


def test_links_lead_where_they_say_and_hostile_text_stays_text(store, site, browser, orchestrator):
    url = f"{orchestrator.url}/dags/team/train/grid?run_id=r1"
    [alert_id] = push(site, store, failure("team/train", details={"url": url}))
    [hostile] = push(
        site,
        store,
        failure(HOSTILE, run_id="r9", summary=f"failed: {HOSTILE}", details={"url": "javascript:window.__xss=3", "traceback": HOSTILE}),
    )
    start = utcnow() - timedelta(minutes=5)
    with store.session() as s:
        run_store.save(
            s,
            [
                (
                    RunSnapshot(
                        source="embedded",
                        pipeline="team/train",
                        run_id="r1",
                        state=State.FAILED,
                        started_at=start,
                        ended_at=start + timedelta(seconds=90),
                    ),
                    [
                        TaskSnapshot(
                            task_id="fit", state=State.FAILED, try_number=2, started_at=start, ended_at=start + timedelta(seconds=80)
                        )
                    ],
                )
            ],
            utcnow(),
        )

    browser.get(f"{site}/")
    for nav, heading in (("silences", "Silences"), ("pipelines", "Pipelines"), ("runbooks", "Runbooks"), ("alerts", "Alerts")):
        browser.find_element(By.ID, f"nav-{nav}").click()
        until(browser, lambda b, heading=heading: b.find_element(By.TAG_NAME, "h1").text.startswith(heading))
        assert "current" in browser.find_element(By.ID, f"nav-{nav}").get_attribute("class")

    browser.find_element(By.CSS_SELECTOR, f'a[href="/alerts/{alert_id}"]').click()
    until(browser, lambda b: b.current_url.endswith(f"/alerts/{alert_id}"))
    browser.find_element(By.ID, "pipeline-runs").click()
    until(browser, lambda b: b.find_elements(By.ID, "pipeline-name"))
    assert browser.find_element(By.ID, "pipeline-name").text == "team/train"
    run = browser.find_element(By.CSS_SELECTOR, 'tr.run-row[data-run="r1"]')
    assert run.get_attribute("data-duration") == "1m 30s" and "fit: failed, 1m 20s, try 2" in run.text
    browser.find_element(By.ID, "pipeline-alerts").click()
    until(browser, lambda b: b.find_elements(By.ID, "alerts"))
    assert shown_ids(browser) == {alert_id}

    browser.get(f"{site}/alerts/{alert_id}")
    browser.find_element(By.CSS_SELECTOR, "a.run").click()
    until(browser, lambda b: "/runbooks/diagnose/start" in b.current_url)
    assert browser.find_element(By.CSS_SELECTOR, "h1 a").get_attribute("href").endswith(f"/alerts/{alert_id}")
    browser.back()
    browser.find_element(By.CSS_SELECTOR, 'tr[data-link="orchestrator"] a').click()
    until(browser, lambda b: b.current_url == url)
    [followed] = [r for r in orchestrator.requests if r.path == "/dags/team/train/grid?run_id=r1"]
    assert followed.header("Referer") is None  # Referrer-Policy: our alert URLs stay ours

    browser.get(f"{site}/alerts/{hostile}")
    assert HOSTILE in browser.find_element(By.ID, "summary").text  # shown as the text it is
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-link="orchestrator"]')
    for path in ("/", f"/alerts/{hostile}", runs_url("embedded", HOSTILE), f"/?pipeline={quote(HOSTILE)}"):
        browser.get(f"{site}{path}")
        assert browser.execute_script("return window.__xss") is None, path
        with pytest.raises(NoAlertPresentException):
            _ = browser.switch_to.alert  # no dialog was opened by anything on the page


def test_the_execution_page_follows_the_runbook_while_it_runs(store, site, browser, gate):
    [alert_id] = push(site, store, failure())
    log_in(browser, site, store, "ops", "operator", then=f"/alerts/{alert_id}")
    gate.clear()  # the health step will wait
    browser.find_element(By.ID, "run-diagnose").click()
    until(browser, lambda b: "/runbooks/executions/" in b.current_url)
    until(browser, lambda b: b.find_element(By.CSS_SELECTOR, 'tr.step[data-step="health"]').get_attribute("data-status") == "running")
    until(
        browser,
        lambda b: (
            b.find_element(By.ID, "status").text == "running"  # and it keeps reloading while it runs
            and "0 of 3 done" in b.find_element(By.ID, "progress").text
            and b.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
        ),
    )

    gate.set()  # the page reloads itself and shows the steps end
    until(browser, lambda b: b.find_element(By.ID, "status").text == "succeeded")
    until(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]'))  # ended: no more reloading
    steps = {
        row.get_attribute("data-step"): row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")
    }
    assert steps == {"health": "succeeded", "clear": "skipped", "escalate": "succeeded"}
    assert "3 of 3 done" in browser.find_element(By.ID, "progress").text
