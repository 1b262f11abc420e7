"""Configured inhibit rules at the dispatcher's pace, on the real store: a rule's source mutes its
targets while it fires and lets them go when it resolves; alerts that match no rule's source side
(a storm of task failures) never make the dispatcher re-check muting; and what mutes is read
from the store without reading every firing alert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event

from monitor.alerting import dispatch, groups, ingest, verbs
from monitor.config import AlertingSettings
from monitor.model import Event, EventKind
from monitor.store import alerts as alert_store
from monitor.store.tables import AlertRow
from tests.fakes.alerts import task_failed
from tests.integration.test_router import Clock, Recording, push

RUN_MUTES_TASKS = {"source_matchers": ['kind="run_failed"'], "target_matchers": ['kind="task_failed"'], "equal": ["pipeline"]}


def policy(*rules: dict) -> ingest.AlertPolicy:
    alerting = AlertingSettings(group_wait=timedelta(seconds=10), group_interval=timedelta(seconds=60), inhibit_rules=list(rules))
    return ingest.AlertPolicy(receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=alerting)


def run_failed(pipeline: str) -> Event:
    return Event(kind=EventKind.RUN_FAILED, source="af", pipeline=pipeline, run_id="r1", summary=f"{pipeline} failed")


def muted(store) -> dict[str, str | None]:
    with store.session() as s:
        return {f"{a.pipeline}/{a.task_id}": a.muted_by for a in alert_store.list_alerts(s, limit=10_000) if a.task_id}


def test_a_run_failure_mutes_its_pipelines_tasks_while_it_fires_and_only_its_changes_wake_a_recheck(store):
    clock, pager, pol = Clock(), Recording(), policy(RUN_MUTES_TASKS)
    state = dispatch.TickState()  # the dispatcher's own: re-checks muting only when a commit says it changed
    tick = lambda: dispatch.tick(store, {"pager": pager}, pol, clock=clock, state=state)  # noqa: E731
    tick()
    for task in ("a", "b"):
        push(store, task_failed(task, pipeline="etl"), pol, clock)
    push(store, task_failed("c", pipeline="web"), pol, clock)
    assert not store.muting_changed.is_set()  # task failures inhibit nothing under this rule
    clock.advance(11)
    tick()
    assert sorted(a.task_id for n in pager.sent for a in n.alerts) == ["a", "b", "c"]

    run = push(store, run_failed("etl"), pol, clock).fired[0]
    assert store.muting_changed.is_set()
    clock.advance(61)
    tick()
    assert muted(store) == {"etl/a": f"inhibited:{run}", "etl/b": f"inhibited:{run}", "web/c": None}
    last = {a.task_id: n.action.value for n in pager.sent for a in n.alerts if a.task_id}
    assert last == {"a": "firing", "b": "firing", "c": "firing"}  # muted is held, never told resolved

    with store.session() as s:
        verbs.resolve(s, alert_store.get(s, alert_id=run), clock(), event_id=None, note="fixed by hand")
    assert store.muting_changed.is_set()
    clock.advance(61)
    tick()
    assert muted(store) == {"etl/a": None, "etl/b": None, "web/c": None}


def test_a_storm_under_an_inhibit_rule_leaves_muting_alone_and_its_source_still_mutes_it(store):
    clock, pager, pol = Clock(), Recording(), policy(RUN_MUTES_TASKS)
    state = dispatch.TickState()
    for start in range(0, 600, 100):
        with store.session() as s:
            now = clock()
            batch = [task_failed(f"t{i}", pipeline="etl").model_copy(update={"occurred_at": now}) for i in range(start, start + 100)]
            ingest.apply_batch(s, batch, pol, now)
        assert not store.muting_changed.is_set()
        clock.advance(11)
        dispatch.tick(store, {"pager": pager}, pol, clock=clock, state=state)
    run = push(store, run_failed("etl"), pol, clock).fired[0]
    clock.advance(61)
    dispatch.tick(store, {"pager": pager}, pol, clock=clock, state=state)
    assert set(muted(store).values()) == {f"inhibited:{run}"} and len(muted(store)) == 600


def _loaded_by(store, read) -> tuple[object, int]:
    """What `read(session)` returns, and how many alert rows it loaded."""
    loaded = []
    listener = lambda target, _context: loaded.append(target.id)  # noqa: E731
    sa_event.listen(AlertRow, "load", listener)
    try:
        with store.session() as s:
            return read(s), len(loaded)
    finally:
        sa_event.remove(AlertRow, "load", listener)


BY_LABEL = {"source_matchers": ['severity="critical"'], "target_matchers": ['kind="task_failed"'], "equal": ["pipeline"]}


@pytest.mark.parametrize("rules", [[RUN_MUTES_TASKS], [RUN_MUTES_TASKS, BY_LABEL]], ids=["by-field", "one-rule-by-label"])
def test_what_mutes_is_read_without_reading_every_firing_alert_where_the_rules_allow(store, rules):
    clock, pol = Clock(), policy(*rules)
    for i in range(50):
        push(store, task_failed(f"t{i}", pipeline="etl"), pol, clock)
    hot = push(store, task_failed("hot", pipeline="etl").model_copy(update={"labels": {"severity": "critical"}}), pol, clock).fired[0]
    run = push(store, run_failed("etl"), pol, clock).fired[0]
    muting, loaded = _loaded_by(store, lambda s: groups.Muting.read(s, clock(), pol.muting))
    sources = sorted(i for table in muting.inhibitors.tables for ids in table.values() for i, _ in ids)
    if rules == [RUN_MUTES_TASKS]:
        assert (loaded, sources) == (1, [run])  # the run failure alone, found by its kind
    else:  # a rule that names no field: every firing alert is read, only the sources are kept
        assert (loaded, sources) == (52, sorted([hot, run]))
    with store.session() as s:
        target = next(a for a in alert_store.list_alerts(s) if a.task_id == "t0")
        assert muting.of(target, clock()) == f"inhibited:{run}"
