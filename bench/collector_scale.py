"""dagwatch's polling cost at scale: 5,000 Airflow DAGs, 100,000 task instances a day.

    .venv/bin/python bench/collector_scale.py [--quick] [--cycles 120] [--dags 5000] [--tis-per-day 100000]
                                             [--profile] [--with-watcher]

A fake Airflow 3 API (bench/fake_airflow.py) runs in its own process, so only the polling side is
measured here: this process's CPU time (`time.process_time`, user + system, all threads) and RSS
around each `Collector.poll_once()` with the real AirflowSource, httpx client and SQLite store.

The clock is simulated: the first poll looks back 6 h (the source's INITIAL_LOOKBACK), then every
cycle advances 30 s and the day's runs and task instances change accordingly (about 35 task
instance transitions a second across the estate... fewer at 30 s granularity: see the table).
`--cycles 120` is one simulated hour at a 30 s poll interval; "% of one core" is CPU per cycle /
30 s. Definitions (GET /dags, /dags/~/dagVersions, /dags/{id}/tasks) are measured apart: a cold
refresh, a warm one (last_parsed_time unchanged), a warm one while the dag-processor re-parses files
(last_parsed_time moves every ~30 s, as on a real Airflow, DAG versions do not), and one an hour
later, when a few DAGs have a new version (and open versions are due for their bounded re-check).
Its peer in the same run: the same refreshes against the fake without the dagVersions endpoint,
i.e. dagwatch deciding by last_parsed_time alone (what it did before it read versions).

Results: a table on stdout and JSON in bench/results/collector_scale[-quick].json.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.alerting.ingest import AlertPolicy  # noqa: E402
from monitor.config import AirflowSourceSettings  # noqa: E402
from monitor.sources.airflow import AirflowSource  # noqa: E402
from monitor.store import open_store  # noqa: E402
from monitor.tracking.collector import Collector  # noqa: E402

FAKE = ROOT / "bench" / "fake_airflow.py"
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # must match fake_airflow.T0
START = T0 + timedelta(hours=18)
INTERVAL = timedelta(seconds=30)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counting(httpx.BaseTransport):
    """Counts requests by endpoint (cheap) on top of the real transport."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.counts: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/logs/" in path:
            key = "logs"
        elif path.endswith("/taskInstances/list"):
            key = "POST taskInstances/list"
        elif path.endswith("/dags/~/dagRuns/~/taskInstances"):
            key = "GET taskInstances (updated)"
        elif path.endswith("/dagRuns/~/taskInstances"):
            key = "GET dags/{id}/taskInstances (run dates)"
        elif path.endswith("/taskInstances"):
            key = "GET one run's taskInstances"
        elif path.endswith("/dags/~/dagRuns"):
            key = "GET dagRuns (updated)"
        elif "/dagRuns/" in path:
            key = "GET one dagRun"
        elif path.endswith("/tasks"):
            key = "GET dags/{id}/tasks"
        elif path.endswith("/dags/~/dagVersions"):
            key = "GET dagVersions (~)"
        elif path.endswith("/dagVersions"):
            key = "GET dags/{id}/dagVersions"
        else:
            key = path
        self.counts[key] += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class SimClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 DAGs, 10k TIs/day, 20 cycles")
    ap.add_argument("--dags", type=int, default=5000)
    ap.add_argument("--tis-per-day", type=int, default=100_000)
    ap.add_argument("--cycles", type=int, default=120)
    ap.add_argument("--profile", action="store_true", help="cProfile the first poll and the steady cycles")
    ap.add_argument("--no-definitions", action="store_true")
    ap.add_argument("--out", type=Path, help="JSON results here (default bench/results/collector_scale[-quick].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.dags, args.tis_per_day, args.cycles = 500, 10_000, 20

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--dags", str(args.dags), "--tis-per-day", str(args.tis_per_day)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="dagwatch-scale-"))
    try:
        world = json.loads(server.stdout.readline() or "{}")
        if not world.get("ready"):
            raise RuntimeError("fake Airflow did not start")
        url = f"http://127.0.0.1:{port}"
        ctl = httpx.Client(base_url=url, timeout=60)

        def set_clock(now: datetime, reparse: bool = False, versions: bool = True) -> None:
            ctl.post("/_sim", json={"now": now.isoformat(), "reparse": reparse, "dag_versions": versions}).raise_for_status()

        clock = SimClock(START)
        set_clock(clock.now)
        transport = Counting()
        settings = AirflowSourceSettings(
            kind="airflow", name="airflow-scale", url=url, auth={"username": "monitor", "password": "x"}, definitions_interval=0
        )
        source = AirflowSource(settings, transport=transport, clock=clock)
        store = open_store(f"sqlite:///{tmp / 'dagwatch.db'}")
        collector = Collector(source, store, AlertPolicy(receivers=[], base_url="http://127.0.0.1:8000"), clock=clock)
        source.health()  # probe the API version and auth outside the measurement
        gc.collect()
        rss0 = rss_mib()
        profiler = cProfile.Profile() if args.profile else None

        def measured(fn):
            transport.counts.clear()
            c0, w0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            out = fn()
            if profiler:
                profiler.disable()
            return out, time.process_time() - c0, time.perf_counter() - w0, sum(transport.counts.values()), dict(transport.counts)

        first, cpu, wall, reqs, by = measured(collector.poll_once)
        rss_first = rss_mib()
        first_row = {
            "snapshots": first.snapshots,
            "events": first.events,
            "cpu_s": cpu,
            "wall_s": wall,
            "requests": reqs,
            "by_endpoint": by,
            "rss_mib": rss_first,
        }
        print(
            f"first poll (6 h look-back): {first.snapshots} runs, {first.events} events, cpu {cpu:.2f}s, wall {wall:.2f}s, "
            f"{reqs} requests, RSS {rss_first:.0f} MiB",
            flush=True,
        )
        if profiler:
            _dump(profiler, tmp, "first poll")
            profiler = cProfile.Profile()

        cycles = []
        for i in range(args.cycles):
            clock.now += INTERVAL
            set_clock(clock.now)
            res, cpu, wall, reqs, by = measured(collector.poll_once)
            cycles.append(
                {
                    "cycle": i + 1,
                    "snapshots": res.snapshots,
                    "events": res.events,
                    "cpu_s": cpu,
                    "wall_s": wall,
                    "requests": reqs,
                    "by_endpoint": by,
                    "rss_mib": rss_mib(),
                }
            )
            if (i + 1) % max(1, args.cycles // 6) == 0:
                print(
                    f"  cycle {i + 1}: {res.snapshots} runs, {res.events} events, cpu {cpu * 1000:.0f} ms, {reqs} req, "
                    f"RSS {cycles[-1]['rss_mib']:.1f} MiB",
                    flush=True,
                )
        if profiler:
            _dump(profiler, tmp, "steady cycles")
        gc.collect()
        rss_end = rss_mib()

        defs = {}
        if not args.no_definitions:
            # the peer first (a source of its own, the fake without dagVersions), then dagwatch as it is
            peer = AirflowSource(settings, transport=transport, clock=clock)
            peer.health()
            scenarios = (
                (peer, False, "parse time only (no dagVersions): "),
                (source, True, ""),
            )
            for src, versions, prefix in scenarios:
                start = clock.now
                for label, reparse, advance in (
                    ("cold", False, timedelta(0)),
                    ("warm, files not re-parsed", False, timedelta(0)),
                    ("warm, dag-processor re-parsing", True, INTERVAL),  # a new parse time for every file
                    ("warm, re-parsing, 1 h later", True, timedelta(hours=1)),
                ):
                    clock.now += advance
                    set_clock(clock.now, reparse=reparse, versions=versions)
                    found, cpu, wall, reqs, by = measured(src.definitions)
                    changed = by.get("GET dags/{id}/tasks", 0)
                    defs[prefix + label] = {
                        "dags": len(found),
                        "cpu_s": cpu,
                        "wall_s": wall,
                        "requests": reqs,
                        "task_reads": changed,
                        "by_endpoint": by,
                        "rss_mib": rss_mib(),
                    }
                    print(
                        f"definitions() {prefix}{label}: {len(found)} DAGs, cpu {cpu:.2f}s, wall {wall:.2f}s, {reqs} requests "
                        f"({changed} task reads)",
                        flush=True,
                    )
                clock.now = start
            peer.close()

        steady = cycles
        cpus = [c["cpu_s"] for c in steady]
        reqs = [c["requests"] for c in steady]
        summary = {
            "measured_at": datetime.now(UTC).isoformat(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "world": world,
            "cycles": args.cycles,
            "interval_s": INTERVAL.total_seconds(),
            "first_poll": first_row,
            "steady": {
                "cpu_ms_median": statistics.median(cpus) * 1000,
                "cpu_ms_mean": statistics.fmean(cpus) * 1000,
                "cpu_ms_p95": sorted(cpus)[int(0.95 * (len(cpus) - 1))] * 1000,
                "cpu_ms_max": max(cpus) * 1000,
                "core_pct_mean": statistics.fmean(cpus) / INTERVAL.total_seconds() * 100,
                "wall_ms_median": statistics.median(c["wall_s"] for c in steady) * 1000,
                "requests_median": statistics.median(reqs),
                "requests_max": max(reqs),
                "runs_per_cycle_median": statistics.median(c["snapshots"] for c in steady),
                "events_total": sum(c["events"] for c in steady),
            },
            "rss_mib": {
                "start": rss0,
                "after_first_poll": rss_first,
                "after_cycle_1": steady[0]["rss_mib"] if steady else None,
                "end": rss_end,
                "growth_cycle1_to_end": rss_end - steady[0]["rss_mib"] if steady else None,
            },
            "definitions": defs,
            "per_cycle": steady,
        }
        _table(summary)
        out = (args.out or ROOT / "bench" / "results" / ("collector_scale-quick.json" if args.quick else "collector_scale.json")).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2, default=str))
        print(f"\nJSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
        stats = ctl.get("/_sim/stats").json()
        print("fake server saw:", ", ".join(f"{k} ×{v}" for k, v in sorted(stats.items(), key=lambda kv: -kv[1])[:8]))
        goal = summary["steady"]["core_pct_mean"] < 5 and (summary["rss_mib"]["growth_cycle1_to_end"] or 0) < 10
        print("goal (<5% of one core, memory flat):", "MET" if goal else "MISSED")
        store.close()
        source.close()
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _dump(profiler: cProfile.Profile, tmp: Path, label: str) -> None:
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).sort_stats("cumulative")
    stats.print_stats(35)
    print(f"\n--- profile: {label} (cumulative) ---\n" + "\n".join(buf.getvalue().splitlines()[:60]))
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
    print(f"\n--- profile: {label} (self time) ---\n" + "\n".join(buf.getvalue().splitlines()[:45]))


def _table(s: dict) -> None:
    f, st, r = s["first_poll"], s["steady"], s["rss_mib"]
    w = s["world"]
    rows = [
        (
            "estate",
            f"{w['dags']} DAGs, {w['runs_per_day']} runs/day, {w['tis_per_day']} TIs/day, {w['failed_runs_per_day']} failed runs/day",
        ),
        ("first poll (6 h back)", f"{f['snapshots']} runs, CPU {f['cpu_s']:.2f} s, wall {f['wall_s']:.2f} s, {f['requests']} requests"),
        ("steady cycles", f"{s['cycles']} × {s['interval_s']:.0f} s simulated, median {st['runs_per_cycle_median']:.0f} runs/cycle"),
        (
            "CPU per steady cycle",
            f"median {st['cpu_ms_median']:.0f} ms, mean {st['cpu_ms_mean']:.0f} ms, p95 {st['cpu_ms_p95']:.0f} ms, max {st['cpu_ms_max']:.0f} ms",
        ),
        ("% of one core @30 s", f"{st['core_pct_mean']:.2f} %  (goal < 5 %)"),
        ("requests per cycle", f"median {st['requests_median']:.0f}, max {st['requests_max']}"),
        (
            "RSS MiB",
            f"start {r['start']:.1f}, after first poll {r['after_first_poll']:.1f}, after cycle 1 {r['after_cycle_1']:.1f}, end {r['end']:.1f} (Δ {r['growth_cycle1_to_end']:+.1f})",
        ),
    ]
    for label, d in s["definitions"].items():
        rows.append(
            (
                f"definitions() {label}",
                f"CPU {d['cpu_s']:.2f} s, wall {d['wall_s']:.2f} s, {d['requests']} requests, {d.get('task_reads', 0)} task reads",
            )
        )
    width = max(len(a) for a, _ in rows)
    print("\n" + "\n".join(f"{a:<{width}}  {b}" for a, b in rows))


if __name__ == "__main__":
    sys.exit(main())
