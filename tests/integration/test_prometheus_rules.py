"""The shipped Prometheus files (dashboards/prometheus/) checked by Debian's `promtool`: the config
and rules load, and the unit tests of the rules (tests/*.test.yml, input series → expected alerts
and recorded values) pass. A failing check fails here with promtool's own output.

Also what promtool does not check: every alert rule carries the labels and annotations people
route and act on, and is unit-tested both firing and silent."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.model import Tier
from monitor.remediation import runbook as runbooks
from tests.servers.prometheus.server import PrometheusUnavailable, find_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
SEVERITIES = {"critical", "warning", "info"}
DAGWATCH_URL = "{{ $externalLabels.dagwatch_url }}"

try:
    PROMTOOL = find_binary("promtool")
except PrometheusUnavailable as exc:
    if os.environ.get("CI"):
        raise
    pytest.skip(str(exc), allow_module_level=True)


def promtool(*args: str | Path) -> str:
    """Run promtool in the folder (its paths are relative to the files); fail with its output."""
    done = subprocess.run([PROMTOOL, *map(str, args)], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)
    output = f"$ promtool {' '.join(map(str, args))}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, output
    return output


def alert_rules() -> list[dict]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule
    ]


def unit_cases() -> list[dict]:
    return [case for path in TEST_FILES for group in yaml.safe_load(path.read_text())["tests"] for case in group.get("alert_rule_test", [])]


def test_the_shipped_files_are_there():
    assert (PROMETHEUS_DIR / "prometheus.yml").is_file()
    assert [p.name for p in RULE_FILES] == ["dagwatch-alerts.yml", "dagwatch-recording.yml"]
    assert TEST_FILES, "no promtool unit tests in dashboards/prometheus/tests"


def test_promtool_check_config_loads_the_rules_by_relative_path():
    output = promtool("check", "config", "prometheus.yml")
    for path in RULE_FILES:  # the rule_files glob found every shipped file
        assert f"Checking rules/{path.name}" in output, output


def test_promtool_check_rules():
    promtool("check", "rules", *(p.relative_to(PROMETHEUS_DIR) for p in RULE_FILES))


def test_promtool_test_rules():
    output = promtool("test", "rules", *(p.relative_to(PROMETHEUS_DIR) for p in TEST_FILES))
    assert output.count("SUCCESS") == len(TEST_FILES), output


def test_the_scrape_config_is_the_one_the_compose_stack_uses():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "dagwatch"  # DagwatchDown matches up{job="dagwatch"}
    assert job["static_configs"] == [{"targets": ["dagwatch:8000"]}]
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["global"]["external_labels"]["dagwatch_url"].startswith("http")  # the runbook links' base


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_rule_says_how_bad_and_where_to_act(rule):
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["tier"] in {t.value for t in Tier}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= annotations.keys()
    assert annotations["runbook_url"].startswith(DAGWATCH_URL + "/"), "links go to dagwatch (external label dagwatch_url)"
    if "$labels.pipeline" in annotations["summary"]:  # a pipeline alert opens the runbook page for its pipeline
        path, _, query = annotations["runbook_url"][len(DAGWATCH_URL) :].partition("?")
        match = re.fullmatch(r"/runbooks/([\w-]+)/start", path)
        assert match and match.group(1) in runbooks.load_all(), f"{path} is not the start page of a shipped runbook"
        assert query == "source={{ $labels.source | urlquery }}&pipeline={{ $labels.pipeline | urlquery }}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_rule_is_unit_tested_firing_and_silent(rule):
    cases = [case for case in unit_cases() if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), f"no promtool case where {rule['alert']} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no promtool case where {rule['alert']} stays silent"
    for case in cases:
        for expected in case.get("exp_alerts") or []:
            assert expected["exp_labels"].items() >= rule["labels"].items()
            assert expected["exp_annotations"].keys() == rule["annotations"].keys()
