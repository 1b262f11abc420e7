"""The pages in a real headless Chromium: what a person sees at / and /alerts/{id}."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import httpx
import pytest

from tests.integration.server import DagwatchProcess, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("headless Chromium is not installed (apt-get install chromium); CI installs it", allow_module_level=True)

CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s}}
sources:
  - name: embedded
    kind: embedded
    poll_interval: 0.5s
    pipelines:
      - ref: monitor.demo.pipeline:pipeline
        schedule: {{every: 2s}}
        params: {{scenario: cycle, rows: 1000}}
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium(tmp_path, *args: str) -> str:
    assert CHROMIUM, "CI must install chromium"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", *args],
                         capture_output=True, text=True, timeout=90)
    return out.stdout


def test_alerts_page_and_alert_page_render_in_a_browser(tmp_path):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    try:
        server.wait_healthy()
        deadline = time.monotonic() + 90
        alerts = []
        while time.monotonic() < deadline and not any(a["status"] == "resolved" and a["tier"] == "P1" for a in alerts):
            time.sleep(0.5)
            alerts = httpx.get(f"{server.url}/api/v1/alerts").json()
        alert = next(a for a in alerts if a["status"] == "resolved" and a["tier"] == "P1")

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
    finally:
        server.stop()
