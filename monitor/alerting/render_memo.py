"""What the dispatcher makes of a big group's alerts, remembered between its flushes: the typed
row, the attributes muting matches, the model the message carries. Each notification lists the
group's whole state (as Alertmanager's do), so without this, telling a receiver that one more
task of a 10,000-task storm failed decoded and rendered all 10,000 alerts again (~60 µs each);
with it, only the alerts that changed are.

Keyed by the text of every column of the alert's row as the database holds it, not by a version
or `updated_at`: anything may change an alert (a verb, the recheck of muting, another replica,
the CLI in another process), and not all of them move `updated_at`. The text is read on every
flush (a few µs an alert, no decoding) and cannot go stale; the typed row and its text are read
in one statement, so an entry always describes one version of the alert.

Only groups the receiver was already told of at least `from_size` alerts go through the memo: a
small group costs little to render afresh and the memo's second query would cost it more, and a
new group has nothing to remember. At most `limit` alerts and `text_budget` of their text are
kept, least recently flushed out: a group bigger than that re-reads only the alerts beyond it on
each flush. An alert resolved and dropped from its group is forgotten at once.

The text is compared as SQLite and PostgreSQL write it, which is exact for every column of
`alerts` (text, integers, JSON, timestamps); SQLite would round a REAL to 15 digits, so
tests/integration/test_render_memo.py keeps floats out of the table.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection, Sequence

from sqlalchemy.orm import Session

from monitor.alerting.groups import attrs_of
from monitor.model import Alert
from monitor.store import alerts as alert_store
from monitor.store import groups as group_store
from monitor.store.tables import AlertGroupRow

if TYPE_CHECKING:
    from monitor.alerting.ingest import AlertPolicy

FROM_SIZE = 500  # alerts told: below, a group renders afresh in a few ms
LIMIT = 10_000  # alerts remembered: one storm's group
#: Stored text of the alerts remembered, at most. An alert takes about four times its text in
#: memory (typed row, model, attributes): ~6 KB for a typical one, but `details` may hold 64 KB.
TEXT_BUDGET = 16 * 2**20


@dataclass(eq=False)
class _Entry:
    key: bytes  # digest of the text of every column, as read with `row`
    size: int  # length of that text
    row: Any
    attrs: dict[str, str] | None = None
    model: Alert | None = None


class RenderMemo:
    """One dispatcher's memory of the alerts of its big groups (`dispatch.TickState.memo`);
    used by one thread at a time, the dispatcher's."""

    def __init__(self, *, from_size: int = FROM_SIZE, limit: int = LIMIT, text_budget: int = TEXT_BUDGET) -> None:
        self.from_size, self.limit, self.text_budget = from_size, limit, text_budget
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._text = 0  # sum of the entries' sizes
        self._policy: AlertPolicy | None = None  # the models were built for it

    def __len__(self) -> int:
        return len(self._entries)

    def wanted(self, group: AlertGroupRow) -> bool:
        return len(group.notified or {}) >= self.from_size

    def members(self, session: Session, *, group_ids: Collection[int]) -> dict[int, list[Any]]:
        """Each group's alerts, as `store.groups.members` reads them: the remembered row of an
        alert whose text is unchanged, a fresh one (remembered from now on) of the others."""
        texts = group_store.member_texts(session, group_ids=group_ids)
        changed = {alert_id for pairs in texts.values() for alert_id, text in pairs if self._key(alert_id) != _digest(repr(text))[0]}
        self.forget(changed)  # one gone since the first read must not come back old
        for row, text in group_store.rows_with_texts(session, alert_ids=changed):
            key, size = _digest(repr(text))
            self._entries[row.id] = _Entry(key, size, row)
            self._text += size
        found = {
            group_id: [entry.row for alert_id, _ in pairs if (entry := self._touch(alert_id)) is not None]
            for group_id, pairs in texts.items()
        }
        while self._entries and (len(self._entries) > self.limit or self._text > self.text_budget):
            self._text -= self._entries.popitem(last=False)[1].size
        return found

    def forget(self, alert_ids: Collection[int]) -> None:
        """Drop these alerts (changed, or no longer in their group: a resolved alert once told)."""
        for alert_id in alert_ids:
            if (entry := self._entries.pop(alert_id, None)) is not None:
                self._text -= entry.size

    def attrs(self, row: Any) -> dict[str, str]:
        """The alert's routing attributes (what silences and inhibit rules match), computed once per version."""
        entry = self._entry_of(row)
        if entry is None:
            return attrs_of(row)
        if entry.attrs is None:
            entry.attrs = attrs_of(row)
        return entry.attrs

    def models(self, session: Session, rows: Sequence[Any], policy: AlertPolicy) -> list[Alert]:
        """The message's view of each alert (`store.alerts.to_models` for a receiver), built once
        per version; rows the memo does not hold are rendered as they come. Every notification
        that lists an alert gets the same model: notifiers read it and must not change it."""
        if policy is not self._policy:  # links (dashboard, runbook) depend on it
            for entry in self._entries.values():
                entry.model = None
            self._policy = policy
        entries = [self._entry_of(row) for row in rows]
        fresh = [row for row, entry in zip(rows, entries) if entry is None or entry.model is None]
        rendered = iter(alert_store.to_models(session, fresh, base_url=policy.base_url, deliveries=False, runbooks=policy.runbooks))
        models = []
        for entry in entries:
            if entry is None or entry.model is None:
                model = next(rendered)
                if entry is not None:
                    entry.model = model
                models.append(model)
            else:
                models.append(entry.model)
        return models

    def _key(self, alert_id: int) -> bytes | None:
        entry = self._entries.get(alert_id)
        return entry.key if entry is not None else None

    def _touch(self, alert_id: int) -> _Entry | None:
        entry = self._entries.get(alert_id)
        if entry is not None:
            self._entries.move_to_end(alert_id)
        return entry

    def _entry_of(self, row: Any) -> _Entry | None:
        """The entry of exactly this row (another read of the alert is not what the entry holds)."""
        entry = self._entries.get(row.id)
        return entry if entry is not None and entry.row is row else None


def _digest(text: str) -> tuple[bytes, int]:
    """The `repr` of an alert's columns' text (quoted, None distinct from "None": unambiguous) as
    16 bytes, what is kept of it, and its length."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest(), len(text)
