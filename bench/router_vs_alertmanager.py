"""dagwatch's alert router next to Prometheus Alertmanager 0.25, fed the same alerts in one run.

    .venv/bin/python bench/router_vs_alertmanager.py            # full: ~6-8 min on 2 busy cores
    .venv/bin/python bench/router_vs_alertmanager.py --quick    # smoke: ~1 min
    .venv/bin/python bench/router_vs_alertmanager.py --profile  # + py-spy of dagwatch's ingest
    .venv/bin/python bench/router_vs_alertmanager.py --phases batched,single,concurrent  # a subset
    .venv/bin/python bench/router_vs_alertmanager.py --phases fanout --sends 1  # groups sent one at a time

Needs: the project venv (`make install`) and Alertmanager (`apt-get install -y
prometheus-alertmanager`; its binary, or --alertmanager PATH). --profile needs py-spy
(`pip install py-spy` in any venv; --py-spy PATH).

Both servers are started here on 127.0.0.1, as users start them, and stopped by pid at the end,
even on failure:
  dagwatch      `dagwatch up --config FILE --port P` (sources: [], one webhook receiver, a root
                route to it, alerting.group_wait 0s, group_interval 1s, SQLite in a temp dir),
                alerts pushed to POST /api/v1/events with an operator token
  Alertmanager  `prometheus-alertmanager --cluster.listen-address= --storage.path TMP`, config
                from bench/alertmanager.yml (group_by source+pipeline, group_wait 0s,
                group_interval 1s, resolve_timeout 24h so that no alert expires mid-run: the
                bench sends no endsAt), alerts pushed to POST /api/v2/alerts
Both webhooks post to one local receiver (http.server in a thread, 127.0.0.1) that records the
arrival time of each delivery and the pipelines (= groups) it names.

An alert is (kind task_failed, source bench, pipeline, run r1, task); both servers group by
source + pipeline, so the pipeline names the group. Phases, each dagwatch then Alertmanager:
  latency     N single-alert posts, each in a new group, paced GAP apart (sequential, not waiting
              for delivery); latency = arrival at the receiver - time the POST was sent.
              dagwatch, every 10th (quick: 3rd) alert: committed before notified? On the receiver
              thread, after the arrival time is taken and before the delivery is answered, each
              alert id in it is read back with GET /api/v1/alerts/{id}; checked / found reported
  dedup       the same alert posted 1,000 times, one per request → notifications counted
  flap        fire / resolve the same alert 10 times, SPACING apart (longer than group_interval
              plus dagwatch's 1 s dispatch tick) → notifications counted; both sides concurrently.
              dagwatch damps flapping (3 fires in 30 min hold the resolve until 10 min quiet), so
              it is expected to send ~5 where Alertmanager sends 20
  fanout      N alerts in N groups at once (batches of 100), the receiver answering each delivery
              after DELAY (a SaaS round trip, 50 ms): seconds until every group has had its first
              delivery, groups/s. Where sending groups side by side shows (Alertmanager: a
              goroutine per group; dagwatch: alerting.max_concurrent_sends, 16)

  batched     N distinct alerts, B per request (100 groups of 100 alerts), alerts/s
  single      N distinct alerts, one per request, alerts/s (runs after `batched`, so with ~N
              alerts already firing: work that scales with firing alerts shows up here)
  concurrent  N distinct alerts, one per request, from C client threads at once (each its own
              keep-alive connection; default C=16, N=4,000, quick 8 and 400): alerts/s, CPU per
              alert, request p50/p99. Where dagwatch's group commit (concurrent single-event
              requests sharing one transaction) shows; the client is Python threads, so the
              Alertmanager side may be bounded by the client
  idle        5 s of idle CPU, both at once, with everything above still firing
  biggroup    one group of G alerts (full 10,000, quick 2,000; posted 1,000 a request), its first
              delivery awaited; then R rounds (10, quick 3) of one more alert in that group, each
              awaited until the receiver has the delivery that lists it (each server sends the
              group's whole state, so each delivery lists G+r alerts): server CPU per round, POST →
              delivery per round (group_interval, 1 s, is most of it). Where re-reading and
              re-rendering a storm-sized group on every change shows (dagwatch: alerting/render_memo.py)
  rss100k     last: fill each server to 100,000 firing alerts (quick 10,000; what earlier phases
              left firing counts), 1,000 per request (dagwatch's maximum), drain the notifications,
              then VmRSS and VmHWM, then the count again (dagwatch: the dagwatch_alerts_firing
              gauge on /metrics; Alertmanager: GET /api/v2/alerts, read after the RSS so its
              ~50 MB answer does not count); alerts/s and CPU per alert of that fill
--phases NAME,… runs a subset (always in the order above); --quick shrinks every count.
Each load phase is followed by a drain (no delivery for QUIET s) so phases do not overlap. CPU per
alert = the server process's utime+stime over the phase / alerts (background work included).
Peak RSS = VmHWM of the server process before rss100k (also VmRSS right after start-up); since
biggroup (December 2026) it includes that phase's group of 10,000, so it is not comparable with
runs from before it.

Results: a table on stdout (ratios dagwatch / Alertmanager), JSON in bench/results/ (gitignored),
the same ratios under "ratios", keyed phase.metric.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
VENV_BIN = ROOT / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HTTP_TIMEOUT = 60.0

FULL = dict(
    latency_n=200,
    latency_gap=0.1,
    dedup_n=1000,
    flap_cycles=10,
    flap_spacing=1.5,
    fanout_n=300,
    fanout_delay=0.05,
    batched_n=10_000,
    batch=100,
    single_n=2_000,
    concurrent_n=4_000,
    clients=16,
    big_group=10_000,
    big_rounds=10,
    rss_target=100_000,
    rss_batch=1000,
    commit_every=10,
    group_size=100,
    quiet=3.0,
)
QUICK = dict(
    latency_n=30,
    latency_gap=0.05,
    dedup_n=200,
    flap_cycles=3,
    flap_spacing=1.3,
    fanout_n=60,
    fanout_delay=0.05,
    batched_n=500,
    batch=100,
    single_n=100,
    concurrent_n=400,
    clients=8,
    big_group=2_000,
    big_rounds=3,
    rss_target=10_000,
    rss_batch=1000,
    commit_every=3,
    group_size=100,
    quiet=2.0,
)
PHASES = ("latency", "dedup", "flap", "fanout", "batched", "single", "concurrent", "idle", "biggroup", "rss100k")


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), timezone.utc).isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


# -- the receiver ----------------------------------------------------------------------------


@dataclass
class Delivery:
    side: str  # "dagwatch" | "alertmanager"
    at: float  # perf_counter at arrival
    pipelines: list[str]
    statuses: list[str]
    action: str
    idempotency_key: str | None


class Receiver:
    """Records every webhook POST: /dagwatch and /alertmanager."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.first_seen: dict[tuple[str, str], float] = {}
        self.last_at = 0.0
        self.delay = 0.0  # seconds each delivery is held before it is answered (after its arrival is recorded)
        # called with (side, delivery document) after the arrival is recorded and before the answer
        self.on_delivery: Callable[[str, dict[str, Any]], None] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                at = time.perf_counter()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(raw)
                    receiver.record(self.path, at, doc, self.headers.get("Idempotency-Key"))
                    code = 200
                except Exception as exc:  # noqa: BLE001 - a bad payload is a finding, not a crash
                    sys.stderr.write(f"receiver: cannot read a delivery to {self.path}: {exc!r}\n")
                    code = 400
                hook = receiver.on_delivery
                if code == 200 and hook is not None:
                    try:
                        hook(self.path.strip("/"), doc)
                    except Exception as exc:  # noqa: BLE001 - reported by the hook's counts
                        sys.stderr.write(f"receiver: delivery hook failed: {exc!r}\n")
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)

    def url(self, side: str) -> str:
        return f"http://127.0.0.1:{self.port}/{side}"

    def record(self, path: str, at: float, doc: dict[str, Any], idem: str | None) -> None:
        side = path.strip("/")
        alerts = doc.get("alerts") or []
        if side == "dagwatch":
            pipelines = [a.get("pipeline") or "" for a in alerts]
            statuses = [a.get("status", "") for a in alerts]
            action = doc.get("action", "")
        else:
            pipelines = [a.get("labels", {}).get("pipeline", "") for a in alerts]
            statuses = [a.get("status", "") for a in alerts]
            action = doc.get("status", "")
        with self.lock:
            self.deliveries.append(Delivery(side, at, pipelines, statuses, action, idem))
            for p in set(pipelines):
                self.first_seen.setdefault((side, p), at)
            self.last_at = at

    def count(self, side: str, match: Callable[[str], bool]) -> tuple[int, int, list[str]]:
        """Deliveries naming a matching pipeline, the alert entries in them, and each delivery
        as `action[status of each alert entry]`."""
        with self.lock:
            hits = [d for d in self.deliveries if d.side == side and any(match(p) for p in d.pipelines)]
        return len(hits), sum(len(d.pipelines) for d in hits), [f"{d.action}[{','.join(d.statuses)}]" for d in hits]

    def wait_groups(self, side: str, pipelines: list[str], limit: float) -> int:
        """Until each pipeline (group) has had a delivery on `side`, bounded by `limit`; returns how many have not."""
        deadline = time.perf_counter() + limit
        while True:
            with self.lock:
                missing = sum(1 for p in pipelines if (side, p) not in self.first_seen)
            if not missing or time.perf_counter() >= deadline:
                return missing
            time.sleep(0.1)

    def wait_quiet(self, quiet: float, limit: float = 90.0) -> float:
        """Until no delivery (of either side) for `quiet` s; bounded by `limit`. Returns waited s."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            with self.lock:
                last = self.last_at
            now = time.perf_counter()
            if now - max(last, start) >= quiet:
                break
            time.sleep(0.1)
        return time.perf_counter() - start

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the servers -----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM in MB and CPU seconds (utime + stime) of a live process."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


class Server:
    side: str
    proc: subprocess.Popen | None = None
    log_path: Path

    def __init__(self) -> None:
        self._local = threading.local()

    # one keep-alive connection per thread
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
            self._local.conn = conn
        return conn

    def connect(self) -> None:
        """Open this thread's connection now (so a timed phase does not include the TCP handshake)."""
        self._conn().connect()

    def close_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def firing(self) -> int:
        raise NotImplementedError

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise RuntimeError(f"{self.side}: {method} {path} failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, path: str, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.side} exited with {self.proc.returncode} at start-up:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.side} not ready on port {self.port} after {limit:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL after 15 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DAGWATCH_")}


