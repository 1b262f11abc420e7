"""Source health hysteresis, the pure rule: one failed poll never pages; a source is down after N
failed polls in a row or failures lasting a period; it comes back only after M healthy polls in a
row. Plus the `health:` config section's bounds, named by key."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.config import SourceHealthSettings, load_settings
from monitor.errors import ConfigError
from monitor.tracking.rules import HealthChange, SourceHealth, source_health

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DEFAULTS = SourceHealthSettings()  # down after 3 failures or 1 min of failures; up after 2 successes
DOWN = SourceHealth(up=False, failures=3, failing_since=T0)

CASES = [
    # (memory before, poll ok?, seconds after T0, settings, memory after, change)
    ("healthy poll of a healthy source", SourceHealth(), True, 0, DEFAULTS, SourceHealth(), HealthChange.NONE),
    ("one failure never pages", SourceHealth(), False, 0, DEFAULTS, SourceHealth(failures=1, failing_since=T0), HealthChange.NONE),
    (
        "one failure never pages, even with a short period",
        SourceHealth(),
        False,
        0,
        SourceHealthSettings(down_after="1s"),
        SourceHealth(failures=1, failing_since=T0),
        HealthChange.NONE,
    ),
    (
        "a success forgets earlier failures",
        SourceHealth(failures=2, failing_since=T0),
        True,
        5,
        DEFAULTS,
        SourceHealth(),
        HealthChange.NONE,
    ),
    (
        "second failure within the period: still up",
        SourceHealth(failures=1, failing_since=T0),
        False,
        5,
        DEFAULTS,
        SourceHealth(failures=2, failing_since=T0),
        HealthChange.NONE,
    ),
    (
        "third failure in a row: down",
        SourceHealth(failures=2, failing_since=T0),
        False,
        10,
        DEFAULTS,
        SourceHealth(up=False, failures=3, failing_since=T0),
        HealthChange.DOWN,
    ),
    (
        "second failure after failing for the period: down",
        SourceHealth(failures=1, failing_since=T0),
        False,
        60,
        DEFAULTS,
        SourceHealth(up=False, failures=2, failing_since=T0),
        HealthChange.DOWN,
    ),
    (
        "period disabled: only the count",
        SourceHealth(failures=1, failing_since=T0),
        False,
        3600,
        SourceHealthSettings(down_after=None),
        SourceHealth(failures=2, failing_since=T0),
        HealthChange.NONE,
    ),
    (
        "a streak from before the migration (no start) starts now",
        SourceHealth(failures=1),
        False,
        60,
        DEFAULTS,
        SourceHealth(failures=2, failing_since=T0 + timedelta(seconds=60)),
        HealthChange.NONE,
    ),
    (
        "down and failing: no second page",
        DOWN,
        False,
        20,
        DEFAULTS,
        SourceHealth(up=False, failures=4, failing_since=T0),
        HealthChange.NONE,
    ),
    ("first healthy poll while down: not up yet", DOWN, True, 20, DEFAULTS, SourceHealth(up=False, successes=1), HealthChange.NONE),
    ("second healthy poll in a row: up", SourceHealth(up=False, successes=1), True, 25, DEFAULTS, SourceHealth(), HealthChange.UP),
    (
        "a failure between healthy polls starts the count again",
        SourceHealth(up=False, successes=1),
        False,
        25,
        DEFAULTS,
        SourceHealth(up=False, failures=1, failing_since=T0 + timedelta(seconds=25)),
        HealthChange.NONE,
    ),
    (
        "up after one healthy poll when so configured",
        DOWN,
        True,
        20,
        SourceHealthSettings(up_after_successes=1),
        SourceHealth(),
        HealthChange.UP,
    ),
]


@pytest.mark.parametrize(("memory", "ok", "seconds", "settings", "after", "change"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_source_health(memory, ok, seconds, settings, after, change):
    assert source_health(memory, ok, T0 + timedelta(seconds=seconds), settings) == (after, change)


def run(pattern: str, settings: SourceHealthSettings = DEFAULTS, step: float = 5) -> list[HealthChange]:
    """Polls every `step` seconds, `x` failed and `.` healthy; the changes that are not NONE."""
    memory, changes = SourceHealth(), []
    for i, poll in enumerate(pattern):
        memory, change = source_health(memory, poll == ".", T0 + timedelta(seconds=i * step), settings)
        if change is not HealthChange.NONE:
            changes.append(change)
    return changes


@pytest.mark.parametrize(
    ("pattern", "changes"),
    [
        ("x.x.x.x.x.x.x.x.", []),  # a flaky source: isolated failures never page
        ("xx.xx.xx.xx.", []),  # two in a row, within the period
        ("xxx..", [HealthChange.DOWN, HealthChange.UP]),
        ("xxx.x.x.x..", [HealthChange.DOWN, HealthChange.UP]),  # half-working: one page, one resolution
        ("xxx..xxx..", [HealthChange.DOWN, HealthChange.UP, HealthChange.DOWN, HealthChange.UP]),
    ],
)
def test_sequences_of_polls(pattern, changes):
    assert run(pattern) == changes


def test_slow_polls_are_down_by_the_period_not_the_count():
    assert run("xx", step=60) == [HealthChange.DOWN]
    assert run("x.x.x.", step=60) == []


def write(tmp_path, text):
    path = tmp_path / "dagwatch.yaml"
    path.write_text(text)
    return path


def test_health_section_is_read_per_source(tmp_path):
    settings = load_settings(
        write(tmp_path, "sources: [{name: a, kind: embedded, health: {down_after_failures: 5, down_after: 2m, up_after_successes: 3}}]")
    )
    assert settings.sources[0].health == SourceHealthSettings(down_after_failures=5, down_after=timedelta(minutes=2), up_after_successes=3)
    assert load_settings(write(tmp_path, "sources: [{name: a, kind: embedded}]")).sources[0].health == DEFAULTS


@pytest.mark.parametrize(
    ("health", "key", "reason"),
    [
        ("{down_after_failures: 1}", "down_after_failures", "greater than or equal to 2"),
        ("{up_after_successes: 0}", "up_after_successes", "greater than or equal to 1"),
        ("{down_after: 0s}", "down_after", "must be a positive duration"),
        ("{down_after: soon}", "down_after", "invalid duration 'soon'"),
        ("{down_after_faliures: 3}", "down_after_faliures", "unknown key"),
    ],
)
def test_bad_health_settings_name_the_key(tmp_path, health, key, reason):
    path = write(tmp_path, f"sources: [{{name: a, kind: embedded, health: {health}}}]")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == f"sources[0].health.{key}" and reason in str(info.value)
