"""AirflowSource against `httpx.MockTransport` replaying Airflow's shapes: state mapping, paging,
dedupe, token refresh, back-off and Retry-After — no sockets, no MagicMock."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.config import AirflowSourceSettings
from monitor.model import State
from monitor.sources import airflow_logs
from monitor.sources.airflow import AirflowSource
from monitor.sources.airflow_auth import AirflowAuthError, PasswordToken, jwt_expiry
from monitor.sources.airflow_http import BackOff, retry_after_seconds
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
    """Just enough of API v2 to poll: `runs` and `tis` are lists of API objects."""

    def __init__(self, runs=(), tis=(), version="3.3.2") -> None:
        self.runs, self.tis, self.version = list(runs), list(tis), version
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.fail_next: list[httpx.Response] = []
        self.logs: dict[tuple[str, str, int], list] = {}

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
            return httpx.Response(200, json={"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}, "triggerer": {"status": None}})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, json={"detail": "Not authenticated"})
        params = request.url.params
        if path == "/api/v2/dags/~/dagRuns":
            assert "+00:00" in params["updated_at_gte"]  # always zoned
            return self._page(self.runs, "dag_runs", int(params["limit"]), int(params["offset"]))
        if path == "/api/v2/dags/~/dagRuns/~/taskInstances":
            return self._page(self.tis, "task_instances", int(params["limit"]), int(params["offset"]))
        if path == "/api/v2/dags/~/dagRuns/~/taskInstances/list":
            body = json.loads(request.content)
            match = [t for t in self.tis if t["dag_id"] in body["dag_ids"] and t["dag_run_id"] in body["dag_run_ids"]]
            return self._page(match, "task_instances", body["page_limit"], body["page_offset"])
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

    @staticmethod
    def _page(items, key, limit, offset):
        limit = min(limit, 100)  # Airflow's silent cap
        return httpx.Response(200, json={key: items[offset : offset + limit], "total_entries": len(items)})


def source_with(fake: FakeAirflow, **kw) -> AirflowSource:
    return AirflowSource(settings(**kw.pop("settings", {})), transport=httpx.MockTransport(fake), clock=lambda: NOW, **kw)


def run(dag="d", run_id="r1", state="running") -> dict:
    return {"dag_id": dag, "dag_run_id": run_id, "state": state, "start_date": "2026-11-26T11:00:00Z", "extra_field": 1}


def ti(task, dag="d", run_id="r1", state="success", try_number=1, max_tries=0, map_index=-1) -> dict:
    return {"dag_id": dag, "dag_run_id": run_id, "task_id": task, "state": state, "try_number": try_number,
            "max_tries": max_tries, "map_index": map_index, "start_date": "2026-11-26T11:00:00Z"}


@pytest.mark.parametrize(
    ("airflow", "expected"),
    [
        (None, State.SCHEDULED), ("none", State.SCHEDULED), ("scheduled", State.SCHEDULED), ("queued", State.QUEUED),
        ("running", State.RUNNING), ("success", State.SUCCESS), ("failed", State.FAILED),
        ("up_for_retry", State.RETRYING), ("up_for_reschedule", State.RUNNING), ("restarting", State.RUNNING),
        ("deferred", State.RUNNING), ("awaiting_input", State.RUNNING), ("upstream_failed", State.UPSTREAM_FAILED),
        ("skipped", State.SKIPPED), ("removed", State.SKIPPED), ("something_new", State.RUNNING),
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
    fake = FakeAirflow(runs=[run(run_id="quiet", state="running")], tis=[ti("a", run_id="quiet", state="up_for_retry", try_number=1, max_tries=2)])
    real = fake._page
    fake._page = lambda items, key, limit, offset: real([] if key == "dag_runs" else items, key, limit, offset)
    fake.logs[("d", "quiet", 1)] = [{"event": "Task failed with exception", "level": "error",
                                     "error_detail": [{"exc_type": "KeyError", "exc_value": "'x'", "frames": [{"filename": "f.py", "lineno": 3, "name": "go"}]}]}]
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
    fake.fail_next = [httpx.Response(500)]
    with pytest.raises(SourceUnavailable):
        source.health()
    assert backoff.not_before - clock[0] == 2  # second failure: 2 × base
    clock[0] = 40
    assert source.health().healthy and backoff.failures == 0


def test_unreachable_is_source_unavailable():
    def handler(request):
        raise httpx.ConnectError("connection refused")

    source = AirflowSource(settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(SourceUnavailable, match="cannot reach Airflow"):
        source.health()


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
        return httpx.Response(200, json={"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy"},
                                         "dag_processor": {"status": "healthy"}, "triggerer": {"status": None}})

    health = AirflowSource(settings(), transport=httpx.MockTransport(handler)).health()
    assert not health.healthy and health.problems == ("scheduler is unhealthy",)


def test_retry_after_as_http_date():
    assert retry_after_seconds("Wed, 26 Nov 2026 12:01:00 GMT", now=NOW.timestamp()) == 60
    assert retry_after_seconds("soon") is None


def test_v1_log_text_gives_the_last_traceback():
    text = (
        "[2026-11-26T10:51:47.100+0000] {taskinstance.py:3} ERROR - Task failed with exception\n"
        "Traceback (most recent call last):\n  File \"/dags/x.py\", line 43, in _fail\n    raise ValueError(\"boom\")\n"
        "ValueError: boom\n[2026-11-26T10:51:47.429+0000] {local_task_job_runner.py:266} INFO - Task exited with return code 1\n"
    )
    error, tb = airflow_logs.error_from_text(text)
    assert error == "ValueError: boom" and tb.startswith("Traceback") and tb.endswith("ValueError: boom")
