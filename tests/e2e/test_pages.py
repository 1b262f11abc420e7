"""The pages in a real headless Chromium: what a person sees at / and /alerts/{id}."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest

from monitor.api.page_render import runs_url
from tests.integration.server import DEMO_CONFIG, DagwatchProcess, free_port, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("headless Chromium is not installed (apt-get install chromium); CI installs it", allow_module_level=True)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path, *args: str) -> str:
    assert CHROMIUM, "CI must install chromium"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", *args], capture_output=True, text=True, timeout=90)
    return out.stdout


def test_alerts_page_and_alert_page_render_in_a_browser(tmp_path):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(DEMO_CONFIG.format(data_dir=tmp_path / "data"))
    server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    try:
        server.wait_healthy()

        def resolved_p1():
            return [a for a in httpx.get(f"{server.url}/api/v1/alerts").json() if a["status"] == "resolved" and a["tier"] == "P1"]

        alert = wait_for(resolved_p1, limit=90, step=0.5)[0]

        dom = chromium(tmp_path, "--dump-dom", f"{server.url}/")
        assert "<h1>Alerts" in dom
        assert f'href="/alerts/{alert["id"]}"' in dom and 'class="tier P1"' in dom
        assert "Recent runs" in dom and "upstream_failed" in dom

        shot = tmp_path / "alert.png"
        chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", f"{server.url}/alerts/{alert['id']}")
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real rendered page, not a blank one
        detail = chromium(tmp_path, "--dump-dom", f"{server.url}/alerts/{alert['id']}")
        assert "Traceback (last lines)" in detail and "resolved" in detail

        # the embedded runner's real runs, from the pipelines index to one pipeline's runs
        run = httpx.get(f"{server.url}/api/v1/runs", params={"limit": 1}).json()[0]
        index = chromium(tmp_path, "--dump-dom", f"{server.url}/pipelines")
        link = runs_url(run["source"], run["pipeline"])
        assert f'href="{link.replace("&", "&amp;")}"' in index
        runs = chromium(tmp_path, "--dump-dom", f"{server.url}{link}")
        assert f'data-run="{run["run_id"]}"' in runs and 'class="task state state-' in runs
        assert re.search(r'data-state="failed" data-duration="\d', runs) and 'data-state="upstream_failed"' in runs
    finally:
        server.stop()
