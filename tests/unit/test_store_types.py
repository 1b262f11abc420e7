"""UTCDateTime on SQLite binds the very text SQLAlchemy's DATETIME would store: rows are compared
as strings in SQL (`next_flush_at <= :now`, `at < :before`), so a fast path that wrote a
different text would silently misorder old and new rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.types import UTCDateTime

SAMPLES = [
    datetime(2026, 12, 7, 15, 4, 5, 123456, tzinfo=UTC),
    datetime(2026, 12, 7, 15, 4, 5, tzinfo=UTC),  # no microseconds: still six digits
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),  # a year of three digits, padded
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # another zone: stored as UTC
    datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-11))),  # crosses midnight into the next day
]


def test_the_sqlite_text_is_sqlalchemys_byte_for_byte():
    fast = UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())  # as an engine resolves it
    reference = sqlite.DATETIME().bind_processor(sqlite.dialect())
    for value in SAMPLES:
        assert fast(value) == reference(value.astimezone(UTC).replace(tzinfo=None)), value
    assert fast(None) is None


def test_a_naive_datetime_is_refused_and_postgres_keeps_sqlalchemys_processing():
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().bind_processor(sqlite.dialect())(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().bind_processor(postgresql.psycopg.dialect())(datetime(2026, 1, 1))
    aware = SAMPLES[5]
    assert UTCDateTime().bind_processor(postgresql.psycopg.dialect())(aware) == aware  # an aware value, to timestamptz


def test_values_round_trip_and_order_as_times(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"at": value} for value in SAMPLES])
        back = list(conn.scalars(select(table.c.at).order_by(table.c.at)))
        later = list(conn.scalars(select(table.c.id).where(table.c.at > datetime(2026, 12, 7, 15, 4, 5, tzinfo=UTC)).order_by(table.c.id)))
    assert back == sorted(SAMPLES) and all(v.tzinfo is UTC for v in back)
    assert later == [1, 5]
    engine.dispose()
