"""The dispatcher's memory between ticks: timed work (held resolves, retry promotion, escalation)
runs at most once per `timers_every`, however many commits wake the loop."""

from datetime import datetime, timedelta, timezone

from monitor.alerting.dispatch import TickState

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_timed_work_runs_once_per_interval_however_often_the_loop_wakes():
    state = TickState(timers_every=timedelta(seconds=1))
    wakes = [T0 + timedelta(milliseconds=50 * i) for i in range(41)]  # 2 s of wakes every 50 ms
    ran = [t for t in wakes if state.timers_due(t)]
    assert ran == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_without_a_loop_everything_runs_every_time():
    state = TickState(always=True)
    assert all(state.timers_due(T0) for _ in range(3))
