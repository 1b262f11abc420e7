"""The fault suite (issue 11, "must show"), bounded and on loopback only: things dagwatch depends
on break on purpose, and what it promised still holds.

- An orchestrator API (Prefect's, served by a local fake) that answers 500, hangs past the
  client's timeout, answers garbage JSON or a 30 MB page: `dagwatch up` keeps serving, raises
  source_down once per outage (however long it lasts), tells its receiver once, and resolves it by
  itself when the API is healthy again.
- A receiver down for eight minutes (simulated: the dispatcher runs on a test clock against the
  real store and a real HTTP receiver): every alert is delivered once it is back, none twice.
- PostgreSQL restarted under a stream of pushed events: dagwatch reconnects by itself, and every
  event it answered 2xx for is in the store afterwards.

The two-replica kill -9 case lives with the replica tests."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import httpx
import pytest

from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers import build
from monitor.config import Settings
from monitor.model import Event, EventKind
from monitor.store import alerts as alert_store
from tests.fakes.clock import Clock
from tests.fakes.httpserver import FakeHTTPServer, Recorded, RecordingServer, Reply
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

# --- an orchestrator that breaks ---------------------------------------------------------------

HUGE = 30 * 2**20


class BreakableOrchestrator(FakeHTTPServer):
    """The read endpoints a Prefect source polls (`GET /api/health`, `POST /api/…/filter`),
    healthy and empty until `mode` says how to break: "500", "hang" (answer after `hang`
    seconds, past the client's timeout), "garbage" (200 with JSON that is not JSON) or "huge"
    (200 with a 30 MB page that is not JSON either)."""

    def __init__(self, hang: float) -> None:
        super().__init__()
        self.mode = "ok"
        self.hang = hang

    def respond(self, request: Recorded) -> Reply:
        mode = self.mode
        if mode == "500":
            return Reply(500, {"exception_message": "Internal Server Error"})
        if mode == "hang":
            self._stopping.wait(self.hang)
        if mode == "garbage":
            return Reply(200, b'{"id": "3f1c", "state": {"type": "COMPL', {"Content-Type": "application/json"})
        if mode == "huge":
            return Reply(200, b"<html>" + b"x" * HUGE, {"Content-Type": "text/html"})
        route = self.route(request)
        if route == "/api/health":
            return Reply(200, b"true", {"Content-Type": "application/json"})
        if route.endswith("/filter"):
            return Reply(200, [])
        return Reply(404, {"detail": "Not Found"})


# Four outages in two minutes are flapping by the default damping (3 fires in 30 min hold the
# resolve for 10 quiet minutes): this test is about each outage on its own, so damping starts later.
ORCHESTRATOR_CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s, repeat_interval: 1h, flap: {{threshold: 5, window: 30m, quiet: 10m}}}}
sources:
  - name: pf
    kind: prefect
    url: {url}/api
    poll_interval: 0.3s
    timeout: 1s
    health: {{down_after_failures: 3, up_after_successes: 2}}
receivers:
  - {{name: hook, kind: webhook, url: "{hook}/hook"}}
routes:
  - {{match: {{}}, receivers: [hook]}}
"""


def _source_down(url: str) -> list[dict]:
    alerts = httpx.get(f"{url}/api/v1/alerts", params={"kind": "source_down", "limit": 500}, timeout=10).json()
    return [a for a in alerts if a["source"] == "pf"]


def _told(receiver: RecordingServer) -> Counter:
    """(alert id, status) → how many notifications the receiver accepted saying so."""
    said: Counter = Counter()
    for request in list(receiver.requests):
        for alert in request.json()["alerts"]:
            if alert["kind"] == "source_down":
                said[(alert["id"], alert["status"])] += 1
    return said


def test_an_orchestrator_that_breaks_in_every_way_is_down_once_per_outage_and_recovers_by_itself(tmp_path):
    orchestrator = BreakableOrchestrator(hang=3.0).start()
    receiver = RecordingServer().start()
    config = tmp_path / "dagwatch.yaml"
    config.write_text(ORCHESTRATOR_CONFIG.format(data_dir=tmp_path / "data", url=orchestrator.url, hook=receiver.url))
    proc = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    faults = ("500", "hang", "garbage", "huge")
    try:
        proc.wait_healthy()
        wait_for(lambda: len(orchestrator.requests) >= 5, limit=30)  # polled, healthy, nothing raised
        assert _source_down(proc.url) == []
        for number, fault in enumerate(faults, start=1):
            orchestrator.mode = fault
            down = wait_for(lambda: [a for a in _source_down(proc.url) if a["status"] == "firing"], limit=60)
            assert len(down) == 1, down
            polled = len(orchestrator.requests)
            # The outage goes on for more polls: still one alert, told once.
            wait_for(lambda polled=polled: len(orchestrator.requests) >= polled + 3, limit=60)
            assert len(_source_down(proc.url)) == number, (fault, _source_down(proc.url))
            assert httpx.get(f"{proc.url}/healthz", timeout=5).status_code == 200
            orchestrator.mode = "ok"
            wait_for(lambda: all(a["status"] == "resolved" for a in _source_down(proc.url)), limit=120)
            assert fault in ("hang", "garbage", "huge") or "HTTP 500" in down[0]["summary"] + json.dumps(down[0]["details"])
        wait_for(lambda: sum(1 for (_, status) in _told(receiver) if status == "resolved") == len(faults), limit=30)
        assert proc.proc.poll() is None
    finally:
        orchestrator.mode = "ok"
        proc.stop()
        orchestrator.stop()
        receiver.stop()
    told = _told(receiver)
    alerts = {key[0] for key in told}
    assert len(alerts) == len(faults)  # one source_down per outage
    assert all(told[(alert, "firing")] == 1 and told[(alert, "resolved")] == 1 for alert in alerts), told
    log = proc.log_path.read_text()
    assert "Traceback" not in log


# --- a receiver that is down for minutes (simulated time) -------------------------------------


class DownReceiver(RecordingServer):
    """A webhook receiver that answers 503 while `down`, and keeps what it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.accepted: list[Recorded] = []

    def respond(self, request: Recorded) -> Reply:
        if self.down:
            return Reply(503, {"error": "maintenance"})
        self.accepted.append(request)
        return Reply(200, {"received": True})


def test_a_receiver_down_for_minutes_gets_everything_afterwards_and_nothing_twice(store):
    receiver = DownReceiver().start()
    try:
        settings = Settings(
            receivers=[{"name": "hook", "kind": "webhook", "url": f"{receiver.url}/hook"}],
            routes=[{"match": {}, "receivers": ["hook"]}],
            alerting={"group_by": ["source", "pipeline", "task"], "group_wait": "0s", "group_interval": "10s"},
        )
        policy = ingest.AlertPolicy.from_settings(settings)
        notifiers = build(settings.receivers)
        clock = Clock()
        failures = [
            Event(
                kind=EventKind.TASK_FAILED,
                source="af",
                pipeline="etl",
                run_id="r1",
                task_id=f"t{i}",
                try_number=1,
                summary=f"t{i} failed",
                occurred_at=clock(),
            )
            for i in range(12)
        ]
        ingest.submit(store, failures, policy, clock=clock)
        attempts = 0
        while clock.now - failures[0].occurred_at < timedelta(minutes=8):  # down for 8 simulated minutes
            dispatch.tick(store, notifiers, policy, clock=clock)
            clock.advance(timedelta(seconds=5))
            attempts = len(receiver.requests)
        assert attempts >= 12 * 5 and not receiver.accepted  # each group was retried all along
        receiver.down = False
        for _ in range(200):  # up to ~17 simulated minutes more, one tick per 5 s
            dispatch.tick(store, notifiers, policy, clock=clock)
            if len(receiver.accepted) >= 12:
                break
            clock.advance(timedelta(seconds=5))
        for _ in range(20):  # and a while longer: nothing more may arrive
            clock.advance(timedelta(seconds=30))
            dispatch.tick(store, notifiers, policy, clock=clock)
        for notifier in notifiers.values():
            getattr(notifier, "close", lambda: None)()
    finally:
        receiver.stop()
    tasks = Counter(a["task_id"] for r in receiver.accepted for a in r.json()["alerts"])
    assert tasks == Counter({f"t{i}": 1 for i in range(12)}), tasks
    with store.session() as session:
        firing = alert_store.list_alerts(session, limit=100)
    assert len(firing) == 12 and all(n.status.value == "sent" for a in firing for n in a.notifications if n.receiver == "hook")


# --- PostgreSQL restarted under load ----------------------------------------------------------

PG_CONFIG = """
data_dir: {data_dir}
store: {{url: "{url}"}}
sources: []
alerting: {{group_wait: 0s, group_interval: 1s}}
receivers:
  - {{name: console, kind: console}}
"""


@pytest.fixture
def postgres():
    from tests.servers.postgres.server import PostgresServer, PostgresUnavailable, find_bindir

    try:
        find_bindir()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


def _restart(server) -> None:
    """`pg_ctl restart -m fast`: every connection is cut, the server is back on the same port
    (pg_ctl reuses the options it was started with; its output goes to the log again, not to
    our pipe); the pid and its watchdog follow."""
    done = server._run(
        "pg_ctl", "-D", str(server.data), "-l", str(server.root / "server.log"), "-m", "fast", "-w", "-t", "60", "restart", timeout=90
    )
    assert done.returncode == 0, done.stdout + done.stderr
    server.pid = server._read_pid()
    server._start_watchdog()


def test_postgres_restarted_under_load_loses_nothing_dagwatch_answered_2xx_for(tmp_path, postgres):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(PG_CONFIG.format(data_dir=tmp_path / "data", url=postgres.url()))
    auth = {"Authorization": f"Bearer {create_token(config, 'loader')}"}
    proc = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    answered: dict[str, int] = {}
    stop = threading.Event()

    def load() -> None:
        number = 0
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                run = f"r{number:05d}"
                number += 1
                event = {"kind": "run_failed", "source": "load", "pipeline": "train", "run_id": run, "summary": f"{run} failed"}
                try:
                    answered[run] = client.post(f"{proc.url}/api/v1/events", json=event, headers=auth).status_code
                except httpx.HTTPError:
                    answered[run] = 0

    try:
        proc.wait_healthy()
        loader = threading.Thread(target=load, name="loader")
        loader.start()
        try:
            wait_for(lambda: sum(1 for s in answered.values() if s == 200) >= 30, limit=60)
            _restart(postgres)
            after_restart = len(answered)
            wait_for(lambda: sum(1 for s in list(answered.values())[after_restart:] if s == 200) >= 30, limit=60)
        finally:
            stop.set()
            loader.join(timeout=60)
        ok = {run for run, status in answered.items() if status == 200}
        # While the database is away a request is told to retry (503), never a 500 with a traceback.
        assert set(answered.values()) <= {200, 503}, Counter(answered.values())
        stored: set[str] = set()
        while page := httpx.get(
            f"{proc.url}/api/v1/alerts", params={"source": "load", "limit": 500, "offset": len(stored)}, timeout=30
        ).json():
            stored |= {a["run_id"] for a in page}
        assert ok <= stored, sorted(ok - stored)[:10]
        assert httpx.get(f"{proc.url}/readyz", timeout=10).status_code == 200
        assert proc.proc.poll() is None
    finally:
        stop.set()
        proc.stop()
    assert "Exception in ASGI application" not in proc.log_path.read_text()
