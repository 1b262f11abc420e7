"""Every Prometheus metric dagwatch exports, defined once (the names are agreed with the rules
and dashboards in dashboards/: change one, change them).

Two kinds of series:
- counted in this process where the thing happens (runs, tasks, events, notifications, polls,
  API errors, runbook executions, checks): summed across replicas with sum();
- read from the store at scrape time (`StoreCollector`: alerts firing, source up, last success,
  duration baselines, expected intervals, outbox): right after a restart and the same in every
  replica, so aggregated with max().

Durations are histograms, not summaries: a summary's quantiles are computed per process and per
label set and cannot be added up, so "p95 over all pipelines of a source" or "over two replicas"
would be impossible; histogram buckets add up and histogram_quantile() works on any
aggregation. The buckets are few on purpose, because every bucket is one more series per
pipeline and state; the exact per-pipeline p50/p95 that alert rules compare against comes from
the store as `dagwatch_pipeline_duration_baseline_seconds`.

Labels stay bounded: never a run id, task try or alert id. Every series with a `pipeline` label
goes through one `LabelBudget` (`BUDGET`): past `metrics.pipeline_cap` pipelines are folded into
pipeline="_other", and the cap and the number folded are exported themselves.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from monitor.config import MetricsSettings
from monitor.model import KINDS, State
from monitor.store.gauges import Compat, Reading, nearest_rank

disable_created_metrics()  # no `_created` series: one per counter and label set, charted by nobody

OTHER = "_other"
V = TypeVar("V")


class LabelBudget:
    """The one place a pipeline becomes a label value. The first `cap` (source, pipeline) pairs
    keep their name, in the order this process first sees them (seeded at start with the store's
    pipelines, most recently active first); every later one reads pipeline="_other". Admission is
    for the life of the process, so a pipeline's counters never jump from its name to _other."""

    def __init__(self, cap: int = MetricsSettings().pipeline_cap) -> None:
        self._lock = threading.Lock()
        self.cap = cap
        self._admitted: set[tuple[str, str]] = set()
        self._folded: set[tuple[str, str]] = set()

    def reset(self, cap: int, seed: Iterable[tuple[str, str]] = ()) -> None:
        with self._lock:
            self.cap = cap
            self._admitted.clear()
            self._folded.clear()
        for source, pipeline in seed:
            self.pipeline(source, pipeline)

    def pipeline(self, source: str, pipeline: str) -> str:
        key = (source, pipeline)
        if key in self._admitted:
            return pipeline
        with self._lock:
            if key in self._admitted:
                return pipeline
            if len(self._admitted) < self.cap:
                self._admitted.add(key)
                return pipeline
            self._folded.add(key)
            return OTHER

    @property
    def folded(self) -> int:
        return len(self._folded)

    def fold(self, values: Mapping[tuple, V], combine: Callable[[V, V], V]) -> dict[tuple, V]:
        """Re-key `{(source, pipeline, *rest): value}` by the budget's label, combining the
        values that fall together in _other (sum for counts, max for timestamps)."""
        out: dict[tuple, V] = {}
        for (source, pipeline, *rest), value in values.items():
            key = (source, self.pipeline(source, pipeline), *rest)
            out[key] = combine(out[key], value) if key in out else value
        return out


BUDGET = LabelBudget()

RUN_BUCKETS = (30, 120, 600, 1800, 3600, 10800)
TASK_BUCKETS = (1, 10, 60, 300, 1800, 7200)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TASK_COUNTED = frozenset({State.SUCCESS, State.FAILED, State.RETRYING, State.UPSTREAM_FAILED})

