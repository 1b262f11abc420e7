"""Replicas: alerts per second end to end, and the detection gap when a replica dies.

Throughput: EVENTS task failures POSTed to /api/v1/events (batches of BATCH, spread over the
replicas round-robin from a few client threads) until a local webhook receiver has accepted a
notification for every one of them (one group per task, group_wait 0s): with 1 and 2 `dagwatch
up` replicas on one PostgreSQL and 1 on SQLite, each on a fresh database.

Detection gap: two replicas on PostgreSQL, sources split between them; the holder of a source
is killed with SIGKILL, and the gap is the time until the survivor's first successful poll of
that source (its own dagwatch_source_polls_total, sampled every 20 ms). It is bounded by about
4/3 of cluster.lease_ttl: the dead holder's last renewal plus the lease time, plus at most one
heartbeat (a third of it) before the survivor takes the lease and polls at once.

    .venv/bin/python bench/replicas.py                  # 1,000 alerts per scenario, ttl 5 s, 3 kills
    .venv/bin/python bench/replicas.py --quick          # 200 alerts, 1 kill

Everything listens on 127.0.0.1 and is stopped by its pid; PostgreSQL is a throwaway cluster
(tests/servers/postgres: Debian's binaries).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.fakes.httpserver import RecordingServer  # noqa: E402
from tests.integration.server import DagwatchProcess, create_token, free_port  # noqa: E402
from tests.servers.postgres.server import PostgresServer  # noqa: E402

BATCH = 50
CLIENTS = 4
CONFIG = """
data_dir: {data_dir}
{store}
cluster: {{lease_ttl: {ttl}s}}
alerting: {{group_by: [source, pipeline, task], group_wait: 0s, group_interval: 1s}}
sources:
  - {{name: first, kind: embedded, poll_interval: 0.5s}}
  - {{name: second, kind: embedded, poll_interval: 0.5s}}
receivers:
  - {{name: hook, kind: webhook, url: "{hook}/hook"}}
routes:
  - {{match: {{}}, receivers: [hook]}}
