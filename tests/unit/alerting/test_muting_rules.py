"""Configured muting: inhibit rules (Alertmanager's semantics) and time intervals (its
ContainsTime, in named zones across DST changes, plus one-off windows), and how they load."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.alerting.muting import NO_RULES, Inhibitors, Rules, contains, muted_by
from monitor.alerting.routing import alert_attributes
from monitor.config import AlertingSettings, RouteSettings, Settings, TimeIntervalSettings
from monitor.errors import ConfigError
from monitor.model import AlertKind

UTC = timezone.utc


def attrs(kind="infra_alert", tier="P2", source="prometheus/node", **labels):
    return alert_attributes(tier=tier, kind=kind, source=source, pipeline=labels.pop("pipeline", None), task=None, labels=labels)


def interval(**fields) -> TimeIntervalSettings:
    return TimeIntervalSettings.model_validate(fields)


def minutes(start: datetime, end: datetime):
    while start < end:
        yield start
        start += timedelta(minutes=1)


# ---- inhibit rules --------------------------------------------------------------------------

NODE_DOWN = {"source_matchers": ['alertname="NodeDown"'], "target_matchers": ['severity=~"warning|info"'], "equal": ["instance"]}


def rules(*inhibit, routes=(), intervals=()) -> Rules:
    return Rules.from_settings(routes, AlertingSettings.model_validate({"inhibit_rules": list(inhibit), "time_intervals": list(intervals)}))


def test_a_firing_source_mutes_targets_with_the_same_equal_labels():
    r = rules(NODE_DOWN)
    firing = Inhibitors.index(r.inhibit, [(1, attrs(alertname="NodeDown", instance="gpu-3", severity="critical"))])
    disk = attrs(alertname="DiskFull", instance="gpu-3", severity="warning")
    assert (
        muted_by(
            AlertKind.INFRA_ALERT, "prometheus/node", disk, [], {}, datetime(2026, 1, 1, tzinfo=UTC), rules=r, alert_id=2, inhibitors=firing
        )
        == "inhibited:1"
    )
    other_host = attrs(alertname="DiskFull", instance="gpu-4", severity="warning")
    assert (
        muted_by(AlertKind.INFRA_ALERT, "s", other_host, [], {}, datetime(2026, 1, 1, tzinfo=UTC), rules=r, alert_id=3, inhibitors=firing)
        is None
    )
    critical = attrs(alertname="DiskFull", instance="gpu-3", severity="critical")  # not a target
    assert (
        muted_by(AlertKind.INFRA_ALERT, "s", critical, [], {}, datetime(2026, 1, 1, tzinfo=UTC), rules=r, alert_id=4, inhibitors=firing)
        is None
    )
    unruled = Inhibitors.index(NO_RULES.inhibit, [(1, attrs(alertname="NodeDown", instance="gpu-3", severity="critical"))])
    assert (
        muted_by(AlertKind.INFRA_ALERT, "s", disk, [], {}, datetime(2026, 1, 1, tzinfo=UTC), rules=NO_RULES, alert_id=2, inhibitors=unruled)
        is None
    )


def test_equal_labels_missing_on_both_sides_are_equal_and_fields_can_be_equal_too():
    r = rules({"source_matchers": ["kind=source_down"], "target_matchers": ['kind="infra_alert"'], "equal": ["source", "zone"]})
    source_down = Inhibitors.index(r.inhibit, [(7, attrs(kind="source_down", tier="P1", source="airflow-prod"))])
    assert source_down.source_of(attrs(source="airflow-prod"), 8) == 7
    assert source_down.source_of(attrs(source="airflow-dev"), 8) is None
    assert source_down.source_of(attrs(source="airflow-prod", zone="eu"), 8) is None


def test_an_alert_matching_both_sides_neither_mutes_itself_nor_a_peer_matching_both():
    r = rules({"source_matchers": ['severity="critical"'], "target_matchers": ['team="ml"'], "equal": []})
    both_a = attrs(severity="critical", team="ml")
    both_b = attrs(severity="critical", team="ml", instance="b")
    assert Inhibitors.index(r.inhibit, [(1, both_a)]).source_of(both_a, 1) is None
    assert Inhibitors.index(r.inhibit, [(1, both_a), (2, both_b)]).source_of(both_a, 1) is None
    only_source = attrs(severity="critical", team="web")
    assert Inhibitors.index(r.inhibit, [(3, only_source)]).source_of(both_a, 1) == 3  # a source that is not a target does mute it


def _inhibited_by_a_pass_over_all(r: Rules, firing, attributes, alert_id):
    """Alertmanager's inhibitor, written as it reads: every rule in order, every firing alert in order."""
    from monitor.matchers import all_match, lookup

    for rule in r.inhibit:
        if not all_match(rule.target, attributes):
            continue
        two_sided = all_match(rule.source, attributes)
        for other_id, other in firing:
            if other_id == alert_id or not all_match(rule.source, other):
                continue
            if [lookup(other, n) for n in rule.equal] != [lookup(attributes, n) for n in rule.equal]:
                continue
            if two_sided and all_match(rule.target, other):
                continue
            return other_id
    return None