RUNS = Counter("dagwatch_runs_total", "Pipeline runs that reached a final state.", ["source", "pipeline", "state"])
TASKS = Counter(
    "dagwatch_tasks_total", "Task tries that reached success, failed, retrying or upstream_failed.", ["source", "pipeline", "state"]
)
RUN_DURATION = Histogram(
    "dagwatch_run_duration_seconds", "Duration of finished pipeline runs.", ["source", "pipeline", "state"], buckets=RUN_BUCKETS
)
TASK_DURATION = Histogram(
    "dagwatch_task_duration_seconds", "Duration of finished task tries.", ["source", "pipeline", "state"], buckets=TASK_BUCKETS
)
EVENTS = Counter(
    "dagwatch_events_total", "Events applied by alerting, whatever produced them (API, collector, watch rules, dispatcher).", ["kind"]
)
NOTIFICATIONS = Counter("dagwatch_notifications_total", "Notification delivery attempts: sent, retry, dead.", ["receiver", "status"])
NOTIFICATIONS_SUPERSEDED = Counter(
    "dagwatch_notifications_superseded_total",
    "Notifications never sent: waiting for a retry when their group flushed a newer state, which the newer one carries.",
    ["receiver"],
)
NOTIFICATION_LATENCY = Histogram(
    "dagwatch_notification_latency_seconds",
    "From the alert change (its outbox row written) to the receiver accepting it.",
    ["receiver"],
    buckets=LATENCY_BUCKETS,
)
POLLS = Counter("dagwatch_source_polls_total", "Source polls by result: ok, error.", ["source", "result"])
POLL_DURATION = Histogram("dagwatch_source_poll_duration_seconds", "Duration of one poll, ok or not.", ["source"], buckets=POLL_BUCKETS)
SOURCE_API_ERRORS = Counter(
    "dagwatch_source_api_errors_total",
    "Failed orchestrator API calls (after the HTTP layer's retries), by kind.",
    ["source", "kind"],
)
RUNBOOK_EXECUTIONS = Counter("dagwatch_runbook_executions_total", "Runbook executions that ended, by result.", ["runbook", "result"])
CHECKS = Counter(
    "dagwatch_checks_total", "Check verdicts by check kind and result: passed, failed, error (could not run).", ["kind", "result"]
)


DELIVERY_STATUSES = ("sent", "retry", "dead")


def receivers_known(names: Iterable[str]) -> None:
    """Start each receiver's delivery counters at 0: Prometheus' increase() and rate() need a
    sample before the first increment, or the first dead notification after a restart (a series
    that appears already at 1) never fires an alert rule."""
    for name in names:
        for status in DELIVERY_STATUSES:
            NOTIFICATIONS.labels(receiver=name, status=status)
        NOTIFICATIONS_SUPERSEDED.labels(receiver=name)


def run_finished(source: str, pipeline: str, state: State, seconds: float | None) -> None:
    label = BUDGET.pipeline(source, pipeline)
    RUNS.labels(source=source, pipeline=label, state=state.value).inc()
    if seconds is not None:
        RUN_DURATION.labels(source=source, pipeline=label, state=state.value).observe(max(0.0, seconds))


def task_finished(source: str, pipeline: str, state: State, seconds: float | None) -> None:
    label = BUDGET.pipeline(source, pipeline)
    TASKS.labels(source=source, pipeline=label, state=state.value).inc()
    if seconds is not None:
        TASK_DURATION.labels(source=source, pipeline=label, state=state.value).observe(max(0.0, seconds))


