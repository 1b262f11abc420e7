"""The dispatcher's memory between ticks: timed work (held resolves, retry promotion, escalation)
runs at most once per `timers_every`, however many commits wake the loop; what mutes is re-read
only when it may have changed."""

from datetime import datetime, timedelta, timezone

from monitor.alerting.dispatch import TickState
from monitor.alerting.muting import NO_RULES
from monitor.store import open_store
from monitor.store import silences as silence_store

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_timed_work_runs_once_per_interval_however_often_the_loop_wakes():
    state = TickState(timers_every=timedelta(seconds=1))
    wakes = [T0 + timedelta(milliseconds=50 * i) for i in range(41)]  # 2 s of wakes every 50 ms
    ran = [t for t in wakes if state.timers_due(t)]
    assert ran == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_without_a_loop_everything_runs_every_time():
    state = TickState(always=True)
    assert all(state.timers_due(T0) for _ in range(3))


def test_what_mutes_is_read_again_after_a_signalled_change_or_muting_every(tmp_path):
    """The dispatcher's copy of what mutes: kept between flushes, dropped when a commit signals a
    change (a silence made through this process), and re-read after `muting_every` (a silence
    another process wrote without a signal, as the CLI does on SQLite)."""
    store, other = open_store(f"sqlite:///{tmp_path / 'dw.db'}"), open_store(f"sqlite:///{tmp_path / 'dw.db'}")
    state = TickState(muting_every=timedelta(seconds=1))

    def silences_seen(now: datetime) -> int:
        with store.session() as db:
            state.muting_due(store, now)
            return len(state.muting(db, now, NO_RULES).silences)

    def silence(on, ends: datetime) -> None:
        with on.session() as db:
            silence_store.create(db, matchers={"pipeline": "train"}, starts_at=T0, ends_at=ends, created_by="t", comment="", now=T0)

    assert silences_seen(T0) == 0
    silence(other, T0 + timedelta(hours=1))  # another process: no signal reaches this one
    assert silences_seen(T0 + timedelta(milliseconds=500)) == 0  # the copy is kept…
    assert silences_seen(T0 + timedelta(seconds=1)) == 1  # …for at most muting_every
    silence(store, T0 + timedelta(hours=2))  # this process: its commit signals the change
    assert silences_seen(T0 + timedelta(seconds=1, milliseconds=100)) == 2
    store.close()
    other.close()
