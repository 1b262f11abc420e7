"""dagwatch's alert router next to Prometheus Alertmanager 0.25, fed the same alerts in one run.

    .venv/bin/python bench/router_vs_alertmanager.py            # full: ~5 min on 2 busy cores
    .venv/bin/python bench/router_vs_alertmanager.py --quick    # smoke: ~30-45 s
    .venv/bin/python bench/router_vs_alertmanager.py --profile  # + py-spy of dagwatch's ingest

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
                group_interval 1s), alerts pushed to POST /api/v2/alerts
Both webhooks post to one local receiver (http.server in a thread, 127.0.0.1) that records the
arrival time of each delivery and the pipelines (= groups) it names.

An alert is (kind task_failed, source bench, pipeline, run r1, task); both servers group by
source + pipeline, so the pipeline names the group. Phases, each dagwatch then Alertmanager:
  latency     N single-alert posts, each in a new group, paced GAP apart (sequential, not waiting
              for delivery); latency = arrival at the receiver - time the POST was sent
  dedup       the same alert posted 1,000 times, one per request → notifications counted
  flap        fire / resolve the same alert 10 times, SPACING apart (longer than group_interval
              plus dagwatch's 1 s dispatch tick) → notifications counted; both sides concurrently.
              dagwatch damps flapping (3 fires in 30 min hold the resolve until 10 min quiet), so
              it is expected to send ~5 where Alertmanager sends 20

  batched     N distinct alerts, B per request (100 groups of 100 alerts), alerts/s
  single      N distinct alerts, one per request, alerts/s (runs after `batched`, so with ~N
              alerts already firing: work that scales with firing alerts shows up here)
Each load phase is followed by a drain (no delivery for QUIET s) so phases do not overlap. CPU per
alert = the server process's utime+stime over the phase / alerts (background work included).
Peak RSS = VmHWM of the server process at the end (also VmRSS right after start-up).

Results: a table on stdout (ratios dagwatch / Alertmanager), JSON in bench/results/ (gitignored).
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
    batched_n=10_000,
    batch=100,
    single_n=2_000,
    group_size=100,
    quiet=3.0,
)
QUICK = dict(
    latency_n=30,
    latency_gap=0.05,
    dedup_n=200,
    flap_cycles=3,
    flap_spacing=1.3,
    batched_n=500,
    batch=100,
    single_n=100,
    group_size=100,
    quiet=2.0,
)


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
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                at = time.perf_counter()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    receiver.record(self.path, at, json.loads(raw), self.headers.get("Idempotency-Key"))
                    code = 200
                except Exception as exc:  # noqa: BLE001 - a bad payload is a finding, not a crash
                    sys.stderr.write(f"receiver: cannot read a delivery to {self.path}: {exc!r}\n")
                    code = 400
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

    def __init__(self, workdir: Path, receiver_url: str, *, group_wait: str, group_interval: str) -> None:
        super().__init__()
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "dagwatch.yaml"
        self.config.write_text(
            json.dumps(
                {  # JSON is YAML
                    "data_dir": str(workdir / "data"),
                    "server": {"host": "127.0.0.1", "port": self.port},
                    "sources": [],
                    "receivers": [{"name": "hook", "kind": "webhook", "url": receiver_url}],
                    "routes": [{"match": {}, "receivers": ["hook"]}],
                    "alerting": {"group_wait": group_wait, "group_interval": group_interval},
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
            env=_child_env(),
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
            env=_child_env(),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run with small counts")
    parser.add_argument("--profile", action="store_true", help="py-spy dagwatch during the ingest phases (slows them)")
    parser.add_argument("--alertmanager", default=shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))
    parser.add_argument("--py-spy", dest="py_spy", default=shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy")
    parser.add_argument("--batch", type=int, help="alerts per request in the batched phase (default 100; dagwatch takes ≤1000)")
    parser.add_argument("--batched-n", type=int, help="alerts in the batched phase (default 10,000; quick 1,000)")
    parser.add_argument("--single-n", type=int, help="alerts in the one-per-request phase (default 2,000; quick 200)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured at the end (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    params = dict(QUICK if args.quick else FULL)
    for name in ("batch", "batched_n", "single_n"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if not 1 <= params["batch"] <= 1000:
        parser.error("--batch must be 1..1000 (dagwatch's limit per request)")
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
    dw = Dagwatch(workdir / "dw", receiver.url("dagwatch"), group_wait="0s", group_interval="1s")
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

        def each(name: str, fn: Callable[[Server], dict[str, Any]]) -> None:
            for server in servers:
                t0 = time.perf_counter()
                results[server.side][name] = fn(server)
                print(f"  {name:<9} {server.side:<12} {time.perf_counter() - t0:6.1f}s", flush=True)

        print(
            f"{'quick' if args.quick else 'full'} run; servers up (dagwatch :{dw.port}, alertmanager :{am.port}, receiver :{receiver.port})",
            flush=True,
        )
        each("latency", lambda s: phase_latency(s, receiver, params["latency_n"], params["latency_gap"], s.side))
        receiver.wait_quiet(params["quiet"])

        each("dedup", lambda s: phase_dedup(s, receiver, params["dedup_n"], s.side))
        # flap on both sides at once (it is mostly sleeping), then count dedup + flap after a drain
        threads = [
            threading.Thread(
                target=lambda s=s: results[s.side].__setitem__("flap", phase_flap(s, params["flap_cycles"], params["flap_spacing"], s.side))
            )
            for s in servers
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=params["flap_cycles"] * params["flap_spacing"] * 2 + 120)
        print(f"  flap      both         {time.perf_counter() - t0:6.1f}s", flush=True)
        receiver.wait_quiet(params["quiet"])
        for server in servers:
            n, _, actions = receiver.count(server.side, lambda p, s=server: p == f"{s.side}-dedup")
            results[server.side]["dedup"]["notifications"] = n
            results[server.side]["dedup"]["actions"] = actions
            n, _, actions = receiver.count(server.side, lambda p, s=server: p == f"{s.side}-flap")
            results[server.side].setdefault("flap", {})["notifications"] = n
            results[server.side]["flap"]["actions"] = actions

        def throughput(name: str, n: int, batch: int) -> None:
            for server in servers:
                spy = None
                if args.profile and server is dw:
                    spy = PySpy(args.py_spy, dw.pid, args.out / f"router_vs_alertmanager-{stamp}-{name}.pyspy.txt")
                t0 = time.perf_counter()
                try:
                    results[server.side][name] = phase_throughput(
                        server, receiver, n, batch, params["group_size"], f"{server.side}-{name}", params["quiet"]
                    )
                finally:
                    if spy is not None:
                        spy.stop()
                        if spy.out.exists():
                            profile[name] = {"file": str(spy.out), **summarize_profile(spy.out)}
                print(f"  {name:<9} {server.side:<12} {time.perf_counter() - t0:6.1f}s", flush=True)

        throughput("batched", params["batched_n"], params["batch"])
        throughput("single", params["single_n"], 1)
        # idle cost with everything above still firing (both idle at once)
        receiver.wait_quiet(params["quiet"])
        before = {s.side: proc_status(s.pid)["cpu_s"] for s in servers}
        time.sleep(args.idle)
        for server in servers:
            results[server.side]["idle_cpu_pct"] = (proc_status(server.pid)["cpu_s"] - before[server.side]) / args.idle * 100
        for server in servers:
            status = proc_status(server.pid)
            results[server.side]["rss_peak_mb"] = status["VmHWM"]
            results[server.side]["rss_end_mb"] = status["VmRSS"]
            results[server.side]["cpu_total_s"] = status["cpu_s"]
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
    rows = [
        (f"ingest batched ({params['batch']}/req), alerts/s", d["batched"]["alerts_per_s"], a["batched"]["alerts_per_s"], 0),
        ("ingest one per request, alerts/s", d["single"]["alerts_per_s"], a["single"]["alerts_per_s"], 0),
        ("server CPU per alert, batched, µs", d["batched"]["cpu_us_per_alert"], a["batched"]["cpu_us_per_alert"], 0),
        ("server CPU per alert, single, µs", d["single"]["cpu_us_per_alert"], a["single"]["cpu_us_per_alert"], 0),
        ("POST→webhook latency p50, ms", d["latency"]["p50_ms"], a["latency"]["p50_ms"], 2),
        ("POST→webhook latency p99, ms", d["latency"]["p99_ms"], a["latency"]["p99_ms"], 2),
        ("latency alerts not delivered", d["latency"]["missing"], a["latency"]["missing"], 0),
        (f"idle CPU with ~{params['batched_n'] + params['single_n']:,} alerts firing, %", d["idle_cpu_pct"], a["idle_cpu_pct"], 1),
        ("RSS after start-up, MB", d["rss_idle_mb"], a["rss_idle_mb"], 1),
        ("peak RSS (VmHWM), MB", d["rss_peak_mb"], a["rss_peak_mb"], 1),
        (f"dedup: same alert ×{params['dedup_n']:,} → notifications", d["dedup"]["notifications"], a["dedup"]["notifications"], 0),
        (f"flap: fire/resolve ×{params['flap_cycles']} → notifications", d["flap"]["notifications"], a["flap"]["notifications"], 0),
        ("notifications for batched phase", d["batched"]["notifications"], a["batched"]["notifications"], 0),
        ("  alert entries in them", d["batched"]["alert_entries_sent"], a["batched"]["alert_entries_sent"], 0),
        ("  drain after last POST, s", d["batched"]["drain_s"], a["batched"]["drain_s"], 1),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'':<{width}}  {'dagwatch':>12}  {'Alertmanager':>12}  {'dw / AM':>9}")
    for label, dv, av, digits in rows:
        print(f"{label:<{width}}  {fmt(dv, digits):>12}  {fmt(av, digits):>12}  {ratio(dv, av):>9}")
    print(
        f"\nflap deliveries, action[alert statuses]:\n  dagwatch     {' '.join(d['flap']['actions'])}"
        f"\n  Alertmanager {' '.join(a['flap']['actions'])}"
    )
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

    out = args.out / f"router_vs_alertmanager-{stamp}{'-quick' if args.quick else ''}{'-profile' if args.profile else ''}.json"
    out.write_text(
        json.dumps(
            {
                "bench": "router_vs_alertmanager",
                "when": stamp,
                "mode": "quick" if args.quick else "full",
                "profiled": args.profile,
                "params": params,
                "wall_s": time.perf_counter() - run_start,
                "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                "alertmanager_version": am.version(),
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
