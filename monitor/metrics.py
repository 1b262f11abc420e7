"""Every Prometheus metric dagwatch exports, defined once. Labels stay bounded: source, pipeline,
state, tier, receiver — never run ids."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

RUNS = Counter("dagwatch_runs_total", "Pipeline runs that reached a final state.", ["source", "pipeline", "state"])
TASKS = Counter("dagwatch_tasks_total", "Task tries that reached a final or retrying state.", ["source", "pipeline", "state"])
RUN_DURATION = Histogram(
    "dagwatch_run_duration_seconds", "Duration of finished pipeline runs.", ["source", "pipeline"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
EVENTS = Counter("dagwatch_events_total", "Events ingested (pushed or derived).", ["kind"])
NOTIFICATIONS = Counter("dagwatch_notifications_total", "Notification delivery attempts by result.", ["receiver", "status"])
RUNBOOK_EXECUTIONS = Counter("dagwatch_runbook_executions_total", "Runbook executions that ended, by result.", ["runbook", "result"])
POLLS = Counter("dagwatch_source_polls_total", "Source polls by result.", ["source", "result"])


class StoreCollector(Collector):
    """Gauges read from the store at scrape time, so they are right after a restart and across
    several dagwatch processes sharing one database."""

    def __init__(self, read: Callable[[], tuple[dict[str, int], list[tuple[str, bool, float | None]]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        firing, sources = self._read()
        alerts = GaugeMetricFamily("dagwatch_alerts_firing", "Alerts firing now, by tier.", labels=["tier"])
        for tier in ("P1", "P2", "P3"):
            alerts.add_metric([tier], firing.get(tier, 0))
        yield alerts
        up = GaugeMetricFamily("dagwatch_source_up", "1 if the source's last poll succeeded.", labels=["source"])
        last = GaugeMetricFamily(
            "dagwatch_source_last_success_timestamp_seconds", "Unix time of the source's last successful poll.", labels=["source"]
        )
        for name, is_up, last_success in sources:
            up.add_metric([name], 1.0 if is_up else 0.0)
            if last_success is not None:
                last.add_metric([name], last_success)
        yield up
        yield last


_registered: list[StoreCollector] = []


def register_store_collector(read: Callable[[], tuple[dict[str, int], list[tuple[str, bool, float | None]]]]) -> None:
    """Replace the store-backed collector (one per process; tests start several services)."""
    for old in _registered:
        REGISTRY.unregister(old)
    _registered.clear()
    collector = StoreCollector(read)
    REGISTRY.register(collector)
    _registered.append(collector)
