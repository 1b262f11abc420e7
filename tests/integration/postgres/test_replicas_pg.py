"""Two real `dagwatch up` replicas on one real PostgreSQL: they split the sources (one poller
per source, shown by GET /api/v1/cluster and by each process's own poll counters), each fire
time of a schedule runs once with a unique run number; one replica killed with SIGKILL in the
middle of a burst → the survivor takes its source over after the lease expired and every alert
reaches the webhook receiver once. And with SQLite, a second `dagwatch up` on one file is
refused while short CLI commands (token create, token revoke) keep working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.httpserver import RecordingServer
from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

TTL = 3  # seconds: cluster.lease_ttl, short so the takeover happens within the test
CONFIG = """
data_dir: {data_dir}
store: {{url: "{store}"}}
cluster: {{lease_ttl: {ttl}s}}
alerting: {{group_by: [source, pipeline, task], group_wait: 0s, group_interval: 1s, max_concurrent_sends: {sends}}}
sources:
  - name: first
    kind: embedded
    poll_interval: 0.3s
    pipelines:
      - {{ref: "tests.integration.postgres.replica_pipeline:first", schedule: {{every: 1s}}}}
  - name: second
    kind: embedded
    poll_interval: 0.3s
    pipelines:
      - {{ref: "tests.integration.postgres.replica_pipeline:second", schedule: {{every: 1s}}}}
receivers:
  - {{name: hook, kind: webhook, url: "{hook}/hook"}}
routes:
  - {{match: {{}}, receivers: [hook]}}
"""
BURST = 40
SENDS = 4  # alerting.max_concurrent_sends: at most this many are in flight when a replica is killed


def polls(url: str) -> dict[str, float]:
    """This process's successful polls per source, from its own /metrics."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "dagwatch_source_polls_total" and sample.labels.get("result") == "ok":
                out[sample.labels["source"]] = sample.value
    return out


def cluster(url: str) -> dict:
    answer = httpx.get(f"{url}/api/v1/cluster", timeout=10)
    assert answer.status_code == 200
    return answer.json()


def holders(view: dict) -> dict[str, str]:
    return {s["source"]: s["holder"] for s in view["sources"] if not s["expired"]}


@pytest.fixture
def replicas(request, tmp_path, pg_url, monkeypatch):
    """Two replicas (own data folders, one database); yields (processes, receiver, config). The
    lease time is TTL unless the test asks for another (`indirect` parametrization)."""
    ttl = getattr(request, "param", TTL)
    monkeypatch.setenv("DAGWATCH_TEST_RUNS_FILE", str(tmp_path / "runs.txt"))
    receiver = RecordingServer().start()
    configs = []
    for name in ("a", "b"):
        config = tmp_path / f"{name}.yaml"
        config.write_text(CONFIG.format(data_dir=tmp_path / name, store=pg_url, ttl=ttl, hook=receiver.url, sends=SENDS))
        configs.append(config)
    processes = [DagwatchProcess(config, free_port(), tmp_path / f"{config.stem}.log") for config in configs]
    try:
        for process in processes:
            process.wait_healthy()
        yield processes, receiver, configs[0]
    finally:
        for process in processes:
            process.stop()
        receiver.stop()


# A lease time well past a heartbeat delayed by a loaded machine: this test is about who polls
# while both replicas live, and a lease that expired under load would move and fail "nothing moved".
@pytest.mark.parametrize("replicas", [15], indirect=True)
def test_two_replicas_split_the_sources_poll_each_from_one_replica_and_fire_each_schedule_once(replicas, tmp_path):
    (a, b), _receiver, _config = replicas
    ids = {cluster(a.url)["replica"]: a, cluster(b.url)["replica"]: b}
    assert len(ids) == 2  # each process answers as itself

    def split():
        view = cluster(a.url)
        held = holders(view)
        live = {r["replica"] for r in view["replicas"] if not r["expired"]}
        return held if live == set(ids) and set(held) == {"first", "second"} and set(held.values()) == set(ids) else None

    held = wait_for(split, limit=60)  # one source each, once the second replica's heartbeat asked for its share
    before = {replica: polls(process.url) for replica, process in ids.items()}
    wait_for(
        lambda: all(polls(ids[holder].url).get(source, 0) >= before[holder].get(source, 0) + 5 for source, holder in held.items()), limit=60
    )
    after = {replica: polls(process.url) for replica, process in ids.items()}
    assert holders(cluster(b.url)) == held  # nothing moved meanwhile...
    for source, holder in held.items():
        for replica in ids:
            if replica != holder:  # ...so nobody but the holder polled the source
                assert after[replica].get(source, 0) == before[replica].get(source, 0), (source, replica)

    wait_for(lambda: len(_runs(tmp_path)) >= 8, limit=60)
    a.stop(), b.stop()
    runs = _runs(tmp_path)
    for pipeline in ("replica_first", "replica_second"):
        numbers = [n for p, n, _ in runs if p == pipeline]
        assert len(numbers) == len(set(numbers)), f"a run number of {pipeline} was handed out twice: {sorted(numbers)}"
    assert len({run_id for _, _, run_id in runs}) == len(runs)
    fires = _fires(a, tmp_path)
    assert sum(fires.values()) == len(runs)  # every run was one claimed fire time: none ran twice
    assert set(fires) <= set(ids)  # claimed by these replicas (which one wins a fire time is a race, by design)


