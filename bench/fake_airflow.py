"""A fake Airflow 3 REST API (v2) for bench/collector_scale.py, run in its own process so its CPU
is not counted as dagwatch's. Standard library only.

    .venv/bin/python bench/fake_airflow.py --port P [--dags 5000] [--tis-per-day 100000] [--seed 1]
                                           [--version-changes-per-day 50]

The day is generated up front: every DAG runs on a schedule (interval and offset of its own), its
tasks run one after the other, most succeed; a few fail, some of those are retried (up_for_retry
for a minute, then try 2), and a failed task leaves its downstream tasks upstream_failed and its
run failed. Every object's state and `updated_at` are functions of a *simulated* clock that the
bench sets with `POST /_sim {"now": ISO, "reparse": bool, "dag_versions": bool}` before each poll,
so a run of 120 30-second cycles takes as long as dagwatch needs, not an hour.

DAG versions as in Airflow 3: every DAG got version 1 when its file was first parsed (days before
the simulated day) and a few change during the day (`--version-changes-per-day`, spread over the
estate): each change is a new version (UUIDv7-like id, time-ordered) at that moment, and the DAG's
tasks change with it (their `retries` flip). Runs and task instances carry the version current when
the run was created. With `reparse` the dag-processor re-parses every file every ~30 s, so
`last_parsed_time` moves for every DAG while versions change only for the few that changed;
`"dag_versions": false` answers 404 for the versions endpoints (an Airflow without them).

Served like Airflow 3.3 (shapes from the generated OpenAPI spec, as dagwatch's parser reads them):
  GET  /api/v2/version, /api/v2/monitor/health, POST /auth/token
  GET  /api/v2/dags                                   limit ≤ 100 / offset, paused, order_by
  GET  /api/v2/dags/{dag}/tasks                        (as of the DAG's current version)
  GET  /api/v2/dags/{dag|~}/dagVersions                 order_by (±id, ±version_number, ±bundle_name,
                                                      ±bundle_version; else 400), version_number,
                                                      bundle_name, limit, offset
  GET  /api/v2/importErrors
  GET  /api/v2/dags/{dag|~}/dagRuns                   updated_at_gte/lte, state (repeated),
                                                      order_by (±id, ±updated_at, ±run_after,
                                                      ±start_date, ±end_date), limit, offset
  GET  /api/v2/dags/{dag}/dagRuns/{run}
  GET  /api/v2/dags/{dag|~}/dagRuns/{run|~}/taskInstances   updated_at_gte/lte, state, limit, offset
  POST /api/v2/dags/~/dagRuns/~/taskInstances/list    dag_ids, dag_run_ids, state, page_limit, page_offset
  GET  …/taskInstances/{task}/logs/{try}              JSON events, the last with error_detail
`updated_at` is not in the responses (as in Airflow); `total_entries` is. Counters of requests by
endpoint are at GET /_sim/stats.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DAY = 86400.0
MAX_LIMIT = 100
# The simulated day starts here (epoch seconds); the bench polls from T0 + 18 h onwards.
T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def parse_ts(value: str) -> float:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # Airflow answers 500 for a naive filter: so do we, loudly
        raise ValueError("timestamp filter without a timezone")
    return moment.timestamp()


@dataclass
class TI:
    idx: int
    run: "Run"
    task_id: str
    # (time, state, try_number) transitions, in time order; the first is the TI's creation (state None)
    steps: list[tuple[float, str | None, int]]
    max_tries: int
    # start/end per try: try_number → (start, end)
    tries: dict[int, tuple[float, float]] = field(default_factory=dict)

    def at(self, now: float) -> tuple[float, str | None, int] | None:
        found = None
        for step in self.steps:
            if step[0] > now:
                break
            found = step
        return found


@dataclass
class Run:
    idx: int
    dag_id: str
    run_id: str
    run_after: float
    start: float
    end: float
    final: str
    tis: list[TI] = field(default_factory=list)

    def at(self, now: float) -> tuple[float, str] | None:
        if now < self.run_after:
            return None
        if now < self.start:
            return self.run_after, "queued"
        if now < self.end:
            return self.start, "running"
        return self.end, self.final


class World:
    def __init__(
        self,
        dags: int,
        tis_per_day: float,
        seed: int,
        fail_rate: float = 0.01,
        retry_share: float = 0.7,
        version_changes_per_day: float = 50,
    ) -> None:
        rng = random.Random(seed)
        self.now = T0 + 18 * 3600
        self.reparse = False
        self.serve_versions = True
        self.dags: list[dict] = []
        self.tasks: dict[str, list[str]] = {}
        self.retries: dict[str, int] = {}
        self.runs: list[Run] = []
        self.tis: list[TI] = []
        tasks_per_dag = [rng.randint(2, 8) for _ in range(dags)]  # mean 5
        # runs/day per DAG so that the whole estate makes `tis_per_day` task instances a day
        runs_per_day = tis_per_day / sum(tasks_per_dag)
        intervals = [3600, 2 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 24 * 3600]
        for d in range(dags):
            dag_id = f"team{d % 40:02d}_pipeline_{d:05d}"
            n = tasks_per_dag[d]
            task_ids = [
                f"step_{i}_{('extract', 'transform', 'validate', 'train', 'load', 'publish', 'score', 'report')[i]}" for i in range(n)
            ]
            self.tasks[dag_id] = task_ids
            self.retries[dag_id] = 1 if rng.random() < retry_share else 0
            # choose the interval nearest to the average the volume asks for, jittered per DAG
            target = DAY / max(runs_per_day, 0.01)
            interval = min(intervals, key=lambda i: abs(i - target * rng.uniform(0.5, 1.5)))
            offset = rng.randrange(0, interval // 60) * 60
            self.dags.append(
                {
                    "dag_id": dag_id,
                    "dag_display_name": dag_id,
                    "is_paused": rng.random() < 0.03,
                    "is_stale": False,
                    "last_parsed_time": None,
                    "last_expired": None,
                    "bundle_name": "dags-folder",
                    "bundle_version": None,
                    "relative_fileloc": f"{dag_id}.py",
                    "fileloc": f"/opt/airflow/dags/{dag_id}.py",
                    "description": None,
                    "timetable_summary": f"every {interval // 3600}h",
                    "timetable_description": f"Every {interval // 3600} hours",
                    "tags": [{"name": f"team{d % 40:02d}", "dag_id": dag_id}] + ([{"name": "ml", "dag_id": dag_id}] if d % 5 == 0 else []),
                    "max_active_tasks": 16,
                    "max_active_runs": 16,
                    "max_consecutive_failed_dag_runs": 0,
                    "has_task_concurrency_limits": False,
                    "has_import_errors": False,
                    "next_dagrun_logical_date": None,
                    "next_dagrun_data_interval_start": None,
                    "next_dagrun_data_interval_end": None,
                    "next_dagrun_run_after": None,
                    "owners": [f"team{d % 40:02d}"],
                    "file_token": "x" * 40,
                    "_interval": interval,
                    "_offset": offset,
                    "_parse_phase": rng.uniform(0, 30),
                }
            )
            t = T0 - DAY + offset  # generate from the day before (the 6 h look-back) to two hours past the bench
            while t < T0 + DAY + 2 * 3600:
                if not self.dags[-1]["is_paused"]:
                    self._make_run(rng, dag_id, task_ids, t, fail_rate)
                t += interval
        self._make_versions(random.Random(seed + 1), version_changes_per_day)  # own generator: the runs stay as they were
        self.runs.sort(key=lambda r: (r.run_after, r.dag_id))
        for i, r in enumerate(self.runs):
            r.idx = i
        self.tis = [ti for r in self.runs for ti in r.tis]
        for i, ti in enumerate(self.tis):
            ti.idx = i
        self.by_run_id: dict[str, list[Run]] = {}
        self.by_key: dict[tuple[str, str], Run] = {}
        for r in self.runs:
            self.by_run_id.setdefault(r.run_id, []).append(r)
            self.by_key[(r.dag_id, r.run_id)] = r
        # change indexes: every transition time → object, sorted, for updated_at_gte/lte by bisect
        self.run_changes = sorted((t, r.idx) for r in self.runs for t in (r.run_after, r.start, r.end))
        self.run_change_t = [c[0] for c in self.run_changes]
        self.ti_changes = sorted((s[0], ti.idx) for ti in self.tis for s in ti.steps)
        self.ti_change_t = [c[0] for c in self.ti_changes]
        self.stats: Counter[str] = Counter()

    def _make_versions(self, rng: random.Random, changes_per_day: float) -> None:
        """Version 1 for every DAG, days ago; `changes_per_day` new versions over the simulated day
        (from the day before, so the 6 h look-back sees some too), each for a random DAG."""
        self.versions: list[dict] = []
        self.dag_versions: dict[str, list[dict]] = {}
        made: list[tuple[float, str]] = [(T0 - rng.uniform(2, 60) * DAY, d["dag_id"]) for d in self.dags]
        made += [(T0 - DAY + rng.uniform(0, 2 * DAY), rng.choice(self.dags)["dag_id"]) for _ in range(int(2 * changes_per_day))]
        for seq, (created, dag_id) in enumerate(sorted(made)):
            mine = self.dag_versions.setdefault(dag_id, [])
            ms = int(created * 1000)
            hexid = f"{ms:012x}7{seq % 4096:03x}8{seq:015x}"
            version = {
                "id": f"{hexid[:8]}-{hexid[8:12]}-{hexid[12:16]}-{hexid[16:20]}-{hexid[20:32]}",
                "version_number": len(mine) + 1,
                "dag_id": dag_id,
                "bundle_name": "dags-folder",
                "bundle_version": None,
                "created_at": iso(created),
                "dag_display_name": dag_id,
                "bundle_url": None,
                "_t": created,
            }
            mine.append(version)
            self.versions.append(version)  # in id order: ids grow with creation time
        self.version_t = [v["_t"] for v in self.versions]

    def version_at(self, dag_id: str, t: float) -> dict | None:
        """The DAG's latest version made by `t` (what a run created at `t` runs on)."""
        found = None
        for v in self.dag_versions.get(dag_id, []):
            if v["_t"] > t:
                break
            found = v
        return found

    @staticmethod
    def version_json(v: dict | None) -> dict | None:
        return None if v is None else {k: val for k, val in v.items() if not k.startswith("_")}

    def _make_run(self, rng: random.Random, dag_id: str, task_ids: list[str], run_after: float, fail_rate: float) -> None:
        start = run_after + rng.uniform(1, 20)
        run = Run(0, dag_id, f"scheduled__{iso(run_after)}", run_after, start, start, "success")
        t = start
        failed = False
        retries = self.retries[dag_id]
        for task_id in task_ids:
            steps: list[tuple[float, str | None, int]] = [(run_after, None, 0)]  # created with the run
            ti = TI(0, run, task_id, steps, retries)
            if failed:
                steps.append((t, "upstream_failed", 0))
            else:
                steps.append((t, "scheduled", 0))
                q = t + rng.uniform(0.5, 3)
                steps.append((q, "queued", 1))
                s = q + rng.uniform(0.5, 3)
                e = s + rng.uniform(20, 300)
                steps.append((s, "running", 1))
                if rng.random() < fail_rate:
                    if retries:  # fails once; most retries succeed (same random draws as ever)
                        recovers = rng.random() < 0.8
                        steps.append((e, "up_for_retry", 1))
                        ti.tries[1] = (s, e)
                        s2 = e + 60 + rng.uniform(1, 5)
                        e2 = s2 + (rng.uniform(20, 300) if recovers else rng.uniform(5, 60))
                        steps += [(s2, "running", 2), (e2, "success" if recovers else "failed", 2)]
                        ti.tries[2] = (s2, e2)
                        e = e2
                        failed = not recovers
                    else:
                        steps.append((e, "failed", 1))
                        ti.tries[1] = (s, e)
                        failed = True
                else:
                    steps.append((e, "success", 1))
                    ti.tries[1] = (s, e)
                t = e
            run.tis.append(ti)
        run.end = t + rng.uniform(0.5, 3)
        run.final = "failed" if failed else "success"
        self.runs.append(run)

    # -- shapes -------------------------------------------------------------------------------

    def run_json(self, r: Run, now: float) -> dict:
        _, state = r.at(now)
        return {
            "dag_run_id": r.run_id,
            "dag_id": r.dag_id,
            "logical_date": iso(r.run_after),
            "queued_at": iso(r.run_after),
            "start_date": iso(r.start) if now >= r.start else None,
            "end_date": iso(r.end) if now >= r.end else None,
            "duration": (r.end - r.start) if now >= r.end else None,
            "data_interval_start": iso(r.run_after - 3600),
            "data_interval_end": iso(r.run_after),
            "run_after": iso(r.run_after),
            "last_scheduling_decision": iso(now),
            "run_type": "scheduled",
            "state": state,
            "triggered_by": "timetable",
            "triggering_user_name": None,
            "conf": {},
            "note": None,
            "dag_versions": [v for v in [self.version_json(self.version_at(r.dag_id, r.run_after))] if v],
            "bundle_version": None,
            "dag_display_name": r.dag_id,
        }

    def ti_json(self, ti: TI, now: float) -> dict:
        _, state, try_number = ti.at(now)
        start = end = None
        if try_number in ti.tries:
            s, e = ti.tries[try_number]
            start = s if now >= s else None
            end = e if now >= e and state in ("success", "failed", "up_for_retry") else None
        r = ti.run
        return {
            "id": f"0195{ti.idx:028x}",
            "task_id": ti.task_id,
            "dag_id": r.dag_id,
            "dag_run_id": r.run_id,
            "map_index": -1,
            "logical_date": iso(r.run_after),
            "run_after": iso(r.run_after),
            "start_date": iso(start),
            "end_date": iso(end),
            "duration": (end - start) if start and end else None,
            "state": state,
            "try_number": try_number,
            "max_tries": ti.max_tries,
            "task_display_name": ti.task_id,
            "dag_display_name": r.dag_id,
            "hostname": "worker-1" if start else "",
            "unixname": "airflow",
            "pool": "default_pool",
            "pool_slots": 1,
            "queue": "default",
            "priority_weight": 1,
            "operator": "PythonOperator",
            "operator_name": "PythonOperator",
            "queued_when": None,
            "scheduled_when": None,
            "pid": None,
            "executor": None,
            "executor_config": "{}",
            "note": None,
            "rendered_map_index": None,
            "rendered_fields": {},
            "trigger": None,
            "triggerer_job": None,
            "dag_version": self.version_json(self.version_at(r.dag_id, r.run_after)),
        }

    def dag_json(self, d: dict, now: float) -> dict:
        out = {k: v for k, v in d.items() if not k.startswith("_")}
        if self.reparse:  # the dag-processor re-parses every file about every 30 s
            out["last_parsed_time"] = iso(now - ((now - d["_parse_phase"]) % 30))
        else:
            out["last_parsed_time"] = iso(T0)
        if not d["is_paused"]:
            i, o = d["_interval"], d["_offset"]
            nxt = T0 + o + ((now - T0 - o) // i + 1) * i
            out["next_dagrun_run_after"] = out["next_dagrun_logical_date"] = iso(nxt)
        return out

    # -- queries ------------------------------------------------------------------------------

    def changed(
        self, times: list[float], changes: list[tuple[float, int]], gte: float | None, lte: float | None, now: float
    ) -> list[int] | None:
        """Indexes of objects with a transition in [gte, min(lte, now)] (None: no time filter)."""
        if gte is None and lte is None:
            return None
        hi = min(now, lte) if lte is not None else now
        lo = gte if gte is not None else float("-inf")
        # an object's updated_at is its last transition ≤ now: it is in [lo, hi] iff a transition
        # falls in [lo, hi] and none falls in (hi, now] when lte < now
        a, b = bisect.bisect_left(times, lo), bisect.bisect_right(times, hi)
        return sorted({changes[i][1] for i in range(a, b)})


ORDER = re.compile(r"^(-?)(id|updated_at|run_after|start_date|end_date|logical_date|dag_id|run_id|dag_run_id)$")
VERSION_ORDER = re.compile(r"^(-?)(id|version_number|bundle_name|bundle_version)$")


def make_handler(world: World):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args):
            pass

        def send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            try:
                self.route("GET", {})
            except ValueError as exc:
                self.send(500 if "timezone" in str(exc) else 422, {"detail": str(exc)})

        def do_POST(self):
            try:
                self.route("POST", self.body())
            except ValueError as exc:
                self.send(422, {"detail": str(exc)})

        def do_PATCH(self):
            self.send(405, {"detail": "read-only fake"})

        def route(self, method: str, body: dict) -> None:
            url = urlsplit(self.path)
            q = parse_qs(url.query, keep_blank_values=True)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            now = world.now
            key = re.sub(r"/dags/[^/]+", "/dags/{d}", url.path)
            key = re.sub(r"/dagRuns/[^/]+", "/dagRuns/{r}", key)
            key = re.sub(r"/taskInstances/(?!list)[^/]+", "/taskInstances/{t}", key)
            key = re.sub(r"/logs/\d+", "/logs/{n}", key)
            world.stats[f"{method} {key}"] += 1

            if url.path == "/_sim" and method == "POST":
                world.now = parse_ts(body["now"])
                world.reparse = bool(body.get("reparse", world.reparse))
                world.serve_versions = bool(body.get("dag_versions", world.serve_versions))
                return self.send(200, {"now": iso(world.now)})
            if url.path == "/_sim/stats":
                return self.send(200, dict(world.stats))
            if url.path == "/auth/token" and method == "POST":
                return self.send(201, {"access_token": "fake.jwt.token", "token_type": "bearer"})
            if parts[:2] != ["api", "v2"]:
                return self.send(404, {"detail": "Not Found"})
            p = parts[2:]
            if p == ["version"]:
                return self.send(200, {"version": "3.3.2", "git_version": None})
            if p == ["monitor", "health"]:
                beat = iso(now - 2)
                return self.send(
                    200,
                    {
                        "metadatabase": {"status": "healthy"},
                        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": beat},
                        "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": beat},
                        "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": beat},
                    },
                )
            if not self.headers.get("Authorization"):
                return self.send(401, {"detail": "Not authenticated"})
            limit = min(int(q.get("limit", ["50"])[0]), MAX_LIMIT)
            offset = int(q.get("offset", ["0"])[0])
            if p == ["importErrors"]:
                return self.send(200, {"import_errors": [], "total_entries": 0})
            if p == ["dags"]:
                dags = world.dags
                if "paused" in q:
                    want = q["paused"][0].lower() == "true"
                    dags = [d for d in dags if d["is_paused"] == want]
                page = dags[offset : offset + limit]
                return self.send(200, {"dags": [world.dag_json(d, now) for d in page], "total_entries": len(dags)})
            if len(p) == 3 and p[0] == "dags" and p[2] == "tasks":
                if p[1] not in world.tasks:
                    return self.send(404, {"detail": f"The DAG with dag_id: `{p[1]}` was not found"})
                ids = world.tasks[p[1]]
                current = world.version_at(p[1], now)
                changes = current["version_number"] - 1 if current else 0
                retries = float(world.retries[p[1]] ^ (changes % 2))  # each new version flips them
                tasks = [
                    {
                        "task_id": t,
                        "task_display_name": t,
                        "owner": p[1].split("_")[0],
                        "start_date": iso(T0 - 30 * DAY),
                        "end_date": None,
                        "trigger_rule": "all_success",
                        "depends_on_past": False,
                        "wait_for_downstream": False,
                        "retries": retries,
                        "queue": "default",
                        "pool": "default_pool",
                        "pool_slots": 1.0,
                        "execution_timeout": None if i % 2 else {"__type": "TimeDelta", "days": 0, "seconds": 3600, "microseconds": 0},
                        "retry_delay": {"__type": "TimeDelta", "days": 0, "seconds": 60, "microseconds": 0},
                        "retry_exponential_backoff": False,
                        "priority_weight": 1.0,
                        "weight_rule": "downstream",
                        "ui_color": "#ffefeb",
                        "ui_fgcolor": "#000",
                        "template_fields": [],
                        "downstream_task_ids": ids[i + 1 : i + 2],
                        "doc_md": None,
                        "operator_name": "PythonOperator",
                        "params": {},
                        "class_ref": {},
                        "is_mapped": False,
                        "extra_links": [],
                    }
                    for i, t in enumerate(ids)
                ]
                return self.send(200, {"tasks": tasks, "total_entries": len(tasks)})
            if len(p) == 3 and p[0] == "dags" and p[2] == "dagVersions":
                return self.dag_versions(p[1], q, now, limit, offset)
            if len(p) >= 3 and p[0] == "dags" and p[2] == "dagRuns":
                return self.dag_runs(method, p, q, body, now, limit, offset)
            return self.send(404, {"detail": "Not Found"})

        def dag_versions(self, dag, q, now, limit, offset):
            if not world.serve_versions:
                return self.send(404, {"error": "API route not found"})
            if dag == "~":
                versions = world.versions[: bisect.bisect_right(world.version_t, now)]
            elif dag in world.tasks:
                versions = [v for v in world.dag_versions.get(dag, []) if v["_t"] <= now]
            else:
                return self.send(404, {"detail": f"The Dag with ID: `{dag}` was not found"})
            if "version_number" in q:
                versions = [v for v in versions if str(v["version_number"]) == q["version_number"][0]]
            if "bundle_name" in q:
                versions = [v for v in versions if v["bundle_name"] == q["bundle_name"][0]]
            order = q.get("order_by", ["id"])[0]
            m = VERSION_ORDER.match(order)
            if not m:
                return self.send(
                    400, {"detail": f"Ordering with '{order.lstrip('-')}' is disallowed or the attribute does not exist on the model"}
                )
            desc, attr = m.group(1) == "-", m.group(2)
            if attr == "id":  # already in id order
                ordered = versions[::-1] if desc else versions
            else:
                ordered = sorted(
                    versions, key=lambda v: (v[attr] or "", v["id"]) if attr.startswith("bundle") else (v[attr], v["id"]), reverse=desc
                )
            page = ordered[offset : offset + limit]
            return self.send(200, {"dag_versions": [world.version_json(v) for v in page], "total_entries": len(versions)})

        def dag_runs(self, method, p, q, body, now, limit, offset):
            dag = p[1]
            if len(p) == 3:  # list runs
                gte = parse_ts(q["updated_at_gte"][0]) if "updated_at_gte" in q else None
                lte = parse_ts(q["updated_at_lte"][0]) if "updated_at_lte" in q else None
                idx = world.changed(world.run_change_t, world.run_changes, gte, lte, now)
                runs = [world.runs[i] for i in idx] if idx is not None else [r for r in world.runs if r.run_after <= now]
                if lte is not None:
                    runs = [r for r in runs if r.at(now) and r.at(now)[0] <= lte]
                if dag != "~":
                    runs = [r for r in runs if r.dag_id == dag]
                if "state" in q:
                    runs = [r for r in runs if r.at(now) and r.at(now)[1] in q["state"]]
                runs = [r for r in runs if r.at(now) is not None]
                order = q.get("order_by", ["id"])[0]
                m = ORDER.match(order)
                if not m:
                    raise ValueError(f"Ordering with '{order}' is disallowed or the attribute does not exist on the model")
                desc, attr = m.group(1) == "-", m.group(2)
                keyf = {
                    "id": lambda r: r.idx,
                    "updated_at": lambda r: r.at(now)[0],
                    "run_after": lambda r: r.run_after,
                    "logical_date": lambda r: r.run_after,
                    "start_date": lambda r: r.start if now >= r.start else 0,
                    "end_date": lambda r: r.end if now >= r.end else 0,
                    "dag_id": lambda r: r.dag_id,
                    "run_id": lambda r: r.run_id,
                    "dag_run_id": lambda r: r.run_id,
                }[attr]
                runs.sort(key=lambda r: (keyf(r), r.idx), reverse=desc)
                page = runs[offset : offset + limit]
                return self.send(200, {"dag_runs": [world.run_json(r, now) for r in page], "total_entries": len(runs)})
            if dag == "~" and p[3] == "~" and p[4:] == ["taskInstances", "list"] and method == "POST":
                plimit = min(int(body.get("page_limit", 100)), MAX_LIMIT)
                poffset = int(body.get("page_offset", 0))
                dag_ids = set(body.get("dag_ids") or [])
                tis = []
                for run_id in body.get("dag_run_ids") or []:
                    for r in world.by_run_id.get(run_id, []):
                        if (not dag_ids or r.dag_id in dag_ids) and r.at(now) is not None:
                            tis.extend(t for t in r.tis if t.at(now) is not None)
                if body.get("state"):
                    tis = [t for t in tis if t.at(now)[1] in body["state"]]
                tis.sort(key=lambda t: t.idx)
                page = tis[poffset : poffset + plimit]
                return self.send(200, {"task_instances": [world.ti_json(t, now) for t in page], "total_entries": len(tis)})
            run_id = p[3]
            if len(p) == 4:
                r = world.by_key.get((dag, run_id))
                if r is None or r.at(now) is None:
                    return self.send(404, {"detail": f"The DagRun with dag_id: `{dag}` and run_id: `{run_id}` was not found"})
                return self.send(200, world.run_json(r, now))
            if p[4] == "taskInstances" and len(p) == 5:  # list TIs (also ~/~)
                gte = parse_ts(q["updated_at_gte"][0]) if "updated_at_gte" in q else None
                lte = parse_ts(q["updated_at_lte"][0]) if "updated_at_lte" in q else None
                idx = world.changed(world.ti_change_t, world.ti_changes, gte, lte, now)
                if idx is not None:
                    tis = [world.tis[i] for i in idx]
                elif dag != "~" and run_id != "~":
                    r = world.by_key.get((dag, run_id))
                    tis = list(r.tis) if r else []
                else:
                    tis = [t for t in world.tis if t.at(now) is not None]
                if lte is not None:
                    tis = [t for t in tis if t.at(now) and t.at(now)[0] <= lte]
                # One DAG's runs between two dates: how the source reads the task instances of
                # the runs a poll touched (GET, no audit row), as Airflow filters them.
                for name in ("run_after", "logical_date", "execution_date"):
                    if f"{name}_gte" in q:
                        tis = [t for t in tis if t.run.run_after >= parse_ts(q[f"{name}_gte"][0])]
                    if f"{name}_lte" in q:
                        tis = [t for t in tis if t.run.run_after <= parse_ts(q[f"{name}_lte"][0])]
                tis = [
                    t
                    for t in tis
                    if t.at(now) is not None and (dag == "~" or t.run.dag_id == dag) and (run_id == "~" or t.run.run_id == run_id)
                ]
                if "state" in q:
                    tis = [t for t in tis if t.at(now)[1] in q["state"]]
                page = tis[offset : offset + limit]
                return self.send(200, {"task_instances": [world.ti_json(t, now) for t in page], "total_entries": len(tis)})
            if p[4] == "taskInstances" and len(p) == 8 and p[6] == "logs":
                r = world.by_key.get((dag, run_id))
                ti = next((t for t in (r.tis if r else []) if t.task_id == p[5]), None)
                if ti is None:
                    return self.send(404, {"detail": "TaskInstance not found"})
                events = [
                    {"timestamp": iso(ti.tries.get(int(p[7]), (now, now))[0]), "event": f"Executing {ti.task_id}", "level": "info"}
                    for _ in range(20)
                ]
                events.append(
                    {
                        "timestamp": iso(now),
                        "event": "Task failed with exception",
                        "level": "error",
                        "error_detail": [
                            {
                                "exc_type": "ValueError",
                                "exc_value": f"bad batch in {ti.task_id}",
                                "is_cause": False,
                                "frames": [{"filename": f"/opt/airflow/dags/{dag}.py", "lineno": 42, "name": "_run"}] * 5,
                            }
                        ],
                    }
                )
                return self.send(200, {"content": events, "continuation_token": None})
            return self.send(404, {"detail": "Not Found"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dags", type=int, default=5000)
    parser.add_argument("--tis-per-day", type=float, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--version-changes-per-day", type=float, default=50, help="new DAG versions a day across the estate")
    args = parser.parse_args()
    world = World(args.dags, args.tis_per_day, args.seed, version_changes_per_day=args.version_changes_per_day)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(world))
    day_runs = sum(1 for r in world.runs if T0 <= r.run_after < T0 + DAY)
    day_tis = sum(len(r.tis) for r in world.runs if T0 <= r.run_after < T0 + DAY)
    print(
        json.dumps(
            {
                "ready": True,
                "dags": len(world.dags),
                "runs_per_day": day_runs,
                "tis_per_day": day_tis,
                "failed_runs_per_day": sum(1 for r in world.runs if T0 <= r.run_after < T0 + DAY and r.final == "failed"),
            }
        ),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
