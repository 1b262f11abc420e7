"""A storm of pushed task failures of ONE run, through the Airflow listener's real sender, into a
real `dagwatch up` that pages a local PagerDuty: how long until every failure is committed, and
how many times the run paged.

    .venv/bin/python bench/storm.py                      # 10,000 failures, 16 senders, batched then single (~1-3 min)
    .venv/bin/python bench/storm.py --modes batched      # only the batching listener
    .venv/bin/python bench/storm.py --failures 2000 --senders 8 --quick   # smoke

Issue 13's goal: 10,000 pushed task failures of one run ingested in under 10 s and paged once.

Per mode, a fresh `dagwatch up` (temp dir, SQLite, `sources: []`, 127.0.0.1, an operator token
from `dagwatch token create`, stopped by pid at the end, even on failure) with one PagerDuty
receiver whose `events_url` is tests/fakes/pagerduty.py's FakePagerDuty (the Events API v2 wire
format: `POST /v2/enqueue`, 202 with the dedup_key, incidents kept by dedup_key) in this process,
and one route: `kind: task_failed` → tier P1 → that receiver. Grouping is the default (source +
pipeline: the run's failures are one group); `--group-wait`/`--group-interval` (1s / 5s here,
dagwatch's defaults are 5s / 1m) only change how soon and how often the group's incident is updated.
`--inhibit` adds one inhibit rule (INHIBIT_RULE: the run's failure mutes its task failures), as a
team would configure it; none of the storm's alerts is its source.

The load: FAILURES `task_failed` events (pipeline `storm`, run_id `r1`, tasks t0..tN-1), dealt to
SENDERS threads, each with its own `Sender` from examples/airflow_plugin/dagwatch_listener.py (as
many task processes would each have theirs), all submitting at once, then each `flush()`es.

  batched  `Sender()` with the listener's defaults (DAGWATCH_BATCH 500, DAGWATCH_FLUSH_INTERVAL 0.2 s)
  single   `Sender(batch=1, interval=0)`: one event per request, as the listener did before it
           batched (one synchronous POST per hook), SENDERS requests in flight at once

Measured:
  ingest_s     first submit → every sender's flush answered. POST /api/v1/events answers after its
               transaction commits, so this is "all committed"; the bench then pages through
               GET /api/v1/alerts?status=firing&source=… and checks that exactly FAILURES firing
               alerts (one per task) are there.
  first_page_s first submit → the first PagerDuty trigger received (watched during the storm too:
               a P1 must not wait for the storm to end)
  incidents    distinct dedup_keys PagerDuty got a `trigger` for (goal: 1)
  notifications every PagerDuty event received (triggers that update the open incident included),
               counted once deliveries are quiet for SETTLE s
  CPU/event    dagwatch's utime+stime over ingest / FAILURES; peak RSS (VmHWM)

Results: a table on stdout, JSON in bench/results/storm-<time>.json (gitignored), with the commit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(HERE))

from router_vs_alertmanager import Dagwatch, proc_status  # noqa: E402 — the router bench's server, after the path is set

from tests.fakes.pagerduty import FakePagerDuty  # noqa: E402 — the repo's own fake, after the path is set

LISTENER = ROOT / "examples" / "airflow_plugin" / "dagwatch_listener.py"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
SOURCE = "airflow-storm"


def load_listener():
    spec = importlib.util.spec_from_file_location("dagwatch_listener", LISTENER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commit() -> tuple[str, list[str]]:
    """HEAD (with "+dirty" when tracked files differ from it) and the files that differ."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
    files = [line[3:] for line in dirty.splitlines() if line.strip()]
    return head + ("+dirty" if files else ""), files


#: `--inhibit`: what a team would configure beside such a pipeline: its run's failure mutes its task failures.
INHIBIT_RULE = {"source_matchers": ['kind="run_failed"'], "target_matchers": ['kind="task_failed"'], "equal": ["source", "pipeline"]}


def dagwatch_paging(workdir: Path, events_url: str, *, group_wait: str, group_interval: str, inhibit: bool = False) -> Dagwatch:
    """The router bench's `dagwatch up` (temp dir, SQLite, operator token, stopped by pid), paging
    PagerDuty at `events_url` for every task failure; `inhibit`: with INHIBIT_RULE configured."""
    return Dagwatch(
        workdir,
        events_url,
        group_wait=group_wait,
        group_interval=group_interval,
        receivers=[{"name": "pager", "kind": "pagerduty", "routing_key": "${STORM_PD_KEY}", "events_url": events_url}],
        routes=[{"match": {"kind": "task_failed"}, "tier": "P1", "receivers": ["pager"]}],
        env={"STORM_PD_KEY": ROUTING_KEY},
        alerting={"inhibit_rules": [INHIBIT_RULE]} if inhibit else None,
    )


