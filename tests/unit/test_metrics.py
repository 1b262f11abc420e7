"""monitor/metrics.py without a server: the label budget and its folding (counters and store
gauges alike), the exporter-compatible names and labels, no `_created` series, and how failed
API calls and schedules are read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from monitor import metrics
from monitor.bounded_answers import AnswerTooSlow
from monitor.metrics import OTHER, LabelBudget, compat_families, store_families
from monitor.model import KINDS, PipelineDefinition, State
from monitor.sources.base import SourceUnavailable, api_error_kind
from monitor.store.gauges import Compat, LatestRun, Reading, interval_seconds

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def budget():
    """The process-wide budget, at a small cap for the test and back to the default after."""
    metrics.BUDGET.reset(2)
    yield metrics.BUDGET
    metrics.BUDGET.reset(500)


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def families(reading, budget):
    return {f.name: f for f in store_families(reading, budget)}


def samples(family):
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def reading(**kw):
    base = dict(now=NOW, firing={}, sources=[], last_success={}, success_durations={}, expected_interval={}, outbox={})
    return Reading(**{**base, **kw})


def test_budget_keeps_the_first_cap_pipelines_and_folds_the_rest():
    b = LabelBudget(2)
    assert [b.pipeline("s", p) for p in ("a", "b", "c", "a", "d", "c")] == ["a", "b", OTHER, "a", OTHER, OTHER]
    assert b.folded == 2 and b.cap == 2
    assert b.pipeline("other-source", "a") == OTHER  # a pipeline is (source, pipeline)
    b.reset(2, seed=[("s", "d"), ("s", "c")])  # at start: the store's most recently active first
    assert [b.pipeline("s", p) for p in ("a", "c", "d")] == [OTHER, "c", "d"] and b.folded == 1


def test_counters_go_through_the_budget(budget):
    before = sample("dagwatch_runs_total", source="fold", pipeline=OTHER, state="failed")
    for name in ("p1", "p2", "p3", "p4"):
        metrics.run_finished("fold", name, State.FAILED, 90.0)
    metrics.task_finished("fold", "p4", State.RETRYING, 5.0)
    assert sample("dagwatch_runs_total", source="fold", pipeline="p1", state="failed") >= 1
    assert sample("dagwatch_runs_total", source="fold", pipeline="p3", state="failed") == 0  # folded, never its own series
    assert sample("dagwatch_runs_total", source="fold", pipeline=OTHER, state="failed") - before == 2
    assert sample("dagwatch_run_duration_seconds_bucket", source="fold", pipeline=OTHER, state="failed", le="120.0") >= 2
    assert sample("dagwatch_task_duration_seconds_count", source="fold", pipeline=OTHER, state="retrying") >= 1
    assert budget.folded == 2


def test_histograms_have_the_agreed_few_buckets():
    metrics.run_finished("buckets", "b", State.SUCCESS, 1.0)
    metrics.task_finished("buckets", "b", State.SUCCESS, 1.0)
    text = generate_latest(REGISTRY).decode()
    les = {
        name: sorted({s.labels["le"] for s in fam.samples if s.name.endswith("_bucket") and s.labels.get("source") == "buckets"}, key=float)
        for fam in text_string_to_metric_families(text)
        for name in [fam.name]
        if name in ("dagwatch_run_duration_seconds", "dagwatch_task_duration_seconds")
    }
    assert les["dagwatch_run_duration_seconds"] == ["30.0", "120.0", "600.0", "1800.0", "3600.0", "10800.0", "+Inf"]
    assert les["dagwatch_task_duration_seconds"] == ["1.0", "10.0", "60.0", "300.0", "1800.0", "7200.0", "+Inf"]


def test_no_created_series():
    metrics.EVENTS.labels(kind="run_failed").inc(0)
    metrics.NOTIFICATION_LATENCY.labels(receiver="console").observe(0.2)
    text = generate_latest(REGISTRY).decode()
    assert "dagwatch_events_total" in text and "_created" not in text


def test_store_gauges_fold_like_the_counters(budget):
    budget.pipeline("s", "a")
    budget.pipeline("s", "b")
    at = {p: NOW - timedelta(hours=h) for p, h in (("a", 1), ("b", 2), ("c", 3), ("d", 5))}
    fams = families(
        reading(
            last_success={("s", p): t for p, t in at.items()},
            success_durations={("s", "a"): [10.0, 30.0, 20.0, 40.0], ("s", "c"): [5.0, 5.0, 5.0], ("s", "b"): [1.0, 2.0]},
            expected_interval={("s", "a"): 60.0, ("s", "d"): 3600.0},
            firing={("P1", "run_failed"): 2, ("P1", "task_retrying"): 1},  # promoted retry: not its default tier
            outbox={"slack": (3, 42.0)},
            receivers=("console", "slack"),
        ),
        budget,
    )
    last = samples(fams["dagwatch_pipeline_last_success_timestamp_seconds"])
    assert last == {
        (("pipeline", "a"), ("source", "s")): at["a"].timestamp(),
        (("pipeline", "b"), ("source", "s")): at["b"].timestamp(),
        (("pipeline", OTHER), ("source", "s")): at["c"].timestamp(),
    }  # _other: the newest of c and d
    baseline = samples(fams["dagwatch_pipeline_duration_baseline_seconds"])
    assert baseline == {
        (("pipeline", "a"), ("quantile", "0.5"), ("source", "s")): 20.0,
        (("pipeline", "a"), ("quantile", "0.95"), ("source", "s")): 40.0,
    }  # b: too few runs; c: folded
    assert samples(fams["dagwatch_pipeline_expected_interval_seconds"]) == {(("pipeline", "a"), ("source", "s")): 60.0}
    firing = samples(fams["dagwatch_alerts_firing"])
    assert firing[(("kind", "run_failed"), ("tier", "P1"))] == 2 and firing[(("kind", "task_retrying"), ("tier", "P1"))] == 1
    for kind, spec in KINDS.items():  # every kind at its default tier, 0 when none fire
        assert (("kind", kind.value), ("tier", spec.tier.value)) in firing
    assert samples(fams["dagwatch_outbox_pending"]) == {(("receiver", "console"),): 0, (("receiver", "slack"),): 3}
    assert samples(fams["dagwatch_outbox_oldest_pending_age_seconds"])[(("receiver", "slack"),)] == 42.0
    assert samples(fams["dagwatch_metrics_pipeline_cap"]) == {(): 2} and samples(fams["dagwatch_metrics_pipelines_folded"]) == {(): 2}


def compat_reading():
    defs = [
        PipelineDefinition(source="af", pipeline="etl", owners=("data", "ml"), paused=True),
        PipelineDefinition(source="pf", pipeline="train/nightly", tags=("ml", "gpu")),
        PipelineDefinition(source="pf", pipeline="score/hourly"),
    ]
    return reading(
        compat=Compat(
            kinds={"af": "airflow", "pf": "prefect"},
            definitions=defs,
            runs_by_state={
                ("af", "etl", "success"): 5,
                ("af", "etl", "failed"): 2,
                ("af", "load", "failed"): 1,
                ("af", "extra", "success"): 4,
                ("pf", "train/nightly", "failed"): 3,
                ("pf", "score/hourly", "success"): 1,
            },
            recent_by_state={("pf", "train/nightly", "failed"): 1, ("pf", "score/hourly", "success"): 1},
            latest={
                ("af", "etl"): LatestRun("failed", NOW - timedelta(minutes=9), NOW - timedelta(minutes=4)),
                ("af", "load"): LatestRun("running", NOW - timedelta(minutes=2), None),
                ("pf", "train/nightly"): LatestRun("failed", NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)),
            },
            running_since={("af", "load"): NOW - timedelta(minutes=2), ("pf", "score/hourly"): NOW - timedelta(seconds=30)},
            tasks_by_state={
                ("af", "etl", "extract", "success"): 7,
                ("af", "etl", "fit", "retrying"): 1,
                ("af", "extra", "t", "success"): 3,
            },
        )
    )


def test_compat_series_carry_the_exporters_names_and_labels(budget):
    budget.reset(10)
    fams = {f.name: f for f in compat_families(compat_reading(), budget)}
    labels = {name: set(f.samples[0].labels) if f.samples else None for name, f in fams.items()}
    # epoch8/airflow-exporter v2.1.0 and prometheus-prefect-exporter 3.6.1, plus `source`
    assert labels == {
        "airflow_dag_status": {"source", "dag_id", "owner", "status", "paused"},
        "airflow_dag_last_status": {"source", "dag_id", "owner", "status", "paused"},
        "airflow_dag_run_duration": {"source", "dag_id"},
        "airflow_task_status": {"source", "dag_id", "task_id", "owner", "status"},
        "prefect_flow_runs_total": {"source"},
        "prefect_info_flow_runs": {"source", "deployment_name", "flow_name", "state_name", "work_queue_name"},
        "prefect_flow_runs_total_run_time": {"source", "flow_name", "deployment_name"},
        "prefect_flow_runs_ongoing_run_time": {"source", "deployment_name", "flow_name", "state_name"},
        "prefect_deployments_total": {"source"},
        "prefect_info_deployment": {
            "source",
            "flow_name",
            "is_schedule_active",
            "deployment_name",
            "path",
            "paused",
            "work_pool_name",
            "work_queue_name",
            "status",
            "tags",
        },
        "prefect_flows_total": {"source"},
        "prefect_info_flows": {"source", "flow_name"},
    }
    last = samples(fams["airflow_dag_last_status"])
    etl = {dict(k)["status"]: v for k, v in last.items() if dict(k)["dag_id"] == "etl"}
    assert etl == {"queued": 0, "running": 0, "success": 0, "failed": 1}  # one-hot over Airflow's dag_states
    assert {dict(k)["owner"] for k in last if dict(k)["dag_id"] == "etl"} == {"data, ml"}
    assert {dict(k)["paused"] for k in last if dict(k)["dag_id"] == "etl"} == {"true"}
    tasks = {
        (dict(k)["task_id"], dict(k)["status"]): v for k, v in samples(fams["airflow_task_status"]).items() if dict(k)["dag_id"] == "etl"
    }
    assert tasks == {("extract", "success"): 7, ("fit", "up_for_retry"): 1}
    assert samples(fams["airflow_dag_run_duration"]) == {(("dag_id", "load"), ("source", "af")): 120.0}
    info_runs = {
        (dict(k)["flow_name"], dict(k)["deployment_name"], dict(k)["state_name"]): v
        for k, v in samples(fams["prefect_info_flow_runs"]).items()
    }
    assert info_runs == {("train", "nightly", "Failed"): 1, ("score", "hourly", "Completed"): 1}
    assert samples(fams["prefect_flow_runs_total"]) == {(("source", "pf"),): 4}
    assert samples(fams["prefect_flow_runs_total_run_time"]) == {
        (("deployment_name", "nightly"), ("flow_name", "train"), ("source", "pf")): 300.0
    }
    deployment = {dict(k)["deployment_name"]: dict(k) for k in samples(fams["prefect_info_deployment"])}
    assert (
        deployment["nightly"]["tags"] == "gpu,ml"
        and deployment["nightly"]["paused"] == "False"
        and deployment["nightly"]["is_schedule_active"] == "True"
    )
    assert samples(fams["prefect_flows_total"]) == {(("source", "pf"),): 2}
    for fam in fams.values():  # the label budget: no run ids, whatever the exporter does
        assert not any(name in ("run_id", "flow_run_id", "dag_run_id", "last_failed_run_id") for s in fam.samples for name in s.labels)


def test_compat_folds_with_the_same_budget(budget):
    budget.reset(1, seed=[("af", "etl")])
    fams = {f.name: f for f in compat_families(compat_reading(), budget)}
    status = {(dict(k)["dag_id"], dict(k)["status"]): v for k, v in samples(fams["airflow_dag_status"]).items()}
    assert status == {("etl", "success"): 5, ("etl", "failed"): 2, (OTHER, "failed"): 1, (OTHER, "success"): 4}
    tasks = {(dict(k)["dag_id"], dict(k)["task_id"]): v for k, v in samples(fams["airflow_task_status"]).items()}
    assert tasks[(OTHER, OTHER)] == 3  # a folded DAG's task ids fold too
    assert {dict(k)["flow_name"] for k in samples(fams["prefect_info_flow_runs"])} == {OTHER}
    assert samples(fams["prefect_info_deployment"]) == {}  # info series leave folded pipelines out
    assert samples(fams["prefect_deployments_total"]) == {(("source", "pf"),): 2}


def test_compat_is_off_unless_asked(budget):
    assert not any(f.name.startswith(("airflow_", "prefect_")) for f in store_families(reading(), budget))
    assert any(f.name == "airflow_dag_last_status" for f in store_families(compat_reading(), budget))


def unavailable(message, cause=None):
    try:
        try:
            if cause is not None:
                raise cause
            raise SourceUnavailable(message)
        except Exception as exc:
            if isinstance(exc, SourceUnavailable):
                raise
            raise SourceUnavailable(message) from exc
    except SourceUnavailable as exc:
        return exc


@pytest.mark.parametrize(
    "exc, kind",
    [
        (unavailable("prefect API timed out: GET http://x/api/health", httpx.ReadTimeout("slow")), "timeout"),
        (unavailable("prefect API unreachable: GET http://x: ConnectError", httpx.ConnectError("refused")), "connect"),
        (unavailable("cannot reach Airflow at http://x: ConnectTimeout: timed out"), "timeout"),
        (unavailable("cannot reach Airflow at http://x: ConnectError: [Errno 111] Connection refused"), "connect"),
        (unavailable("Airflow answered HTTP 503 on GET /api/v2/dags"), "http_5xx"),
        (unavailable("Airflow answered HTTP 429 on GET /api/v2/dags"), "http_4xx"),
        (unavailable("prefect API answered HTTP 422: POST http://x/flow_runs/filter: bad"), "http_4xx"),
        (unavailable("prefect API refused the credentials (HTTP 401): GET http://x; check the source's auth"), "auth"),
        (unavailable("Airflow could not issue a token: HTTP 403 at /auth/token"), "auth"),
        (unavailable("Airflow answered GET /api/v2/dags with something that is not JSON"), "invalid_response"),
        (unavailable("prefect API answer to POST flow_runs/filter has an unexpected shape: [...]"), "invalid_response"),
        (
            unavailable(
                "prefect API answered POST http://x/flow_runs/filter with more than dagwatch reads: the answer to POST from x "
                "is over dagwatch's limit of 64 MiB"
            ),
            "invalid_response",
        ),
        (
            unavailable("Airflow answered GET /api/v2/dags with more than dagwatch reads: the answer to GET from x declares 9 bytes"),
            "invalid_response",
        ),
        (
            unavailable(
                "prefect API timed out: GET http://x/api/health: the answer … was still arriving after 120 s", AnswerTooSlow("slow")
            ),
            "timeout",
        ),
        (unavailable("backing off for 4.0s after 2 failed request(s): Airflow answered HTTP 503"), None),
    ],
)
def test_api_error_kind(exc, kind):
    assert api_error_kind(exc) == kind


def test_airflow_auth_error_is_auth():
    from monitor.sources.airflow_auth import AirflowAuthError

    assert api_error_kind(AirflowAuthError("Airflow denied dagwatch access (wrong credentials)")) == "auth"


@pytest.mark.parametrize(
    "schedule, seconds",
    [
        ("every 20s", 20),
        ("*/5 * * * *", 300),
        ("@daily", 86400),
        ("@hourly", 3600),
        ("1 day, 0:00:00", 86400),
        ("0:05:00", 300),
        ("0 0 * * * (Europe/Berlin)", 86400),
        ("every 60s; */2 * * * *", 60),
        ("0 9 * * 1-5", 3 * 86400),
        ("@once", None),
        ("Dataset", None),
        ("Asset", None),
        ("FREQ=DAILY", None),
    ],
)
def test_schedule_interval(schedule, seconds):
    assert interval_seconds(schedule) == seconds


def test_delivery_counters_of_each_receiver_start_at_zero():
    """So that increase() sees the first dead notification after a restart (a series born at 1
    has no earlier sample to increase from)."""
    metrics.receivers_known(["pager-zero", "chat-zero"])
    for receiver in ("pager-zero", "chat-zero"):
        for status in ("sent", "retry", "dead"):
            assert REGISTRY.get_sample_value("dagwatch_notifications_total", {"receiver": receiver, "status": status}) == 0.0