def check_verdict(kind: str, status: str) -> None:
    """A warning never gates (checks.gating), so it counts as passed; an error (the check could
    not run) is neither a pass nor a failure of the model."""
    CHECKS.labels(kind=kind, result=status if status in ("failed", "error") else "passed").inc()


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def store_families(reading: Reading, budget: LabelBudget = BUDGET) -> Iterator[GaugeMetricFamily]:
    """The scrape-time gauges of one reading, every pipeline label through `budget`."""
    firing = _gauge("dagwatch_alerts_firing", "Alerts firing now, by tier and kind.", ["tier", "kind"])
    counts = {(spec.tier.value, kind.value): 0 for kind, spec in KINDS.items()}
    counts.update(reading.firing)
    for (tier, kind), count in sorted(counts.items()):
        firing.add_metric([tier, kind], count)
    yield firing

    up = _gauge("dagwatch_source_up", "1 if the source is up (after the health hysteresis), else 0.", ["source"])
    last = _gauge("dagwatch_source_last_success_timestamp_seconds", "Unix time of the source's last successful poll.", ["source"])
    for name, is_up, last_success in reading.sources:
        up.add_metric([name], 1.0 if is_up else 0.0)
        if last_success is not None:
            last.add_metric([name], last_success)
    yield up
    yield last

    success = _gauge(
        "dagwatch_pipeline_last_success_timestamp_seconds",
        'End time of the pipeline\'s newest successful run (pipeline="_other": the newest of the folded ones).',
        ["source", "pipeline"],
    )
    for (source, pipeline), at in sorted(budget.fold({k: v.timestamp() for k, v in reading.last_success.items()}, max).items()):
        success.add_metric([source, pipeline], at)
    yield success

    baseline = _gauge(
        "dagwatch_pipeline_duration_baseline_seconds",
        "p50 and p95 (nearest rank) of the pipeline's last successful runs' durations; from 3 runs on, not for pipeline=\"_other\".",
        ["source", "pipeline", "quantile"],
    )
    for (source, pipeline), durations in sorted(reading.success_durations.items()):
        if len(durations) >= 3 and budget.pipeline(source, pipeline) != OTHER:
            for q in ("0.5", "0.95"):
                baseline.add_metric([source, pipeline, q], nearest_rank(durations, float(q)))
    yield baseline

    interval = _gauge(
        "dagwatch_pipeline_expected_interval_seconds",
        'Time between two scheduled runs, from the definition\'s schedule; scheduled, unpaused pipelines only, not for pipeline="_other".',
        ["source", "pipeline"],
    )
    for (source, pipeline), seconds in sorted(reading.expected_interval.items()):
        if budget.pipeline(source, pipeline) != OTHER:
            interval.add_metric([source, pipeline], seconds)
    yield interval

    pending = _gauge("dagwatch_outbox_pending", "Notifications waiting to be delivered.", ["receiver"])
    oldest = _gauge("dagwatch_outbox_oldest_pending_age_seconds", "Age of the oldest waiting notification (0 when none).", ["receiver"])
    for receiver in sorted(set(reading.receivers) | set(reading.outbox)):
        count, age = reading.outbox.get(receiver, (0, 0.0))
        pending.add_metric([receiver], count)
        oldest.add_metric([receiver], age)
    yield pending
    yield oldest

    cap = _gauge("dagwatch_metrics_pipeline_cap", "The label budget: pipelines that keep their own pipeline label.", [])
    cap.add_metric([], budget.cap)
    yield cap
    folded = _gauge("dagwatch_metrics_pipelines_folded", 'Distinct pipelines folded into pipeline="_other".', [])
    folded.add_metric([], budget.folded)
    yield folded

    if reading.compat is not None:
        yield from compat_families(reading, budget)


# -- compatibility mode -------------------------------------------------------------------------------------------------

AIRFLOW_DAG_STATES = ("queued", "running", "success", "failed")  # airflow.utils.state.State.dag_states
_AIRFLOW_STATE = {State.RETRYING.value: "up_for_retry"}
_PREFECT_STATE = {State.SUCCESS.value: "Completed", State.QUEUED.value: "Pending", State.UPSTREAM_FAILED.value: "NotReady"}


def _total(a: int, b: int) -> int:
    return a + b


def _by_kind(values: Mapping[tuple, V], kinds: Mapping[str, str], kind: str) -> dict[tuple, V]:
    return {key: value for key, value in values.items() if kinds.get(key[0]) == kind}


def compat_families(reading: Reading, budget: LabelBudget = BUDGET) -> Iterator[GaugeMetricFamily]:
    """The series of the two common exporters, for the sources of their kind, with their names
    and label names, matched against epoch8/airflow-exporter v2.1.0
    (airflow_exporter/prometheus_exporter.py) and PrefectHQ/prometheus-prefect-exporter 3.6.1
    (metrics/metrics.py). Differences, all for the label budget or because dagwatch does not
    know the value:
    - every series has a `source` label as well (two Airflows can hold the same dag_id);
    - folded pipelines read dag_id / flow_name / deployment_name "_other" (task_id too), counts
      summed, durations the max; info series (prefect_info_deployment, prefect_info_flows) leave
      folded pipelines out;
    - no run ids: prefect_flow_runs_ongoing_run_time drops `flow_run_id` and reports each
      pipeline's longest-running open run; prefect_flow_runs_total_run_time, per run in the
      exporter, is the latest finished run per pipeline, with `deployment_name` so two
      deployments of one flow stay apart; prefect_deployment_failed_flow_runs (its label is a
      run id) and the work pool/queue series are not emitted; the airflow exporter's extra DAG
      `params.labels` labels are not added;
    - states are dagwatch's normalized ones mapped back (Airflow up_for_retry; Prefect
      Completed, Failed, Running, Pending, Scheduled, Retrying, Cancelled: Crashed reads as
      Failed); Prefect's work_queue_name, path, work_pool_name and status read "null", as the
      exporter writes for unknown values."""
    compat = reading.compat
    assert compat is not None
    yield from _airflow(compat, reading, budget)
    yield from _prefect(compat, reading, budget)


