"""How many series GET /metrics exposes: with the demo running, and with 5,000 simulated pipelines
under the label budget (metrics.pipeline_cap), with and without compatibility mode, next to the
same estate with no budget (cap above the pipeline count) as its peer.

    .venv/bin/python bench/metrics_series.py [--pipelines 5000] [--runs 3] [--demo-seconds 60]

Each scenario runs in a fresh process (the Prometheus registry is process-wide) and counts the
samples of `generate_latest()` — exactly the /metrics body — by family, dagwatch's own apart
from prometheus_client's process/platform collectors. The simulated estate is one Airflow source
(so compat mode emits the airflow-exporter series): per pipeline `--runs` successful runs
(enough for a baseline) and a newest run whose state cycles through success, failed, running;
four tasks per run with mixed states (success, failed, retrying, upstream_failed); an hourly
or daily schedule per pipeline. It goes through the real Collector poll (tracker, ingest, store)
and the service's store read, on SQLite. The scrape time is measured too (the store gauges are
read at scrape time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

TASK_STATES = ("success", "failed", "retrying", "upstream_failed")


def count(text: str) -> dict[str, int]:
    by_family: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        by_family[family.name] += len(family.samples)
    return dict(by_family)


def summary(by_family: dict[str, int]) -> dict[str, int]:
    ours = sum(n for name, n in by_family.items() if name.startswith("dagwatch_"))
    compat = sum(n for name, n in by_family.items() if name.startswith(("airflow_", "prefect_")))
    return {"dagwatch": ours, "compat": compat, "process": sum(by_family.values()) - ours - compat, "total": sum(by_family.values())}


def scrape() -> tuple[dict[str, int], float]:
    from prometheus_client.registry import REGISTRY

    began = time.perf_counter()
    text = generate_latest(REGISTRY).decode()
    return count(text), time.perf_counter() - began


def demo(seconds: float) -> dict:
    """A real Service with the demo pipeline (every 2 s, cycling through its failures)."""
    from prometheus_client.registry import REGISTRY

    from monitor.config import Settings
    from monitor.service import Service

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # a last demo task may still write
        settings = Settings(
            data_dir=Path(tmp),
            alerting={"group_wait": "0s", "group_interval": "1s"},
            sources=[
                {
                    "kind": "embedded",
                    "name": "embedded",
                    "poll_interval": "0.5s",
                    "pipelines": [
                        {
                            "ref": "monitor.demo.pipeline:pipeline",
                            "schedule": {"every": "2s"},
                            "params": {"scenario": "cycle", "rows": 1000},
                        }
                    ],
                }
            ],
        )
        service = Service(settings)
        service.start()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1)
            failed = REGISTRY.get_sample_value("dagwatch_runs_total", {"source": "embedded", "pipeline": "demo_ml", "state": "failed"})
            families, took = scrape()
        finally:
            service.stop()
    return {"scenario": f"demo ({seconds:g} s)", "failed_runs": failed, "families": families, "scrape_seconds": took, **summary(families)}


class SimSource:
    """The estate as one Airflow-kind source would report it; `batch` picks what a poll returns."""

    name = "sim"
    stores_runs = False

    def __init__(self, pipelines: int, runs: int, now: datetime) -> None:
        from monitor.model import RunSnapshot, State, TaskSnapshot

        self.snapshots: list[list] = [[] for _ in range(runs + 1)]
        for p in range(pipelines):
            pipeline = f"pipeline_{p:05d}"
            for r in range(runs + 1):
                newest = r == runs
                state = (State.SUCCESS, State.FAILED, State.RUNNING)[p % 3] if newest else State.SUCCESS
                started = now - timedelta(hours=runs + 1 - r, seconds=p % 600)
                ended = None if state is State.RUNNING else started + timedelta(seconds=60 + (p * 7 + r * 13) % 3000)
                tasks = tuple(
                    TaskSnapshot(
                        task_id=f"task_{t}",
                        state=State(TASK_STATES[(p + t) % 4]) if newest and state is State.FAILED else State.SUCCESS,
                        try_number=1,
                        started_at=started,
                        ended_at=ended or started + timedelta(seconds=5 + t),
                    )
                    for t in range(4)
                )
                self.snapshots[r].append(
                    RunSnapshot(
                        source=self.name,
                        pipeline=pipeline,
                        run_id=f"scheduled__{r}_{p}",
                        state=state,
                        started_at=started,
                        ended_at=ended,
                        tasks=tasks,
                    )
                )
        self.batch = 0

    def health(self):
        from monitor.sources.base import Health

        return Health(True)

    def poll(self, since):
        return self.snapshots[self.batch]

    def definitions(self):
        return []

    def task_log(self, *args, **kwargs):
        return ""


def simulated(pipelines: int, runs: int, cap: int, compat: bool) -> dict:
    from monitor import metrics
    from monitor.alerting import ingest
    from monitor.config import MetricsSettings
    from monitor.model import PipelineDefinition
    from monitor.store import gauges
    from monitor.store.db import open_store
    from monitor.tracking.collector import Collector

    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/sim.db")
        settings = MetricsSettings(pipeline_cap=cap, compat=compat)
        definitions = [
            PipelineDefinition(
                source="sim", pipeline=f"pipeline_{p:05d}", schedule="@daily" if p % 2 else "0 * * * *", owners=("ml",), paused=p % 50 == 0
            )
            for p in range(pipelines)
        ]

        def read() -> gauges.Reading:
            with store.session() as session:
                return gauges.read(
                    session,
                    now=datetime.now(timezone.utc),
                    baseline_runs=settings.baseline_runs,
                    schedules=[(d.source, d.pipeline, d.schedule, d.paused) for d in definitions],
                    receivers=["console"],
                    compat_kinds={"sim": "airflow"} if compat else None,
                    definitions=definitions,
                )

        metrics.register_store_collector(read, settings)
        source = SimSource(pipelines, runs, now)
        collector = Collector(source, store, ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000"))
        began = time.perf_counter()
        for batch in range(runs + 1):
            source.batch = batch
            collector.poll_once()
        polled = time.perf_counter() - began
        families, took = scrape()
        store.close()
    label = f"{pipelines:,} pipelines, cap {cap}" + (", compat" if compat else "")
    return {
        "scenario": label,
        "families": families,
        "scrape_seconds": took,
        "poll_seconds": polled,
        "folded": metrics.BUDGET.folded,
        **summary(families),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3, help="successful runs per pipeline before the newest")
    parser.add_argument("--demo-seconds", type=float, default=60)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, _, rest = args.one.partition(":")
        if kind == "demo":
            result = demo(args.demo_seconds)
        else:
            cap, compat = rest.split(",")
            result = simulated(args.pipelines, args.runs, int(cap), compat == "1")
        print(json.dumps(result))
        return
    scenarios = ["demo", "sim:500,0", "sim:500,1", f"sim:{args.pipelines * 10},0"]
    print(f"{'scenario':<40} {'dagwatch':>9} {'compat':>7} {'process':>8} {'total':>8} {'folded':>7} {'scrape s':>9}")
    for scenario in scenarios:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                scenario,
                "--pipelines",
                str(args.pipelines),
                "--runs",
                str(args.runs),
                "--demo-seconds",
                str(args.demo_seconds),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{result['scenario']:<40} {result['dagwatch']:>9} {result['compat']:>7} {result['process']:>8} {result['total']:>8} "
            f"{result.get('folded', 0):>7} {result['scrape_seconds']:>9.3f}"
        )
        biggest = sorted(((n, name) for name, n in result["families"].items()), reverse=True)[:6]
        print("    largest families: " + ", ".join(f"{name} {n}" for n, name in biggest))


if __name__ == "__main__":
    main()
