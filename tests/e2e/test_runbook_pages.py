"""Starting a runbook from its link in a real headless Chromium, driven by Selenium through
Debian's chromedriver: refused without a session, log in, the start page shows the steps and
running nothing, confirm, land on the execution page and watch its steps finish."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
import uvicorn

from tests.e2e.test_pages import FLAGS
from tests.integration.server import free_port, wait_for
from tests.integration.test_pages_runbooks import diagnosing_app, diagnosing_engine, executions, fire, token

CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
if (CHROMEDRIVER is None or shutil.which("chromium") is None) and not os.environ.get("CI"):
    pytest.skip(
        "headless Chromium with chromedriver is not installed (apt-get install chromium chromium-driver); CI installs them",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only where a browser is there to drive
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def server(store, tmp_path):
    """The app with a diagnosing runbook, served on a free loopback port for the browser."""
    engine = diagnosing_engine(store, tmp_path / "runbooks")
    port = free_port()
    served = uvicorn.Server(uvicorn.Config(diagnosing_app(store, engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, name="dagwatch-e2e-server", daemon=True)
    thread.start()
    wait_for(lambda: served.started, limit=30)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=15)
    engine.shutdown()


@pytest.fixture
def browser(tmp_path):
    assert CHROMEDRIVER, "CI must install chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chrome'}")
    options.add_argument("--window-size=1200,900")
    service = Service(CHROMEDRIVER)  # a given driver: Selenium Manager never downloads one
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()  # ends Chromium and stops the chromedriver process this service started


def test_confirming_the_start_page_runs_the_runbook_and_shows_its_steps(store, server, browser):
    alert_id = fire(store)
    operator = token(store, "ops", "operator")
    link = f"{server}/runbooks/diagnose/start?alert_id={alert_id}"

    browser.get(f"{server}/alerts/{alert_id}")
    assert browser.find_element(By.CSS_SELECTOR, f'a.run[href="/runbooks/diagnose/start?alert_id={alert_id}"]')
    browser.get(link)
    steps = [row.get_attribute("data-step") for row in browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")]
    assert steps == ["health", "clear", "escalate"]
    assert not browser.find_elements(By.ID, "confirm")  # no session: nothing to confirm, only a way to log in
    assert executions(store) == 0

    browser.find_element(By.ID, "login").click()
    browser.find_element(By.ID, "token").send_keys(operator)
    browser.find_element(By.ID, "login-form").submit()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "confirm"))
    assert browser.current_url == link  # back where the link pointed, now with the form
    rows = browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")
    assert "yes" in rows[1].text and "health.healthy is false" in rows[1].text  # the changing step and its condition
    assert executions(store) == 0  # opening the page (twice) ran nothing

    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 30).until(lambda b: "/runbooks/executions/" in b.current_url)
    assert executions(store) == 1
    # the page refreshes itself every 2 s while the execution runs; wait for it to show the end
    WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,)).until(  # found just before a reload: look again
        lambda b: (
            b.find_element(By.ID, "status").text in ("succeeded", "failed")
            and not b.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
        )
    )
    assert browser.find_element(By.ID, "status").text == "succeeded"
    shown = {
        row.get_attribute("data-step"): row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")
    }
    assert shown == {"health": "succeeded", "clear": "skipped", "escalate": "succeeded"}
    assert "embedded is healthy" in browser.find_element(By.ID, "steps").text
    assert "ops" in browser.find_element(By.ID, "execution").text


def test_a_form_posted_without_a_session_is_refused(store, server, browser):
    alert_id = fire(store)
    operator = token(store, "ops", "operator")
    browser.get(f"{server}/login?next=/runbooks/diagnose/start%3Falert_id%3D{alert_id}")
    browser.find_element(By.ID, "token").send_keys(operator)
    browser.find_element(By.ID, "login-form").submit()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "confirm"))
    browser.delete_all_cookies()  # the session ends (expired, logged out elsewhere) with the form still open

    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "message"))
    assert "log in first" in browser.find_element(By.ID, "message").text
    assert (
        browser.find_element(By.ID, "login").get_attribute("href").endswith(f"/login?next=/runbooks/diagnose/start%3Falert_id%3D{alert_id}")
    )
    assert executions(store) == 0
