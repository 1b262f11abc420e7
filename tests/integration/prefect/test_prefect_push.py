"""A Prefect automation calling a webhook reaches dagwatch: the JSON it POSTs is a dagwatch Event.

The receiver is a local HTTP server standing in for `POST /api/v1/events`; the test asserts the
body parses as monitor.model.Event, carries the bearer token, and matches what the poller would
name (same source, pipeline and run id → same run_failed fingerprint, so push and poll dedupe).
Also measures failure → push latency."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx

from monitor.config import PrefectSourceSettings
from monitor.model import Event, EventKind
from monitor.sources.prefect_automation import install_automation


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[float, dict, dict]]] = []

    def do_POST(self):  # http.server's method name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((time.time(), dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"results": [{"accepted": true}]}')

    def log_message(self, *args):
        pass


def test_automation_posts_a_dagwatch_event_for_each_failed_run(prefect_server):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        settings = PrefectSourceSettings(kind="prefect", name="prefect", url=prefect_server.api_url)
        dagwatch_url = f"http://127.0.0.1:{receiver.server_address[1]}"
        installed = install_automation(settings, dagwatch_url, "s3cret-token")
        again = install_automation(settings, dagwatch_url, "s3cret-token")  # idempotent: replaces
        autos = httpx.post(f"{prefect_server.api_url}/automations/filter", json={}).json()
        assert [a["id"] for a in autos if a["name"] == "dagwatch-run-failed"] == [again.automation_id] != [installed.automation_id]

        assert prefect_server.run_flow("flow_error").returncode == 1
        deadline = time.monotonic() + 30
        while not _Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _Receiver.received, "the automation never called the webhook"
        at, headers, body = _Receiver.received[0]
        assert headers["Authorization"] == "Bearer s3cret-token"
        event = Event.model_validate(body)
        assert event.kind is EventKind.RUN_FAILED and event.source == "prefect" and event.pipeline == "dw-flow-error"
        assert "config key 'learning_rate' missing" in event.summary and event.details["state"] == "Failed"
        run = httpx.get(f"{prefect_server.api_url}/flow_runs/{event.run_id}").json()
        assert run["state_type"] == "FAILED"
        from datetime import datetime

        latency = at - datetime.fromisoformat(run["end_time"]).timestamp()
        print(f"\npush latency (flow run end → webhook received): {latency * 1000:.0f} ms")
        assert latency < 10
    finally:
        receiver.shutdown()
        receiver.server_close()