class Dagwatch(Server):
    side = "dagwatch"

    def __init__(
        self,
        workdir: Path,
        receiver_url: str,
        *,
        group_wait: str,
        group_interval: str,
        receivers: list[dict[str, Any]] | None = None,
        routes: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        sends: int | None = None,
        alerting: dict[str, Any] | None = None,
    ) -> None:
        """One webhook receiver at `receiver_url` taking every alert, unless `receivers` and
        `routes` say otherwise (bench/storm.py pages a PagerDuty); `env`: added to the process's
        environment (for `${VAR}` references in the config); `sends`: alerting.max_concurrent_sends
        (dagwatch's default when None); `alerting`: more keys of the `alerting` section."""
        super().__init__()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.config = workdir / "dagwatch.yaml"
        self.config.write_text(
            json.dumps(
                {  # JSON is YAML
                    "data_dir": str(workdir / "data"),
                    "server": {"host": "127.0.0.1", "port": self.port},
                    "sources": [],
                    "receivers": receivers or [{"name": "hook", "kind": "webhook", "url": receiver_url}],
                    "routes": routes or [{"match": {}, "receivers": ["hook"]}],
                    "alerting": {
                        "group_wait": group_wait,
                        "group_interval": group_interval,
                        **({"max_concurrent_sends": sends} if sends else {}),
                        **(alerting or {}),
                    },
                },
                indent=2,
            )
        )
        self.log_path = workdir / "dagwatch.log"
        self.token = ""
        self.exe = str(VENV_BIN / "dagwatch")

    def start(self) -> None:
        made = subprocess.run(
            [self.exe, "token", "create", "--name", "bench", "--role", "operator", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=_child_env() | self.extra_env,
            cwd=self.workdir,
        )
        if made.returncode != 0:
            raise RuntimeError(f"dagwatch token create failed:\n{made.stdout}\n{made.stderr}")
        self.token = made.stdout.strip().splitlines()[-1]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.exe, "up", "--config", str(self.config), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env() | self.extra_env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        self.wait_ready("/readyz")

    def payload(self, alerts: list["BenchAlert"]) -> bytes:
        events = [a.event() for a in alerts]
        return json.dumps(events[0] if len(events) == 1 else events).encode()

    def post(self, body: bytes, expected: int) -> None:
        status, raw = self.request(
            "POST", "/api/v1/events", body, {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        )
        if status != 200:
            raise RuntimeError(f"dagwatch answered {status}: {raw[:300]!r}")
        accepted = json.loads(raw)["accepted"]
        if accepted != expected:
            raise RuntimeError(f"dagwatch accepted {accepted} of {expected}: {raw[:500]!r}")

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path, None, {"Authorization": f"Bearer {self.token}"})

    def firing(self) -> int:
        """Alerts firing now: the sum of the dagwatch_alerts_firing gauge (counted from the store at scrape)."""
        status, raw = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"dagwatch /metrics answered {status}")
        total = 0.0
        for line in raw.decode().splitlines():
            if line.startswith("dagwatch_alerts_firing{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


class Alertmanager(Server):
    side = "alertmanager"

    def __init__(self, workdir: Path, receiver_url: str, binary: str, *, group_wait: str, group_interval: str) -> None:
        super().__init__()
        self.workdir = workdir
        self.port = free_port()
        self.binary = binary
        self.config = workdir / "alertmanager.yml"
        template = string.Template((HERE / "alertmanager.yml").read_text())
        self.config.write_text(template.substitute(receiver_url=receiver_url, group_wait=group_wait, group_interval=group_interval))
        self.log_path = workdir / "alertmanager.log"

    def start(self) -> None:
        (self.workdir / "am-data").mkdir(exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        self.wait_ready("/-/ready")

    def payload(self, alerts: list["BenchAlert"]) -> bytes:
        return json.dumps([a.am_alert() for a in alerts]).encode()

    def post(self, body: bytes, expected: int) -> None:
        status, raw = self.request("POST", "/api/v2/alerts", body, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"alertmanager answered {status}: {raw[:300]!r}")

    def firing(self) -> int:
        """Alerts held and not resolved: Alertmanager's own gauge `alertmanager_alerts` (every state)
        from /metrics. Listing them (GET /api/v2/alerts) took past the client timeout at 100,000
        after the load phases, and its ~50 MB answer would inflate the RSS being measured."""
        status, raw = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"alertmanager GET /metrics answered {status}: {raw[:300]!r}")
        lines = raw.decode().splitlines()
        return round(sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("alertmanager_alerts{")))

    def version(self) -> str:
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "unknown"


