"""AirflowSource against `httpx.MockTransport` replaying Airflow's shapes: state mapping, paging,
dedupe, token refresh, back-off and Retry-After, reads only through GET — no sockets, no MagicMock."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.config import AirflowSourceSettings
from monitor.model import State
from monitor.retry import Retries
from monitor.sources import airflow_logs
from monitor.sources.airflow import AirflowSource
from monitor.sources.airflow_auth import AirflowAuthError, PasswordToken, jwt_expiry
from monitor.sources.airflow_http import BackOff
from monitor.sources.airflow_states import run_state, task_state
from monitor.sources.base import SourceUnavailable

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def jwt(exp: float) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS512'})}.{part({'sub': 'admin', 'exp': exp})}.sig"


def settings(**over) -> AirflowSourceSettings:
    base = dict(kind="airflow", name="af", url="http://airflow.test", auth={"username": "admin", "password": "s3cret-pw"})
    return AirflowSourceSettings(**{**base, **over})


class FakeAirflow:
    """Just enough of API v2 to poll: `runs`, `tis` and `events` (event log) are lists of API objects.
    Only GET lists are served: the batch `POST …/list` endpoints answer 404 here."""

    def __init__(self, runs=(), tis=(), version="3.3.2") -> None:
        self.runs, self.tis, self.version = list(runs), list(tis), version
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.fail_next: list[httpx.Response] = []
        self.logs: dict[tuple[str, str, int], list] = {}
        self.events: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.fail_next:
            return self.fail_next.pop(0)
        if path == "/api/v2/version":
            return httpx.Response(200, json={"version": self.version})
        if path == "/auth/token":
            self.tokens_issued += 1
            token = jwt(NOW.timestamp() + 3600) + str(self.tokens_issued)
            self.valid_tokens.add(token)
            return httpx.Response(201, json={"access_token": token})
        if path == "/api/v2/monitor/health":
            return httpx.Response(
                200, json={"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}, "triggerer": {"status": None}}
            )
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, json={"detail": "Not authenticated"})
        params = request.url.params
        if path == "/api/v2/dags/~/dagRuns":
            assert "+00:00" in params["updated_at_gte"]  # always zoned
            return self._page(self.runs, "dag_runs", int(params["limit"]), int(params["offset"]))
        if request.method == "GET" and path.endswith("/taskInstances"):
            return self._page(self._task_instances(request), "task_instances", int(params["limit"]), int(params["offset"]))
        if path == "/api/v2/eventLogs":
            wanted = {k: params[k] for k in ("dag_id", "run_id", "task_id") if k in params}
            match = [e for e in self.events if all(e.get(k) == v for k, v in wanted.items())]
            return self._page(sorted(match, key=lambda e: -e["event_log_id"]), "event_logs", int(params["limit"]), 0)
        if "/logs/" in path:
            parts = path.split("/")
            key = (parts[4], parts[6], int(parts[-1]))
            return httpx.Response(200, json={"content": self.logs.get(key, [])})
        if path.startswith("/api/v2/dags/") and "/dagRuns/" in path:
            dag_id, run_id = path.split("/")[4], httpx.URL(request.url).path.split("/")[6]
            for run in self.runs:
                if (run["dag_id"], run["dag_run_id"]) == (dag_id, run_id):
                    return httpx.Response(200, json=run)
            return httpx.Response(404, json={"detail": "not found"})
        return httpx.Response(404, json={"detail": f"no route {path}"})

    def _task_instances(self, request: httpx.Request) -> list[dict]:
        """`/dags/{dag|~}/dagRuns/{run|~}/taskInstances`, with `updated_at_gte` (all match here) and
        `run_after_gte/lte` (a run's `run_after`, as Airflow filters them)."""
        dag_id, run_id = (httpx.URL(request.url).path.split("/")[i] for i in (4, 6))
        params = request.url.params
        after = {(r["dag_id"], r["dag_run_id"]): r.get("run_after") for r in self.runs}

        def within(t):
            when = after.get((t["dag_id"], t["dag_run_id"]))
            low, high = params.get("run_after_gte"), params.get("run_after_lte")
            if low is None and high is None:
                return True
            return when is not None and datetime.fromisoformat(low) <= datetime.fromisoformat(when) <= datetime.fromisoformat(high)

        return [t for t in self.tis if dag_id in ("~", t["dag_id"]) and run_id in ("~", t["dag_run_id"]) and within(t)]

    @staticmethod
    def _page(items, key, limit, offset):
        limit = min(limit, 100)  # Airflow's silent cap
        return httpx.Response(200, json={key: items[offset : offset + limit], "total_entries": len(items)})


def no_sleep(waits: list[float] | None = None) -> Retries:
    """The default retry policy, waits recorded instead of slept, jitter seeded."""
    return Retries(sleep=(waits if waits is not None else []).append, rng=random.Random(8))


def source_with(fake: FakeAirflow, **kw) -> AirflowSource:
    kw.setdefault("retries", no_sleep())
    return AirflowSource(settings(**kw.pop("settings", {})), transport=httpx.MockTransport(fake), clock=lambda: NOW, **kw)


def raised(exc_type: str, value: str) -> list[dict]:
    """An Airflow 3 task log whose last event carries the exception the task raised."""
    return [
        {
            "event": "Task failed with exception",
            "level": "error",
            "error_detail": [{"exc_type": exc_type, "exc_value": value, "frames": [{"filename": "f.py", "lineno": 3, "name": "go"}]}],
        }
    ]


def run(dag="d", run_id="r1", state="running", run_after="2026-11-26T11:00:00Z") -> dict:
    return {
        "dag_id": dag,
        "dag_run_id": run_id,
        "state": state,
        "start_date": "2026-11-26T11:00:00Z",
        "run_after": run_after,
        "extra_field": 1,
    }


def ti(task, dag="d", run_id="r1", state="success", try_number=1, max_tries=0, map_index=-1) -> dict:
    return {
        "dag_id": dag,
        "dag_run_id": run_id,
        "task_id": task,
        "state": state,
        "try_number": try_number,
        "max_tries": max_tries,
        "map_index": map_index,
        "start_date": "2026-11-26T11:00:00Z",
    }


@pytest.mark.parametrize(
    ("airflow", "expected"),
    [
        (None, State.SCHEDULED),
        ("none", State.SCHEDULED),
        ("scheduled", State.SCHEDULED),
        ("queued", State.QUEUED),
        ("running", State.RUNNING),
        ("success", State.SUCCESS),
        ("failed", State.FAILED),
        ("up_for_retry", State.RETRYING),
        ("up_for_reschedule", State.RUNNING),
        ("restarting", State.RUNNING),
        ("deferred", State.RUNNING),
        ("awaiting_input", State.RUNNING),
        ("upstream_failed", State.UPSTREAM_FAILED),
        ("skipped", State.SKIPPED),
        ("removed", State.SKIPPED),
        ("something_new", State.RUNNING),
    ],
)
def test_task_states(airflow, expected):
    assert task_state(airflow) is expected


def test_run_states():
    assert [run_state(s) for s in ("queued", "running", "success", "failed")] == [State.QUEUED, State.RUNNING, State.SUCCESS, State.FAILED]


def test_poll_pages_to_the_end_and_returns_every_task_of_touched_runs():
    runs = [run(run_id=f"r{i}") for i in range(250)]
    tis = [ti(f"t{j}", run_id=f"r{i}") for i in range(250) for j in range(3)]
    fake = FakeAirflow(runs, tis)
    snaps = source_with(fake).poll(NOW - timedelta(minutes=1))
    assert len(snaps) == 250 and all(len(s.tasks) == 3 for s in snaps)
    run_pages = [r for r in fake.requests if r.url.path == "/api/v2/dags/~/dagRuns"]
    assert [r.url.params["offset"] for r in run_pages] == ["0", "100", "200"]


def test_a_run_seen_only_through_its_task_is_fetched_and_deduped():
    fake = FakeAirflow(
        runs=[run(run_id="quiet", state="running")], tis=[ti("a", run_id="quiet", state="up_for_retry", try_number=1, max_tries=2)]
    )
    real = fake._page
    fake._page = lambda items, key, limit, offset: real([] if key == "dag_runs" else items, key, limit, offset)
    fake.logs[("d", "quiet", 1)] = raised("KeyError", "'x'")
    source = source_with(fake)
    [snap] = source.poll(NOW)
    [task] = snap.tasks
    assert (snap.run_id, task.state, task.try_number, task.max_tries) == ("quiet", State.RETRYING, 1, 3)
    assert task.error == "KeyError: 'x'" and 'File "f.py", line 3, in go' in task.traceback
    source.poll(NOW)  # the overlap again: the log is not read twice
    assert sum("/logs/" in r.url.path for r in fake.requests) == 1


def test_log_reads_are_bounded_per_poll():
    tis = [ti("t", run_id=f"r{i}", state="failed") for i in range(30)]
    fake = FakeAirflow([run(run_id=f"r{i}", state="failed") for i in range(30)], tis)
    fake.logs = {("d", f"r{i}", 1): raised("ValueError", str(i)) for i in range(30)}
    source = source_with(fake, max_log_reads=5)
    source.poll(NOW)
    assert sum("/logs/" in r.url.path for r in fake.requests) == 5
    source.poll(NOW)
    assert sum("/logs/" in r.url.path for r in fake.requests) == 10


def test_token_is_fetched_once_and_refreshed_after_a_401():
    fake = FakeAirflow([run()], [ti("a")])
    source = source_with(fake)
    source.poll(NOW)
    source.poll(NOW)
    assert fake.tokens_issued == 1
    fake.valid_tokens.clear()  # the server restarted with a new secret
    source.poll(NOW)
    assert fake.tokens_issued == 2


def test_token_is_refreshed_before_it_expires():
    now = [1000.0]
    provider = PasswordToken("admin", settings().auth.password, clock=lambda: now[0])
    issued = []

    def handler(request):
        issued.append(1)
        return httpx.Response(201, json={"access_token": jwt(now[0] + 3600)})

    http = httpx.Client(base_url="http://airflow.test", transport=httpx.MockTransport(handler))
    first = provider.token(http)
    now[0] += 3000
    assert provider.token(http) == first and len(issued) == 1
    now[0] += 400  # 200 s left: inside the margin
    provider.token(http)
    assert len(issued) == 2
    assert jwt_expiry(first) == 4600.0


def test_refused_password_is_an_auth_error_without_the_secret():
    def handler(request):
        if request.url.path == "/api/v2/version":
            return httpx.Response(200, json={"version": "3.3.2"})
        return httpx.Response(401, json={"detail": "Invalid credentials"})

    source = AirflowSource(settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(AirflowAuthError) as caught:
        source.poll(NOW)
    assert "s3cret-pw" not in str(caught.value) and "admin" in str(caught.value)


def test_back_off_grows_and_honours_retry_after():
    clock = [0.0]
    backoff = BackOff(base=1, cap=8, clock=lambda: clock[0])
    fake = FakeAirflow()
    source = source_with(fake, backoff=backoff)
    fake.fail_next = [httpx.Response(503, headers={"Retry-After": "30"})]
    with pytest.raises(SourceUnavailable) as caught:
        source.health()
    assert caught.value.retry_after == 30
    sent = len(fake.requests)
    with pytest.raises(SourceUnavailable, match="backing off") as caught:
        source.health()
    assert len(fake.requests) == sent and caught.value.retry_after == pytest.approx(30)
    clock[0] = 31
    fake.fail_next = [httpx.Response(500)] * 3  # the first try and both retries
    with pytest.raises(SourceUnavailable):
        source.health()
    assert backoff.not_before - clock[0] == 2  # second failure: 2 × base
    clock[0] = 40
    assert source.health().healthy and backoff.failures == 0


def test_unreachable_is_source_unavailable_after_the_retries():
    attempts = []

    def handler(request):
        attempts.append(request)
        raise httpx.ConnectError("connection refused")

    source = AirflowSource(settings(), transport=httpx.MockTransport(handler), retries=no_sleep())
    with pytest.raises(SourceUnavailable, match="cannot reach Airflow"):
        source.health()
    assert len(attempts) == 3


def test_garbage_answer_is_source_unavailable():
    fake = FakeAirflow()
    source = source_with(fake)
    source.poll(NOW)  # probed and holding a token
    fake.fail_next = [httpx.Response(200, text="<html>proxy login</html>")]
    with pytest.raises(SourceUnavailable, match="not JSON"):
        source.poll(NOW)


def test_unhealthy_components_are_named():
    def handler(request):
        if request.url.path == "/api/v2/version":
            return httpx.Response(200, json={"version": "3.3.2"})
        return httpx.Response(
            200,
            json={
                "metadatabase": {"status": "healthy"},
                "scheduler": {"status": "unhealthy"},
                "dag_processor": {"status": "healthy"},
                "triggerer": {"status": None},
            },
        )

    health = AirflowSource(settings(), transport=httpx.MockTransport(handler)).health()
    assert not health.healthy and health.problems == ("scheduler is unhealthy",)


def test_v1_log_text_gives_the_last_traceback():
    text = (
        "[2026-11-26T10:51:47.100+0000] {taskinstance.py:3} ERROR - Task failed with exception\n"
        'Traceback (most recent call last):\n  File "/dags/x.py", line 43, in _fail\n    raise ValueError("boom")\n'
        "ValueError: boom\n[2026-11-26T10:51:47.429+0000] {local_task_job_runner.py:266} INFO - Task exited with return code 1\n"
    )
    error, tb = airflow_logs.error_from_text(text)
    assert error == "ValueError: boom" and tb.startswith("Traceback") and tb.endswith("ValueError: boom")


def test_v2_log_as_task_log_renders_it_gives_the_error_not_the_last_line():
    """Airflow 3's events as `task_log()` renders them (what the runbook's task_logs step reads):
    the traceback ends where the next event begins, as on Airflow 2."""
    events = [
        {
            "timestamp": "2026-12-02T01:15:36.100000Z",
            "level": "error",
            "event": "Task failed with exception",
            "error_detail": [
                {
                    "exc_type": "ConnectionResetError",
                    "exc_value": "[Errno 104] Connection reset by peer",
                    "frames": [{"filename": "/dags/x.py", "lineno": 7, "name": "_fetch"}],
                }
            ],
        },
        {"timestamp": "2026-12-02T01:15:36.444421Z", "level": "info", "event": "::endgroup::"},
    ]
    error, tb = airflow_logs.error_from_text(airflow_logs.events_text(events))
    assert (error, tb) == airflow_logs.error_from_events(events)
    assert error == "ConnectionResetError: [Errno 104] Connection reset by peer" and "endgroup" not in tb


# -- reads only through GET ----------------------------------------------------------------------


def test_a_poll_only_reads_through_get_lists():
    """The batch `POST …/list` endpoints write an audit row into Airflow's event log per call."""
    runs = [run(run_id="a", state="failed"), run(dag="e", run_id="b")]
    tis = [ti("t", run_id="a", state="failed"), ti("u", dag="e", run_id="b")]
    fake = FakeAirflow(runs, tis)
    source = source_with(fake)
    source.poll(NOW - timedelta(minutes=1))
    reads = [r for r in fake.requests if r.url.path != "/auth/token"]
    assert reads and {r.method for r in reads} == {"GET"}
    assert not any(r.url.path.endswith("/list") for r in fake.requests)


def test_several_runs_of_one_dag_are_read_in_one_query_between_their_dates():
    runs = [run(run_id=f"r{i}", run_after=f"2026-11-26T11:0{i}:00Z") for i in range(3)] + [run(dag="solo", run_id="s")]
    other = run(run_id="elsewhere", run_after="2026-11-26T11:01:30Z")  # in the window, not touched
    tis = [ti("t", run_id=f"r{i}") for i in range(3)] + [ti("t", dag="solo", run_id="s"), ti("t", run_id="elsewhere")]
    fake = FakeAirflow([*runs, other], tis)
    runs_page, tis_of = fake._page, fake._task_instances  # only the four runs changed since the watermark
    fake._page = lambda items, key, limit, offset: runs_page(
        [r for r in items if r["dag_run_id"] != "elsewhere"] if key == "dag_runs" else items, key, limit, offset
    )
    fake._task_instances = lambda request: [
        t for t in tis_of(request) if "/dags/~/" not in request.url.path or t["dag_run_id"] != "elsewhere"
    ]
    snaps = source_with(fake).poll(NOW - timedelta(minutes=1))
    assert sorted((s.pipeline, s.run_id) for s in snaps) == [("d", "r0"), ("d", "r1"), ("d", "r2"), ("solo", "s")]
    assert all(len(s.tasks) == 1 for s in snaps)  # the untouched run in the window is left out
    lists = [r for r in fake.requests if r.url.path.endswith("/taskInstances") and "/dags/~/" not in r.url.path]
    assert sorted(r.url.path for r in lists) == ["/api/v2/dags/d/dagRuns/~/taskInstances", "/api/v2/dags/solo/dagRuns/s/taskInstances"]
    window = next(r.url.params for r in lists if r.url.path.startswith("/api/v2/dags/d/"))
    assert (window["run_after_gte"], window["run_after_lte"]) == ("2026-11-26T10:59:59+00:00", "2026-11-26T11:02:01+00:00")


# -- reasons from Airflow ------------------------------------------------------------------------


def patched(run_id: str, event_log_id: int, task_id: str = "t") -> dict:
    return {
        "event_log_id": event_log_id,
        "when": "2026-11-26T11:30:00Z",
        "dag_id": "d",
        "task_id": task_id,
        "run_id": run_id,
        "map_index": None,
        "try_number": None,
        "event": "patch_task_instance",
        "owner": "admin",
        "extra": '{"new_state": "failed", "method": "PATCH"}',
    }


def test_a_task_failed_by_airflow_gets_its_reason_from_the_event_log():
    fake = FakeAirflow([run(state="failed")], [ti("t", state="failed")])
    fake.logs[("d", "r1", 1)] = [
        {"event": "Server indicated the task shouldn't be running anymore", "level": "error"},
        {"event": "Task killed!", "level": "error"},
    ]
    fake.events = [patched("r1", 7)]
    source = source_with(fake)
    [snap] = source.poll(NOW)
    assert snap.tasks[0].error == "the task was marked failed by admin through Airflow's API (patch_task_instance)"
    assert snap.tasks[0].traceback is None
    source.poll(NOW)  # remembered with the try: neither the log nor the event log is read again
    assert sum(r.url.path == "/api/v2/eventLogs" for r in fake.requests) == 1


def test_a_task_that_raised_keeps_its_exception_and_costs_no_event_log_read():
    fake = FakeAirflow([run(state="failed")], [ti("t", state="failed")])
    fake.logs[("d", "r1", 1)] = raised("ValueError", "bad rows")
    fake.events = [patched("r1", 7)]
    [snap] = source_with(fake).poll(NOW)
    assert snap.tasks[0].error == "ValueError: bad rows"
    assert not any(r.url.path == "/api/v2/eventLogs" for r in fake.requests)


def test_reason_lookups_share_the_log_budget_and_finish_on_later_polls():
    fake = FakeAirflow([run(run_id=f"r{i}", state="failed") for i in range(4)], [ti("t", run_id=f"r{i}", state="failed") for i in range(4)])
    fake.events = [patched(f"r{i}", i + 1) for i in range(4)]
    source = source_with(fake, max_log_reads=5)
    polls = []
    for _ in range(3):
        fake.requests.clear()
        polls.append(source.poll(NOW))
        assert sum("/logs/" in r.url.path or r.url.path == "/api/v2/eventLogs" for r in fake.requests) <= 5
    assert all(t.error and "marked failed by admin" in t.error for s in polls[-1] for t in s.tasks)


def test_an_event_log_the_role_may_not_read_leaves_the_note_and_polling_goes_on():
    fake = FakeAirflow([run(state="failed")], [{**ti("t", state="failed"), "note": "stopped: wrong bucket"}])
    real = fake.__call__

    def fake_call(request):
        return httpx.Response(403, json={"detail": "Forbidden"}) if request.url.path == "/api/v2/eventLogs" else real(request)

    source = AirflowSource(settings(), transport=httpx.MockTransport(fake_call), clock=lambda: NOW, retries=no_sleep())
    [snap] = source.poll(NOW)
    assert snap.tasks[0].error == "note on the task instance: stopped: wrong bucket"
    fake.tis.append(ti("t2", state="failed"))
    [snap] = source.poll(NOW)  # not asked again, and no back-off from the 403
    assert [t.error for t in snap.tasks] == ["note on the task instance: stopped: wrong bucket", None]


# -- retries of reads ----------------------------------------------------------------------------


def test_a_blip_is_retried_within_the_request_and_the_poll_succeeds():
    fake = FakeAirflow([run()], [ti("a")])
    waits: list[float] = []
    backoff = BackOff(clock=lambda: 0.0)
    source = source_with(fake, retries=no_sleep(waits), backoff=backoff)
    source.poll(NOW)  # probed, holding a token
    fake.fail_next = [httpx.Response(500), httpx.Response(502)]
    [snap] = source.poll(NOW)
    assert snap.tasks[0].task_id == "a" and backoff.failures == 0
    assert len(waits) == 2 and 0.125 <= waits[0] < 0.375 and 0.25 <= waits[1] < 0.75  # base 0.25 s, doubled, jittered


def test_retry_after_is_honoured_when_short_and_left_to_the_back_off_when_long():
    fake = FakeAirflow([run()], [ti("a")])
    waits: list[float] = []
    source = source_with(fake, retries=no_sleep(waits), backoff=BackOff(clock=lambda: 0.0))
    source.poll(NOW)
    fake.fail_next = [httpx.Response(429, headers={"Retry-After": "2"})]
    source.poll(NOW)
    assert waits == [2.0]
    fake.fail_next = [httpx.Response(503, headers={"Retry-After": "120"})]
    with pytest.raises(SourceUnavailable) as caught:
        source.poll(NOW)
    assert caught.value.retry_after == 120 and waits == [2.0]


def test_read_timeouts_are_retried_but_writes_are_not():
    fake = FakeAirflow([run()], [ti("a")])
    timeouts = [2]

    def flaky(request):
        if request.method == "GET" and request.url.path.endswith("/dagRuns") and timeouts[0]:
            timeouts[0] -= 1
            raise httpx.ReadTimeout("timed out", request=request)
        return fake(request)

    source = AirflowSource(settings(), transport=httpx.MockTransport(flaky), clock=lambda: NOW, retries=no_sleep())
    assert len(source.poll(NOW)) == 1 and timeouts == [0]
    fake.fail_next = [httpx.Response(500)]
    with pytest.raises(SourceUnavailable):
        source.clear_failed("d", "r1", None, dry_run=True)
    assert [r.method for r in fake.requests[-1:]] == ["POST"] and not fake.fail_next
    assert sum(r.method == "POST" and r.url.path.endswith("/clearTaskInstances") for r in fake.requests) == 1
