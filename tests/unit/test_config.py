"""Strict config: each kind of mistake gets an error naming the file, the key and the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_settings, parse_duration
from monitor.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "dagwatch.yaml"
    path.write_text(text)
    return path


CASES = [
    ("server: {port: 99999}", "server.port", "less than or equal to 65535"),
    ("server: {prot: 8000}", "server.prot", "unknown key"),
    ("bogus_section: 1", "bogus_section", "unknown key"),
    ("sources: [{name: a, kind: embeded}]", "sources[0]", "unknown kind embeded"),
    ("sources: [{kind: embedded}]", "sources[0].name", "required key is missing"),
    ("sources: [{name: a, kind: embedded, poll_interval: 5 parsecs}]", "sources[0].poll_interval", "invalid duration '5 parsecs'"),
    ("sources: [{name: a, kind: embedded, include: ['(']}]", "sources[0].include", "invalid regex '('"),
    (
        "sources: [{name: a, kind: embedded, pipelines: [{ref: 'x:y', schedule: {every: 20s, cron: '* * * * *'}}]}]",
        "sources[0].pipelines[0].schedule",
        "exactly one of `every` or `cron`",
    ),
    (
        "sources: [{name: a, kind: embedded, pipelines: [{ref: 'x:y', schedule: {cron: 'every tuesday'}}]}]",
        "sources[0].pipelines[0].schedule",
        "invalid cron expression",
    ),
    (
        "sources: [{name: a, kind: embedded, pipelines: [{ref: 'no-colon'}]}]",
        "sources[0].pipelines[0].ref",
        "not `package.module:attribute`",
    ),
    ("sources: [{name: a, kind: embedded}, {name: a, kind: embedded}]", "sources", "two sources are named 'a'"),
    (
        "receivers: [{name: c, kind: console, extra: '${DAGWATCH_TEST_UNSET_VAR}'}]",
        "receivers[0].extra",
        "DAGWATCH_TEST_UNSET_VAR is not set",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), CASES)
def test_bad_config_names_file_key_and_reason(tmp_path, monkeypatch, text, key, reason):
    monkeypatch.delenv("DAGWATCH_TEST_UNSET_VAR", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_several_problems_are_all_reported(tmp_path):
    path = write(tmp_path, "server: {port: 0, hots: x}")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "server.port" in str(info.value) and "server.hots" in str(info.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("server: [unclosed", "not valid YAML: line 1"), ("- just\n- a list", "top level must be a mapping")],
)
def test_unreadable_files(tmp_path, text, reason):
    with pytest.raises(ConfigError, match=reason):
        load_settings(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_env_reference_expands_and_env_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_HOST", "127.0.0.2")
    monkeypatch.setenv("DAGWATCH_SERVER__PORT", "8123")
    settings = load_settings(write(tmp_path, "server: {host: '${MY_HOST}', port: 9000}"))
    assert settings.server.host == "127.0.0.2"
    assert settings.server.port == 8123


def test_no_config_file_at_all_is_the_demo_on_loopback(monkeypatch):
    monkeypatch.delenv("DAGWATCH_CONFIG", raising=False)
    settings = load_settings(None)
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8000
    assert settings.sources[0].kind == "embedded"
    assert settings.sources[0].pipelines[0].ref == "monitor.demo.pipeline:pipeline"
    assert settings.store_url.startswith("sqlite:///")


def test_config_env_var_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGWATCH_CONFIG", str(write(tmp_path, "server: {port: 8999}")))
    assert load_settings(None).server.port == 8999


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (12, 12), ("2d", 172800)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_config_validate_command(tmp_path):
    good = write(
        tmp_path, "sources: [{name: e, kind: embedded, pipelines: [{ref: 'monitor.demo.pipeline:pipeline', schedule: {every: 30s}}]}]"
    )
    result = CliRunner().invoke(app, ["config", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok (1 source(s)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}")
    result = CliRunner().invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: server.port:" in result.output
    missing_ref = tmp_path / "ref.yaml"
    missing_ref.write_text("sources: [{name: e, kind: embedded, pipelines: [{ref: 'no_such_module:p'}]}]")
    result = CliRunner().invoke(app, ["config", "validate", str(missing_ref)])
    assert result.exit_code == 2 and "cannot import 'no_such_module'" in result.output


def test_a_config_file_without_sources_watches_nothing_but_what_is_pushed(tmp_path, monkeypatch):
    """Issue 11: two replicas configured with only a store and PagerDuty paged for the demo."""
    monkeypatch.delenv("DAGWATCH_DEMO", raising=False)
    assert load_settings(write(tmp_path, "receivers: [{name: pd, kind: pagerduty, routing_key: k}]")).sources == []
    asked = load_settings(write(tmp_path, "demo: true\nsources: [{name: other, kind: embedded}]"))
    assert [s.name for s in asked.sources] == ["other", "embedded"]
    assert asked.sources[1].pipelines[0].ref == "monitor.demo.pipeline:pipeline"


def test_errors_name_the_environment_reference_not_its_value(tmp_path, monkeypatch):
    """A value from the environment is mostly a secret; the message shows `${NAME}` instead."""
    monkeypatch.setenv("POLL_EVERY", "s3cr3t-Passw0rd!")
    monkeypatch.setenv("SHORT", "pw1")
    with pytest.raises(ConfigError) as caught:
        load_settings(
            write(
                tmp_path,
                "sources: [{name: a, kind: embedded, poll_interval: '${POLL_EVERY}'},"
                " {name: b, kind: embedded, poll_interval: '${SHORT}'}]",
            )
        )
    message = str(caught.value)
    assert "s3cr3t-Passw0rd!" not in message and "${POLL_EVERY}" in message
    assert "'pw1'" not in message and "${SHORT}" in message


# -- values from DAGWATCH_* variables ------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("30", 30), ("1.5", 1.5), ("0", 0), (" 45 ", 45), ("2m", 120)])
def test_a_bare_number_in_an_environment_variable_is_seconds(monkeypatch, tmp_path, value, seconds):
    """The message promises "or a number of seconds"; from the environment every value is text."""
    monkeypatch.setenv("DAGWATCH_ALERTING__GROUP_WAIT", value)
    assert load_settings(write(tmp_path, "sources: []")).alerting.group_wait == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["-5", "1e3", "nan", "30 parsecs", "9" * 16])
def test_other_text_is_still_no_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_an_error_from_an_environment_variable_names_it_not_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGWATCH_ALERTING__GROUP_WAIT", "soon")
    monkeypatch.setenv("dagwatch_server__port", "99999")  # names are not case-sensitive
    path = write(tmp_path, "server: {hots: x}")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = str(caught.value).splitlines()
    assert sorted(lines) == sorted(
        [
            f"{path}: server.hots: unknown key (check its spelling and its place in the file)",
            "environment variable dagwatch_server__port: server.port: Input should be less than or equal to 65535",
            (
                "environment variable DAGWATCH_ALERTING__GROUP_WAIT: alerting.group_wait: invalid duration ${DAGWATCH_ALERTING__GROUP_WAIT} "
                "(write e.g. 30s, 5m, 1h30m or a number of seconds)"
            ),
        ]
    )


def test_a_variable_that_is_not_json_is_named(monkeypatch):
    monkeypatch.delenv("DAGWATCH_CONFIG", raising=False)
    monkeypatch.setenv("DAGWATCH_SOURCES", "[{not json")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert str(caught.value).startswith("environment variable DAGWATCH_SOURCES: sources: not valid JSON")


# -- schedule time zones ---------------------------------------------------------------------------

SCHEDULED = "sources: [{{name: e, kind: embedded, pipelines: [{{ref: 'monitor.demo.pipeline:pipeline', schedule: {schedule}}}]}}]"


def test_a_schedule_reads_cron_in_its_time_zone(tmp_path):
    settings = load_settings(write(tmp_path, SCHEDULED.format(schedule="{cron: '0 2 * * *', timezone: Europe/Paris}")))
    assert settings.sources[0].pipelines[0].schedule.timezone == "Europe/Paris"
    assert (
        load_settings(write(tmp_path, SCHEDULED.format(schedule="{cron: '0 2 * * *'}"))).sources[0].pipelines[0].schedule.timezone == "UTC"
    )


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("{cron: '0 2 * * *', timezone: Europe/Pariss}", "unknown time zone 'Europe/Pariss'"),
        ("{cron: '0 2 * * *', timezone: '../../etc/passwd'}", "unknown time zone"),
        ("{every: 1h, timezone: Europe/Paris}", "`timezone` is for `cron`"),
    ],
)
def test_a_bad_schedule_time_zone_is_named(tmp_path, schedule, reason):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, SCHEDULED.format(schedule=schedule)))
    assert caught.value.key.startswith("sources[0].pipelines[0].schedule") and reason in str(caught.value)


def _schedule(cron: str, zone: str):
    from monitor.config import ScheduleSettings

    return ScheduleSettings(cron=cron, timezone=zone)


@pytest.mark.parametrize(
    ("zone", "day", "utc_hour"),
    [
        ("Europe/Paris", "2026-01-15", 1),
        ("Europe/Paris", "2026-07-15", 0),  # CET, then CEST
        ("America/New_York", "2026-07-15", 6),
        ("Asia/Kathmandu", "2026-07-15", 20),
    ],
)
def test_the_scheduler_fires_at_the_zones_time_and_every_replica_claims_the_same_instant(zone, day, utc_hour):
    """The trigger the service builds, and the fire time each replica computes for it, late or not."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from monitor.service import fire_time, trigger_for

    schedule = _schedule("0 2 * * *", zone)
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00") - timedelta(hours=12)
    fire = trigger_for(schedule).get_next_fire_time(None, start)
    local = fire.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (2, 0)
    expected_hour = (utc_hour, 15) if zone == "Asia/Kathmandu" else (utc_hour, 0)
    assert (fire.astimezone(UTC).hour, fire.astimezone(UTC).minute) == expected_hour
    for late in (0, 1, 29.5, 59.9):
        assert fire_time(schedule, fire + timedelta(seconds=late)) == fire.astimezone(UTC)


def test_the_hour_lived_twice_is_two_fire_times():
    """Paris leaves summer time at 03:00 on 2026-10-25: 02:30 happens at 00:30 and 01:30 UTC."""
    from datetime import UTC, datetime

    from monitor.service import fire_time

    schedule = _schedule("30 2 * * *", "Europe/Paris")
    first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert fire_time(schedule, first + timedelta(seconds=5)) == first
    assert fire_time(schedule, second + timedelta(seconds=5)) == second
