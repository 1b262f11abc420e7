"""The audit store's tests (retention's bounded DELETE … IN (SELECT … LIMIT), the filters) on
PostgreSQL, through this folder's `store` fixture."""

from tests.unit.test_audit_store import test_old_entries_go_a_bounded_batch_per_write_and_young_ones_stay, test_query_filters_newest_first

__all__ = ["test_old_entries_go_a_bounded_batch_per_write_and_young_ones_stay", "test_query_filters_newest_first"]
