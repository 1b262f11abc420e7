"""GET /metrics of a real `dagwatch up` running the demo, parsed as Prometheus parses it: the demo's
failures are there (runs, tasks, events, alerts, notifications, checks), the store gauges carry
the pipeline's last success, baseline and schedule, pushed events are counted once each, and no
series carries a run id."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server import DEMO_CONFIG, DagwatchProcess, create_token, free_port, wait_for

RUN_ID_LABELS = {"run_id", "dag_run_id", "flow_run_id", "try_number", "alert_id"}


@pytest.fixture
def dagwatch(tmp_path):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(DEMO_CONFIG.format(data_dir=tmp_path / "data") + "metrics: {pipeline_cap: 50, baseline_runs: 5}\n")
    token = create_token(config, "ops")
    server = DagwatchProcess(config, free_port(), tmp_path / "dagwatch.log")
    try:
        server.wait_healthy()
        yield server, token
    finally:
        assert server.stop() == 0


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """Sample name → {sorted label items: value}, through prometheus_client's own parser."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def get(series: dict, name: str, **labels) -> float:
    return series.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def demo_has_failed_and_succeeded(url: str):
    series = scrape(url)
    failed = get(series, "dagwatch_runs_total", source="embedded", pipeline="demo_ml", state="failed")
    ok = get(series, "dagwatch_runs_total", source="embedded", pipeline="demo_ml", state="success")
    sent = get(series, "dagwatch_notifications_total", receiver="console", status="sent")
    baseline = series.get("dagwatch_pipeline_duration_baseline_seconds")
    return series if failed >= 1 and ok >= 3 and sent >= 1 and baseline else None


def test_demo_failures_on_metrics_and_no_run_ids(dagwatch):
    server, token = dagwatch
    series = wait_for(lambda: demo_has_failed_and_succeeded(server.url), limit=120, step=1)

    assert get(series, "dagwatch_tasks_total", source="embedded", pipeline="demo_ml", state="failed") >= 1
    assert get(series, "dagwatch_run_duration_seconds_count", source="embedded", pipeline="demo_ml", state="failed") >= 1
    assert get(series, "dagwatch_run_duration_seconds_bucket", source="embedded", pipeline="demo_ml", state="success", le="+Inf") >= 3
    assert get(series, "dagwatch_events_total", kind="run_failed") >= 1 and get(series, "dagwatch_events_total", kind="task_failed") >= 1
    assert get(series, "dagwatch_notification_latency_seconds_count", receiver="console") >= 1
    assert sum(v for k, v in series["dagwatch_checks_total"].items() if dict(k)["result"] == "passed") >= 1  # the demo's gates
    firing = series["dagwatch_alerts_firing"]
    assert ((("kind", "run_failed"), ("tier", "P1"))) in firing and ((("kind", "drift_detected"), ("tier", "P3"))) in firing
    assert get(series, "dagwatch_source_up", source="embedded") == 1
    assert get(series, "dagwatch_source_last_success_timestamp_seconds", source="embedded") > 0
    assert get(series, "dagwatch_source_polls_total", source="embedded", result="ok") >= 1
    assert get(series, "dagwatch_source_poll_duration_seconds_count", source="embedded") >= 1
    assert get(series, "dagwatch_pipeline_last_success_timestamp_seconds", source="embedded", pipeline="demo_ml") > 0
    assert get(series, "dagwatch_pipeline_expected_interval_seconds", source="embedded", pipeline="demo_ml") == 2.0  # every: 2s
    p50 = get(series, "dagwatch_pipeline_duration_baseline_seconds", source="embedded", pipeline="demo_ml", quantile="0.5")
    p95 = get(series, "dagwatch_pipeline_duration_baseline_seconds", source="embedded", pipeline="demo_ml", quantile="0.95")
    assert 0 < p50 <= p95
    assert get(series, "dagwatch_outbox_pending", receiver="console") >= 0 and ("dagwatch_outbox_oldest_pending_age_seconds" in series)
    assert get(series, "dagwatch_metrics_pipeline_cap") == 50 and get(series, "dagwatch_metrics_pipelines_folded") == 0
    assert not any(name.endswith("_created") for name in series)

    # pushed events: counted once each where they are applied; a rejected item is not counted
    before = get(series, "dagwatch_events_total", kind="run_missing")
    batch = [{"kind": "run_missing", "source": "pushed", "pipeline": f"nightly-{i}", "summary": "no run"} for i in range(2)] + [
        {"kind": "nope"}
    ]
    answer = httpx.post(f"{server.url}/api/v1/events", json=batch, headers={"Authorization": f"Bearer {token}"}).json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    check = {"kind": "quality", "name": "rows", "status": "failed", "source": "pushed", "pipeline": "nightly-0"}
    checks_before = get(series, "dagwatch_checks_total", kind="quality", result="failed")
    assert httpx.post(f"{server.url}/api/v1/check-results", json=check, headers={"Authorization": f"Bearer {token}"}).status_code == 202
    after = scrape(server.url)
    assert get(after, "dagwatch_events_total", kind="run_missing") - before == 2
    assert get(after, "dagwatch_checks_total", kind="quality", result="failed") - checks_before == 1
    assert get(after, "dagwatch_alerts_firing", tier="P2", kind="run_missing") == 2

    run_ids = {r["run_id"] for r in httpx.get(f"{server.url}/api/v1/runs", params={"limit": 500}).json()}
    assert run_ids
    for name, samples in after.items():
        for labels in samples:
            assert not RUN_ID_LABELS & {k for k, _ in labels}, (name, labels)
            assert not run_ids & {v for _, v in labels}, (name, labels)