def _runs(tmp_path: Path) -> list[tuple[str, int, str]]:
    path = tmp_path / "runs.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(p, int(n), r) for p, n, r in (line.split() for line in lines)]


def _fires(process: DagwatchProcess, tmp_path: Path) -> Counter:
    """Claimed fire times per replica, read with the store the processes used."""
    from sqlalchemy import select

    from monitor.config import load_settings
    from monitor.store import open_store
    from monitor.store.tables import ScheduleFireRow

    settings = load_settings(tmp_path / "a.yaml")
    store = open_store(settings.store_url)
    try:
        with store.session() as db:
            return Counter(db.scalars(select(ScheduleFireRow.replica)))
    finally:
        store.close()


def test_a_replica_killed_mid_burst_is_taken_over_and_every_alert_is_notified_once(replicas):
    (a, b), receiver, config = replicas
    receiver.delay = 0.05  # slow enough that the kill lands mid-burst
    ids = {cluster(a.url)["replica"]: a, cluster(b.url)["replica"]: b}
    wait_for(lambda: len(set(holders(cluster(a.url)).values())) == 2, limit=60)
    view = cluster(a.url)
    victim_id = next(holder for holder in holders(view).values())
    victim, survivor = ids[victim_id], next(p for r, p in ids.items() if r != victim_id)
    survivor_id = next(r for r in ids if r != victim_id)
    orphaned = {source for source, holder in holders(view).items() if holder == victim_id}
    expiry_seen = max(datetime.fromisoformat(s["expires_at"]) for s in view["sources"] if s["source"] in orphaned)

    op = create_token(config, "ops")
    events = [
        {
            "kind": "task_failed",
            "source": "pushed",
            "pipeline": "etl",
            "run_id": "r1",
            "task_id": f"t{i:03d}",
            "summary": f"t{i:03d} failed",
        }
        for i in range(BURST)
    ]
    answer = httpx.post(f"{victim.url}/api/v1/events", json=events, headers={"Authorization": f"Bearer {op}"}, timeout=60)
    assert answer.json()["accepted"] == BURST
    wait_for(lambda: len(receiver.requests) >= 3, limit=60)
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)
    assert len(receiver.requests) < BURST  # the kill really interrupted the burst

    def taken_over():
        view = cluster(survivor.url)
        return view if all(holders(view).get(source) == survivor_id for source in orphaned) else None

    view = wait_for(taken_over, limit=TTL * 10)
    for source in view["sources"]:
        if source["source"] in orphaned:  # not before the dead holder's lease had run out
            assert datetime.fromisoformat(source["acquired_at"]) >= expiry_seen
    before = polls(survivor.url)
    wait_for(lambda: all(polls(survivor.url).get(s, 0) > before.get(s, 0) for s in orphaned), limit=60)

    def all_sent():
        alerts = httpx.get(f"{survivor.url}/api/v1/alerts", params={"limit": 1000, "source": "pushed"}).json()
        return len(alerts) == BURST and all(any(n["status"] == "sent" for n in a["notifications"]) for a in alerts)

    wait_for(all_sent, limit=120)
    keys = [r.header("Idempotency-Key") for r in receiver.requests]
    tasks = Counter(a["task_id"] for r in receiver.requests for a in r.json()["alerts"] if a["source"] == "pushed")
    assert set(tasks) == {f"t{i:03d}" for i in range(BURST)}  # nothing lost
    assert len(set(keys)) == len(tasks)  # one notification per alert...
    assert len(keys) - len(set(keys)) <= SENDS  # ...at most those in flight at the kill sent again, under their keys


SQLITE_CONFIG = """
data_dir: {data_dir}
sources: []
"""


def test_a_second_dagwatch_up_on_one_sqlite_file_is_refused_while_short_commands_work(tmp_path):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(SQLITE_CONFIG.format(data_dir=tmp_path / "data"))
    first = DagwatchProcess(config, free_port(), tmp_path / "first.log")
    try:
        first.wait_healthy()
        env = {k: v for k, v in os.environ.items() if k != "DAGWATCH_CONFIG"}
        second = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "up", "--config", str(config), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert second.returncode != 0
        assert f"pid {first.proc.pid}" in second.stderr and "already running on the SQLite database" in second.stderr
        assert "PostgreSQL" in second.stderr
        token = create_token(config, "ops")  # short commands still open the file
        assert httpx.get(f"{first.url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        revoked = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "token", "revoke", "--name", "ops", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert revoked.returncode == 0, revoked.stderr
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0
    again = DagwatchProcess(config, free_port(), tmp_path / "again.log")  # the lock died with its process
    try:
        again.wait_healthy()
    finally:
        assert again.stop() == 0