def firing(dagwatch: Dagwatch) -> list[dict]:
    """Every firing alert of the storm's source, paged through the API."""
    found: list[dict] = []
    while True:
        path = f"/api/v1/alerts?status=firing&source={SOURCE}&limit=1000&offset={len(found)}"
        status, raw = dagwatch.request("GET", path, headers={"Authorization": f"Bearer {dagwatch.token}"})
        if status != 200:
            raise RuntimeError(f"dagwatch GET {path} answered {status}: {raw[:300]!r}")
        page = json.loads(raw)
        found += page
        if len(page) < 1000:
            return found


def event(task: int) -> dict:
    """What the listener's on_task_instance_failed pushes for a task out of retries."""
    return {
        "kind": "task_failed",
        "source": SOURCE,
        "pipeline": "storm",
        "run_id": "r1",
        "task_id": f"t{task}",
        "try_number": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "summary": f"t{task} failed on try 1: RuntimeError: upstream table missing",
        "details": {"map_index": -1, "max_tries": 1, "error": "RuntimeError: upstream table missing"},
    }


def storm(mode: str, args: argparse.Namespace, listener) -> dict:
    pagerduty = FakePagerDuty().start()
    workdir = Path(tempfile.mkdtemp(prefix=f"dagwatch-storm-{mode}-"))
    dagwatch = dagwatch_paging(
        workdir, pagerduty.events_url, group_wait=args.group_wait, group_interval=args.group_interval, inhibit=args.inhibit
    )
    try:
        dagwatch.start()
        assert dagwatch.proc is not None
        knobs = {"batch": 1, "interval": 0.0} if mode == "single" else {"batch": args.batch, "interval": args.interval}
        senders = [listener.Sender(dagwatch.url, dagwatch.token, **knobs) for _ in range(args.senders)]
        flushed: list[bool] = []
        go = threading.Barrier(args.senders + 1)

        def task_processes(i: int) -> None:
            go.wait()
            for task in range(i, args.failures, args.senders):
                senders[i].submit(event(task))
            flushed.append(senders[i].flush(timeout=args.max_wait))

        threads = [threading.Thread(target=task_processes, args=(i,), daemon=True) for i in range(args.senders)]
        for t in threads:
            t.start()
        first_trigger: list[float] = []  # when the first page arrived, watched while the storm goes on
        storming = threading.Event()

        def watch_pages() -> None:
            while not first_trigger and not storming.wait(0.005):
                if any(e["event_action"] == "trigger" for e in list(pagerduty.events)):
                    first_trigger.append(time.monotonic())

        watcher = threading.Thread(target=watch_pages, daemon=True)
        cpu0 = proc_status(dagwatch.pid)["cpu_s"]
        go.wait()
        t0 = time.monotonic()
        watcher.start()
        for t in threads:
            t.join()
        ingest_s = time.monotonic() - t0
        cpu_s = proc_status(dagwatch.pid)["cpu_s"] - cpu0
        print(f"  {mode}: {args.failures} answered in {ingest_s:.2f}s; checking the alerts and waiting for PagerDuty …", flush=True)

        alerts = firing(dagwatch)
        tasks = {a["task_id"] for a in alerts}

        # Deliveries: wait for the first page (if it did not come during the storm), then until
        # nothing arrived for SETTLE s.
        storming.set()
        watcher.join(5)
        first_page_s = first_trigger[0] - t0 if first_trigger else None
        deadline = time.monotonic() + args.max_wait
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            events = list(pagerduty.events)
            if first_page_s is None and any(e["event_action"] == "trigger" for e in events):
                first_page_s = time.monotonic() - t0
            if len(events) != last_count:
                last_count, quiet_since = len(events), time.monotonic()
            elif events and time.monotonic() - quiet_since >= args.settle:
                break
            time.sleep(0.1)
        events = list(pagerduty.events)
        stats = [s.stats.as_dict() for s in senders]
        total = {k: sum(s[k] for s in stats) for k in stats[0]}
        return {
            "mode": mode,
            "failures": args.failures,
            "senders": args.senders,
            "sender_knobs": knobs,
            "all_flushed": all(flushed) and len(flushed) == args.senders,
            "ingest_s": round(ingest_s, 3),
            "events_per_s": round(args.failures / ingest_s, 1),
            "sender": total,
            "firing_alerts": len(alerts),
            "distinct_tasks": len(tasks),
            "every_failure_one_alert": len(alerts) == args.failures and tasks == {f"t{i}" for i in range(args.failures)},
            "first_page_s": None if first_page_s is None else round(first_page_s, 3),
            "incidents": len({e["dedup_key"] for e in events if e["event_action"] == "trigger"}),
            "notifications": len(events),
            "pagerduty_requests": len(pagerduty.requests),
            "dagwatch_cpu_s": round(cpu_s, 3),
            "cpu_us_per_event": round(cpu_s / args.failures * 1e6, 1),
            "peak_rss_mb": proc_status(dagwatch.pid)["VmHWM"],
        }
    finally:
        dagwatch.stop()
        pagerduty.stop()
        if args.keep:
            print(f"  kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failures", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=16, help="sender instances, one thread each (task processes)")
    parser.add_argument("--modes", default="batched,single", help="comma-separated: batched, single")
    parser.add_argument("--batch", type=int, default=500, help="the batched mode's DAGWATCH_BATCH")
    parser.add_argument("--interval", type=float, default=0.2, help="the batched mode's DAGWATCH_FLUSH_INTERVAL")
    parser.add_argument("--group-wait", default="1s")
    parser.add_argument("--group-interval", default="5s")
    parser.add_argument("--settle", type=float, default=12.0, help="seconds without a PagerDuty event that end the wait")
    parser.add_argument("--max-wait", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true", help="--failures 2000 --senders 8 --settle 6")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (dagwatch logs)")
    parser.add_argument("--inhibit", action="store_true", help="configure INHIBIT_RULE (a run failure mutes its task failures)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.failures, args.senders, args.settle = 2000, 8, 6.0
    listener = load_listener()

    head = {
        "bench": "storm",
        "measured_at": datetime.now(UTC).isoformat(),
        "commit": commit()[0],
        "uncommitted_files": commit()[1],
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(), "system": platform.platform()},
        "goal": "10,000 pushed task failures of one run ingested in under 10 s and paged once (issue 13)",
        "group_wait": args.group_wait,
        "group_interval": args.group_interval,
        "inhibit_rules": [INHIBIT_RULE] if args.inhibit else [],
    }
    print(f"storm: {args.failures} task failures of one run, {args.senders} senders; commit {head['commit']}", flush=True)
    results = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if mode not in ("batched", "single"):
            parser.error(f"unknown mode {mode!r}")
        results.append(storm(mode, args, listener))

    print()
    print(f"{'mode':<9} {'ingest s':>9} {'events/s':>9} {'POSTs':>7} {'retries':>7} {'lost':>5} {'alerts':>7} {'1 each':>6} "
          f"{'1st page s':>10} {'incidents':>9} {'notif.':>6} {'CPU µs/ev':>9} {'RSS MB':>7}")  # fmt: skip
    for r in results:
        s = r["sender"]
        print(
            f"{r['mode']:<9} {r['ingest_s']:>9.2f} {r['events_per_s']:>9.0f} {s['posts']:>7} {s['retries']:>7} "
            f"{s['lost'] + s['dropped'] + s['rejected']:>5} {r['firing_alerts']:>7} {'yes' if r['every_failure_one_alert'] else 'NO':>6} "
            f"{r['first_page_s'] if r['first_page_s'] is not None else '-':>10} {r['incidents']:>9} {r['notifications']:>6} "
            f"{r['cpu_us_per_event']:>9.0f} {r['peak_rss_mb'] or 0:>7.0f}"
        )
    batched = next((r for r in results if r["mode"] == "batched"), None)
    if batched:
        met = batched["ingest_s"] < 10 and batched["incidents"] == 1 and batched["every_failure_one_alert"]
        print(f"\ngoal (batched: < 10 s, one incident, every failure one alert): {'met' if met else 'NOT met'}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"storm-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({**head, "results": results}, indent=2))
    print(f"results: {out}")
    return 0 if all(r["every_failure_one_alert"] and r["all_flushed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
