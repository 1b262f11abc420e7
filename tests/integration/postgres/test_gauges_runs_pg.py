"""What /metrics reads of the runs, on PostgreSQL, through this folder's `store` fixture."""

from tests.integration.test_gauges_runs import test_last_success_and_recent_durations_are_the_runs_own

__all__ = ["test_last_success_and_recent_durations_are_the_runs_own"]
