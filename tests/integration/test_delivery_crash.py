"""Durable delivery: a burst of alerts, the process killed with SIGKILL in the middle of sending,
restarted on the same store: every notification arrives, none twice (by idempotency key)."""

from __future__ import annotations

import os
import signal

import httpx

from tests.fakes.httpserver import RecordingServer
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

CONFIG = """
data_dir: {data_dir}
sources: []
alerting: {{group_by: [source, pipeline, task], group_wait: 0s, group_interval: 1s, max_concurrent_sends: {sends}}}
receivers:
  - {{name: hook, kind: webhook, url: "{url}/hook"}}
routes:
  - {{match: {{}}, receivers: [hook]}}
"""
BURST = 60
SENDS = 4  # alerting.max_concurrent_sends: at most this many are in flight at the kill


def test_sigkill_during_a_burst_loses_nothing_and_doubles_nothing(tmp_path):
    receiver = RecordingServer().start()
    receiver.delay = 0.1  # a slow receiver, so the kill lands mid-burst
    config = tmp_path / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data", url=receiver.url, sends=SENDS))
    op = create_token(config, "ops")
    first = DagwatchProcess(config, free_port(), tmp_path / "first.log")
    try:
        first.wait_healthy()
        events = [
            {
                "kind": "task_failed",
                "source": "af",
                "pipeline": "etl",
                "run_id": "r1",
                "task_id": f"t{i:03d}",
                "summary": f"t{i:03d} failed",
            }
            for i in range(BURST)
        ]
        answer = httpx.post(f"{first.url}/api/v1/events", json=events, headers={"Authorization": f"Bearer {op}"}, timeout=60).json()
        assert answer["accepted"] == BURST
        wait_for(lambda: len(receiver.requests) >= 5)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.stop()
    delivered_before = len(receiver.requests)
    assert delivered_before < BURST  # the kill really interrupted the burst

    second = DagwatchProcess(config, free_port(), tmp_path / "second.log")
    try:
        second.wait_healthy()

        def all_sent():
            alerts = httpx.get(f"{second.url}/api/v1/alerts", params={"limit": 1000}).json()
            return len(alerts) == BURST and all(any(n["status"] == "sent" for n in a["notifications"]) for a in alerts)

        wait_for(all_sent, limit=120)
    finally:
        second.stop()
        receiver.stop()
    keys = [r.header("Idempotency-Key") for r in receiver.requests]
    tasks = {a["task_id"] for r in receiver.requests for a in r.json()["alerts"]}
    assert tasks == {f"t{i:03d}" for i in range(BURST)}  # nothing lost
    assert len(set(keys)) == BURST  # one notification per alert group...
    assert len(keys) - len(set(keys)) <= SENDS  # ...at most those in flight at the kill re-sent, same keys
