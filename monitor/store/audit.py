"""The audit log: every change a person or a pipeline makes, and every refusal of a known caller.

A change that is a database write records its entry in the same session, so the action and its
entry commit (or roll back) together. Entries carry names, never tokens or secrets. Old entries
are deleted as new ones are written, a bounded batch at a time, so retention needs no job of its
own and a write never waits on a large delete.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from monitor.store.tables import AuditRow

KEEP = timedelta(days=90)
PRUNE_BATCH = 100  # rows deleted per write at most: writes outnumber expiring rows, so this keeps up


class Via(enum.Enum):
    API = "api"
    PAGE = "page"
    SLACK = "slack"
    CLI = "cli"
    PROXY = "proxy"  # an API call or page form whose caller a trusted auth proxy named


class Outcome(enum.Enum):
    OK = "ok"
    REFUSED = "refused"


def _clip(limit: int) -> BeforeValidator:
    """Names and reasons can come from callers (a proxy's user header, a Slack id): an entry is
    shortened to its column, never refused — the action must not fail for its audit line."""
    return BeforeValidator(lambda value: str(value)[:limit])


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    actor: Annotated[str, _clip(200)]
    via: Via
    action: Annotated[str, _clip(64)]
    target: Annotated[str, _clip(500)] = ""
    address: Annotated[str, _clip(200)] = ""
    outcome: Outcome = Outcome.OK
    reason: Annotated[str, _clip(1000)] = ""
    detail: Annotated[str, _clip(1000)] = ""


_AUDIT = AuditRow.__table__
_INSERT = insert(_AUDIT)  # built once: every audited write runs it


def record(session: Session, entry: Entry, *, now: datetime, keep: timedelta = KEEP) -> None:
    record_many(session, [entry], now=now, keep=keep)


def record_many(session: Session, entries: list[Entry], *, now: datetime, keep: timedelta = KEEP) -> None:
    """Core, not ORM: every pushed event's request writes one (the unit of work cost more than the
    insert), and requests that share a transaction (the group committer) write theirs in one
    insert, after one prune that deletes at least as many expired rows as it adds."""
    if not entries:
        return
    prune(session, before=now - keep, batch=PRUNE_BATCH + len(entries))
    session.execute(_INSERT, [{"at": now, **entry.model_dump(mode="json")} for entry in entries])


#: Built once, on the table (Core): every audited write runs it; building it anew, or the ORM's
#: bulk-delete machinery, cost more than running it on the index.
_PRUNE = delete(_AUDIT).where(
    _AUDIT.c.id.in_(
        select(_AUDIT.c.id).where(_AUDIT.c.at < bindparam("before")).order_by(_AUDIT.c.at).limit(bindparam("batch")).scalar_subquery()
    )
)


def prune(session: Session, *, before: datetime, batch: int = PRUNE_BATCH) -> None:
    session.execute(_PRUNE, {"before": before, "batch": batch})


def query(
    session: Session, *, since: datetime | None = None, actor: str | None = None, action: str | None = None, limit: int = 100
) -> list[AuditRow]:
    """Newest first."""
    wanted = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
    if since is not None:
        wanted = wanted.where(AuditRow.at >= since)
    if actor is not None:
        wanted = wanted.where(AuditRow.actor == actor)
    if action is not None:
        wanted = wanted.where(AuditRow.action == action)
    return list(session.scalars(wanted))


def execution_detail(execution_id: int, *, joined: bool, dry_run: bool) -> str:
    """A runbook start's detail, alike from every entry point."""
    return f"execution #{execution_id}" + (" (joined the existing one)" if joined else "") + (" dry run" if dry_run else "")
