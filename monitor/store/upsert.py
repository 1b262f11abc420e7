"""INSERT … ON CONFLICT DO UPDATE for both SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy.orm import Session


def upsert(session: Session, table: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"upsert is not implemented for {dialect}; use SQLite or PostgreSQL")
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={column: getattr(statement.excluded, column) for column in update}
    )
    session.execute(statement, list(rows))
