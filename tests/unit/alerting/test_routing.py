"""Routing from the table in routing_cases.yaml, plus grouping inheritance."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from monitor.alerting.routing import alert_attributes, final_tier, route
from monitor.config import AlertingSettings, RouteSettings
from monitor.model import Tier

TABLE = yaml.safe_load((Path(__file__).with_name("routing_cases.yaml")).read_text())
RECEIVERS = [(r["name"], r["kind"]) for r in TABLE["receivers"]]


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_routing_table(case):
    routes = [RouteSettings.model_validate(r) for r in case["routes"]]
    a = case["alert"]
    attrs = alert_attributes(
        tier=a["tier"], kind=a["kind"], source=a["source"], pipeline=a.get("pipeline"), task=a.get("task"), labels=a.get("labels", {})
    )
    tier = final_tier(Tier(a["tier"]), attrs, routes)
    assert tier is Tier(case["tier"])
    decisions = route(tier, attrs, routes, AlertingSettings(), RECEIVERS)
    assert [d.receiver for d in decisions] == case["receivers"]


def test_children_inherit_grouping_and_group_keys_split_by_group_by():
    routes = [
        RouteSettings.model_validate(
            {
                "match": {"team": "ml"},
                "group_wait": "30s",
                "group_by": ["pipeline"],
                "routes": [{"match": {"tier": "P1"}, "receivers": ["pager"], "group_interval": "10m"}],
            }
        )
    ]
    defaults = AlertingSettings()

    def decide(pipeline):
        attrs = alert_attributes(tier="P1", kind="run_failed", source="s", pipeline=pipeline, task=None, labels={"team": "ml"})
        [d] = route(Tier.P1, attrs, routes, defaults, [("pager", "pagerduty")])
        return d

    d = decide("a")
    assert d.grouping.group_wait == timedelta(seconds=30)  # from the parent
    assert d.grouping.group_interval == timedelta(minutes=10)  # its own
    assert d.grouping.repeat_interval == defaults.repeat_interval  # from the root defaults
    assert d.group_key == decide("a").group_key
    assert d.group_key != decide("b").group_key
