"""The alert state machine: fire, dedup, resolve — by kind and scope."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.alerting.lifecycle import Fire, FiringAlert, Repeat, Resolve, fingerprint, plan
from monitor.model import AlertKind, Event, EventKind, Tier


def ev(kind: EventKind, **kw) -> Event:
    base = {"source": "s", "pipeline": "p", "run_id": "r1", "task_id": None}
    base.update(kw)
    return Event(kind=kind, **base)


def firing(alert_id: int, kind: AlertKind, event: Event, check: str | None = None) -> FiringAlert:
    return FiringAlert(
        id=alert_id,
        kind=kind,
        fingerprint=fingerprint(kind, event),
        source=event.source,
        pipeline=event.pipeline,
        run_id=event.run_id,
        task_id=event.task_id,
        check=check,
        failed_at=event.occurred_at,
    )


T0 = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_run_failure_fires_p1():
    [change] = plan(ev(EventKind.RUN_FAILED), [])
    assert isinstance(change, Fire) and change.tier is Tier.P1 and change.kind is AlertKind.RUN_FAILED


def test_same_run_failing_again_is_a_repeat_and_a_new_run_is_a_new_alert():
    first = ev(EventKind.RUN_FAILED)
    current = [firing(1, AlertKind.RUN_FAILED, first)]
    assert plan(ev(EventKind.RUN_FAILED), current) == [Repeat(1)]
    [change] = plan(ev(EventKind.RUN_FAILED, run_id="r2"), current)
    assert isinstance(change, Fire)


def test_dedup_key_overrides_identity():
    a = ev(EventKind.QUALITY_FAILED, dedup_key="orders-nulls", run_id="r1")
    b = ev(EventKind.QUALITY_FAILED, dedup_key="orders-nulls", run_id="r9")
    assert fingerprint(AlertKind.QUALITY_FAILED, a) == fingerprint(AlertKind.QUALITY_FAILED, b)


def test_later_successful_run_resolves_pipeline_failures_only_of_that_pipeline():
    failed = ev(EventKind.RUN_FAILED)
    task_failed = ev(EventKind.TASK_FAILED, task_id="t")
    other = ev(EventKind.RUN_FAILED, pipeline="other")
    current = [
        firing(1, AlertKind.RUN_FAILED, failed),
        firing(2, AlertKind.TASK_FAILED, task_failed),
        firing(3, AlertKind.RUN_FAILED, other),
    ]
    assert plan(ev(EventKind.RUN_SUCCEEDED, run_id="r2"), current) == [Resolve(1), Resolve(2)]


def test_task_success_resolves_its_retrying_alert_but_not_other_tasks():
    retrying = ev(EventKind.TASK_RETRYING, task_id="t")
    other = ev(EventKind.TASK_RETRYING, task_id="u")
    current = [firing(1, AlertKind.TASK_RETRYING, retrying), firing(2, AlertKind.TASK_RETRYING, other)]
    assert plan(ev(EventKind.TASK_SUCCEEDED, task_id="t"), current) == [Resolve(1)]


def test_final_task_failure_supersedes_its_retrying_alert():
    retrying = ev(EventKind.TASK_RETRYING, task_id="t")
    changes = plan(ev(EventKind.TASK_FAILED, task_id="t"), [firing(1, AlertKind.TASK_RETRYING, retrying)])
    assert changes[0] == Resolve(1)
    assert isinstance(changes[1], Fire) and changes[1].kind is AlertKind.TASK_FAILED


def test_check_passed_resolves_the_same_check_only():
    bad = ev(EventKind.QUALITY_FAILED, details={"check": "orders_suite"})
    other = ev(EventKind.QUALITY_FAILED, details={"check": "users_suite"})
    current = [firing(1, AlertKind.QUALITY_FAILED, bad, "orders_suite"), firing(2, AlertKind.QUALITY_FAILED, other, "users_suite")]
    assert plan(ev(EventKind.CHECK_PASSED, details={"check": "orders_suite"}), current) == [Resolve(1)]


def test_source_up_resolves_source_down():
    down = ev(EventKind.SOURCE_DOWN, pipeline=None, run_id=None)
    assert plan(ev(EventKind.SOURCE_UP, pipeline=None, run_id=None), [firing(5, AlertKind.SOURCE_DOWN, down)]) == [Resolve(5)]


def test_tiers_follow_the_design_table():
    expected = {
        EventKind.CONVERGENCE_FAILED: Tier.P1,
        EventKind.SOURCE_DOWN: Tier.P1,
        EventKind.QUALITY_FAILED: Tier.P2,
        EventKind.POLICY_VIOLATION: Tier.P2,
        EventKind.DRIFT_DETECTED: Tier.P3,
        EventKind.RUN_LATE: Tier.P3,
    }
    for kind, tier in expected.items():
        [change] = plan(ev(kind), [])
        assert change.tier is tier, kind


def test_good_news_alone_changes_nothing():
    assert plan(ev(EventKind.RUN_SUCCEEDED), []) == []


def test_a_resolved_problem_event_resolves_its_own_alert_only():
    down = ev(EventKind.SOURCE_DOWN, pipeline=None, run_id=None, dedup_key="am-123")
    current = [firing(4, AlertKind.SOURCE_DOWN, down)]
    assert plan(ev(EventKind.SOURCE_DOWN, pipeline=None, run_id=None, dedup_key="am-123", resolved=True), current) == [Resolve(4)]
    assert plan(ev(EventKind.SOURCE_DOWN, pipeline=None, run_id=None, dedup_key="am-999", resolved=True), current) == []


def test_an_older_runs_success_does_not_resolve_a_newer_failure():
    """Issue 8, case 2: `manual__…` sorts before `scheduled__…`, and pushed events can arrive late."""
    newer = ev(EventKind.RUN_FAILED, run_id="scheduled__2", occurred_at=at(10))
    task = ev(EventKind.TASK_FAILED, run_id="scheduled__2", task_id="fit", occurred_at=at(9))
    current = [firing(1, AlertKind.RUN_FAILED, newer), firing(2, AlertKind.TASK_FAILED, task)]
    assert plan(ev(EventKind.RUN_SUCCEEDED, run_id="manual__1", occurred_at=at(5)), current) == []
    assert plan(ev(EventKind.RUN_SUCCEEDED, run_id="manual__3", occurred_at=at(11)), current) == [Resolve(1), Resolve(2)]


def test_another_runs_success_leaves_a_retrying_or_stuck_task_firing():
    """Issue 8, case 3: run A still retrying may yet fail; run B's success says nothing about it."""
    retrying = ev(EventKind.TASK_RETRYING, run_id="manual__a", task_id="fit", occurred_at=at(1))
    stuck = ev(EventKind.TASK_STUCK, run_id="manual__a", task_id="load", occurred_at=at(1))
    current = [firing(1, AlertKind.TASK_RETRYING, retrying), firing(2, AlertKind.TASK_STUCK, stuck)]
    assert plan(ev(EventKind.RUN_SUCCEEDED, run_id="scheduled__b", occurred_at=at(5)), current) == []
    assert plan(ev(EventKind.RUN_SUCCEEDED, run_id="manual__a", occurred_at=at(6)), current) == [Resolve(1), Resolve(2)]


def test_a_resolved_event_older_than_the_failure_resolves_nothing():
    failing = ev(EventKind.QUALITY_FAILED, details={"check": "orders"}, occurred_at=at(10))
    current = [firing(1, AlertKind.QUALITY_FAILED, failing, "orders")]
    assert plan(ev(EventKind.QUALITY_FAILED, details={"check": "orders"}, resolved=True, occurred_at=at(9)), current) == []
    assert plan(ev(EventKind.CHECK_PASSED, details={"check": "orders"}, occurred_at=at(9)), current) == []
    assert plan(ev(EventKind.CHECK_PASSED, details={"check": "orders"}, occurred_at=at(10)), current) == [Resolve(1)]


def test_every_alert_kind_is_in_the_table_and_event_kinds_derive_from_it():
    from monitor.model import KINDS, GoodNews

    assert set(KINDS) == set(AlertKind)
    assert {k.value for k in EventKind} == {k.value for k in AlertKind} | {g.value for g in GoodNews}
    assert all(EventKind(k.value).alert_kind is k for k in AlertKind)
