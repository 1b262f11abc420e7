"""Groups are sent side by side, one group's notifications in order (alerting/dispatch.py).

The receiver is a real HTTP server and the notifier the real webhook one. Concurrency is shown by
behaviour, not by a clock: the receiver holds each delivery until all of them have arrived (a
barrier), so deliveries sent one after another would each wait out the barrier and be refused.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from prometheus_client import REGISTRY

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers import build_one
from monitor.config import AlertingSettings, RouteSettings, WebhookReceiverSettings
from monitor.model import Event, EventKind, NotificationStatus, utcnow
from monitor.store import alerts as alert_store
from tests.fakes.httpserver import FakeHTTPServer, Recorded, RecordingServer, Reply
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

GROUPS = 4
HOLD = 20.0  # how long a held delivery waits for the others before the receiver refuses it


class TogetherOnly(FakeHTTPServer):
    """Accepts deliveries only when `parties` of them are in flight at once: each waits at a
    barrier for the others; one that waits HOLD seconds in vain is refused with a 503."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=HOLD)

    def respond(self, request: Recorded) -> Reply:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return Reply(503, "the others never came")
        return Reply(200, {"received": True})


def policy() -> ingest.AlertPolicy:
    alerting = AlertingSettings(group_wait=timedelta(0), group_interval=timedelta(seconds=1))
    return ingest.AlertPolicy(
        receivers=[("hook", "webhook")], base_url="http://dagwatch.test", routes=[RouteSettings(receivers=["hook"])], alerting=alerting
    )


def fail(store, pol, pipeline: str) -> None:
    event = Event(
        kind=EventKind.RUN_FAILED, source="af", pipeline=pipeline, run_id="r1", summary=f"{pipeline} failed", occurred_at=utcnow()
    )
    with store.session() as session:
        ingest.apply(session, event, pol, utcnow())


def webhook(url: str):
    return build_one(WebhookReceiverSettings(kind="webhook", name="hook", url=f"{url}/hook", timeout=HOLD + 10))


def test_groups_are_sent_side_by_side(store):
    pol = policy()
    for i in range(GROUPS):
        fail(store, pol, f"etl{i}")
    with TogetherOnly(GROUPS) as receiver, ThreadPoolExecutor(GROUPS) as pool:
        sent = dispatch.tick(store, {"hook": webhook(receiver.url)}, pol, clock=lambda: utcnow() + timedelta(seconds=5), pool=pool)
    assert sent == GROUPS
    assert sorted(r.json()["alerts"][0]["pipeline"] for r in receiver.requests) == [f"etl{i}" for i in range(GROUPS)]


def test_a_groups_new_state_supersedes_its_retry_and_the_receiver_ends_on_the_truth(store):
    """A firing whose delivery failed waits for a retry; meanwhile its run succeeded and the group
    flushed the resolve. Sent after the resolve, the retry would leave the receiver believing the
    alert still fires (a PagerDuty incident re-opened): it is superseded instead. Other groups'
    retries, with nothing newer, go out side by side."""
    pol = policy()
    clock = [utcnow() + timedelta(seconds=5)]
    superseded_before = superseded_count()
    with RecordingServer() as receiver, ThreadPoolExecutor(8) as pool:
        notifiers = {"hook": webhook(receiver.url)}
        for i in range(3):
            fail(store, pol, f"etl{i}")
        receiver.fail_next(3, 503, "busy")
        assert dispatch.tick(store, notifiers, pol, clock=lambda: clock[0], pool=pool) == 0
        with store.session() as session:
            ingest.apply(
                session,
                Event(kind=EventKind.RUN_SUCCEEDED, source="af", pipeline="etl0", run_id="r2", summary="ok", occurred_at=clock[0]),
                pol,
                clock[0],
            )
        clock[0] += timedelta(minutes=10)  # past every retry's back-off and the group interval
        assert dispatch.tick(store, notifiers, pol, clock=lambda: clock[0], pool=pool) == 3
        assert dispatch.tick(store, notifiers, pol, clock=lambda: clock[0] + timedelta(hours=1), pool=pool) == 0
    said = sorted((r.json()["alerts"][0]["pipeline"], r.json()["action"]) for r in receiver.requests[3:])
    assert said == [("etl0", "resolved"), ("etl1", "firing"), ("etl2", "firing")]
    with store.session() as session:
        told = {
            a.pipeline: [(n.action, n.status) for n in a.notifications]
            for a in alert_store.list_alerts(session, base_url="")
            if a.kind.value == "run_failed"
        }
    assert told == {
        "etl0": [("firing", NotificationStatus.SUPERSEDED), ("resolved", NotificationStatus.SENT)],
        "etl1": [("firing", NotificationStatus.SENT)],
        "etl2": [("firing", NotificationStatus.SENT)],
    }
    assert superseded_count() - superseded_before == 1  # dagwatch_notifications_superseded_total{receiver="hook"}


def superseded_count() -> float:
    return REGISTRY.get_sample_value("dagwatch_notifications_superseded_total", {"receiver": "hook"}) or 0.0


CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s, max_concurrent_sends: {parallel}}}
receivers:
  - {{name: hook, kind: webhook, url: "{hook}/hook", timeout: 60s}}
routes:
  - {{match: {{}}, receivers: [hook]}}
"""


def test_the_service_sends_side_by_side_as_configured(tmp_path):
    """`dagwatch up` with alerting.max_concurrent_sends: the barrier receiver accepts all at once."""
    with TogetherOnly(GROUPS) as receiver:
        config = tmp_path / "dagwatch.yaml"
        config.write_text(CONFIG.format(data_dir=tmp_path / "data", parallel=GROUPS, hook=receiver.url))
        server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
        try:
            server.wait_healthy()
            token = create_token(config, "sends")
            events = [
                {"kind": "run_failed", "source": "af", "pipeline": f"etl{i}", "run_id": "r1", "summary": "failed"} for i in range(GROUPS)
            ]
            answer = httpx.post(f"{server.url}/api/v1/events", json=events, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert answer.status_code == 200, answer.text

            def delivered() -> list[dict]:
                alerts = httpx.get(f"{server.url}/api/v1/alerts", params={"kind": "run_failed"}, timeout=10).json()
                done = [a for a in alerts if a["notifications"] and all(n["status"] != "pending" for n in a["notifications"])]
                return done if len(done) == GROUPS else []

            alerts = wait_for(delivered, limit=HOLD * 2)
        finally:
            server.stop()
    assert len(alerts) == GROUPS
    assert [[(n["status"], n["attempts"]) for n in a["notifications"]] for a in alerts] == [[("sent", 1)]] * GROUPS