# -- the alerts ------------------------------------------------------------------------------


@dataclass
class BenchAlert:
    pipeline: str
    task: str
    started: float = field(default_factory=time.time)
    resolved: bool = False

    def event(self) -> dict[str, Any]:
        return {
            "kind": "task_failed",
            "source": "bench",
            "pipeline": self.pipeline,
            "run_id": "r1",
            "task_id": self.task,
            "try_number": 1,
            "occurred_at": iso(),
            "summary": f"{self.task} failed",
            "labels": {"team": "ml"},
            "resolved": self.resolved,
        }

    def am_alert(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "labels": {
                "alertname": "task_failed",
                "source": "bench",
                "pipeline": self.pipeline,
                "run_id": "r1",
                "task_id": self.task,
                "team": "ml",
            },
            "annotations": {"summary": f"{self.task} failed"},
            "startsAt": iso(self.started),
        }
        if self.resolved:
            doc["endsAt"] = iso()
        return doc


# -- the phases ------------------------------------------------------------------------------


def phase_latency(server: Server, receiver: Receiver, n: int, gap: float, tag: str) -> dict[str, Any]:
    sent: dict[str, float] = {}
    for i in range(n):
        alert = BenchAlert(pipeline=f"{tag}-lat-{i}", task="t0")
        body = server.payload([alert])
        sent[alert.pipeline] = time.perf_counter()
        server.post(body, 1)
        time.sleep(gap)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        with receiver.lock:
            if all((server.side, p) in receiver.first_seen for p in sent):
                break
        time.sleep(0.05)
    with receiver.lock:
        lat = [(receiver.first_seen[(server.side, p)] - t0) * 1000 for p, t0 in sent.items() if (server.side, p) in receiver.first_seen]
    return {
        "n": n,
        "gap_s": gap,
        "delivered": len(lat),
        "missing": n - len(lat),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else None,
        "min_ms": min(lat) if lat else None,
    }


