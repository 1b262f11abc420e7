"""What replicas sharing one database agree on, decided by the database alone: leases (which
replica polls which source), claimed fire times of schedules, and run numbers.

No election protocol of our own: a lease is a row that one statement takes or renews
(`UPDATE … WHERE holder = me OR expires_at < now`), and PostgreSQL's row locks and transactions
make every decision once. Times come from the database's clock on PostgreSQL, so replicas on
hosts whose clocks disagree still agree on when a lease expired.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from monitor.errors import DagwatchError
from monitor.model import utcnow
from monitor.store import dialect
from monitor.store.db import Store
from monitor.store.tables import LeaseRow, RunNumberRow, ScheduleFireRow

SOURCE = "source:"
REPLICA = "replica:"
#: How long a claimed fire time is remembered: far longer than any schedule's misfire grace.
FIRES_KEPT = timedelta(days=1)


class LeaseLost(DagwatchError):
    """Another replica holds the lease now (this one stalled past its expiry): the work done
    under it must not be committed; the new holder does it again."""


@cache
def replica_id() -> str:
    """This process's name among the replicas: host and pid say where it runs, the random part
    keeps a restarted process with a reused pid from passing for its predecessor."""
    return f"{socket.gethostname()[:120]}-{os.getpid()}-{secrets.token_hex(3)}"


def database_now(session: Session) -> datetime:
    return session.scalar(select(func.clock_timestamp())) if dialect.is_postgresql(session) else utcnow()  # type: ignore[return-value]


@dataclass(frozen=True)
class Holding:
    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime


def acquire(session: Session, name: str, holder: str, ttl: timedelta) -> bool:
    """Take `name` if it is free or expired, or renew it if `holder` has it; True if `holder`
    now holds it for `ttl`. The updated row stays locked until the transaction ends."""
    now = database_now(session)
    if dialect.insert_new(
        session, LeaseRow.__table__, {"name": name, "holder": holder, "expires_at": now + ttl, "acquired_at": now}, ["name"]
    ):
        return True
    taken = session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < now))
        .values(holder=holder, expires_at=now + ttl, acquired_at=case((LeaseRow.holder == holder, LeaseRow.acquired_at), else_=now))
    )
    return bool(taken.rowcount)


def renew(session: Session, name: str, holder: str, ttl: timedelta) -> bool:
    """Extend `holder`'s lease (even past its expiry, as long as nobody took it); False if it
    is not `holder`'s. Never takes a lease: a replica starts new work only where `acquire` let it."""
    now = database_now(session)
    result = session.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder).values(expires_at=now + ttl))
    return bool(result.rowcount)


def renew_all(session: Session, holder: str, ttl: timedelta) -> set[str]:
    """Extend every lease `holder` has; the names it still holds."""
    now = database_now(session)
    renewed = session.execute(update(LeaseRow).where(LeaseRow.holder == holder).values(expires_at=now + ttl).returning(LeaseRow.name))
    return set(renewed.scalars())


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))


def release_all(session: Session, holder: str) -> None:
    """A replica that stops hands its work over at once instead of after the lease time."""
    session.execute(delete(LeaseRow).where(LeaseRow.holder == holder))


def holdings(session: Session) -> list[Holding]:
    rows = session.scalars(select(LeaseRow).order_by(LeaseRow.name))
    return [Holding(row.name, row.holder, row.expires_at, row.acquired_at) for row in rows]


def live_replicas(session: Session) -> int:
    """Replicas whose presence lease has not expired (at least this one)."""
    now = database_now(session)
    return (
        session.scalar(select(func.count()).select_from(LeaseRow).where(LeaseRow.name.startswith(REPLICA), LeaseRow.expires_at >= now)) or 0
    )


def claim_fire(session: Session, *, source: str, pipeline: str, scheduled_for: datetime, replica: str) -> bool:
    """True for exactly one replica per (pipeline, fire time): the one that runs it."""
    session.execute(
        delete(ScheduleFireRow).where(
            ScheduleFireRow.source == source,
            ScheduleFireRow.pipeline == pipeline,
            ScheduleFireRow.scheduled_for < scheduled_for - FIRES_KEPT,
        )
    )
    return dialect.insert_new(
        session,
        ScheduleFireRow.__table__,
        {
            "source": source,
            "pipeline": pipeline,
            "scheduled_for": scheduled_for,
            "replica": replica,
        },
        ["source", "pipeline", "scheduled_for"],
    )


def next_run_number(session: Session, *, source: str, pipeline: str) -> int:
    """0, 1, 2, … per pipeline, each handed out once across replicas (the counter row is
    incremented in place; the first run's insert races on the primary key)."""
    where = (RunNumberRow.source == source, RunNumberRow.pipeline == pipeline)
    for _ in range(2):
        taken = session.scalar(update(RunNumberRow).where(*where).values(taken=RunNumberRow.taken + 1).returning(RunNumberRow.taken))
        if taken is not None:
            return taken - 1
        if dialect.insert_new(
            session, RunNumberRow.__table__, {"source": source, "pipeline": pipeline, "taken": 1}, ["source", "pipeline"]
        ):
            return 0
    raise RuntimeError(f"the run number counter of {source}/{pipeline} vanished while it was taken")  # nothing deletes it


@dataclass(frozen=True)
class Lease:
    """One named lease as one replica sees it: the collector of a source asks it before polling
    and fences its poll's transaction with it."""

    store: Store
    name: str
    holder: str
    ttl: timedelta

    def held(self) -> bool:
        """Still ours (renewed for another `ttl`)? Taking a lease is the heartbeat's job."""
        with self.store.session() as session:
            return renew(session, self.name, self.holder, self.ttl)

    def fence(self, session: Session) -> None:
        """Renew inside `session`, the transaction about to commit the work: its row lock makes
        a takeover wait for that commit, and if the lease was taken meanwhile, `LeaseLost`
        rolls the work back."""
        if not renew(session, self.name, self.holder, self.ttl):
            raise LeaseLost(f"lease {self.name} is no longer held by {self.holder}; its new holder does this work")
