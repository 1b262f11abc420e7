"""Prometheus's and Alertmanager's alerts as dagwatch events: kind, tier, identity, resolution."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.alerting import external, lifecycle
from monitor.model import AlertKind, Event, Tier

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
TIERS = {"critical": "P1", "warning": "P2", "info": "P3"}


def event(labels, *, annotations=None, starts=NOW - timedelta(minutes=1), ends=None, resolved=None) -> Event:
    return Event.model_validate(
        external.to_event(
            labels=labels,
            annotations=annotations or {},
            starts_at=starts,
            ends_at=ends,
            generator_url=None,
            resolved=resolved,
            severity_tiers=TIERS,
            now=NOW,
        )
    )


def test_a_label_less_alert_is_an_infra_alert_at_p2_never_a_source_down_page():
    e = event({"alertname": "Watchdog"})
    assert e.kind.value == "infra_alert" and e.tier is None
    assert lifecycle.plan(e, [])[0].tier is Tier.P2
    assert event({}).summary == "prometheus alert"


def test_tier_label_wins_over_severity_and_severity_maps_case_insensitively():
    assert event({"alertname": "A", "severity": "critical"}).tier is Tier.P1
    assert event({"alertname": "A", "severity": "Warning"}).tier is Tier.P2
    assert event({"alertname": "A", "severity": "critical", "tier": "p3"}).tier is Tier.P3
    assert event({"alertname": "A", "severity": "page-me-maybe"}).tier is None
    assert event({"alertname": "A", "tier": "P0", "severity": "info"}).tier is Tier.P3  # not a tier: the severity decides


def test_a_kind_label_naming_a_dagwatch_kind_is_used_anything_else_is_infra():
    e = event({"alertname": "TrainFailed", "dagwatch_kind": "run_failed", "pipeline": "train"})
    assert e.kind.alert_kind is AlertKind.RUN_FAILED and e.pipeline == "train"
    assert lifecycle.plan(e, [])[0].tier is Tier.P1  # the kind's default when no tier or severity is given
    assert event({"alertname": "X", "kind": "node"}).kind.value == "infra_alert"


def test_identity_is_the_label_set_whatever_its_order():
    a = event({"alertname": "DiskFull", "instance": "db-1", "severity": "warning"})
    b = event({"severity": "warning", "instance": "db-1", "alertname": "DiskFull"})
    c = event({"alertname": "DiskFull", "instance": "db-2", "severity": "warning"})
    assert a.dedup_key == b.dedup_key != c.dedup_key
    assert lifecycle.fingerprint(AlertKind.INFRA_ALERT, a) == lifecycle.fingerprint(AlertKind.INFRA_ALERT, b)


def test_ends_at_in_the_past_resolves_in_the_future_fires_and_go_zero_times_are_unset():
    labels = {"alertname": "DiskFull"}
    assert event(labels, ends=NOW + timedelta(minutes=4)).resolved is False
    gone = event(labels, ends=NOW - timedelta(seconds=5))
    assert gone.resolved is True and gone.occurred_at == NOW - timedelta(seconds=5)
    zero = datetime(1, 1, 1, tzinfo=timezone.utc)
    unset = event(labels, starts=zero, ends=zero)
    assert unset.resolved is False and unset.occurred_at == NOW
    assert event(labels, ends=NOW + timedelta(minutes=4), resolved=True).resolved is True  # the webhook's status decides


def test_annotations_are_kept_in_details():
    e = event(
        {"alertname": "GpuNodeDown"},
        annotations={"summary": "gpu-3 down", "description": "no scrape for 2m", "runbook_url": "https://wiki/x", "other": "y"},
    )
    assert e.summary == "gpu-3 down"
    assert e.details["runbook_url"] == "https://wiki/x" and e.details["description"] == "no scrape for 2m"
    assert e.details["annotations"]["other"] == "y"
    assert event({"alertname": "A"}, annotations={"description": "only this"}).summary == "only this"
