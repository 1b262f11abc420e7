"""A storm of pushed task failures through the Airflow listener's real sender
(examples/airflow_plugin/dagwatch_listener.py, `Sender`) into a real `dagwatch up`: every failure
is one firing alert, none lost, and the run pages PagerDuty once. Then what the sender does when
dagwatch is away or refuses: 5xx and 429 are retried until it recovers (nothing lost), a 4xx is
not retried, a full buffer drops its oldest events, and a process that exits right after its hook
still delivers (the atexit flush).

No assertion here is about time: the bench (bench/storm.py) measures how fast.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
LISTENER = ROOT / "examples" / "airflow_plugin" / "dagwatch_listener.py"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"  # 32 characters, as PagerDuty wants
FAILURES = 2000
SENDERS = 8

CONFIG = """
data_dir: {data_dir}
sources: []
alerting: {{group_wait: 1s, group_interval: 2s}}
receivers:
  - {{name: pager, kind: pagerduty, routing_key: "${{STORM_PD_KEY}}", events_url: "{events_url}", timeout: 5s}}
routes:
  - {{match: {{kind: task_failed}}, tier: P1, receivers: [pager]}}
"""


def load_listener():
    """The plugin file as Airflow's plugin manager would load it (without Airflow: `Sender` only)."""
    spec = importlib.util.spec_from_file_location("dagwatch_listener_under_test", LISTENER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


listener = load_listener()


def failure(source: str, task: int, run_id: str = "r1") -> dict:
    """What the listener's on_task_instance_failed pushes for a task out of retries."""
    return {
        "kind": "task_failed",
        "source": source,
        "pipeline": "storm",
        "run_id": run_id,
        "task_id": f"t{task}",
        "try_number": 1,
        "occurred_at": "2026-12-07T10:00:00+00:00",
        "summary": f"t{task} failed on try 1: RuntimeError: storm",
        "details": {"map_index": -1, "max_tries": 1, "error": "RuntimeError: storm"},
    }


def alerts_of(url: str, token: str, source: str) -> list[dict]:
    """Every alert of `source`, page by page (the list API gives at most 1000 at a time)."""
    found: list[dict] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while True:
            page = http.get("/api/v1/alerts", params={"source": source, "limit": 1000, "offset": len(found)}).json()
            found += page
            if len(page) < 1000:
                return found


class Dagwatch:
    def __init__(self, tmp: Path, events_url: str) -> None:
        config = tmp / "dagwatch.yaml"
        config.write_text(CONFIG.format(data_dir=tmp / "data", events_url=events_url))
        self.token = create_token(config, "airflow")
        self.viewer = create_token(config, "dash", "viewer")
        self.proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
        self.url = self.proc.url

    def __enter__(self) -> Dagwatch:
        self.proc.wait_healthy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()


@pytest.fixture(scope="module")
def pagerduty():
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture(scope="module")
def dagwatch(tmp_path_factory, pagerduty):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORM_PD_KEY", ROUTING_KEY)  # secrets come from the environment; the process copies it
        with Dagwatch(tmp_path_factory.mktemp("storm"), pagerduty.events_url) as running:
            yield running


class Proxy(FakeHTTPServer):
    """In front of the real dagwatch: forwards, except for the failures queued with fail_next."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = httpx.Client(base_url=upstream, timeout=60)

    def respond(self, request: Recorded) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length", "connection"}}
        answer = self.upstream.request(request.method, request.path, headers=headers, content=request.body)
        return Reply(answer.status_code, answer.content, {"Content-Type": answer.headers.get("content-type", "application/json")})

    def stop(self) -> None:
        super().stop()
        self.upstream.close()


def test_a_storm_of_one_run_is_one_alert_per_failure_and_one_page(dagwatch, pagerduty):
    senders = [listener.Sender(dagwatch.url, dagwatch.token, post_timeout=120) for _ in range(SENDERS)]
    flushed: list[bool] = []

    def task_processes(i: int) -> None:
        for task in range(i, FAILURES, SENDERS):
            senders[i].submit(failure("storm", task))
        flushed.append(senders[i].flush(timeout=600))

    threads = [threading.Thread(target=task_processes, args=(i,)) for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flushed == [True] * SENDERS
    stats = [s.stats for s in senders]
    assert sum(s.accepted for s in stats) == FAILURES
    assert sum(s.lost + s.dropped + s.rejected for s in stats) == 0
    assert sum(s.posts for s in stats) < FAILURES / 10  # batched: lists, not one event per request

    alerts = alerts_of(dagwatch.url, dagwatch.token, "storm")
    assert len(alerts) == FAILURES  # exactly one alert per failure
    assert {a["task_id"] for a in alerts} == {f"t{i}" for i in range(FAILURES)}  # none lost
    assert {(a["kind"], a["status"], a["tier"], a["run_id"]) for a in alerts} == {("task_failed", "firing", "P1", "r1")}

    def every_alert_told():
        current = alerts_of(dagwatch.url, dagwatch.token, "storm")
        return all(any(n["status"] == "sent" for n in a["notifications"]) for a in current)

    wait_for(every_alert_told, limit=300, step=1)
    triggered = {e["dedup_key"] for e in pagerduty.events if e["event_action"] == "trigger"}
    assert len(triggered) == 1, triggered  # the run paged once: one incident, later updates join it
    assert pagerduty.incidents == dict.fromkeys(triggered, "triggered")


def test_5xx_and_429_are_retried_until_dagwatch_recovers(dagwatch):
    with Proxy(dagwatch.url) as proxy:
        proxy.fail_next(3, 503)
        proxy.fail_next(1, 429, headers={"Retry-After": "0"})
        sender = listener.Sender(proxy.url, dagwatch.token, backoff=0.05)
        for task in range(50):
            sender.submit(failure("recovers", task))
        assert sender.flush(timeout=120)
    assert (sender.stats.retries, sender.stats.posts, sender.stats.accepted, sender.stats.lost) == (4, 5, 50, 0)
    assert len(alerts_of(dagwatch.url, dagwatch.token, "recovers")) == 50  # nothing lost


def test_a_4xx_is_not_retried(dagwatch):
    viewer = listener.Sender(dagwatch.url, dagwatch.viewer)  # dagwatch answers 403: a viewer may not push
    viewer.submit(failure("refused", 1))
    assert viewer.flush(timeout=60)
    assert (viewer.stats.posts, viewer.stats.retries, viewer.stats.lost) == (1, 0, 1)
    with Proxy(dagwatch.url) as proxy:
        proxy.fail_next(1, 422)
        sender = listener.Sender(proxy.url, dagwatch.token)
        sender.submit(failure("refused", 2))
        assert sender.flush(timeout=60)
        assert len(proxy.requests) == 1
    assert (sender.stats.posts, sender.stats.retries, sender.stats.lost) == (1, 0, 1)
    assert alerts_of(dagwatch.url, dagwatch.token, "refused") == []


def test_no_answer_is_retried_then_given_up_without_raising():
    with FakeHTTPServer() as nothing:
        url = nothing.refuse_connections()
    sender = listener.Sender(url, "t", retries=2, backoff=0.01)
    sender.submit(failure("away", 1))
    assert sender.flush(timeout=60)
    assert (sender.stats.posts, sender.stats.retries, sender.stats.lost) == (3, 2, 1)


def test_a_full_buffer_drops_the_oldest(dagwatch):
    sender = listener.Sender(dagwatch.url, dagwatch.token, buffer=5, interval=60)  # lingers: nothing leaves before flush
    for task in range(20):
        sender.submit(failure("full", task))
    assert sender.flush(timeout=60)
    assert (sender.stats.dropped, sender.stats.accepted) == (15, 5)
    assert {a["task_id"] for a in alerts_of(dagwatch.url, dagwatch.token, "full")} == {f"t{i}" for i in range(15, 20)}


def test_a_process_that_exits_right_after_its_hook_still_delivers(dagwatch):
    """The hook returns at once and the process ends: the atexit flush sends what waits."""
    script = textwrap.dedent(f"""
        import importlib.util, os, types
        os.environ.update(DAGWATCH_URL={dagwatch.url!r}, DAGWATCH_TOKEN={dagwatch.token!r},
                          DAGWATCH_SOURCE="exiting", DAGWATCH_FLUSH_INTERVAL="30", DAGWATCH_TIMEOUT="60")
        spec = importlib.util.spec_from_file_location("dagwatch_listener", {str(LISTENER)!r})
        listener = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(listener)
        ti = types.SimpleNamespace(dag_id="storm", run_id="r9", task_id="last", try_number=1, max_tries=0,
                                   map_index=-1, end_date=None, state="failed")
        listener.on_task_instance_failed(None, ti, RuntimeError("the task's last words"))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    [alert] = alerts_of(dagwatch.url, dagwatch.token, "exiting")
    assert (alert["kind"], alert["run_id"], alert["task_id"]) == ("task_failed", "r9", "last")
    assert "the task's last words" in alert["summary"]
