"""Two tiny embedded pipelines for the replica tests: each run appends its pipeline and run
number to the file named by DAGWATCH_TEST_RUNS_FILE, which both replicas share, so the test sees
every run whichever replica ran it."""

from __future__ import annotations

import os

from monitor.runner import Pipeline


def _note(ctx) -> None:
    with open(os.environ["DAGWATCH_TEST_RUNS_FILE"], "a", encoding="utf-8") as runs:
        runs.write(f"{ctx.pipeline} {ctx.run_number} {ctx.run_id}\n")


first = Pipeline("replica_first")
second = Pipeline("replica_second")


@first.task
def note_first(ctx) -> None:
    _note(ctx)


@second.task
def note_second(ctx) -> None:
    _note(ctx)
