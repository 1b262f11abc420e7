"""The replay guard of signed requests (Slack clicks), kept in the database.

Slack's signature check accepts the same signed request as often as it is sent within ±5
minutes; a captured click replayed would ack, silence or run a runbook again. A guard in memory
forgets at a restart and is not shared by replicas; here the database's unique key decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

from sqlalchemy import delete
from sqlalchemy.orm import Session

from monitor.store import dialect
from monitor.store.db import Store
from monitor.store.tables import ReplayKeyRow


def first_time(session: Session, keys: Sequence[str], now: datetime, window: timedelta) -> bool:
    """Remember `keys` for `window`; False if any of them is remembered already."""
    session.execute(delete(ReplayKeyRow).where(ReplayKeyRow.expires_at <= now))
    fresh = [dialect.insert_new(session, ReplayKeyRow.__table__, {"key": key[:200], "expires_at": now + window}, ["key"]) for key in keys]
    return all(fresh)


@dataclass(frozen=True)
class StoreReplayGuard:
    """`slack.ReplayGuard` over the store: `now` in epoch seconds, as the signature check has it."""

    store: Store
    window: timedelta = timedelta(minutes=5)

    def first_time(self, keys: list[str], now: float) -> bool:
        with self.store.session() as session:
            return first_time(session, keys, datetime.fromtimestamp(now, timezone.utc), self.window)