def phase_throughput(server: Server, receiver: Receiver, n: int, batch: int, group_size: int, tag: str, quiet: float) -> dict[str, Any]:
    alerts = [BenchAlert(pipeline=f"{tag}-g{i // group_size}", task=f"t{i}") for i in range(n)]
    bodies = [(server.payload(alerts[i : i + batch]), len(alerts[i : i + batch])) for i in range(0, n, batch)]
    before = proc_status(server.pid)
    start = time.perf_counter()
    for body, count in bodies:
        server.post(body, count)
    wall = time.perf_counter() - start
    after = proc_status(server.pid)
    waited = receiver.wait_quiet(quiet)
    drained = proc_status(server.pid)
    prefix = f"{tag}-g"
    deliveries, entries, _ = receiver.count(server.side, lambda p: p.startswith(prefix))
    groups = -(-n // group_size)
    return {
        "n": n,
        "per_request": batch,
        "requests": len(bodies),
        "groups": groups,
        "wall_s": wall,
        "alerts_per_s": n / wall,
        "cpu_us_per_alert": (after["cpu_s"] - before["cpu_s"]) / n * 1e6,
        "cpu_us_per_alert_incl_delivery": (drained["cpu_s"] - before["cpu_s"]) / n * 1e6,
        "drain_s": max(0.0, waited - quiet),
        "notifications": deliveries,
        "alert_entries_sent": entries,
    }


def phase_fanout(server: Server, receiver: Receiver, n: int, delay: float, tag: str, quiet: float) -> dict[str, Any]:
    alerts = [BenchAlert(pipeline=f"{tag}-{i}", task="t0") for i in range(n)]
    receiver.delay = delay
    try:
        start = time.perf_counter()
        for i in range(0, n, 100):
            server.post(server.payload(alerts[i : i + 100]), len(alerts[i : i + 100]))
        missing = receiver.wait_groups(server.side, [a.pipeline for a in alerts], limit=max(60.0, 2 * n * delay))
        with receiver.lock:
            seen = [receiver.first_seen[(server.side, a.pipeline)] for a in alerts if (server.side, a.pipeline) in receiver.first_seen]
        receiver.wait_quiet(quiet)
    finally:
        receiver.delay = 0.0
    took = max(seen) - start if seen else None
    return {
        "n": n,
        "receiver_delay_s": delay,
        "missing": missing,
        "all_delivered_s": took,
        "groups_per_s": len(seen) / took if took else None,
    }


def phase_biggroup(server: Server, receiver: Receiver, size: int, rounds: int, tag: str, quiet: float) -> dict[str, Any]:
    pipeline = f"{tag}-big"
    alerts = [BenchAlert(pipeline=pipeline, task=f"t{i}") for i in range(size)]
    for i in range(0, size, 1000):
        server.post(server.payload(alerts[i : i + 1000]), len(alerts[i : i + 1000]))
    receiver.wait_quiet(quiet)

    def listed() -> tuple[int, int]:
        """Deliveries naming the group so far, and the alert entries of the last one."""
        with receiver.lock:
            mine = [d for d in receiver.deliveries if d.side == server.side and pipeline in d.pipelines]
        return len(mine), len(mine[-1].pipelines) if mine else 0

    seen, entries = listed()
    before = proc_status(server.pid)
    took: list[float] = []
    missed = 0
    for r in range(rounds):
        start = time.perf_counter()
        server.post(server.payload([BenchAlert(pipeline=pipeline, task=f"more{r}")]), 1)
        deadline = start + 30
        while (count := listed())[0] <= seen or count[1] < size + r + 1:
            if time.perf_counter() >= deadline:
                missed += 1
                print(f"  biggroup {server.side}: round {r} not delivered within 30 s", file=sys.stderr, flush=True)
                break
            time.sleep(0.01)
        seen, entries = count
        took.append(time.perf_counter() - start)
    after = proc_status(server.pid)
    receiver.wait_quiet(quiet)
    return {
        "size": size,
        "rounds": rounds,
        "last_delivery_entries": entries,
        "rounds_not_delivered": missed,
        "cpu_ms_per_round": (after["cpu_s"] - before["cpu_s"]) / rounds * 1e3,
        "round_s_p50": percentile(took, 50),
        "round_s_max": max(took),
    }


class CommitCheck:
    """On the receiver thread, for a sample of dagwatch deliveries: each alert id in the delivery must
    already be readable from GET /api/v1/alerts/{id}. Runs after the arrival is recorded (latency is
    untouched) and before the receiver answers, so dagwatch's notifier is still waiting on this
    delivery while the alert is looked up: an alert committed only after its notification was
    answered would be a 404 here."""

    def __init__(self, dw: Dagwatch, sampled: Callable[[str], bool]) -> None:
        self.dw = dw
        self.sampled = sampled
        self.lock = threading.Lock()
        self.seen: set[Any] = set()
        self.checked = 0
        self.found = 0
        self.not_found: list[str] = []
        self.get_ms: list[float] = []

    def __call__(self, side: str, doc: dict[str, Any]) -> None:
        if side != "dagwatch":
            return
        for alert in doc.get("alerts") or []:
            alert_id = alert.get("id")
            if not self.sampled(alert.get("pipeline") or ""):
                continue
            with self.lock:
                if alert_id in self.seen:
                    continue
                self.seen.add(alert_id)
            t0 = time.perf_counter()
            status, raw = self.dw.get(f"/api/v1/alerts/{alert_id}") if alert_id is not None else (0, b"no id in the delivery")
            took = (time.perf_counter() - t0) * 1000
            ok = status == 200 and json.loads(raw).get("id") == alert_id
            with self.lock:
                self.checked += 1
                self.found += ok
                self.get_ms.append(took)
                if not ok:
                    self.not_found.append(f"{alert.get('pipeline')} #{alert_id}: {status} {raw[:120]!r}")

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "checked": self.checked,
                "committed": self.found,
                "not_committed": self.not_found[:20],
                "get_p50_ms": percentile(self.get_ms, 50),
                "get_max_ms": max(self.get_ms) if self.get_ms else None,
            }