def _airflow(compat: Compat, reading: Reading, budget: LabelBudget) -> Iterator[GaugeMetricFamily]:
    defs = {(d.source, d.pipeline): d for d in compat.definitions}

    def owner_paused(source: str, dag: str) -> tuple[str, str]:
        d = defs.get((source, dag))
        return (", ".join(d.owners), "true" if d.paused else "false") if d else ("", "false")

    status = _gauge(
        "airflow_dag_status", "Shows the number of dag starts with this status", ["source", "dag_id", "owner", "status", "paused"]
    )
    runs = budget.fold(_by_kind(compat.runs_by_state, compat.kinds, "airflow"), _total)
    for (source, dag, state), count in sorted(runs.items()):
        owner, paused = owner_paused(source, dag)
        status.add_metric([source, dag, owner, _AIRFLOW_STATE.get(state, state), paused], count)
    yield status

    last = _gauge("airflow_dag_last_status", "Shows the status of last dagrun", ["source", "dag_id", "owner", "status", "paused"])
    latest = budget.fold(
        {(s, p, _AIRFLOW_STATE.get(r.state, r.state)): 1 for (s, p), r in _by_kind(compat.latest, compat.kinds, "airflow").items()}, _total
    )
    dags = sorted({(s, p) for s, p, _ in latest})
    for source, dag in dags:
        owner, paused = owner_paused(source, dag)
        for state in AIRFLOW_DAG_STATES:
            last.add_metric([source, dag, owner, state, paused], latest.get((source, dag, state), 0))
    yield last

    duration = _gauge(
        "airflow_dag_run_duration", "Maximum duration of currently running dag_runs for each DAG in seconds", ["source", "dag_id"]
    )
    running = {k: (reading.now - since).total_seconds() for k, since in _by_kind(compat.running_since, compat.kinds, "airflow").items()}
    for (source, dag), seconds in sorted(budget.fold(running, max).items()):
        duration.add_metric([source, dag], max(0.0, seconds))
    yield duration

    tasks = _gauge(
        "airflow_task_status", "Shows the number of task starts with this status", ["source", "dag_id", "task_id", "owner", "status"]
    )
    folded: dict[tuple, int] = defaultdict(int)
    for (source, dag, task, state), count in _by_kind(compat.tasks_by_state, compat.kinds, "airflow").items():
        label = budget.pipeline(source, dag)
        folded[(source, label, task if label != OTHER else OTHER, _AIRFLOW_STATE.get(state, state))] += count
    for (source, dag, task, state), count in sorted(folded.items()):
        tasks.add_metric([source, dag, task, owner_paused(source, dag)[0], state], count)
    yield tasks


def _flow_and_deployment(pipeline: str) -> tuple[str, str]:
    """dagwatch names a Prefect pipeline `flow/deployment` (ad-hoc runs: the flow name)."""
    if pipeline == OTHER:
        return OTHER, OTHER
    flow, _, deployment = pipeline.partition("/")
    return flow, deployment or "null"


def _prefect_state(state: str) -> str:
    return _PREFECT_STATE.get(state, state.title())


