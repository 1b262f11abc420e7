"""A real Prefect 3.9.1 server for the whole session (installed into tests/servers/.cache on
first use), and a harness that drives the real Collector over a real store with PrefectSource."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from monitor.alerting import ingest
from monitor.config import PrefectSourceSettings
from monitor.model import Alert
from monitor.sources.prefect import PrefectSource
from monitor.store import alerts as alert_store
from monitor.store.db import Store
from monitor.tracking.collector import Collector
from tests.integration.prefect.driver import PrefectDriver
from tests.servers.prefect.server import PrefectServer, install

POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url="http://127.0.0.1:8000")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> PrefectServer:
    seconds = install()
    print(f"\nprefect venv ready in {seconds:.1f}s")
    server = PrefectServer(
        tmp_path_factory.mktemp("prefect-home"),
        extra_env={
            # A missed schedule shows up in seconds instead of minutes.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "2",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "3",
        },
    )
    print(f"prefect server healthy in {server.start():.1f}s at {server.api_url}")
    yield server
    server.stop()


class Watch:
    """PrefectSource + Collector + store, polled like `dagwatch up` polls (1 s interval).

    `baseline()` polls once and remembers every run already on the (shared) server, so a test
    looks only at alerts about runs it caused."""

    def __init__(
        self, server: PrefectServer, store: Store, include: list[str], name: str = "prefect", policy: ingest.AlertPolicy = POLICY
    ) -> None:
        self.settings = PrefectSourceSettings(
            kind="prefect", name=name, url=server.api_url, include=include, poll_interval=timedelta(seconds=1)
        )
        self.source = PrefectSource(self.settings)
        self.collector = Collector(self.source, store, policy)
        self.store = store
        self.old_runs: set[str] = set()

    def baseline(self) -> None:
        self.collector.poll_once()
        with self.store.session() as s:
            self.old_runs = {a.run_id for a in alert_store.list_alerts(s, limit=10_000) if a.run_id}
        from monitor.store import runs

        with self.store.session() as s:
            self.old_runs |= {r.run_id for r in runs.recent(s, source=self.settings.name, limit=10_000)}

    def alerts(self) -> list[Alert]:
        with self.store.session() as s:
            return [a for a in alert_store.list_alerts(s, limit=10_000) if a.run_id not in self.old_runs]

    def poll_until(self, done: Callable[[list[Alert]], bool], timeout: float = 60) -> list[Alert]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.collector.poll_once()
            assert result.ok, "poll failed"
            alerts = self.alerts()
            if done(alerts):
                return alerts
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met in {timeout}s; alerts: {[(a.kind, a.pipeline, a.task_id, a.status) for a in alerts]}"
                )
            time.sleep(1)


@pytest.fixture
def watch(prefect_server: PrefectServer, store: Store) -> Callable[..., Watch]:
    made: list[Watch] = []

    def make(include: list[str], name: str = "prefect", policy: ingest.AlertPolicy = POLICY) -> Watch:
        w = Watch(prefect_server, store, include, name, policy)
        made.append(w)
        return w

    yield make
    for w in made:
        w.source.close()


@pytest.fixture
def driver(prefect_server: PrefectServer) -> PrefectDriver:
    """Puts runs and deployments into the states a test needs, through the real server's API."""
    made = PrefectDriver(prefect_server.api_url)
    yield made
    made.close()


def deployment_id(api: str, flow: str, name: str, timeout: float = 60) -> str:
    """The id of deployment `flow/name`, once a `serve` process has registered it (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.post(
            f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}, "flows": {"name": {"any_": [flow]}}}
        ).json()
        if found:
            return found[0]["id"]
        time.sleep(0.5)
    raise TimeoutError(f"deployment {flow}/{name} not registered")


def start_run(api: str, deployment_id: str, parameters: dict | None = None) -> str:
    """A new run of a deployment (with `parameters`), as a user starts one. Bounded retries: right
    after `serve` registers, the server can answer an error while the deployment is still being
    written (seen once under load on 2 cores)."""
    for _ in range(10):
        response = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters or {}}, timeout=30)
        if response.status_code == 201:
            return response.json()["id"]
        last = f"HTTP {response.status_code}: {response.text[:300]}"
        time.sleep(1)
    raise AssertionError(f"create_flow_run kept failing: {last}")
