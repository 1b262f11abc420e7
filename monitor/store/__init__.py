"""Persistence: tables, the engine, migrations, and one repository module per domain."""

from monitor.store.db import Store, open_store

__all__ = ["Store", "open_store"]
