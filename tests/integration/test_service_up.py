"""`dagwatch up` as a user runs it: a real process, the demo pipeline on a short schedule, the
HTTP API, the page and the metrics; then a restart on the same data folder."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server import DEMO_CONFIG, DagwatchProcess, free_port, wait_for


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "dagwatch.yaml"
    path.write_text(DEMO_CONFIG.format(data_dir=tmp_path / "data"))
    return path


def resolved_p1(url):
    """Resolved run failures of the demo's `persistent` scenario (the feature step fails every
    try) whose firing and resolve notifications have both been delivered.

    Only those the service saw failing before it saw the fix: when one poll brings a failed run
    and the next run's success together (a slow run makes the scheduler start the next one at
    once), the failure is recorded resolved and pages nobody (ARCHITECTURE.md, the rules of
    truth); the rotation brings the scenario round again."""
    alerts = httpx.get(f"{url}/api/v1/alerts", params={"tier": "P1", "status": "resolved"}).json()
    return [
        a
        for a in alerts
        if a["kind"] == "run_failed"
        and a["task_id"] == "features"
        and {(n["action"], n["status"]) for n in a["notifications"]} >= {("firing", "sent"), ("resolved", "sent")}
    ]


def test_demo_failure_fires_and_resolves_across_the_whole_service(config, tmp_path):
    server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    try:
        server.wait_healthy()
        [alert, *_] = wait_for(lambda: resolved_p1(server.url), limit=90, step=0.5)
        assert alert["pipeline"] == "demo_ml" and alert["task_id"] == "features" and alert["try_number"] == 2
        assert "FeatureStoreError" in alert["summary"] and "raise FeatureStoreError" in alert["details"]["traceback"]
        assert alert["resolved_at"] >= alert["started_at"]
        assert [(n["receiver"], n["action"], n["status"]) for n in alert["notifications"]] == [
            ("console", "firing", "sent"),
            ("console", "resolved", "sent"),
        ]
        one = httpx.get(f"{server.url}/api/v1/alerts/{alert['id']}").json()
        assert one["id"] == alert["id"] and one["fingerprint"] == alert["fingerprint"]

        runs = httpx.get(f"{server.url}/api/v1/runs", params={"pipeline": "demo_ml"}).json()
        failed = next(r for r in runs if r["run_id"] == alert["run_id"])
        states = {t["task_id"]: t["state"] for t in failed["tasks"]}
        assert states == {
            "ingest": "success",
            "validate": "success",
            "features": "failed",
            "train": "upstream_failed",
            "check_convergence": "upstream_failed",
            "evaluate": "upstream_failed",
            "check_output": "upstream_failed",
            "check_drift": "upstream_failed",
            "deploy": "upstream_failed",
        }

        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'dagwatch_runs_total{pipeline="demo_ml",source="embedded",state="failed"}' in metrics
        assert 'dagwatch_source_up{source="embedded"} 1.0' in metrics
        assert 'dagwatch_alerts_firing{kind="run_failed",tier="P1"}' in metrics
        assert "dagwatch_run_duration_seconds_bucket" in metrics

        page = httpx.get(f"{server.url}/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert f'href="/alerts/{alert["id"]}"' in page.text and "FeatureStoreError" in page.text
        detail = httpx.get(f"{server.url}/alerts/{alert['id']}").text
        assert "Traceback" in detail and "resolved" in detail

        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready == {"status": "ok", "checks": {"store": "ok", "scheduler": "ok"}}
    finally:
        assert server.stop() == 0
    console = (tmp_path / "dagwatch.log").read_text()
    assert "FIRING P1" in console and "RESOLVED P1" in console

    again = DagwatchProcess(config, free_port(), tmp_path / "dagwatch2.log")
    try:
        again.wait_healthy()
        ids = [a["id"] for a in httpx.get(f"{again.url}/api/v1/alerts", params={"limit": 1000}).json()]
        assert alert["id"] in ids  # history survived the restart
    finally:
        again.stop()


def test_api_contract_errors_and_schema(config, tmp_path):
    server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    try:
        server.wait_healthy()
        missing = httpx.get(f"{server.url}/api/v1/alerts/999999")
        assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
        assert httpx.get(f"{server.url}/api/v1/alerts", params={"tier": "P9"}).status_code == 422
        assert httpx.get(f"{server.url}/api/v1/alerts", params={"limit": 0}).status_code == 422
        paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/runs"):
            assert path in paths
    finally:
        server.stop()


def test_bad_config_stops_start_up_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: e, kind: embedded, poll_interval: soon}]")
    server = DagwatchProcess(bad, free_port(), tmp_path / "bad.log")
    assert server.proc.wait(timeout=30) == 2
    server.stop()
    assert f"error: {bad}: sources[0].poll_interval: invalid duration 'soon'" in (tmp_path / "bad.log").read_text()
