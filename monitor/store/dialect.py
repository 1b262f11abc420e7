"""What differs between SQLite and PostgreSQL, in one place: row claims and upserts.

Everything else in the store is portable SQLAlchemy; these are the statements whose dialects
disagree, so callers say what they mean (`claim`, `upsert`) and never test the dialect name.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Select
from sqlalchemy.orm import Session


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim(session: Session, query: Select) -> Select:
    """Rows that every dagwatch process competes for (due groups, outbox rows, timed alert work):
    on PostgreSQL each row goes to one process (`FOR UPDATE SKIP LOCKED`); on SQLite the
    database's single writer lock already serializes them."""
    return query.with_for_update(skip_locked=True) if is_postgresql(session) else query


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"upsert is not implemented for {dialect}; use SQLite or PostgreSQL")
    return insert


def insert_missing(
    session: Session, table: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str], returning: Sequence[Any]
) -> list[Any]:
    """Insert rows whose key is new, leaving existing ones as they are; `returning` columns of
    the rows this call inserted (a row another process inserted first is not among them)."""
    if not rows:
        return []
    statement = _insert(session)(table).on_conflict_do_nothing(index_elements=list(keys)).returning(*returning)
    return list(session.execute(statement, list(rows)))


def insert_new(session: Session, table: Any, row: dict[str, Any], keys: Sequence[str]) -> bool:
    """Insert `row` unless its key exists; True if this call inserted it. Decided by the
    database's unique key, so two processes racing on one key get one True between them."""
    # RETURNING, not rowcount: psycopg reports -1 (truthy) for an insert that did nothing.
    statement = _insert(session)(table).on_conflict_do_nothing(index_elements=list(keys)).returning(*(table.c[key] for key in keys))
    return session.execute(statement, row).first() is not None


def upsert(session: Session, table: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]) -> None:
    if not rows:
        return
    statement = _insert(session)(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={column: getattr(statement.excluded, column) for column in update}
    )
    session.execute(statement, list(rows))