def test_the_index_of_inhibitors_decides_as_a_pass_over_every_firing_alert():
    """Random rules (fields and labels, every operator, `equal` on fields and on labels that may
    be missing) over random firing alerts: the index names the same inhibitor for every alert."""
    import random

    rng = random.Random(13)
    values = {"kind": ["task_failed", "run_failed", "source_down"], "tier": ["P1", "P2", "P3"], "severity": ["critical", "warning", ""]}
    values |= {"source": ["a", "b"], "pipeline": ["p1", "p2", ""], "zone": ["eu", "us", ""]}

    def matcher() -> str:
        name = rng.choice(list(values))
        op = rng.choice(["=", "!=", "=~", "!~"])
        value = rng.choice(values[name]) if op in ("=", "!=") else "|".join(rng.sample([v for v in values[name] if v] or ["x"], 1))
        return f'{name}{op}"{value}"'

    checked = inhibited = 0
    for _ in range(60):
        r = rules(
            *(
                {
                    "source_matchers": [matcher() for _ in range(rng.randint(1, 2))],
                    "target_matchers": [matcher() for _ in range(rng.randint(1, 2))],
                    "equal": rng.sample(["pipeline", "zone", "source"], rng.randint(0, 2)),
                }
                for _ in range(rng.randint(1, 3))
            )
        )
        alerts = []
        for alert_id in rng.sample(range(1, 200), 40):
            labels = {k: rng.choice(values[k]) for k in ("severity", "zone") if rng.random() < 0.7}
            pick = {k: rng.choice(values[k]) for k in ("kind", "tier", "source", "pipeline")}
            alerts.append((alert_id, attrs(**pick, **{k: v for k, v in labels.items() if v})))
        index = Inhibitors.index(r.inhibit, alerts)
        by_id = sorted(alerts)
        for alert_id, attributes in alerts:
            expected = _inhibited_by_a_pass_over_all(r, by_id, attributes, alert_id)
            assert index.source_of(attributes, alert_id) == expected, (r, alert_id)
            checked += 1
            inhibited += expected is not None
    assert checked == 2400 and 200 < inhibited < 2200  # both outcomes, many times


def test_a_silence_comes_first_and_the_built_in_outage_inhibition_still_holds():
    from monitor.alerting.muting import ActiveSilence

    now = datetime(2026, 1, 1, tzinfo=UTC)
    silence = ActiveSilence(5, {"kind": "run_failed"}, now - timedelta(hours=1), now + timedelta(hours=1))
    run = attrs(kind="run_failed", tier="P1", source="af")
    assert muted_by(AlertKind.RUN_FAILED, "af", run, [silence], {"af": 9}, now, rules=rules(NODE_DOWN)) == "silence:5"
    assert muted_by(AlertKind.RUN_FAILED, "af", run, [], {"af": 9}, now, rules=rules(NODE_DOWN)) == "inhibited:9"


# ---- time intervals -------------------------------------------------------------------------


