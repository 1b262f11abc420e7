"""Real Airflow servers for the integration tests: Airflow 3.3 (API v2) and 2.11 (API v1).

Started once per session, on demand, each in its own temp AIRFLOW_HOME with a copy of
examples/airflow_dags (tests add broken DAG files to the copy, never to the repo), and stopped by
pid at the end. Set DAGWATCH_SKIP_AIRFLOW=1 to skip them (e.g. no network to install Airflow).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from monitor.alerting import ingest
from monitor.config import AirflowSourceSettings
from monitor.sources.airflow import AirflowSource
from monitor.tracking.collector import Collector
from tests.servers.airflow.server import ADMIN, AirflowServer

ROOT = Path(__file__).resolve().parents[3]
POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


class EventSink:
    """A local stand-in for dagwatch's POST /api/v1/events: records what the plugin sends (a list
    per POST since the listener batches; each event and each POST's headers) and answers like it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.headers: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                events = body if isinstance(body, list) else [body]
                sink.events.extend(events)
                sink.headers.append(dict(self.headers))
                items = [{"index": i, "status": "accepted"} for i in range(len(events))]
                answer = json.dumps({"accepted": len(events), "rejected": 0, "items": items}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Servers:
    def __init__(self) -> None:
        self.started: dict[int, AirflowServer] = {}
        self.sink = EventSink()
        self.dags = Path(tempfile.mkdtemp(prefix="dagwatch-airflow-dags-"))
        for file in (ROOT / "examples" / "airflow_dags").glob("*.py"):
            shutil.copy(file, self.dags / file.name)

    def get(self, major: int) -> AirflowServer:
        if major not in self.started:
            plugins = ROOT / "examples" / "airflow_plugin" if major == 3 else None
            env = {"DAGWATCH_URL": self.sink.url, "DAGWATCH_TOKEN": "test-token", "DAGWATCH_SOURCE": "airflow3-push"}
            server = AirflowServer(major, self.dags, plugins_folder=plugins, extra_env=env if major == 3 else {})
            self.started[major] = server
            server.took = server.start()
            print(f"\nairflow {major} healthy after {server.took:.1f}s at {server.url}")
        return self.started[major]

    def close(self) -> None:
        for server in self.started.values():
            server.stop()
        self.sink.close()
        shutil.rmtree(self.dags, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_servers():
    if os.environ.get("DAGWATCH_SKIP_AIRFLOW"):
        pytest.skip("DAGWATCH_SKIP_AIRFLOW is set")
    servers = Servers()
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def airflow3(airflow_servers) -> AirflowServer:
    return airflow_servers.get(3)


@pytest.fixture(scope="session")
def airflow2(airflow_servers) -> AirflowServer:
    return airflow_servers.get(2)


@pytest.fixture(scope="session", params=[3, 2], ids=["airflow3-api-v2", "airflow2-api-v1"])
def airflow(request, airflow_servers) -> AirflowServer:
    return airflow_servers.get(request.param)


def source_for(
    server: AirflowServer,
    include: list[str] | None = None,
    *,
    url: str | None = None,
    timeout: float = 10,
    health: dict | None = None,
    **auth,
) -> AirflowSource:
    """dagwatch's source for this server (or for `url`, a proxy in front of it), admin unless told;
    `health` is the source's `health:` settings (when polls make it down)."""
    settings = AirflowSourceSettings(
        kind="airflow",
        name=f"airflow{server.major}",
        url=url or server.url,
        auth=auth or {"username": ADMIN[0], "password": ADMIN[1]},
        include=include or [],
        definitions_interval=0,
        timeout=timedelta(seconds=timeout),
        **({"health": health} if health else {}),
    )
    return AirflowSource(settings)


def audit_rows(server: AirflowServer, owner: str) -> int:
    """Rows of Airflow's event log (the audit table) written on behalf of `owner`, counted in its
    metadata DB opened read-only: `GET /eventLogs` hides rows whose dag_id is `~`."""
    with sqlite3.connect(f"file:{server.home / 'airflow.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM log WHERE owner = ?", (owner,)).fetchone()[0]


def collector_for(server: AirflowServer, store, include: list[str]) -> Collector:
    return Collector(source_for(server, include), store, POLICY)


class Api:
    """Drives Airflow the way a user would (trigger, wait), as admin, outside the source under test."""

    def __init__(self, server: AirflowServer) -> None:
        self.server = server
        self.prefix = "/api/v2" if server.major == 3 else "/api/v1"
        self.http = httpx.Client(base_url=server.url, timeout=30)
        if server.major == 3:
            token = self.http.post("/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
            self.http.headers["Authorization"] = f"Bearer {token}"
        else:
            self.http.auth = ADMIN

    def trigger(self, dag_id: str, run_id: str | None = None, conf: dict | None = None) -> str:
        """A manual run (its id `run_id` when given, Airflow's otherwise) with this conf."""
        body: dict = {"logical_date": None} if self.server.major == 3 else {}
        if run_id:
            body["dag_run_id"] = run_id
        if conf:
            body["conf"] = conf
        response = self.http.post(f"{self.prefix}/dags/{dag_id}/dagRuns", json=body)
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        response = self.http.patch(f"{self.prefix}/dags/{dag_id}", json={"is_paused": paused})
        response.raise_for_status()
        assert response.json()["is_paused"] is paused

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.http.get(f"{self.prefix}/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}").json()

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.http.get(f"{self.prefix}/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}").json()

    def wait_run(self, dag_id: str, run_id: str, states=("success", "failed"), timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            try:
                run = self.run(dag_id, run_id)
            except httpx.TransportError:  # a busy 2-core machine: ask again
                continue
            if run.get("state") in states:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} {run_id} not in {states} after {timeout}s: {run}")

    def wait_task(self, dag_id: str, run_id: str, task_id: str, states, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        ti: dict = {}
        while time.monotonic() < deadline:
            try:
                ti = self.task(dag_id, run_id, task_id)
            except httpx.TransportError:
                continue
            if ti.get("state") in states:
                return ti
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} {run_id} {task_id} not in {states} after {timeout}s: {ti}")


@pytest.fixture(scope="session")
def api_cache():
    return {}


@pytest.fixture
def api(airflow, api_cache) -> Api:
    if airflow.major not in api_cache:
        api_cache[airflow.major] = Api(airflow)
    return api_cache[airflow.major]


@pytest.fixture
def api3(airflow3, api_cache) -> Api:
    if 3 not in api_cache:
        api_cache[3] = Api(airflow3)
    return api_cache[3]
