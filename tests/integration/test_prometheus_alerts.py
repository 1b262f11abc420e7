"""Prometheus sends its alerts straight to dagwatch (Alertmanager's API v2), and dagwatch's own
muting config (mute windows, inhibit rules) holds them back like silences.

The first test runs a real Prometheus (Debian's package, on 127.0.0.1) loaded with the shipped
prometheus.yml and rules plus one rule file of GPU alerts over a gauge the test flips (a
prometheus-client exporter), its `alerting.alertmanagers` pointing at a real `dagwatch up`
(api_version v2, path_prefix /, a bearer token). Recording webhook receivers stand for the pager
and the ticket queue. Every wait polls with a generous deadline, so a slow machine is slower,
not red.

The muting tests drive the same mapping, ingest and dispatcher in process with a clock the test
sets, so a window opens and closes at chosen moments and never on the wall clock."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from monitor.alerting import dispatch, external, ingest
from monitor.config import Settings
from monitor.model import AlertStatus, Event, Notification, Tier
from monitor.store import alerts as alert_store
from tests.fakes.clock import Clock
from tests.fakes.httpserver import FakeHTTPServer
from tests.integration.server import DagwatchProcess, create_token, free_port
from tests.servers.prometheus.exporters import prometheus_available
from tests.servers.prometheus.server import PrometheusServer

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
DEADLINE = 120.0

GPU_RULES = {
    "groups": [
        {
            "name": "gpu",
            "rules": [
                {
                    "alert": "GpuNodeDown",
                    "expr": "gpu_node_up == 0",
                    "labels": {"severity": "critical"},  # no tier label: the severity maps to P1
                    "annotations": {
                        "summary": "GPU node {{ $labels.node }} is down",
                        "runbook_url": "https://runbooks.example.com/gpu-node-down?node={{ $labels.node }}",
                    },
                },
                {
                    "alert": "GpuMemoryHigh",
                    "expr": "gpu_memory_used_ratio > 0.9",
                    "annotations": {"summary": "GPU memory on {{ $labels.node }} above 90%"},
                },  # label-less: P2, never a surprise page
            ],
        }
    ]
}

CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s}}
receivers:
  - {{name: pager, kind: webhook, url: "{hooks}/pager"}}
  - {{name: tickets, kind: webhook, url: "{hooks}/tickets"}}
routes:
  - matchers: ['kind="infra_alert"', 'tier="P1"']
    receivers: [pager]
  - matchers: ['kind="infra_alert"', 'tier=~"P2|P3"']
    receivers: [tickets]
"""