def test_a_window_the_clock_skips_is_never_entered_and_one_it_repeats_holds_twice():
    night = interval(times=[{"start_time": "02:00", "end_time": "03:00"}], location="Europe/Berlin")
    spring = [m for m in minutes(datetime(2026, 3, 28, 22, tzinfo=UTC), datetime(2026, 3, 29, 4, tzinfo=UTC)) if contains(night, m)]
    assert spring == []  # 2026-03-29 02:00 CET became 03:00 CEST
    autumn = [m for m in minutes(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC)) if contains(night, m)]
    assert len(autumn) == 120  # 02:00-03:00 CEST, then 02:00-03:00 CET
    assert autumn[0] == datetime(2026, 10, 25, 0, 0, tzinfo=UTC) and autumn[-1] == datetime(2026, 10, 25, 1, 59, tzinfo=UTC)
    wide = interval(times=[{"start_time": "01:00", "end_time": "04:00"}], location="Europe/Berlin")
    covered = [m for m in minutes(datetime(2026, 3, 28, 22, tzinfo=UTC), datetime(2026, 3, 29, 4, tzinfo=UTC)) if contains(wide, m)]
    assert len(covered) == 120  # three wall-clock hours, two real ones
    assert covered[0] == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def test_weekdays_days_and_months_are_read_in_the_intervals_zone():
    weekend = interval(weekdays=["sunday", "saturday"], location="America/New_York")  # saturday:sunday is refused, as by Alertmanager
    monday_utc = datetime(2026, 3, 9, 3, 30, tzinfo=UTC)  # Sunday 23:30 in New York (EDT since that morning)
    assert monday_utc.weekday() == 0 and contains(weekend, monday_utc)
    assert not contains(interval(weekdays=["sunday", "saturday"]), monday_utc)
    last_day = interval(days_of_month=["-1"])
    assert contains(last_day, datetime(2026, 2, 28, 12, tzinfo=UTC)) and not contains(last_day, datetime(2026, 2, 27, 12, tzinfo=UTC))
    assert contains(last_day, datetime(2028, 2, 29, 12, tzinfo=UTC)) and not contains(last_day, datetime(2028, 2, 28, 12, tzinfo=UTC))
    beyond = interval(days_of_month=["30:31"])
    assert not contains(beyond, datetime(2026, 2, 28, 12, tzinfo=UTC))  # February has no 30th: skipped, not clamped into it
    business = interval(
        weekdays=["monday:friday"],
        times=[{"start_time": "09:00", "end_time": "17:00"}],
        months=["january:march"],
        years=["2026"],
        location="Europe/Berlin",
    )
    assert contains(business, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))  # Monday 09:00 CET
    assert not contains(business, datetime(2026, 3, 2, 7, 59, tzinfo=UTC))
    assert not contains(business, datetime(2026, 3, 2, 16, 0, tzinfo=UTC))  # 17:00 is not included
    assert not contains(business, datetime(2026, 4, 1, 8, 0, tzinfo=UTC))
    assert not contains(business, datetime(2027, 3, 1, 8, 0, tzinfo=UTC))


def test_a_one_off_window_holds_from_start_until_end_excluded():
    upgrade = interval(start="2026-03-29T01:30:00+01:00", end="2026-03-29T04:00:00+02:00")
    assert not contains(upgrade, datetime(2026, 3, 29, 0, 29, tzinfo=UTC))
    assert contains(upgrade, datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert contains(upgrade, datetime(2026, 3, 29, 1, 59, tzinfo=UTC))
    assert not contains(upgrade, datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST
    r = rules(intervals=[{"name": "upgrade", "time_intervals": [upgrade.model_dump()]}])
    assert r.next_boundary(datetime(2026, 3, 28, tzinfo=UTC)) == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert r.next_boundary(datetime(2026, 3, 29, 1, tzinfo=UTC)) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert r.next_boundary(datetime(2026, 3, 30, tzinfo=UTC)) is None
    recurring = rules(intervals=[{"name": "nights", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}]}])
    assert recurring.next_boundary(datetime(2026, 3, 28, 10, 0, 31, tzinfo=UTC)) == datetime(2026, 3, 28, 10, 1, tzinfo=UTC)


def test_a_route_in_its_mute_window_holds_its_alerts_unless_another_route_delivers_them():
    intervals = [
        {"name": "maintenance", "time_intervals": [{"start": "2026-05-01T20:00:00Z", "end": "2026-05-01T22:00:00Z"}]},
        {
            "name": "office",
            "time_intervals": [
                {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "18:00"}], "location": "Europe/Paris"}
            ],
        },
    ]
    routes = [
        RouteSettings.model_validate({"matchers": ['alertname="DiskFull"'], "mute_time_intervals": ["maintenance"], "continue": True}),
        RouteSettings.model_validate({"matchers": ['team="ml"'], "receivers": [], "active_time_intervals": ["office"]}),
    ]
    r = rules(routes=routes, intervals=intervals)
    during = datetime(2026, 5, 1, 21, tzinfo=UTC)  # a Friday, 23:00 in Paris: outside office hours too
    assert r.window(attrs(alertname="DiskFull"), during) == "window:maintenance"
    assert r.window(attrs(alertname="DiskFull"), during + timedelta(hours=1)) is None
    assert r.window(attrs(alertname="DiskFull", team="ml"), during) == "window:maintenance"  # both routes muted
    assert r.window(attrs(team="ml"), during) == "window:outside office"
    assert r.window(attrs(team="ml"), datetime(2026, 5, 1, 8, tzinfo=UTC)) is None  # 10:00 in Paris
    assert (
        r.window(attrs(alertname="DiskFull", team="ml"), datetime(2026, 5, 1, 8, tzinfo=UTC) + timedelta(hours=12, minutes=30))
        == "window:maintenance"
    )
    assert r.window(attrs(alertname="Other"), during) is None  # the root route has no windows


