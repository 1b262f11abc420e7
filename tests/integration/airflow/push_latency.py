"""Detection latency of the PUSH path on a real Airflow 3: a task fails in Airflow → the listener
plugin (examples/airflow_plugin/dagwatch_listener.py) POSTs a task_failed event → the alert is in a
real `dagwatch up` (its own process, `sources: []`, so nothing is polled: push only).

    .venv/bin/python -m tests.integration.airflow.push_latency [FAILURES] [--interval S]

Per failure, on the same machine and clock:
  - ingest latency  = the alert's `updated_at` at first sight (set to dagwatch's `now` when the
    event was ingested; `started_at` is min(occurred_at, now), i.e. Airflow's time, so not used)
    minus the task instance's `end_date` read back from Airflow's API;
  - observed latency = the first time a GET /api/v1/alerts poll (every 0.1 s) saw it, minus end_date.
Everything listens on 127.0.0.1; every server is stopped by pid (process group) in `finally`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.integration.server import DagwatchProcess, create_token, free_port
from tests.servers.airflow.server import ADMIN, AirflowServer

ROOT = Path(__file__).resolve().parents[3]
DAG_ID = "dw_push_fail"
TASK_ID = "boom"
SOURCE = "airflow3-push"

DAG_FILE = textwrap.dedent(f'''
    from datetime import datetime
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.python import PythonOperator

    def _boom():
        raise RuntimeError("push latency probe: failing on purpose")

    with DAG("{DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
             max_active_runs=16, default_args={{"retries": 0}}):
        PythonOperator(task_id="{TASK_ID}", python_callable=_boom)
''')


def start_dagwatch(work: Path) -> tuple[DagwatchProcess, str]:
    """A real `dagwatch up` on loopback, push only (`sources: []`), and an operator token for the listener."""
    port = free_port()
    config = work / "dagwatch.yaml"
    config.write_text(json.dumps({"data_dir": str(work / "data"), "server": {"host": "127.0.0.1", "port": port}, "sources": []}))
    token = create_token(config, "airflow")
    dagwatch = DagwatchProcess(config, port, work / "dagwatch.log")
    dagwatch.wait_healthy()
    return dagwatch, token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("failures", nargs="?", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.5, help="seconds between triggers (a few in flight at once)")
    parser.add_argument("--check", type=float, default=0.1, help="seconds between GET /api/v1/alerts")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs) afterwards")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="dagwatch-push-latency-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / "dw_push_fail.py").write_text(DAG_FILE)
    dagwatch: DagwatchProcess | None = None
    airflow: AirflowServer | None = None
    try:
        t0 = time.monotonic()
        dagwatch, dw_token = start_dagwatch(work)
        print(f"dagwatch up at {dagwatch.url} after {time.monotonic() - t0:.1f}s", flush=True)
        airflow = AirflowServer(
            3,
            dags,
            plugins_folder=ROOT / "examples" / "airflow_plugin",
            extra_env={"DAGWATCH_URL": dagwatch.url, "DAGWATCH_TOKEN": dw_token, "DAGWATCH_SOURCE": SOURCE},
        )
        took = airflow.start()
        print(f"airflow 3 healthy after {took:.1f}s at {airflow.url} (home {airflow.home})", flush=True)

        af = httpx.Client(base_url=airflow.url, timeout=30)
        token = af.post("/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
        af.headers["Authorization"] = f"Bearer {token}"
        dw = httpx.Client(base_url=dagwatch.url, timeout=10, headers={"Authorization": f"Bearer {dw_token}"})

        deadline = time.monotonic() + 120
        while af.get(f"/api/v2/dags/{DAG_ID}").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{DAG_ID} not parsed after 120s; see {airflow.home}/dag-processor.log")
            time.sleep(1)
        af.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        print(f"{DAG_ID} parsed; triggering {args.failures} failing runs every {args.interval}s", flush=True)

        triggered: dict[str, float] = {}  # run_id → monotonic trigger time
        seen: dict[str, tuple[datetime, datetime, datetime]] = {}  # run_id → (observed at, alert updated_at, started_at)
        next_trigger = time.monotonic()
        deadline = time.monotonic() + 120 + args.failures * (args.interval + 6)
        while len(seen) < args.failures and time.monotonic() < deadline:
            if len(triggered) < args.failures and time.monotonic() >= next_trigger:
                r = af.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
                r.raise_for_status()
                triggered[r.json()["dag_run_id"]] = time.monotonic()
                next_trigger = time.monotonic() + args.interval
            try:
                alerts = dw.get("/api/v1/alerts", params={"kind": "task_failed", "pipeline": DAG_ID, "limit": 1000}).json()
            except httpx.HTTPError:
                alerts = []
            now = datetime.now(UTC)
            for a in alerts:
                if a["run_id"] in triggered and a["run_id"] not in seen:
                    seen[a["run_id"]] = (now, datetime.fromisoformat(a["updated_at"]), datetime.fromisoformat(a["started_at"]))
            time.sleep(args.check)

        rows = []
        for run_id, (observed, updated, started) in seen.items():
            # The hook runs inside the task's process, before the task runner reports the failure
            # to the API server: the alert can be in dagwatch before Airflow has an end_date.
            ti: dict = {}
            wait_until = time.monotonic() + 60
            while time.monotonic() < wait_until:
                ti = af.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}").json()
                if ti.get("end_date") and ti.get("state") == "failed":
                    break
                time.sleep(0.5)
            if not ti.get("end_date"):
                print(f"{run_id}: no end_date in Airflow after 60s: {ti.get('state')}")
                continue
            ended = datetime.fromisoformat(ti["end_date"])
            updated = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
            started = started if started.tzinfo else started.replace(tzinfo=UTC)
            rows.append(
                {
                    "run_id": run_id,
                    "end_date": ti["end_date"],
                    "state": ti["state"],
                    "ingest_latency_s": (updated - ended).total_seconds(),
                    "observed_latency_s": (observed - ended).total_seconds(),
                    "alert_started_at": started.isoformat(),
                    "ingested_at": updated.isoformat(),
                    "observed_at": observed.isoformat(),
                }
            )
        missing = [r for r in triggered if r not in seen]
        print("(negative = dagwatch had the alert before Airflow recorded the task's end_date: the hook runs in the task process first)")
        print(f"\nfailures detected by push: {len(rows)}/{args.failures} (triggered {len(triggered)}; missing {missing})")
        for label, key in (
            ("ingest  (alert.updated_at - TI end_date)", "ingest_latency_s"),
            ("observed (GET /alerts saw it - TI end_date)", "observed_latency_s"),
        ):
            xs = sorted(r[key] for r in rows)
            if xs:
                print(
                    f"{label}: median {statistics.median(xs):.3f}s  p90 {xs[int(0.9 * (len(xs) - 1))]:.3f}s  "
                    f"worst {xs[-1]:.3f}s  best {xs[0]:.3f}s"
                )
        out = ROOT / "bench" / "results" / "push_latency.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(UTC).isoformat(),
                    "failures": args.failures,
                    "interval_s": args.interval,
                    "rows": rows,
                    "missing": missing,
                },
                indent=2,
            )
        )
        print(f"per-run rows: {out}")
        return 0 if len(rows) == args.failures else 1
    finally:
        if airflow is not None:
            airflow.stop(keep_home=args.keep)
        if dagwatch is not None:
            dagwatch.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