def phase_concurrent(server: Server, receiver: Receiver, n: int, clients: int, group_size: int, tag: str, quiet: float) -> dict[str, Any]:
    """N distinct alerts, one per request, from `clients` threads at once, each on its own keep-alive
    connection; thread k posts alerts k, k+C, k+2C… so the requests in flight fall in one group."""
    alerts = [BenchAlert(pipeline=f"{tag}-g{i // group_size}", task=f"t{i}") for i in range(n)]
    bodies = [server.payload([a]) for a in alerts]
    barrier = threading.Barrier(clients + 1)
    errors: list[str] = []
    request_ms: list[list[float]] = [[] for _ in range(clients)]

    def client(k: int) -> None:
        mine = request_ms[k]
        try:
            server.connect()
            barrier.wait(timeout=60)
            for body in bodies[k::clients]:
                t0 = time.perf_counter()
                server.post(body, 1)
                mine.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # noqa: BLE001 - reported after the join
            errors.append(repr(exc))
            if not barrier.broken:
                barrier.abort()
        finally:
            server.close_conn()

    threads = [threading.Thread(target=client, args=(k,), name=f"client-{k}", daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    before = proc_status(server.pid)
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass  # a client failed before the start: its error is raised below
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = proc_status(server.pid)
    if errors:
        raise RuntimeError(f"{server.side}: {len(errors)} of {clients} clients failed, first: {errors[0]}")
    waited = receiver.wait_quiet(quiet)
    drained = proc_status(server.pid)
    deliveries, entries, _ = receiver.count(server.side, lambda p: p.startswith(f"{tag}-g"))
    every = [ms for per in request_ms for ms in per]
    return {
        "n": n,
        "clients": clients,
        "groups": -(-n // group_size),
        "wall_s": wall,
        "alerts_per_s": n / wall,
        "cpu_us_per_alert": (after["cpu_s"] - before["cpu_s"]) / n * 1e6,
        "cpu_us_per_alert_incl_delivery": (drained["cpu_s"] - before["cpu_s"]) / n * 1e6,
        "request_p50_ms": percentile(every, 50),
        "request_p99_ms": percentile(every, 99),
        "drain_s": max(0.0, waited - quiet),
        "notifications": deliveries,
        "alert_entries_sent": entries,
    }


def phase_rss(server: Server, receiver: Receiver, target: int, batch: int, group_size: int, tag: str, quiet: float) -> dict[str, Any]:
    """Fill the server up to `target` firing alerts (what earlier phases left firing counts), pushed
    `batch` per request; drain the notifications; then VmRSS / VmHWM, then the count again."""
    firing_before = server.firing()
    n = max(0, target - firing_before)
    alerts = [BenchAlert(pipeline=f"{tag}-g{i // group_size}", task=f"t{i}") for i in range(n)]
    bodies = [(server.payload(alerts[i : i + batch]), len(alerts[i : i + batch])) for i in range(0, n, batch)]
    del alerts
    before = proc_status(server.pid)
    start = time.perf_counter()
    for body, count in bodies:
        server.post(body, count)
    wall = time.perf_counter() - start
    after = proc_status(server.pid)
    del bodies
    groups = [f"{tag}-g{g}" for g in range(-(-n // group_size))]
    t0 = time.perf_counter()
    undelivered = receiver.wait_groups(server.side, groups, limit=900)
    receiver.wait_quiet(quiet, limit=600)
    drain = max(0.0, time.perf_counter() - t0 - quiet)
    status = proc_status(server.pid)  # before the count: listing 100,000 alerts costs memory too
    firing_after = server.firing()
    deliveries, entries, _ = receiver.count(server.side, lambda p: p.startswith(f"{tag}-g"))
    return {
        "target": target,
        "firing_before": firing_before,
        "pushed": n,
        "per_request": batch,
        "wall_s": wall,
        "alerts_per_s": n / wall if wall > 0 and n else None,
        "cpu_us_per_alert": (after["cpu_s"] - before["cpu_s"]) / n * 1e6 if n else None,
        "drain_s": drain,
        "groups": len(groups),
        "groups_undelivered": undelivered,
        "notifications": deliveries,
        "alert_entries_sent": entries,
        "rss_mb": status["VmRSS"],
        "hwm_mb": status["VmHWM"],
        "firing_after": firing_after,
    }


def phase_dedup(server: Server, receiver: Receiver, n: int, tag: str) -> dict[str, Any]:
    alert = BenchAlert(pipeline=f"{tag}-dedup", task="t0")
    start = time.perf_counter()
    for _ in range(n):
        server.post(server.payload([alert]), 1)
    return {"posts": n, "wall_s": time.perf_counter() - start}


def phase_flap(server: Server, cycles: int, spacing: float, tag: str) -> dict[str, Any]:
    for _ in range(cycles):
        alert = BenchAlert(pipeline=f"{tag}-flap", task="t0")
        server.post(server.payload([alert]), 1)
        time.sleep(spacing)
        alert.resolved = True
        server.post(server.payload([alert]), 1)
        time.sleep(spacing)
    return {"cycles": cycles, "spacing_s": spacing, "transitions": 2 * cycles}


# -- profiling ---------------------------------------------------------------------------------


class PySpy:
    """py-spy record on a pid, raw (collapsed) stacks; stopped with SIGINT by its pid."""

    def __init__(self, exe: str, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(1.0)  # attached

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _frame_name(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(str(ROOT) + "/", "")
    return f"{path}:{name}"


def summarize_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares from collapsed stacks, for the threads doing ingest."""
    total = 0
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            incl_counts[name] += count
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self_top": [(name, pct(c)) for name, c in self_counts.most_common(top)],
        "inclusive_top": [
            (name, pct(c))
            for name, c in incl_counts.most_common(top * 3)
            if name.startswith(("monitor/", "sqlalchemy/", "pydantic", "fastapi/", "starlette/", "sqlite3", "json"))
        ][:top],
    }


# -- the run ---------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(a: Any, b: Any) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "-"
    return f"{a / b:.2f}×" if a / b < 100 else f"{a / b:,.0f}×"


def pick(doc: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 min smoke run with small counts")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset to run, in this order whatever the order given (default all: {','.join(PHASES)})",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy dagwatch during the ingest phases (slows them)")
    parser.add_argument("--alertmanager", default=shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))
    parser.add_argument("--py-spy", dest="py_spy", default=shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy")
    parser.add_argument("--batch", type=int, help="alerts per request in the batched phase (default 100; dagwatch takes ≤1000)")
    parser.add_argument("--batched-n", type=int, help="alerts in the batched phase (default 10,000; quick 500)")
    parser.add_argument("--single-n", type=int, help="alerts in the one-per-request phase (default 2,000; quick 100)")
    parser.add_argument("--concurrent-n", type=int, help="alerts in the concurrent phase (default 4,000; quick 400)")
    parser.add_argument("--clients", type=int, help="client threads in the concurrent phase (default 16; quick 8)")
    parser.add_argument("--rss-target", type=int, help="firing alerts each server holds for rss100k (default 100,000; quick 10,000)")
    parser.add_argument("--sends", type=int, help="dagwatch's alerting.max_concurrent_sends (default: dagwatch's own, 16)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured at the end (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    params = dict(QUICK if args.quick else FULL)
    for name in ("batch", "batched_n", "single_n", "concurrent_n", "clients", "rss_target"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if not 1 <= params["batch"] <= 1000:
        parser.error("--batch must be 1..1000 (dagwatch's limit per request)")
    wanted = {p.strip() for p in args.phases.split(",") if p.strip()}
    if unknown := wanted - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {','.join(PHASES)}")
    if not wanted:
        parser.error("--phases: name at least one phase")
    phases = [p for p in PHASES if p in wanted]
    if not args.alertmanager or not Path(args.alertmanager).exists():
        print("Alertmanager not found: apt-get install -y prometheus-alertmanager (or --alertmanager PATH)", file=sys.stderr)
        return 2
    if not (VENV_BIN / "dagwatch").exists():
        print("dagwatch not installed in .venv: run `make install`", file=sys.stderr)
        return 2
    if args.profile and not Path(args.py_spy).exists():
        print("py-spy not found: `pip install py-spy` in any venv, or --py-spy PATH", file=sys.stderr)
        return 2

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    run_start = time.perf_counter()
    load_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="dagwatch-vs-am-"))
    receiver = Receiver()
    receiver.start()
    (workdir / "dw").mkdir()
    (workdir / "am").mkdir()
    dw = Dagwatch(workdir / "dw", receiver.url("dagwatch"), group_wait="0s", group_interval="1s", sends=args.sends)
    am = Alertmanager(workdir / "am", receiver.url("alertmanager"), args.alertmanager, group_wait="0s", group_interval="1s")
    servers: list[Server] = [dw, am]
    results: dict[str, Any] = {"dagwatch": {}, "alertmanager": {}}
    profile: dict[str, Any] = {}
    ok = False
    try:
        for server in servers:
            t0 = time.perf_counter()
            server.start()
            results[server.side]["startup_s"] = time.perf_counter() - t0
        time.sleep(1.0)
        for server in servers:
            results[server.side]["rss_idle_mb"] = proc_status(server.pid)["VmRSS"]

        def each(name: str, fn: Callable[[Server], dict[str, Any]], profiled: bool = False) -> None:
            for server in servers:
                spy = None
                if profiled and args.profile and server is dw:
                    spy = PySpy(args.py_spy, dw.pid, args.out / f"router_vs_alertmanager-{stamp}-{name}.pyspy.txt")
                t0 = time.perf_counter()
                try:
                    results[server.side][name] = fn(server)
                finally:
                    if spy is not None:
                        spy.stop()
                        if spy.out.exists():
                            profile[name] = {"file": str(spy.out), **summarize_profile(spy.out)}
                print(f"  {name:<10} {server.side:<12} {time.perf_counter() - t0:6.1f}s", flush=True)

        print(
            f"{'quick' if args.quick else 'full'} run of {','.join(phases)}; servers up "
            f"(dagwatch :{dw.port}, alertmanager :{am.port}, receiver :{receiver.port})",
            flush=True,
        )
        if "latency" in phases:
            every = params["commit_every"]

            def sampled(pipeline: str) -> bool:
                head, _, index = pipeline.rpartition("-")
                return head == "dagwatch-lat" and index.isdigit() and int(index) % every == 0

            check = CommitCheck(dw, sampled)
            receiver.on_delivery = check
            try:
                each("latency", lambda s: phase_latency(s, receiver, params["latency_n"], params["latency_gap"], s.side))
                receiver.wait_quiet(params["quiet"])
            finally:
                receiver.on_delivery = None
            results["dagwatch"]["latency"]["commit_check"] = {"every": every, **check.report()}

        if "dedup" in phases:
            each("dedup", lambda s: phase_dedup(s, receiver, params["dedup_n"], s.side))
        if "flap" in phases:
            # flap on both sides at once (it is mostly sleeping), then count dedup + flap after a drain
            threads = [
                threading.Thread(
                    target=lambda s=s: results[s.side].__setitem__(
                        "flap", phase_flap(s, params["flap_cycles"], params["flap_spacing"], s.side)
                    )
                )
                for s in servers
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=params["flap_cycles"] * params["flap_spacing"] * 2 + 120)
            print(f"  flap       both         {time.perf_counter() - t0:6.1f}s", flush=True)
        if "dedup" in phases or "flap" in phases:
            receiver.wait_quiet(params["quiet"])
            for server in servers:
                for name in ("dedup", "flap"):
                    if name in phases:
                        n, _, actions = receiver.count(server.side, lambda p, s=server, name=name: p == f"{s.side}-{name}")
                        results[server.side].setdefault(name, {}).update(notifications=n, actions=actions)

        if "fanout" in phases:
            each(
                "fanout",
                lambda s: phase_fanout(s, receiver, params["fanout_n"], params["fanout_delay"], f"{s.side}-fanout", params["quiet"]),
            )
        if "batched" in phases:
            each(
                "batched",
                lambda s: phase_throughput(
                    s, receiver, params["batched_n"], params["batch"], params["group_size"], f"{s.side}-batched", params["quiet"]
                ),
                profiled=True,
            )
        if "single" in phases:
            each(
                "single",
                lambda s: phase_throughput(s, receiver, params["single_n"], 1, params["group_size"], f"{s.side}-single", params["quiet"]),
                profiled=True,
            )
        if "concurrent" in phases:
            each(
                "concurrent",
                lambda s: phase_concurrent(
                    s, receiver, params["concurrent_n"], params["clients"], params["group_size"], f"{s.side}-concurrent", params["quiet"]
                ),
                profiled=True,
            )
        if "idle" in phases:
            # idle cost with everything above still firing (both idle at once)
            receiver.wait_quiet(params["quiet"])
            before = {s.side: proc_status(s.pid)["cpu_s"] for s in servers}
            time.sleep(args.idle)
            for server in servers:
                results[server.side]["idle_cpu_pct"] = (proc_status(server.pid)["cpu_s"] - before[server.side]) / args.idle * 100
        if "biggroup" in phases:
            each("biggroup", lambda s: phase_biggroup(s, receiver, params["big_group"], params["big_rounds"], s.side, params["quiet"]))
        for server in servers:
            # before rss100k, so these stay comparable with runs without it
            status = proc_status(server.pid)
            results[server.side]["rss_peak_mb"] = status["VmHWM"]
            results[server.side]["rss_end_mb"] = status["VmRSS"]
        if "rss100k" in phases:
            receiver.wait_quiet(params["quiet"])
            each(
                "rss100k",
                lambda s: phase_rss(
                    s, receiver, params["rss_target"], params["rss_batch"], params["group_size"], f"{s.side}-rss", params["quiet"]
                ),
            )
        for server in servers:
            results[server.side]["cpu_total_s"] = proc_status(server.pid)["cpu_s"]
        db = dw.workdir / "data" / "dagwatch.db"
        results["dagwatch"]["db_mb"] = sum(p.stat().st_size for p in db.parent.glob("dagwatch.db*")) / 2**20 if db.exists() else None
        ok = True
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others all the same
                print(f"stopping {server.side} failed: {exc!r}", file=sys.stderr)
        receiver.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"failed; logs kept in {workdir}", file=sys.stderr)
            for server in servers:
                print(f"--- {server.side} log tail ---\n{server.log_tail()}", file=sys.stderr)

    d, a = results["dagwatch"], results["alertmanager"]
    firing_hint = sum(
        params[k] for k, phase in (("batched_n", "batched"), ("single_n", "single"), ("concurrent_n", "concurrent")) if phase in phases
    )
    rss_n = f"{params['rss_target']:,}"
    # (key in the JSON's ratios, label, path in each side's results, digits); rows of phases not run are left out
    spec: list[tuple[str, str, tuple[str, ...], int]] = [
        ("batched.alerts_per_s", f"ingest batched ({params['batch']}/req), alerts/s", ("batched", "alerts_per_s"), 0),
        ("single.alerts_per_s", "ingest one per request, alerts/s", ("single", "alerts_per_s"), 0),
        (
            "concurrent.alerts_per_s",
            f"ingest one per request, {params['clients']} clients at once, alerts/s",
            ("concurrent", "alerts_per_s"),
            0,
        ),
        ("batched.cpu_us_per_alert", "server CPU per alert, batched, µs", ("batched", "cpu_us_per_alert"), 0),
        ("single.cpu_us_per_alert", "server CPU per alert, single, µs", ("single", "cpu_us_per_alert"), 0),
        ("concurrent.cpu_us_per_alert", "server CPU per alert, concurrent, µs", ("concurrent", "cpu_us_per_alert"), 0),
        ("concurrent.request_p50_ms", "  concurrent request p50, ms", ("concurrent", "request_p50_ms"), 2),
        ("concurrent.request_p99_ms", "  concurrent request p99, ms", ("concurrent", "request_p99_ms"), 2),
        ("latency.p50_ms", "POST→webhook latency p50, ms", ("latency", "p50_ms"), 2),
        ("latency.p99_ms", "POST→webhook latency p99, ms", ("latency", "p99_ms"), 2),
        ("latency.missing", "latency alerts not delivered", ("latency", "missing"), 0),
        (
            "fanout.all_delivered_s",
            f"fan-out: {params['fanout_n']} groups, receiver {params['fanout_delay'] * 1000:.0f} ms each → all delivered, s",
            ("fanout", "all_delivered_s"),
            2,
        ),
        ("fanout.groups_per_s", "  groups delivered per s", ("fanout", "groups_per_s"), 0),
        ("fanout.missing", "  groups not delivered", ("fanout", "missing"), 0),
        ("latency.commit_check.checked", "  latency alerts checked on delivery", ("latency", "commit_check", "checked"), 0),
        ("latency.commit_check.committed", "  … readable (committed) on delivery", ("latency", "commit_check", "committed"), 0),
        ("idle_cpu_pct", f"idle CPU with ~{firing_hint:,} alerts firing, %", ("idle_cpu_pct",), 1),
        (
            "biggroup.cpu_ms_per_round",
            f"big group: one more alert in a group of {params['big_group']:,}, server CPU ms",
            ("biggroup", "cpu_ms_per_round"),
            1,
        ),
        ("biggroup.round_s_p50", "  POST → its delivery, p50, s (group_interval 1 s)", ("biggroup", "round_s_p50"), 2),
        ("biggroup.last_delivery_entries", "  alert entries in the last delivery", ("biggroup", "last_delivery_entries"), 0),
        ("biggroup.rounds_not_delivered", "  rounds not delivered within 30 s", ("biggroup", "rounds_not_delivered"), 0),
        ("rss_idle_mb", "RSS after start-up, MB", ("rss_idle_mb",), 1),
        ("rss_peak_mb", "peak RSS (VmHWM) before rss100k, MB", ("rss_peak_mb",), 1),
        ("rss100k.alerts_per_s", f"rss100k: fill to {rss_n} firing ({params['rss_batch']}/req), alerts/s", ("rss100k", "alerts_per_s"), 0),
        ("rss100k.cpu_us_per_alert", "  server CPU per alert, µs", ("rss100k", "cpu_us_per_alert"), 0),
        ("rss100k.drain_s", "  drain after last POST, s", ("rss100k", "drain_s"), 1),
        ("rss100k.firing_after", "  firing when RSS read (counted after)", ("rss100k", "firing_after"), 0),
        ("rss100k.rss_mb", f"  VmRSS with {rss_n} firing, MB", ("rss100k", "rss_mb"), 1),
        ("rss100k.hwm_mb", "  VmHWM at that point, MB", ("rss100k", "hwm_mb"), 1),
        ("dedup.notifications", f"dedup: same alert ×{params['dedup_n']:,} → notifications", ("dedup", "notifications"), 0),
        ("flap.notifications", f"flap: fire/resolve ×{params['flap_cycles']} → notifications", ("flap", "notifications"), 0),
        ("batched.notifications", "notifications for batched phase", ("batched", "notifications"), 0),
        ("batched.alert_entries_sent", "  alert entries in them", ("batched", "alert_entries_sent"), 0),
        ("batched.drain_s", "  drain after last POST, s", ("batched", "drain_s"), 1),
    ]
    rows = []
    ratios: dict[str, float | None] = {}
    for key, label, path, digits in spec:
        dv, av = pick(d, *path), pick(a, *path)
        if dv is None and av is None:
            continue
        rows.append((label, dv, av, digits))
        numeric = isinstance(dv, (int, float)) and isinstance(av, (int, float)) and av != 0
        ratios[key] = dv / av if numeric else None
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'':<{width}}  {'dagwatch':>12}  {'Alertmanager':>12}  {'dw / AM':>9}")
    for label, dv, av, digits in rows:
        print(f"{label:<{width}}  {fmt(dv, digits):>12}  {fmt(av, digits):>12}  {ratio(dv, av):>9}")
    if "flap" in phases:
        print(
            f"\nflap deliveries, action[alert statuses]:\n  dagwatch     {' '.join(d['flap']['actions'])}"
            f"\n  Alertmanager {' '.join(a['flap']['actions'])}"
        )
    if missed := pick(d, "latency", "commit_check", "not_committed"):
        print("\ndagwatch alerts NOT readable when their notification arrived:\n  " + "\n  ".join(missed))
    if d.get("db_mb") is not None:
        print(f"dagwatch SQLite files at the end: {d['db_mb']:.1f} MB")
    if profile:
        for name, prof in profile.items():
            print(f"\npy-spy, dagwatch during '{name}' ({prof['samples']} samples, all threads, idle excluded) — inclusive %:")
            for fn, share in prof["inclusive_top"]:
                print(f"  {share:5.1f}%  {fn}")
            print("  self % (top 12):")
            for fn, share in prof["self_top"][:12]:
                print(f"  {share:5.1f}%  {fn}")

    subset = "" if phases == list(PHASES) else "-" + "+".join(phases)
    out = args.out / f"router_vs_alertmanager-{stamp}{'-quick' if args.quick else ''}{subset}{'-profile' if args.profile else ''}.json"
    out.write_text(
        json.dumps(
            {
                "bench": "router_vs_alertmanager",
                "when": stamp,
                "mode": "quick" if args.quick else "full",
                "phases": phases,
                "profiled": args.profile,
                "params": params,
                "wall_s": time.perf_counter() - run_start,
                "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                "alertmanager_version": am.version(),
                "ratios": ratios,
                "results": results,
                "profile": profile,
            },
            indent=2,
            default=str,
        )
    )
    print(
        f"\nload average (1 min) at start {load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(other work on the machine slows wall-clock numbers of both; CPU per alert is steadier)"
    )
    print(f"\nJSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}  (wall {time.perf_counter() - run_start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
