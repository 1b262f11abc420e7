"""The dispatcher ticks every second for its timed work (held resolves due, retrying alerts to
promote, unacknowledged pages to escalate), due groups and the outbox. None of it may read every
firing alert: at 100,000 firing, the held and retrying lookups alone took 47 ms a second before
they had indexes of their own. SQLite's plan of each statement of a steady tick says what it reads."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from monitor.alerting import dispatch, ingest
from monitor.config import AlertingSettings
from monitor.store import Store
from tests.fakes.alerts import task_failed
from tests.fakes.clock import Clock

POLICY = ingest.AlertPolicy(
    receivers=[("pager", "pagerduty")],
    base_url="http://127.0.0.1:8000",
    alerting=AlertingSettings(retry_page_after=timedelta(minutes=10), escalate_after=timedelta(minutes=15), escalate_to=["pager"]),
)


class Pager:
    kind = "pagerduty"

    def notify(self, notification):  # noqa: ANN001 - the Notifier protocol
        return {}


def test_a_steady_tick_reads_no_alert_it_does_not_need(store: Store):
    clock = Clock()
    with store.session() as s:
        ingest.apply_batch(s, [task_failed(f"t{i}", occurred_at=clock()) for i in range(40)], POLICY, clock())
    state, pager = dispatch.TickState(), {"pager": Pager()}
    clock.advance(timedelta(minutes=1))
    dispatch.tick(store, pager, POLICY, clock=clock, state=state)  # the first tick reads what mutes; later ones need not
    plans: list[tuple[str, str]] = []

    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's hook
        flat = " ".join(statement.split())
        if flat.startswith("SELECT") and " FROM alerts " in flat + " ":
            plan = " | ".join(row[-1] for row in cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            plans.append((flat[-120:], plan))

    event.listen(store.engine, "before_cursor_execute", explain)
    try:
        clock.advance(timedelta(seconds=2))  # past the timers' second
        dispatch.tick(store, pager, POLICY, clock=clock, state=state)
    finally:
        event.remove(store.engine, "before_cursor_execute", explain)
    assert len(plans) >= 3, plans  # held resolves, retrying alerts, unacknowledged pages
    for statement, plan in plans:
        # status alone, or status and age, narrows to every firing alert, or every old one
        assert not any(whole in plan for whole in ("SCAN alerts", "(status=?)", "(status=? AND started_at<?)")), f"{statement}: {plan}"


def test_a_groups_first_flush_looks_for_no_older_notification_to_supersede_and_its_second_does(store: Store):
    """Only a flush makes a group's notifications, so a group never flushed has none waiting: the
    supersede `UPDATE` (one statement on every alert's way to its first page) is skipped for it."""
    clock, pager = Clock(), {"pager": Pager()}
    policy = ingest.AlertPolicy(receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=AlertingSettings())
    updates: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's hook
        if statement.lstrip().startswith("UPDATE notifications"):
            updates.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        counts = []
        for task in ("a", "b"):
            with store.session() as s:
                ingest.apply_batch(s, [task_failed(task, occurred_at=clock())], policy, clock())
            clock.advance(timedelta(minutes=10))  # past group_wait, then past group_interval
            dispatch.tick(store, pager, policy, clock=clock, state=dispatch.TickState())
            counts.append(sum("status=" in u and "group_id IN" in u for u in updates))
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert counts == [0, 1]


def test_one_new_alert_reaches_its_receiver_in_few_statements(store: Store):
    """Each statement on this path costs every alert pushed alone. Ingest: the event, the firing
    lookups (by fingerprint and by pipeline, one statement), the alert, its history, the group (a read, an insert
    that returns it due) and the membership. The dispatcher's tick: due groups, their members,
    the notification and its alert, the group's timing, when the next group is due; then the delivery recorded in one
    update and a look for its receiver's outage. No outbox read between timed rounds, no second
    read of the new group, no read of the notification before recording it."""
    clock, pager = Clock(), {"pager": Pager()}
    policy = ingest.AlertPolicy(
        receivers=[("pager", "pagerduty")], base_url="http://127.0.0.1:8000", alerting=AlertingSettings(group_wait=timedelta(0))
    )
    state = dispatch.TickState()
    with store.session() as s:  # a first alert: this second's timed round, and what mutes, are read with it
        ingest.apply_batch(s, [task_failed("a", pipeline="warm", occurred_at=clock())], policy, clock())
    assert dispatch.tick(store, pager, policy, clock=clock, state=state) == 1
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's hook
        statements.append(" ".join(statement.split()[:3]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.session() as s:
            ingest.apply_batch(s, [task_failed("b", occurred_at=clock())], policy, clock())
        ingested = len(statements)
        assert dispatch.tick(store, pager, policy, clock=clock, state=state) == 1
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert ingested <= 7, statements[:ingested]
    assert len(statements) - ingested <= 8, statements[ingested:]
    assert not any(s.startswith("SELECT notifications") for s in statements), statements