# ---- loading --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alerting", "routes", "reason"),
    [
        ({"time_intervals": [{"name": "n", "time_intervals": [{"weekdays": ["monday:funday"]}]}]}, [], "'funday' is not a valid weekday"),
        ({"time_intervals": [{"name": "n", "time_intervals": [{"weekdays": ["friday:monday"]}]}]}, [], "start day cannot be after end day"),
        (
            {"time_intervals": [{"name": "n", "time_intervals": [{"times": [{"start_time": "18:00", "end_time": "09:00"}]}]}]},
            [],
            "start_time must be before end_time",
        ),
        (
            {"time_intervals": [{"name": "n", "time_intervals": [{"times": [{"start_time": "9:00", "end_time": "24:01"}]}]}]},
            [],
            "couldn't parse time",
        ),
        ({"time_intervals": [{"name": "n", "time_intervals": [{"location": "Mars/Olympus"}]}]}, [], "unknown time zone 'Mars/Olympus'"),
        ({"time_intervals": [{"name": "n", "time_intervals": [{"days_of_month": ["0"]}]}]}, [], "not a valid day of the month"),
        ({"time_intervals": [{"name": "n", "time_intervals": [{"months": ["13"]}]}]}, [], "months are 1..12"),
        (
            {"time_intervals": [{"name": "n", "time_intervals": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}]},
            [],
            "end must be after start",
        ),
        ({"time_intervals": [{"name": "n", "time_intervals": [{"start": "2026-01-02T00:00:00"}]}]}, [], "timezone"),
        (
            {"time_intervals": [{"name": "n", "time_intervals": [{}]}, {"name": "n", "time_intervals": [{}]}]},
            [],
            "two time intervals are named 'n'",
        ),
        ({}, [{"mute_time_intervals": ["nights"]}], "routes[0].mute_time_intervals: unknown time interval 'nights'"),
        (
            {},
            [{"routes": [{"active_time_intervals": ["office"]}]}],
            "routes[0].routes[0].active_time_intervals: unknown time interval 'office'",
        ),
        ({"inhibit_rules": [{"source_matchers": ['alertname="A'], "target_matchers": ["a=b"]}]}, [], "unescaped double quote"),
        ({"inhibit_rules": [{"source_matchers": [], "target_matchers": ["a=b"]}]}, [], "source_matchers"),
        ({"severity_tiers": {"critical": "P0"}}, [], "severity_tiers"),
    ],
)
def test_bad_muting_config_stops_loading_naming_the_key_and_the_reason(tmp_path, alerting, routes, reason):
    import yaml

    from monitor.config import load_settings

    path = tmp_path / "dagwatch.yaml"
    path.write_text(yaml.safe_dump({"alerting": alerting, "routes": routes}))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert reason in str(caught.value)


def test_severity_tiers_are_case_insensitive_and_intervals_load_from_yaml(tmp_path):
    settings = Settings.model_validate(
        {
            "alerting": {
                "severity_tiers": {"CRITICAL": "P1", "Page": "P1"},
                "time_intervals": [
                    {
                        "name": "nights",
                        "time_intervals": [
                            {
                                "times": [{"start_time": "22:00", "end_time": "24:00"}],
                                "weekdays": ["monday", "friday:saturday"],
                                "location": "Asia/Kolkata",
                            }
                        ],
                    }
                ],
            },
            "routes": [{"matchers": ["severity=critical"], "mute_time_intervals": ["nights"]}],
        }
    )
    assert settings.alerting.severity_tiers == {"critical": "P1", "page": "P1"}
    [named] = settings.alerting.time_intervals
    assert named.time_intervals[0].weekdays == [(1, 1), (5, 6)]
    assert contains(named.time_intervals[0], datetime(2026, 3, 2, 17, 0, tzinfo=UTC))  # Monday 22:30 in Kolkata
