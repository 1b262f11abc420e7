"""`resource_snapshot` against a real Prometheus (Debian's, started on 127.0.0.1 by the test)
scraping two exporters with known node_exporter and DCGM values: the shipped queries, the label
selector filled from the alert, a query Prometheus rejects, and a Prometheus nobody answers."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from monitor.config import RunbookSettings
from monitor.model import utcnow
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import StepContext
from tests.fakes.alerts import alert
from tests.servers.postgres.server import free_port
from tests.servers.prometheus.exporters import (  # noqa: F401 - a fixture
    IDLE,
    TRAINER,
    prometheus_available,
    scraped,
)

if not prometheus_available() and not os.environ.get("CI"):
    pytest.skip("the prometheus binary is not installed (apt-get install prometheus); CI installs it", allow_module_level=True)

ACTION = ACTIONS["resource_snapshot"]
SELECTOR = 'host="{label.host}"'


def snapshot(settings: dict, *, host: str = "trainer-1", **args):
    now = utcnow()
    ctx = StepContext(
        alert=alert(labels={"team": "ml", "host": host}, started_at=now, updated_at=now),
        source=None,
        params={},
        results={},
        dry_run=False,
        clock=utcnow,
        services={"runbook_settings": RunbookSettings.model_validate(settings)},
    )
    return ACTION.run(ctx, ACTION.Args(**args))


def only(query: dict) -> dict:
    (series,) = query["series"]
    return series


def test_shipped_queries_on_the_alerts_machine(scraped):  # noqa: F811
    finding = snapshot({"prometheus_url": scraped.url, "prometheus_selector": SELECTOR}, step=timedelta(seconds=1))
    assert finding.ok, finding.summary
    prom = finding.data["prometheus"]
    assert prom["reachable"] is True and finding.data["prometheus_reachable"] is True and prom["selector"] == 'host="trainer-1"'
    queries = prom["queries"]
    assert set(queries) == {"cpu_busy", "memory_used", "gpu_util", "gpu_memory_used"}
    memory, gpu_util, gpu_memory = only(queries["memory_used"]), only(queries["gpu_util"]), only(queries["gpu_memory_used"])
    assert (
        memory["labels"]["host"] == "trainer-1" and memory["max"] == memory["at_failure"] == 1 - TRAINER.mem_available / TRAINER.mem_total
    )
    assert gpu_util["max"] == gpu_util["at_failure"] == 0.97 and gpu_util["labels"]["modelName"] == "NVIDIA A100-SXM4-40GB"
    assert gpu_memory["max"] == 0.75 and memory["points"] >= 2
    cpu = only(queries["cpu_busy"])
    assert cpu["at_failure"] == pytest.approx(TRAINER.cpu_busy, abs=0.05)
    assert 'node_cpu_seconds_total{mode="idle",host="trainer-1"}' in queries["cpu_busy"]["query"]
    assert "memory_used peak 0.94" in finding.summary and "gpu_util peak 0.97" in finding.summary
    assert finding.data["task"] == {"recorded": False, "reason": "no store to read the task run from"}
    window = finding.data["window"]
    assert window["start"] == window["failure_at"] - timedelta(minutes=10) and window["end"] >= window["failure_at"]


def test_an_empty_selector_sees_every_machine_busiest_first(scraped):  # noqa: F811
    finding = snapshot({"prometheus_url": scraped.url})
    hosts = [s["labels"]["host"] for s in finding.data["prometheus"]["queries"]["gpu_util"]["series"]]
    assert finding.ok and hosts == ["trainer-1", "idle-1"]


def test_configured_queries_and_one_prometheus_rejects(scraped):  # noqa: F811
    finding = snapshot(
        {
            "prometheus_url": scraped.url,
            "prometheus_selector": SELECTOR,
            "prometheus_queries": {
                "gpu_util": "",
                "gpu_memory_used": "",
                "cpu_busy": "",
                "fb_free_mib": "DCGM_FI_DEV_FB_FREE{$selector}",
                "broken": "rate(up{$selector}",
            },
        },
        host="idle-1",
    )
    queries = finding.data["prometheus"]["queries"]
    assert set(queries) == {"memory_used", "fb_free_mib", "broken"}
    assert only(queries["fb_free_mib"])["at_failure"] == IDLE.fb_free
    assert only(queries["memory_used"])["at_failure"] == 0.25
    assert not finding.ok and "HTTP 400" in queries["broken"]["error"] and queries["broken"]["series"] == []
    assert finding.data["reason"].startswith("Prometheus rejected broken: ")


def test_a_machine_prometheus_does_not_know_is_no_data_not_an_error(scraped):  # noqa: F811
    finding = snapshot({"prometheus_url": scraped.url, "prometheus_selector": SELECTOR}, host="elsewhere")
    assert finding.ok and all(q["series"] == [] for q in finding.data["prometheus"]["queries"].values())
    assert "cpu_busy no data" in finding.summary


def test_an_unreachable_prometheus_is_a_finding_not_a_crash():
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    finding = snapshot({"prometheus_url": url, "prometheus_timeout": "2s"})
    assert not finding.ok and finding.data["prometheus_reachable"] is False
    assert finding.data["reason"].startswith(f"cannot reach Prometheus at {url}: ConnectError")
    assert finding.summary.startswith(f"Prometheus: cannot reach Prometheus at {url}")


def test_without_prometheus_configured_it_says_so_and_is_ok():
    finding = snapshot({})
    assert finding.ok and finding.data["prometheus"] == {
        "configured": False,
        "reachable": None,
        "reason": "runbooks.prometheus_url is not set",
    }
    assert finding.summary.startswith("Prometheus: not asked (runbooks.prometheus_url is not set); nvidia-smi: ")
    assert finding.data["nvidia_smi"]["available"] in (True, False) and "sampled_at" in finding.data["nvidia_smi"]
