"""A real Prometheus (Debian's package, on 127.0.0.1) scrapes a real `dagwatch up` running the
demo pipeline, with the shipped rules loaded, and PromQL over what it scraped shows the demo's
failures. The Prometheus config is the shipped dashboards/prometheus/prometheus.yml with only the
target and the intervals changed; its rules folder is copied next to it as in the compose stack.

Every wait polls Prometheus's HTTP API until the expected answer or a generous deadline, so a
slow machine is slower, not red."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.server import DEMO_CONFIG, DagwatchProcess, free_port
from tests.servers.prometheus.exporters import prometheus_available
from tests.servers.prometheus.server import PrometheusServer

if not prometheus_available() and not os.environ.get("CI"):
    pytest.skip("the prometheus binary is not installed (apt-get install prometheus); CI installs it", allow_module_level=True)

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
DEADLINE = 120.0  # seconds; the demo fails in its first run, a couple of seconds after start


@dataclass
class Stack:
    dagwatch: DagwatchProcess
    prometheus: PrometheusServer

    def query(self, promql: str) -> list[dict]:
        body = httpx.get(f"{self.prometheus.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str) -> list[dict]:
        """The query's result once it is not empty; fails naming the query at the deadline."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if result := self.query(promql):
                return result
            time.sleep(0.5)
        pytest.fail(f"`{promql}` returned nothing in {DEADLINE:.0f}s\nPrometheus log:\n{self.prometheus.log_tail()}")


def shipped_config_for(target: str) -> dict:
    """The shipped prometheus.yml scraping `target` every second (and evaluating the rules as often)."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    [job] = config["scrape_configs"]
    [static] = job["static_configs"]
    static["targets"] = [target]
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("dagwatch-prometheus")
    config = folder / "dagwatch.yaml"
    config.write_text(DEMO_CONFIG.format(data_dir=folder / "data"))
    port = free_port()
    dagwatch = DagwatchProcess(config, port, folder / "dagwatch.log")
    prometheus = PrometheusServer(shipped_config_for(f"127.0.0.1:{port}"), files={"rules": PROMETHEUS_DIR / "rules"})
    try:
        dagwatch.wait_healthy()
        prometheus.start()
        yield Stack(dagwatch, prometheus)
    finally:
        prometheus.stop()
        dagwatch.stop()


def test_promql_over_the_scraped_data_returns_the_demos_failures(stack):
    [up] = stack.wait_for('up{job="dagwatch"} == 1')
    assert up["metric"]["instance"] == stack.dagwatch.url.removeprefix("http://")

    [runs] = stack.wait_for('sum by (source, pipeline) (dagwatch_runs_total{state="failed"}) > 0')
    assert runs["metric"] == {"source": "embedded", "pipeline": "demo_ml"}
    [tasks] = stack.wait_for('sum by (source, pipeline) (dagwatch_tasks_total{state="failed"}) > 0')
    assert tasks["metric"] == {"source": "embedded", "pipeline": "demo_ml"}
    kinds = {r["metric"]["kind"] for r in stack.wait_for('sum by (kind) (dagwatch_events_total{kind=~"run_failed|task_failed"}) > 0')}
    assert kinds >= {"run_failed"}
    [sent] = stack.wait_for('sum by (receiver) (dagwatch_notifications_total{status="sent"}) > 0')
    assert sent["metric"] == {"receiver": "console"}  # the demo's P1 page went out


def test_recording_rules_evaluate_over_the_scraped_data(stack):
    [ratio] = stack.wait_for('source_pipeline:dagwatch_runs_failed:ratio_rate1h{source="embedded",pipeline="demo_ml"} > 0')
    assert 0 < float(ratio["value"][1]) < 1  # the demo's cycle fails some runs, not all
    stack.wait_for('source_pipeline_state:dagwatch_runs:rate1h{source="embedded",pipeline="demo_ml",state="success"} > 0')
    stack.wait_for('source_pipeline:dagwatch_run_duration_seconds:mean_success_1h{source="embedded",pipeline="demo_ml"} > 0')
    stack.wait_for('source_pipeline:dagwatch_run_duration_vs_p95_baseline:ratio{source="embedded",pipeline="demo_ml"} > 0')
    stack.wait_for('source:dagwatch_source_up:max{source="embedded"} == 1')
    stack.wait_for('receiver:dagwatch_notifications_failed:ratio_rate15m{receiver="console"} == 0')
    stack.wait_for('tier_kind:dagwatch_alerts_firing:max{tier="P1",kind="run_failed"}')

    groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    shipped = sum(len(g["rules"]) for p in (PROMETHEUS_DIR / "rules").glob("*.yml") for g in yaml.safe_load(p.read_text())["groups"])
    assert len(rules) == shipped
    unhealthy = {rule["name"]: (rule["health"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"}
    assert not unhealthy, f"rules not evaluated, or failing on dagwatch's real series: {unhealthy}"


def test_the_rules_read_only_metrics_dagwatch_exports(stack):
    exported = set(re.findall(r"^# TYPE (\w+) ", httpx.get(f"{stack.dagwatch.url}/metrics", timeout=10).text, re.MULTILINE))
    exprs = " ".join(
        rule["expr"]
        for p in (PROMETHEUS_DIR / "rules").glob("*.yml")
        for g in yaml.safe_load(p.read_text())["groups"]
        for rule in g["rules"]
    )
    read = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"(?<![:\w])dagwatch_\w+", exprs)}
    assert read - exported == set(), "the rules read metrics that dagwatch does not export"


def test_the_alerts_links_lead_to_dagwatch_pages(stack):
    """The links promtool's cases expect (tests/*.test.yml), on this running dagwatch: every page
    exists, and the runbook start pages name a runbook dagwatch knows."""
    expected = [
        alert["exp_annotations"]["runbook_url"]
        for path in (PROMETHEUS_DIR / "tests").glob("*.test.yml")
        for group in yaml.safe_load(path.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
        for alert in case.get("exp_alerts") or []
    ]
    assert expected
    for link in expected:
        page = httpx.get(link.replace("https://dagwatch.example", stack.dagwatch.url), timeout=10)
        if "/runbooks/" in link:  # no alert of that made-up pipeline is firing here; the runbook exists
            assert page.status_code == 404 and "No firing alert" in page.text, (link, page.status_code, page.text[:500])
        else:
            assert page.status_code == 200, (link, page.status_code, page.text[:500])