def prometheus_config(dagwatch_port: int, exporter_port: int, token: str) -> dict:
    """The shipped prometheus.yml (scraping this dagwatch, its rules by relative path) plus the
    GPU rules, the exporter, and Alertmanager's API v2 at dagwatch."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    [job] = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{dagwatch_port}"]
    config["scrape_configs"].append({"job_name": "gpu", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]})
    config["rule_files"].append("test-rules/gpu.yml")
    config["alerting"] = {
        "alertmanagers": [
            {
                "api_version": "v2",
                "path_prefix": "/",
                "scheme": "http",
                "timeout": "5s",
                "authorization": {"type": "Bearer", "credentials": token},
                "static_configs": [{"targets": [f"127.0.0.1:{dagwatch_port}"]}],
            }
        ]
    }
    return config


@dataclass
class Stack:
    dagwatch: DagwatchProcess
    prometheus: PrometheusServer
    hooks: FakeHTTPServer
    gauges: dict[str, Gauge]
    token: str

    def alerts(self, **params) -> list[dict]:
        answer = httpx.get(
            f"{self.dagwatch.url}/api/v1/alerts", params=params, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def posted(self, path: str) -> list[dict]:
        return [r.json() for r in list(self.hooks.requests) if r.path == path]

    def wait(self, what: str, predicate):
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.25)
        pytest.fail(
            f"{what}: not seen in {DEADLINE:.0f}s\nPrometheus log:\n{self.prometheus.log_tail()}\n"
            f"dagwatch log:\n{self.dagwatch.log_path.read_text(errors='replace')[-3000:]}"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    if not prometheus_available() and not os.environ.get("CI"):
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus); CI installs it")
    folder = tmp_path_factory.mktemp("prometheus-alerts")
    hooks = FakeHTTPServer().start()
    config = folder / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=folder / "data", hooks=hooks.url))
    token = create_token(config, "prometheus", "operator")
    registry = CollectorRegistry()
    gauges = {
        "up": Gauge("gpu_node_up", "1 while the GPU node answers.", ["node"], registry=registry),
        "memory": Gauge("gpu_memory_used_ratio", "Used share of the GPU's memory.", ["node"], registry=registry),
    }
    gauges["up"].labels(node="gpu-3").set(1)
    gauges["memory"].labels(node="gpu-3").set(0.2)
    exporter_port = free_port()
    httpd, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    rules = folder / "gpu.yml"
    rules.write_text(yaml.safe_dump(GPU_RULES))
    port = free_port()
    dagwatch = DagwatchProcess(config, port, folder / "dagwatch.log")
    prometheus = PrometheusServer(
        prometheus_config(port, exporter_port, token), files={"rules": PROMETHEUS_DIR / "rules", "test-rules/gpu.yml": rules}
    )
    try:
        dagwatch.wait_healthy()
        prometheus.start()
        yield Stack(dagwatch, prometheus, hooks, gauges, token)
    finally:
        prometheus.stop()
        dagwatch.stop()
        httpd.shutdown()
        httpd.server_close()
        hooks.stop()


def test_prometheus_loads_the_shipped_rules_next_to_its_own(stack):
    def rules() -> list[dict]:
        groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    assert {"DagwatchSourceDown", "DagwatchDown", "GpuNodeDown", "GpuMemoryHigh"} <= {rule["name"] for rule in rules()}
    stack.wait("every rule evaluated without error", lambda: all(rule["health"] == "ok" for rule in rules()))
    active = stack.wait(
        "dagwatch as Prometheus's alertmanager",
        lambda: httpx.get(f"{stack.prometheus.url}/api/v1/alertmanagers", timeout=10).json()["data"]["activeAlertmanagers"],
    )
    assert [am["url"] for am in active] == [f"{stack.dagwatch.url}/api/v2/alerts"]


def test_a_prometheus_alert_is_routed_by_tier_and_resolved_when_prometheus_resolves_it(stack):
    stack.gauges["up"].labels(node="gpu-3").set(0)
    stack.gauges["memory"].labels(node="gpu-3").set(0.95)

    def paged():
        return [p for p in stack.posted("/pager") if p["action"] == "firing"]

    [page] = stack.wait("the GPU node page", paged)[:1]
    [alert] = page["alerts"]
    assert alert["kind"] == "infra_alert" and alert["tier"] == "P1"  # severity=critical through alerting.severity_tiers
    assert alert["labels"]["alertname"] == "GpuNodeDown" and alert["labels"]["node"] == "gpu-3"
    assert alert["summary"] == "GPU node gpu-3 is down"
    assert alert["links"]["runbook"] == "https://runbooks.example.com/gpu-node-down?node=gpu-3"
    assert alert["details"]["generator_url"].startswith("http")
    assert alert["source"] == "prometheus/gpu"

    ticket = stack.wait("the GPU memory ticket", lambda: [p for p in stack.posted("/tickets") if p["action"] == "firing"])[0]
    [memory] = ticket["alerts"]
    assert memory["labels"]["alertname"] == "GpuMemoryHigh" and memory["tier"] == "P2"  # no tier, no severity: P2
    assert not any(a["labels"].get("alertname") == "GpuMemoryHigh" for p in stack.posted("/pager") for a in p["alerts"])

    stack.gauges["up"].labels(node="gpu-3").set(1)
    resolved = stack.wait("the page's resolution", lambda: [p for p in stack.posted("/pager") if p["action"] == "resolved"])
    assert [a["id"] for a in resolved[0]["alerts"]] == [alert["id"]]
    [stored] = [a for a in stack.alerts(status="resolved") if a["id"] == alert["id"]]
    assert stored["resolved_at"] is not None
    firing = {a["labels"].get("alertname") for a in stack.alerts(status="firing")}
    assert "GpuMemoryHigh" in firing and "GpuNodeDown" not in firing
    # Prometheus re-sends firing alerts; dagwatch counts them on the one alert (label-set fingerprint)
    assert len([a for a in stack.alerts() if a["labels"].get("alertname") == "GpuNodeDown"]) == 1


def test_one_bad_alert_in_a_batch_costs_only_itself(stack):
    good = {
        "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "warning"},
        "annotations": {"summary": "disk full on db-1", "runbook_url": "javascript:alert(1)"},
    }
    bad = {"labels": {"alertname": "x" * 10, "bad": 3}}
    answer = httpx.post(
        f"{stack.dagwatch.url}/api/v2/alerts",
        json=[good, bad, {"annotations": {}}],
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [i["status"] for i in body["items"]] == ["accepted", "rejected", "rejected"]
    [disk] = [a for a in stack.alerts(status="firing") if a["labels"].get("alertname") == "DiskFull"]
    assert disk["tier"] == "P2" and "runbook" not in disk["links"]  # not an http(s) link: kept in details only
    assert disk["details"]["runbook_url"] == "javascript:alert(1)"
    refused = httpx.post(f"{stack.dagwatch.url}/api/v2/alerts", json=[good], headers={"Authorization": "Bearer nope"}, timeout=10)
    assert refused.status_code == 401


# ---- dagwatch's own muting, end to end in process ----------------------------------------------

T0 = datetime(2026, 3, 28, 20, 0, tzinfo=timezone.utc)


class Recording:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def notify(self, notification: Notification):
        self.sent.append(notification)
        return {}

    def told(self) -> list[tuple[str, list[str]]]:
        return [(n.action.value, sorted(a.labels.get("alertname", "") for a in n.alerts)) for n in self.sent]


def policy_of(config: dict) -> ingest.AlertPolicy:
    settings = Settings.model_validate({"receivers": [{"name": "pager", "kind": "console"}], **config})
    return ingest.AlertPolicy.from_settings(settings)


def prometheus_alert(policy: ingest.AlertPolicy, now: datetime, *, ends: datetime | None = None, **labels: str) -> Event:
    """What POST /api/v2/alerts makes of one alert (same mapping), at `now`."""
    return Event.model_validate(
        external.to_event(
            labels=labels,
            annotations={"summary": labels["alertname"]},
            starts_at=now - timedelta(seconds=30),
            ends_at=ends,
            generator_url=None,
            resolved=None,
            severity_tiers=policy.alerting.severity_tiers,
            now=now,
        )
    )


def test_a_mute_window_holds_alerts_back_and_sends_what_changed_when_it_ends(store):
    policy = policy_of(
        {
            "alerting": {
                "group_wait": "0s",
                "group_interval": "1s",
                "group_by": ["alertname"],
                "time_intervals": [
                    {"name": "upgrade", "time_intervals": [{"start": "2026-03-28T22:00:00+01:00", "end": "2026-03-29T03:30:00+02:00"}]}
                ],
            },
            "routes": [{"matchers": ['severity="critical"'], "receivers": ["pager"], "mute_time_intervals": ["upgrade"]}],
        }
    )
    clock, pager = Clock(T0), Recording()
    tick = lambda: dispatch.tick(store, {"pager": pager}, policy, clock=clock)  # noqa: E731
    ingest.submit(store, [prometheus_alert(policy, clock(), alertname="DiskFull", severity="critical")], policy, clock)
    tick()
    assert pager.told() == [("firing", ["DiskFull"])]  # before the window: paged

    clock.advance(timedelta(hours=1, minutes=5))  # 21:05 UTC: inside the window (22:05 CET)
    ingest.submit(store, [prometheus_alert(policy, clock(), alertname="GpuNodeDown", severity="critical", node="gpu-3")], policy, clock)
    tick()
    clock.advance(timedelta(seconds=5))
    ingest.submit(
        store,
        [prometheus_alert(policy, clock(), ends=clock() - timedelta(seconds=1), alertname="DiskFull", severity="critical")],
        policy,
        clock,
    )
    for _ in range(3):
        clock.advance(timedelta(minutes=20))
        tick()
    assert pager.told() == [("firing", ["DiskFull"]), ("resolved", ["DiskFull"])]  # a resolution is news; the new page is held
    with store.session() as s:
        [gpu] = [a for a in alert_store.list_alerts(s) if a.labels.get("alertname") == "GpuNodeDown"]
    assert gpu.status is AlertStatus.FIRING and gpu.muted_by == "window:upgrade"  # stored and shown, muted

    clock.now = datetime(2026, 3, 29, 1, 29, tzinfo=timezone.utc)  # 03:29 CEST: the clocks went forward at 02:00 CET
    tick()
    assert pager.told()[-1] == ("resolved", ["DiskFull"])
    clock.now = datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)  # 03:30 CEST: the window ends
    tick()
    clock.advance(timedelta(seconds=2))
    tick()
    assert pager.told()[-1] == ("firing", ["GpuNodeDown"])
    assert [n.alerts[0].tier for n in pager.sent] == [Tier.P1, Tier.P1, Tier.P1]


def test_an_inhibit_rule_holds_targets_while_its_source_fires(store):
    policy = policy_of(
        {
            "alerting": {
                "group_wait": "0s",
                "group_interval": "1s",
                "group_by": ["alertname"],
                "inhibit_rules": [
                    {"source_matchers": ['alertname="GpuNodeDown"'], "target_matchers": ['severity=~"warning|info"'], "equal": ["node"]}
                ],
            },
            "routes": [{"matchers": ['kind="infra_alert"'], "receivers": ["pager"]}],
        }
    )
    clock, pager = Clock(T0), Recording()
    tick = lambda: dispatch.tick(store, {"pager": pager}, policy, clock=clock)  # noqa: E731
    node_down = dict(alertname="GpuNodeDown", severity="critical", node="gpu-3")
    ingest.submit(store, [prometheus_alert(policy, clock(), **node_down)], policy, clock)
    clock.advance(timedelta(seconds=2))
    ingest.submit(
        store,
        [
            prometheus_alert(policy, clock(), alertname="GpuMemoryHigh", severity="warning", node="gpu-3"),
            prometheus_alert(policy, clock(), alertname="GpuMemoryHigh", severity="warning", node="gpu-4"),
        ],
        policy,
        clock,
    )
    for _ in range(3):
        clock.advance(timedelta(seconds=2))
        tick()
    told = [(n.action.value, sorted((a.labels["alertname"], a.labels["node"]) for a in n.alerts)) for n in pager.sent]
    assert ("firing", [("GpuNodeDown", "gpu-3")]) in told
    assert ("firing", [("GpuMemoryHigh", "gpu-4")]) in told  # another node: not inhibited
    assert not any(("GpuMemoryHigh", "gpu-3") in alerts for _, alerts in told)

    clock.advance(timedelta(seconds=2))
    ingest.submit(store, [prometheus_alert(policy, clock(), ends=clock() - timedelta(seconds=1), **node_down)], policy, clock)
    for _ in range(3):
        clock.advance(timedelta(seconds=2))
        tick()
    told = [(n.action.value, sorted((a.labels["alertname"], a.labels["node"]) for a in n.alerts)) for n in pager.sent]
    assert ("resolved", [("GpuNodeDown", "gpu-3")]) in told
    assert told[-1] == ("firing", [("GpuMemoryHigh", "gpu-3"), ("GpuMemoryHigh", "gpu-4")])  # the source resolved: the target is sent