"""


def start_replicas(folder: Path, count: int, store_url: str | None, hook: str, ttl: float) -> tuple[list[DagwatchProcess], Path]:
    configs = []
    for i in range(count):
        config = folder / f"replica{i}.yaml"
        store = f'store: {{url: "{store_url}"}}' if store_url else ""
        config.write_text(CONFIG.format(data_dir=folder / f"data{i}" if store_url else folder / "data", store=store, ttl=ttl, hook=hook))
        configs.append(config)
    processes = [DagwatchProcess(config, free_port(), folder / f"replica{i}.log") for i, config in enumerate(configs)]
    for process in processes:
        process.wait_healthy(limit=120)
    return processes, configs[0]


def throughput(name: str, count: int, store_url: str | None, events: int, folder: Path) -> dict:
    folder.mkdir(parents=True)
    receiver = RecordingServer().start()
    processes: list[DagwatchProcess] = []
    try:
        processes, config = start_replicas(folder, count, store_url, receiver.url, ttl=30)
        token = create_token(config, "bench")
        batches = [
            [
                {
                    "kind": "task_failed",
                    "source": "bench",
                    "pipeline": "etl",
                    "run_id": "r1",
                    "task_id": f"t{b:04d}-{i:02d}",
                    "summary": "failed",
                }
                for i in range(BATCH)
            ]
            for b in range(events // BATCH)
        ]
        todo = list(enumerate(batches))
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
                while True:
                    with lock:
                        if not todo:
                            return
                        index, batch = todo.pop()
                    answer = http.post(f"{processes[index % len(processes)].url}/api/v1/events", json=batch)
                    answer.raise_for_status()

        began = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        posted = time.monotonic() - began
        want = {e["task_id"] for batch in batches for e in batch}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            got = {a["task_id"] for r in list(receiver.requests) for a in r.json()["alerts"]}
            if want <= got:
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{name}: not every alert was delivered within 10 minutes")
        elapsed = time.monotonic() - began
        keys = [r.header("Idempotency-Key") for r in receiver.requests]
        return {
            "scenario": name,
            "alerts": len(want),
            "posted_s": posted,
            "delivered_s": elapsed,
            "per_s": len(want) / elapsed,
            "duplicates": len(keys) - len(set(keys)),
        }
    finally:
        for process in processes:
            process.stop()
        receiver.stop()


def polls(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "dagwatch_source_polls_total" and sample.labels.get("result") == "ok":
                out[sample.labels["source"]] = sample.value
    return out


def detection_gap(store_url: str, ttl: float, folder: Path) -> float:
    folder.mkdir(parents=True)
    receiver = RecordingServer().start()
    processes: list[DagwatchProcess] = []
    try:
        processes, _ = start_replicas(folder, 2, store_url, receiver.url, ttl=ttl)
        by_id = {httpx.get(f"{p.url}/api/v1/cluster").json()["replica"]: p for p in processes}
        deadline = time.monotonic() + 10 * ttl + 60
        while time.monotonic() < deadline:  # wait until the sources are split, one each
            held = {s["source"]: s["holder"] for s in httpx.get(f"{processes[0].url}/api/v1/cluster").json()["sources"] if not s["expired"]}
            if len(held) == 2 and len(set(held.values())) == 2:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("the replicas never split the sources")
        source, victim_id = sorted(held.items())[0]
        victim = by_id[victim_id]
        survivor = next(p for r, p in by_id.items() if r != victim_id)
        before = polls(survivor.url).get(source, 0)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        victim.proc.wait(timeout=10)
        while time.monotonic() < killed + 10 * ttl + 30:
            if polls(survivor.url).get(source, 0) > before:
                return time.monotonic() - killed
            time.sleep(0.02)
        raise TimeoutError(f"the survivor never polled {source}")
    finally:
        for process in processes:
            process.stop()
        receiver.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="alerts per throughput scenario (a multiple of 50)")
    parser.add_argument("--ttl", type=float, default=5.0, help="cluster.lease_ttl in seconds for the detection gap")
    parser.add_argument("--kills", type=int, default=3, help="how many times to measure the detection gap")
    parser.add_argument("--quick", action="store_true", help="200 alerts, 1 kill")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.kills = 200, 1
    server = PostgresServer()
    server.start()
    rows: list[dict] = []
    gaps: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dagwatch-bench-replicas-") as tmp:
            root = Path(tmp)
            rows.append(throughput("sqlite, 1 replica", 1, None, args.events, root / "sqlite1"))
            for count in (1, 2):
                database = f"bench{count}"
                server._sql(f"CREATE DATABASE {database} OWNER {server.user} TEMPLATE template0")
                rows.append(
                    throughput(
                        f"postgresql, {count} replica{'s' if count > 1 else ''}",
                        count,
                        server.url(database),
                        args.events,
                        root / f"pg{count}",
                    )
                )
            for kill in range(args.kills):
                database = f"gap{kill}"
                server._sql(f"CREATE DATABASE {database} OWNER {server.user} TEMPLATE template0")
                gaps.append(detection_gap(server.url(database), args.ttl, root / f"gap{kill}"))
    finally:
        server.stop()
    print(f"\nalerts end to end (POST /api/v1/events -> webhook accepted), {args.events} alerts, {CLIENTS} clients, batches of {BATCH}")
    print(f"{'scenario':<26}{'alerts':>8}{'posted s':>10}{'delivered s':>13}{'alerts/s':>10}{'dup keys':>10}")
    for row in rows:
        print(
            f"{row['scenario']:<26}{row['alerts']:>8}{row['posted_s']:>10.2f}{row['delivered_s']:>13.2f}{row['per_s']:>10.1f}{row['duplicates']:>10}"
        )
    print(f"\ndetection gap after kill -9 (lease_ttl {args.ttl:g}s, heartbeat {args.ttl / 3:.2f}s), {len(gaps)} kill(s)")
    print(f"{'min s':>8}{'median s':>10}{'max s':>8}   bound ~{args.ttl * 4 / 3:.2f}s")
    print(f"{min(gaps):>8.2f}{statistics.median(gaps):>10.2f}{max(gaps):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
