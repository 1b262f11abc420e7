"""PrefectSource's HTTP edge on httpx.MockTransport: pagination, auth, errors without secrets,
back-off with Retry-After, and the set_state answers of a retry."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.config import PrefectSourceSettings
from monitor.retry import Retries
from monitor.sources.base import SourceUnavailable
from monitor.sources.prefect import PrefectSource, RetryRefused
from monitor.sources.prefect_api import PrefectApi

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def _settings(**kw) -> PrefectSourceSettings:
    return PrefectSourceSettings(kind="prefect", name="pf", url="http://prefect.test/api", **kw)


def _run(i: int, **kw) -> dict:
    return {
        "id": f"r{i}",
        "name": f"run-{i}",
        "flow_id": "f1",
        "state_type": "COMPLETED",
        "state_name": "Completed",
        "run_count": 1,
        "start_time": T0.isoformat(),
        "end_time": T0.isoformat(),
        "extra_field_from_newer_server": 1,
        **kw,
    }


def test_poll_pages_by_200_and_builds_one_snapshot_per_run():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        calls.append((request.url.path, body.get("limit"), body.get("offset")))
        if request.url.path.endswith("/flow_runs/filter"):
            if "operator" in body.get("flow_runs", {}):  # the started/ended window: 450 runs
                start = body["offset"]
                return httpx.Response(200, json=[_run(i) for i in range(start, min(start + body["limit"], 450))])
            return httpx.Response(200, json=[])
        if request.url.path.endswith("/flows/filter"):
            return httpx.Response(200, json=[{"id": "f1", "name": "etl"}])
        return httpx.Response(200, json=[])

    source = PrefectSource(_settings(), transport=httpx.MockTransport(handler), clock=Clock())
    snaps = source.poll(T0 - timedelta(minutes=1))
    assert len(snaps) == 450 and {s.pipeline for s in snaps} == {"etl"}
    window = [(limit, offset) for path, limit, offset in calls if path.endswith("/flow_runs/filter")][:3]
    assert window == [(200, 0), (200, 200), (200, 400)]
    assert all(limit is None or limit <= 200 for _, limit, _ in calls)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"api_key": "pnu_SECRET"}, "Bearer pnu_SECRET"),
        ({"basic": "admin:SECRET"}, "Basic " + base64.b64encode(b"admin:SECRET").decode()),
    ],
)
def test_auth_header_is_sent_and_a_401_never_leaks_it(auth, expected):
    seen = []

    def handler(request):
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(401, json={"detail": "Unauthorized"})

    source = PrefectSource(_settings(auth=auth), transport=httpx.MockTransport(handler), clock=Clock())
    with pytest.raises(SourceUnavailable) as err:
        source.poll(None)
    assert seen == [expected]
    assert "401" in str(err.value) and "auth" in str(err.value) and "SECRET" not in str(err.value)


def test_back_off_doubles_honours_retry_after_and_resets_on_success():
    clock, state = Clock(), {"fail": True, "calls": 0}

    def handler(request):
        state["calls"] += 1
        if state["fail"]:
            return httpx.Response(503, headers={"Retry-After": "20"}, text="busy")
        return httpx.Response(200, json=True if request.url.path.endswith("/health") else [])

    source = PrefectSource(_settings(poll_interval=timedelta(seconds=5)), transport=httpx.MockTransport(handler), clock=clock)
    with pytest.raises(SourceUnavailable) as err:
        source.health()
    assert err.value.retry_after == 20  # Retry-After beats the first 5 s step
    clock.now += timedelta(seconds=10)
    with pytest.raises(SourceUnavailable, match="backing off"):
        source.health()
    assert state["calls"] == 1  # not asked while backing off
    clock.now += timedelta(seconds=11)
    with pytest.raises(SourceUnavailable) as err:
        source.health()
    assert err.value.retry_after == 20 and state["calls"] == 2  # 2nd failure: max(10 s, 20 s)
    clock.now += timedelta(seconds=21)
    state["fail"] = False
    assert source.health().healthy and state["calls"] >= 3


def _answers(*statuses: int):
    """A handler answering with `statuses` in turn (then 200), recording what was asked."""
    asked: list[str] = []

    def handler(request):
        asked.append(f"{request.method} {request.url.path}")
        status = statuses[len(asked) - 1] if len(asked) <= len(statuses) else 200
        return httpx.Response(status, json={"exception_message": "Service Unavailable"} if status != 200 else [])

    return handler, asked


@pytest.mark.parametrize("status", [503, 429])
def test_a_503_or_429_is_retried_within_the_call_even_for_a_write(status):
    # Prefect's server answers 503 for errors it declares retryable (a locked SQLite: nothing was
    # done), and its own client retries every method on them; an installer's DELETE must too.
    handler, asked = _answers(status, status)
    waits: list[float] = []
    api = PrefectApi(_settings(), transport=httpx.MockTransport(handler), retries=Retries(sleep=waits.append, rng=random.Random(3)))
    assert api.request("DELETE", "block_documents/b1") is not None
    assert asked == ["DELETE /api/block_documents/b1"] * 3
    assert len(waits) == 2 and 0.125 <= waits[0] < 0.375 and 0.25 <= waits[1] < 0.75


def test_retries_are_bounded_and_other_errors_are_not_retried():
    handler, asked = _answers(503, 503, 503, 503)
    api = PrefectApi(_settings(), transport=httpx.MockTransport(handler), retries=Retries(sleep=lambda _: None))
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        api.request("POST", "flow_runs/filter", {})
    assert len(asked) == 3  # the first and two retries

    handler, asked = _answers(500)
    api = PrefectApi(_settings(), transport=httpx.MockTransport(handler), retries=Retries(sleep=lambda _: None))
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        api.request("POST", "automations/", {})
    assert len(asked) == 1  # a 500 may have done the write: the caller decides


def test_unreachable_is_source_unavailable():
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(SourceUnavailable, match="unreachable"):
        PrefectSource(_settings(), transport=httpx.MockTransport(handler), clock=Clock()).health()


def _retry_handler(status: dict):
    def handler(request):
        path = request.url.path
        if path.endswith("/flow_runs/r1"):
            return httpx.Response(
                200,
                json=_run(
                    1,
                    state_type="FAILED",
                    state_name="Failed",
                    deployment_id=None,
                    state={"type": "FAILED", "name": "Failed", "message": "boom"},
                ),
            )
        if path.endswith("/set_state"):
            assert json.loads(request.content)["state"]["name"] == "AwaitingRetry"
            return httpx.Response(200, json=status)
        return httpx.Response(200, json=[])

    return handler


def test_set_state_abort_is_a_clear_refusal_and_dry_run_asks_nothing():
    abort = {"status": "ABORT", "details": {"reason": "Cannot reschedule a run without an associated deployment."}, "state": None}
    source = PrefectSource(_settings(), transport=httpx.MockTransport(_retry_handler(abort)), clock=Clock())
    dry = source.clear_failed("etl", "r1", None, dry_run=True)
    assert dry.dry_run and dry.tasks == ("(flow)",) and "refuse" in dry.message
    with pytest.raises(RetryRefused, match="ABORT: Cannot reschedule a run without an associated deployment"):
        source.clear_failed("etl", "r1", None, dry_run=False)


def test_set_state_accept_is_followed_by_later_polls():
    accept = {"status": "ACCEPT", "details": {}, "state": {"type": "SCHEDULED", "name": "AwaitingRetry"}}
    source = PrefectSource(_settings(), transport=httpx.MockTransport(_retry_handler(accept)), clock=Clock())
    result = source.clear_failed("etl", "r1", None, dry_run=False)
    assert not result.dry_run and "AwaitingRetry" in result.message and "r1" in source._follow


def _log_handler(task_ended: datetime, batches: list[list[dict]]):
    """A failed task run `join_users` that ended at `task_ended`; each logs/filter read answers the
    next batch of lines (Prefect ships a run's lines in batches, after its state)."""
    reads: list[int] = []

    def handler(request):
        path = request.url.path
        if path.endswith("/task_runs/filter"):
            run = {**_run(7, state_type="FAILED", state_name="Failed", end_time=task_ended.isoformat()), "name": "join_users-0"}
            return httpx.Response(200, json=[{**run, "dynamic_key": "0", "flow_run_id": "r1", "task_key": "join_users"}])
        if path.endswith("/logs/filter"):
            if json.loads(request.content)["offset"] == 0:
                reads.append(1)
            return httpx.Response(200, json=batches[min(len(reads), len(batches)) - 1])
        return httpx.Response(200, json=[])

    return handler, reads


def _line(level: int, message: str) -> dict:
    return {"level": level, "message": message, "timestamp": T0.isoformat(), "flow_run_id": "r1", "task_run_id": "r7"}


def test_a_failed_task_log_read_before_its_error_line_arrived_is_read_again_once():
    # Seen in CI: a runbook read the log of a task Prefect had just failed and found no traceback
    # (its ERROR line came in Prefect's next log batch, up to 2 s later).
    clock, waits = Clock(), []
    started = [_line(20, "Reading users")]
    failed = started + [
        _line(40, "Task run failed with exception: KeyError('user_id')\nTraceback (most recent call last):\nKeyError: 'user_id'")
    ]
    handler, reads = _log_handler(T0 - timedelta(seconds=1), [started, failed])
    source = PrefectSource(_settings(), transport=httpx.MockTransport(handler), clock=clock, sleep=waits.append)
    text = source.task_log("etl", "r1", "join_users", 1)
    assert "Traceback (most recent call last)" in text and len(reads) == 2
    assert waits == [4.0]  # until LOG_SETTLE after the task ended, not a fixed nap

    # Long after the end, a log without an ERROR line is what there is: read once, no wait.
    handler, reads = _log_handler(T0 - timedelta(seconds=30), [started, failed])
    source = PrefectSource(_settings(), transport=httpx.MockTransport(handler), clock=clock, sleep=waits.append)
    assert "Traceback" not in source.task_log("etl", "r1", "join_users", 1) and len(reads) == 1 and waits == [4.0]

    # A log that already has its ERROR line is not read twice.
    handler, reads = _log_handler(T0, [failed])
    source = PrefectSource(_settings(), transport=httpx.MockTransport(handler), clock=clock, sleep=waits.append)
    assert "Traceback" in source.task_log("etl", "r1", "join_users", 1) and len(reads) == 1 and waits == [4.0]
