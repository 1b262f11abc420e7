"""A big group's notification built from the dispatcher's memory (alerting/render_memo.py) says
exactly what one built from a fresh read says, whatever changed the alerts in between — an
event, a verb, a silence, or a write the memo never saw (another process) — and the alerts that
did not change are not rendered again. Runs on PostgreSQL too (tests/integration/postgres/test_alert_flow_pg.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Float, select, update

from monitor.alerting import dispatch, groups, ingest, verbs
from monitor.alerting.render_memo import RenderMemo
from monitor.config import AlertingSettings
from monitor.model import Event
from monitor.store import Store
from monitor.store import alerts as alert_store
from monitor.store.tables import AlertGroupRow, AlertRow
from tests.fakes.alerts import task_failed
from tests.fakes.clock import Clock

POLICY = ingest.AlertPolicy(
    receivers=[("pager", "pagerduty")],
    base_url="http://127.0.0.1:8000",
    alerting=AlertingSettings(group_wait=timedelta(seconds=1), group_interval=timedelta(seconds=1)),
)
TASKS = 12


def failed(task: str, clock: Clock, **fields) -> Event:
    return task_failed(task, occurred_at=clock(), **fields)


def push(store: Store, events: list[Event], clock: Clock) -> None:
    with store.session() as s:
        ingest.apply_batch(s, events, POLICY, clock())


def flush(store: Store, memo: RenderMemo, clock: Clock) -> tuple[list, list]:
    """One flush of the due groups through `memo`: the messages' alert models, and the same alerts
    rendered from a fresh read in a transaction of their own."""
    clock.advance(timedelta(seconds=2))
    with store.session() as s:
        flushed = groups.flush_due(s, clock(), memo=memo)
        built = [memo.models(s, f.alerts, POLICY) for f in flushed]
    with store.session() as s:
        fresh = [
            alert_store.to_models(s, alert_store.get_many(s, alert_ids=[m.id for m in models]), base_url=POLICY.base_url, deliveries=False)
            for models in built
        ]
    return built, fresh


def dumped(models_per_message: list[list]) -> list[list[dict]]:
    return [[m.model_dump(mode="json") for m in models] for models in models_per_message]


def test_what_the_memo_builds_is_what_a_fresh_read_says_and_unchanged_alerts_are_reused(store: Store):
    clock, memo = Clock(), RenderMemo(from_size=1)
    push(store, [failed(f"t{i}", clock) for i in range(TASKS)], clock)
    built, fresh = flush(store, memo, clock)  # a new group: read the usual way, nothing to remember yet
    assert dumped(built) == dumped(fresh) and len(built[0]) == TASKS and len(memo) == 0

    push(store, [failed("t-new", clock)], clock)
    built, fresh = flush(store, memo, clock)  # told of 12 now: the memo reads it, and remembers
    assert dumped(built) == dumped(fresh) and len(built[0]) == TASKS + 1 and len(memo) == TASKS + 1
    before = {m.id: m for m in built[0]}

    with store.session() as s:  # changes of every kind, and one the memo never hears of
        first, second, third = sorted(before)[:3]
        verbs.ack(s, alert_id=first, who="op", now=clock())
        verbs.silence(s, matchers={"task": "t5"}, starts_at=clock(), ends_at=clock() + timedelta(hours=1), who="op", now=clock())
        s.execute(update(AlertRow).where(AlertRow.id == second).values(summary="edited by another process", details={"why": "x"}))
    push(store, [failed("t2", clock, details={"error": "again"}), failed("t3", clock, resolved=True)], clock)
    built, fresh = flush(store, memo, clock)
    assert dumped(built) == dumped(fresh)
    after = {m.id: m for m in built[0]}
    changed = {a for a in after if a not in before or after[a].model_dump() != before[a].model_dump()}
    assert {first, second, third} <= changed  # acked, edited behind its back, repeated
    assert after[second].summary == "edited by another process"
    kept = [a for a in after if a not in changed]
    assert len(kept) >= TASKS - 4 and all(after[a] is before[a] for a in kept), "an unchanged alert was rendered again"
    assert len(memo) == TASKS  # the resolved one, now told, left its group and the memo


def test_a_change_of_policy_or_of_what_silences_match_is_seen(store: Store):
    """Links depend on the policy (the dashboard's base URL); muting on each version's attributes."""
    clock, memo = Clock(), RenderMemo(from_size=1)
    push(store, [failed(f"t{i}", clock) for i in range(TASKS)], clock)
    flush(store, memo, clock)
    push(store, [failed("t-new", clock)], clock)
    built, _ = flush(store, memo, clock)
    moved = ingest.AlertPolicy(receivers=POLICY.receivers, base_url="https://dagwatch.example", alerting=POLICY.alerting)
    with store.session() as s:
        group_id = s.scalar(select(AlertGroupRow.id))
        rows = memo.members(s, group_ids=[group_id])[group_id]
        assert {m.links["dashboard"].split("/alerts/")[0] for m in memo.models(s, rows, moved)} == {"https://dagwatch.example"}
        assert memo.models(s, rows, POLICY)[0].links["dashboard"].startswith(POLICY.base_url)
    target = built[0][0].id
    with store.session() as s:  # the tier changes behind the memo's back, and a silence matches the new one
        s.execute(update(AlertRow).where(AlertRow.id == target).values(tier="P2"))
        silence = verbs.silence(s, matchers={"tier": "P2"}, starts_at=clock(), ends_at=clock() + timedelta(hours=1), who="op", now=clock())
        silence_id = silence.id
    push(store, [failed("t-other", clock)], clock)
    flush(store, memo, clock)
    with store.session() as s:
        assert alert_store.get(s, alert_id=target).muted_by == f"silence:{silence_id}"


def test_no_float_column_in_alerts_whose_text_would_be_rounded():
    """The memo's key is each column as the database's text; SQLite writes a REAL to 15 digits."""
    assert not [c.name for c in AlertRow.__table__.c if isinstance(c.type, Float)]


@pytest.mark.parametrize("bound, kept", [({"limit": 5}, 5), ({"text_budget": 1}, 0)], ids=["alerts", "text"])
def test_a_memo_smaller_than_the_group_still_tells_the_truth(store: Store, bound: dict, kept: int):
    clock, memo = Clock(), RenderMemo(from_size=1, **bound)
    push(store, [failed(f"t{i}", clock) for i in range(TASKS)], clock)
    flush(store, memo, clock)
    for round_ in range(3):
        push(store, [failed(f"more{round_}", clock)], clock)
        built, fresh = flush(store, memo, clock)
        assert dumped(built) == dumped(fresh) and len(built[0]) == TASKS + round_ + 1
        assert len(memo) == kept


def test_the_dispatcher_sends_a_big_group_through_its_memo(store: Store):
    """`dispatch.tick` with the dispatcher's state: the receiver hears the same as without."""
    sent: list = []

    class Pager:
        kind = "pagerduty"

        def notify(self, notification):
            sent.append(notification)
            return {}

    clock = Clock()
    state = dispatch.TickState(always=True, memo=RenderMemo(from_size=1))
    pager = {"pager": Pager()}
    push(store, [failed(f"t{i}", clock) for i in range(TASKS)], clock)
    for step in range(4):
        if step:
            push(store, [failed(f"new{step}", clock), failed(f"t{step}", clock, details={"step": step})], clock)
        clock.advance(timedelta(seconds=2))
        dispatch.tick(store, pager, POLICY, clock=clock, state=state)
    assert len(sent) == 4 and len(state.memo) == TASKS + 3  # read through the memo from the second flush on
    with store.session() as s:
        rows = alert_store.get_many(s, alert_ids=[a.id for a in sent[-1].alerts])
        fresh = alert_store.to_models(s, rows, base_url=POLICY.base_url, deliveries=False)
    assert [a.model_dump() for a in sent[-1].alerts] == [a.model_dump() for a in fresh]
    assert [a.details for a in sent[-1].alerts[:4]] == [{}, {"step": 1}, {"step": 2}, {"step": 3}]