def _prefect(compat: Compat, reading: Reading, budget: LabelBudget) -> Iterator[GaugeMetricFamily]:
    runs = _by_kind(compat.runs_by_state, compat.kinds, "prefect")
    total = _gauge("prefect_flow_runs_total", "Prefect total flow runs", ["source"])
    per_source: dict[str, int] = defaultdict(int)
    for (source, _, _), count in runs.items():
        per_source[source] += count
    for source in sorted(s for s, kind in compat.kinds.items() if kind == "prefect"):
        total.add_metric([source], per_source.get(source, 0))
    yield total

    info_runs = _gauge(
        "prefect_info_flow_runs", "Prefect flow runs info", ["source", "deployment_name", "flow_name", "state_name", "work_queue_name"]
    )
    recent: dict[tuple, int] = defaultdict(int)
    for (source, pipeline, state), count in budget.fold(_by_kind(compat.recent_by_state, compat.kinds, "prefect"), _total).items():
        recent[(source, pipeline, _prefect_state(state))] += count
    for (source, pipeline, state), count in sorted(recent.items()):
        flow, deployment = _flow_and_deployment(pipeline)
        info_runs.add_metric([source, deployment, flow, state, "null"], count)
    yield info_runs

    run_time = _gauge(
        "prefect_flow_runs_total_run_time",
        "Prefect flow-run total run time in seconds (latest finished run per pipeline)",
        ["source", "flow_name", "deployment_name"],
    )
    finished = {
        k: (r.ended_at - r.started_at).total_seconds()
        for k, r in _by_kind(compat.latest, compat.kinds, "prefect").items()
        if r.started_at and r.ended_at
    }
    for (source, pipeline), seconds in sorted(budget.fold(finished, max).items()):
        flow, deployment = _flow_and_deployment(pipeline)
        run_time.add_metric([source, flow, deployment], max(0.0, seconds))
    yield run_time

    ongoing = _gauge(
        "prefect_flow_runs_ongoing_run_time",
        "Prefect flow runs ongoing run time in seconds (longest open run per pipeline)",
        ["source", "deployment_name", "flow_name", "state_name"],
    )
    running = {k: (reading.now - since).total_seconds() for k, since in _by_kind(compat.running_since, compat.kinds, "prefect").items()}
    for (source, pipeline), seconds in sorted(budget.fold(running, max).items()):
        flow, deployment = _flow_and_deployment(pipeline)
        ongoing.add_metric([source, deployment, flow, "Running"], max(0.0, seconds))
    yield ongoing

    deployments = [d for d in compat.definitions if compat.kinds.get(d.source) == "prefect"]
    count = _gauge("prefect_deployments_total", "Prefect total deployments", ["source"])
    flows_total = _gauge("prefect_flows_total", "Prefect total flows", ["source"])
    info = _gauge(
        "prefect_info_deployment",
        "Prefect deployment info",
        [
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
        ],
    )
    info_flows = _gauge("prefect_info_flows", "Prefect flow info", ["source", "flow_name"])
    flows: dict[str, set[str]] = defaultdict(set)
    shown_flows: set[tuple[str, str]] = set()
    for d in sorted(deployments, key=lambda d: (d.source, d.pipeline)):
        flow, deployment = _flow_and_deployment(d.pipeline)
        flows[d.source].add(flow)
        if budget.pipeline(d.source, d.pipeline) == OTHER:
            continue
        shown_flows.add((d.source, flow))
        info.add_metric(
            [d.source, flow, str(not d.paused), deployment, "null", str(d.paused), "null", "null", "null", ",".join(sorted(d.tags))], 1
        )
    for source in sorted(s for s, kind in compat.kinds.items() if kind == "prefect"):
        count.add_metric([source], sum(1 for d in deployments if d.source == source))
        flows_total.add_metric([source], len(flows.get(source, ())))
    for source, flow in sorted(shown_flows):
        info_flows.add_metric([source, flow], 1)
    yield count
    yield info
    yield flows_total
    yield info_flows


class StoreCollector(Collector):
    """The scrape-time gauges: each scrape reads the store once (`read`) and formats it."""

    def __init__(self, read: Callable[[], Reading]) -> None:
        self._read = read

    def describe(self) -> list:
        """Nothing up front: registering must not read the store (the names are fixed anyway)."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from store_families(self._read())


_registered: list[StoreCollector] = []


def register_store_collector(
    read: Callable[[], Reading], settings: MetricsSettings | None = None, seed: Iterable[tuple[str, str]] = ()
) -> None:
    """Replace the store-backed collector (one per process; tests start several services) and
    reset the label budget to `settings.pipeline_cap`, admitting `seed` first."""
    BUDGET.reset((settings or MetricsSettings()).pipeline_cap, seed)
    for old in _registered:
        REGISTRY.unregister(old)
    _registered.clear()
    collector = StoreCollector(read)
    REGISTRY.register(collector)
    _registered.append(collector)


__all__ = ["BUDGET", "OTHER", "LabelBudget", "StoreCollector", "register_store_collector", "run_finished", "task_finished", "check_verdict"]
