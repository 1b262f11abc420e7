"""Prefect state (type, name) → dagwatch's normalized State, and the try number that goes with it.

Prefect has eight state *types* and many *names* layered on them; the name carries meaning the
type hides (a SCHEDULED run named AwaitingRetry is a retry, not a schedule; a COMPLETED one named
Cached did no work). The table, names first, then the type as fallback:

| Prefect type / name                 | dagwatch  | try number                    |
|-------------------------------------|-----------|-------------------------------|
| SCHEDULED / Scheduled, Late         | SCHEDULED | run_count (0 before a start)  |
| SCHEDULED / AwaitingRetry           | RETRYING  | run_count (the try that failed)|
| PENDING / Pending, Submitting, …    | QUEUED    | run_count + 1                 |
| RUNNING / Running                   | RUNNING   | run_count                     |
| RUNNING / Retrying                  | RETRYING  | run_count - 1 (the failed try)|
| PAUSED / Paused, Suspended          | RUNNING   | run_count (waiting, not done) |
| CANCELLING / Cancelling             | RUNNING   | run_count (still stopping)    |
| COMPLETED / Completed, Cached, …    | SUCCESS   | run_count                     |
| FAILED / Failed, TimedOut, …        | FAILED    | run_count                     |
| CRASHED / Crashed                   | FAILED    | run_count (infrastructure died)|
| CANCELLED / Cancelled               | CANCELLED | run_count                     |
| anything else                       | RUNNING   | run_count (never alerts)      |

Late is kept as SCHEDULED here; the snapshot labels it (`prefect_state: Late`) so lateness is
visible without inventing a state. Retrying maps to RETRYING with the *failed* try, like Airflow's
up_for_retry, so "failed on try N and will be retried" names the right try whether a poll sees
AwaitingRetry, Retrying, or neither (then the tracker infers the retry from the try number).
"""

from __future__ import annotations

from monitor.model import State

_BY_NAME: dict[str, State] = {
    "awaitingretry": State.RETRYING,
    "retrying": State.RETRYING,
}

_BY_TYPE: dict[str, State] = {
    "SCHEDULED": State.SCHEDULED,
    "PENDING": State.QUEUED,
    "RUNNING": State.RUNNING,
    "PAUSED": State.RUNNING,
    "CANCELLING": State.RUNNING,
    "COMPLETED": State.SUCCESS,
    "FAILED": State.FAILED,
    "CRASHED": State.FAILED,
    "CANCELLED": State.CANCELLED,
}

#: Types after which Prefect will not run the thing again by itself.
TERMINAL_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Types of runs that are open: polled every cycle until they end.
OPEN_TYPES = ("PENDING", "RUNNING", "PAUSED", "CANCELLING")


def normalize(state_type: str | None, state_name: str | None) -> State:
    by_name = _BY_NAME.get((state_name or "").replace(" ", "").lower())
    if by_name is not None:
        return by_name
    return _BY_TYPE.get((state_type or "").upper(), State.RUNNING)


def try_number(state_type: str | None, state_name: str | None, run_count: int) -> int:
    """The try a snapshot reports: the running one, or for a retry the one that failed."""
    name = (state_name or "").replace(" ", "").lower()
    if name == "retrying":
        return max(run_count - 1, 1)
    if (state_type or "").upper() == "PENDING":
        return run_count + 1
    return max(run_count, 1)


def is_terminal(state_type: str | None) -> bool:
    return (state_type or "").upper() in TERMINAL_TYPES
