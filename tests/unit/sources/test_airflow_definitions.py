"""AirflowSource.definitions() against `httpx.MockTransport`: a DAG's tasks are read again only when
they may have changed. Airflow 3 (API v2) says so through DAG versions (`/dags/~/dagVersions`, one
listing for all DAGs); without that endpoint, and on Airflow 2, the parse time decides as before."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from monitor.config import AirflowSourceSettings
from monitor.sources import airflow_definitions
from monitor.sources.airflow import AirflowSource
from monitor.sources.airflow_auth import StaticToken
from monitor.sources.airflow_definitions import SETTLE_GRACE
from monitor.sources.base import SourceUnavailable

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeAirflow3:
    """DAGs with tasks and versions, shaped like Airflow 3.3's API v2. `reparse()` moves every
    `last_parsed_time` (the dag-processor does so every ~30 s); `change()` makes a new version
    (what Airflow does when a DAG whose version has task instances changes); `rewrite()` changes
    the tasks in place, version unchanged (what it does when the version has none)."""

    def __init__(self, clock: Clock, dags: int = 3, versions: bool = True, api: str = "v2") -> None:
        self.clock, self.versions_endpoint, self.api = clock, versions, api
        self.ids = itertools.count(1)
        self.dags: dict[str, dict] = {}
        self.tasks: dict[str, list[dict]] = {}
        self.versions: list[dict] = []  # every version of every DAG, in creation order
        self.tis: list[dict] = []
        self.requests: list[httpx.Request] = []
        self.versions_answer: httpx.Response | None = None
        for i in range(dags):
            self.add(f"dag_{i}")

    def add(self, dag_id: str) -> None:
        self.dags[dag_id] = {
            "dag_id": dag_id,
            "is_paused": False,
            "is_stale": False,
            "owners": ["team"],
            "tags": [{"name": "ml", "dag_id": dag_id}],
            "timetable_summary": "@daily",
            "last_parsed_time": iso(self.clock.now),
            "fileloc": f"/dags/{dag_id}.py",
        }
        self.tasks[dag_id] = [self._task("train", retries=0)]
        self._new_version(dag_id)

    @staticmethod
    def _task(task_id: str, retries: int) -> dict:
        return {
            "task_id": task_id,
            "owner": "team",
            "retries": float(retries),
            "execution_timeout": None,
            "downstream_task_ids": [],
            "operator_name": "PythonOperator",
        }

    def _new_version(self, dag_id: str) -> dict:
        number = 1 + max((v["version_number"] for v in self.versions if v["dag_id"] == dag_id), default=0)
        n = next(self.ids)
        version = {
            "id": f"01a21800-0000-7000-8000-{n:012x}",
            "version_number": number,
            "dag_id": dag_id,
            "bundle_name": "dags-folder",
            "bundle_version": None,
            "created_at": iso(self.clock.now),
            "dag_display_name": dag_id,
            "bundle_url": None,
        }
        self.versions.append(version)
        return version

    def latest(self, dag_id: str) -> dict:
        return [v for v in self.versions if v["dag_id"] == dag_id][-1]

    def reparse(self) -> None:
        for dag in self.dags.values():
            dag["last_parsed_time"] = iso(self.clock.now)

    def change(self, dag_id: str, retries: int) -> None:
        self.tasks[dag_id] = [self._task("train", retries)]
        self._new_version(dag_id)

    def rewrite(self, dag_id: str, retries: int) -> None:
        self.tasks[dag_id] = [self._task("train", retries)]

    def run(self, dag_id: str) -> None:
        """A run now: its task instance carries the DAG's latest version."""
        self.tis.append(
            {
                "dag_id": dag_id,
                "dag_run_id": f"r{len(self.tis)}",
                "task_id": "train",
                "state": "running",
                "try_number": 1,
                "max_tries": 0,
                "map_index": -1,
                "start_date": iso(self.clock.now),
                "dag_version": self.latest(dag_id),
            }
        )

    def count(self, what: str) -> int:
        return sum(1 for r in self.requests if what in r.url.path)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, params = request.url.path, request.url.params
        prefix = f"/api/{self.api}"
        if path == f"/api/{self.api}/version":
            return httpx.Response(200, json={"version": "3.3.2" if self.api == "v2" else "2.11.0"})
        if not path.startswith(prefix + "/"):
            return httpx.Response(404, json={"detail": "Not Found"})
        parts = path[len(prefix) + 1 :].split("/")
        limit, offset = min(int(params.get("limit", 50)), 100), int(params.get("offset", 0))
        if parts == ["dags"]:
            return self._page(list(self.dags.values()), "dags", limit, offset)
        if parts == ["importErrors"]:
            return httpx.Response(200, json={"import_errors": [], "total_entries": 0})
        if len(parts) == 3 and parts[0] == "dags" and parts[2] == "tasks":
            return httpx.Response(200, json={"tasks": self.tasks[parts[1]], "total_entries": len(self.tasks[parts[1]])})
        if len(parts) == 3 and parts[0] == "dags" and parts[2] == "dagVersions":
            if not self.versions_endpoint:
                return httpx.Response(404, json={"error": "API route not found"})
            if self.versions_answer is not None:
                return self.versions_answer
            versions = self.versions if parts[1] == "~" else [v for v in self.versions if v["dag_id"] == parts[1]]
            key = params.get("order_by", "id")
            field = key.lstrip("-")
            assert field in ("id", "version_number"), key  # what Airflow allows (created_at → 400)
            versions = sorted(versions, key=lambda v: v[field], reverse=key.startswith("-"))
            return self._page(versions, "dag_versions", limit, offset)
        if parts == ["dags", "~", "dagRuns"]:
            return self._page([], "dag_runs", limit, offset)
        if len(parts) == 5 and parts[0] == "dags" and parts[2] == "dagRuns" and parts[4] == "taskInstances":
            tis = [t for t in self.tis if parts[1] in ("~", t["dag_id"]) and parts[3] in ("~", t["dag_run_id"])]
            return self._page(tis, "task_instances", limit, offset)
        if len(parts) == 4 and parts[2] == "dagRuns":
            return httpx.Response(200, json={"dag_id": parts[1], "dag_run_id": parts[3], "state": "running"})
        return httpx.Response(404, json={"detail": f"no route {path}"})

    @staticmethod
    def _page(items: list, key: str, limit: int, offset: int) -> httpx.Response:
        return httpx.Response(200, json={key: items[offset : offset + limit], "total_entries": len(items)})


def source_for(fake: FakeAirflow3, clock: Clock, **kw) -> AirflowSource:
    settings = AirflowSourceSettings(kind="airflow", name="af", url="http://airflow.test", definitions_interval=0)
    return AirflowSource(settings, transport=httpx.MockTransport(fake), clock=clock, token_provider=StaticToken(SecretStr("t")), **kw)


def retries(definitions, dag_id: str) -> int | None:
    [task] = next(d for d in definitions if d.pipeline == dag_id).tasks
    return task.retries


def refresh(fake: FakeAirflow3, source: AirflowSource, clock: Clock, seconds: float = 30):
    """The next refresh, after the dag-processor re-parsed every file."""
    clock.now += timedelta(seconds=seconds)
    fake.reparse()
    fake.requests.clear()
    return source.definitions()


def test_unchanged_versions_cost_no_task_reads_although_every_file_was_reparsed():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=250)
    source = source_for(fake, clock)
    clock.now += timedelta(minutes=15)  # the versions were made a while ago
    fake.reparse()
    assert len(source.definitions()) == 250
    assert fake.count("/tasks") == 250
    refresh(fake, source, clock)
    assert fake.count("/tasks") == 0
    # the DAG list (3 pages), one page of versions, import errors: nothing per DAG
    assert [r.url.path for r in fake.requests] == ["/api/v2/dags"] * 3 + ["/api/v2/dags/~/dagVersions", "/api/v2/importErrors"]
    listing = next(r for r in fake.requests if "dagVersions" in r.url.path)
    assert listing.url.params["order_by"] == "-id"


def test_a_new_version_rereads_that_dag_only():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=5)
    source = source_for(fake, clock)
    source.definitions()
    clock.now += timedelta(minutes=1)
    fake.change("dag_3", retries=2)
    defs = refresh(fake, source, clock)
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_3/tasks"]
    assert retries(defs, "dag_3") == 2 and retries(defs, "dag_1") == 0
    refresh(fake, source, clock)  # seen: not read again
    assert fake.count("/tasks") == 0


def test_a_new_dag_is_read_and_a_deleted_one_forgotten():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2)
    source = source_for(fake, clock)
    source.definitions()
    fake.add("dag_new")
    del fake.dags["dag_0"]
    defs = refresh(fake, source, clock)
    assert sorted(d.pipeline for d in defs) == ["dag_1", "dag_new"]
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_new/tasks"]


def test_without_the_versions_endpoint_the_parse_time_decides_as_before():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=4, versions=False)
    source = source_for(fake, clock)
    source.definitions()
    fake.rewrite("dag_2", retries=3)
    defs = refresh(fake, source, clock)
    assert fake.count("/tasks") == 4 and retries(defs, "dag_2") == 3
    clock.now += timedelta(seconds=30)
    fake.requests.clear()
    source.definitions()  # not re-parsed: nothing read
    assert fake.count("/tasks") == 0


def test_airflow2_never_asks_for_versions():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2, api="v1")
    source = source_for(fake, clock)
    source.definitions()
    refresh(fake, source, clock)
    assert fake.count("dagVersions") == 0 and fake.count("/tasks") == 2


def test_a_role_without_version_access_falls_back_without_backing_off():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2)
    fake.versions_answer = httpx.Response(403, json={"detail": "Forbidden"})
    source = source_for(fake, clock)
    assert len(source.definitions()) == 2
    assert source._client.backoff.failures == 0
    refresh(fake, source, clock)
    assert fake.count("/tasks") == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"versions": []}),
        httpx.Response(200, json={"dag_versions": [{"id": 1}], "total_entries": 1}),
        httpx.Response(200, text="<html>proxy login</html>"),
    ],
    ids=["no-list", "bad-item", "not-json"],
)
def test_a_garbage_versions_answer_is_source_unavailable(answer):
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2)
    source = source_for(fake, clock)
    source.definitions()
    fake.versions_answer = answer
    clock.now += timedelta(seconds=30)
    with pytest.raises(SourceUnavailable):
        source.definitions()


def test_the_first_refresh_lists_versions_until_every_dag_is_met_then_one_page_suffices():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=150)
    for i in range(150):  # 150 more versions, newer than every DAG's first one
        clock.now += timedelta(minutes=1)
        fake.change(f"dag_{i}", retries=1)
    clock.now += timedelta(hours=1)
    source = source_for(fake, clock)
    source.definitions()
    assert fake.count("dagVersions") == 2  # 300 versions, newest first: dag_0…dag_49's latest are on page 2
    refresh(fake, source, clock)
    assert fake.count("dagVersions") == 1 and fake.count("/tasks") == 0


def test_a_listing_cut_short_looks_the_rest_up_one_by_one(monkeypatch):
    monkeypatch.setattr(airflow_definitions, "MAX_VERSION_PAGES", 1)
    clock = Clock()
    fake = FakeAirflow3(clock, dags=120)
    source = source_for(fake, clock)
    clock.now += timedelta(minutes=15)
    fake.reparse()
    defs = source.definitions()
    assert len(defs) == 120
    per_dag = [r for r in fake.requests if "dagVersions" in r.url.path and "/~/" not in r.url.path]
    assert len(per_dag) == 20 and per_dag[0].url.params["order_by"] == "-version_number"
    refresh(fake, source, clock)  # all versions known now: one page, no look-ups, no task reads
    assert fake.count("dagVersions") == 1 and fake.count("/tasks") == 0


def test_an_open_version_rewritten_in_place_is_rechecked_bounded_and_stalest_first():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=6)
    source = source_for(fake, clock, open_recheck=timedelta(minutes=30), max_open_rereads=4)
    source.definitions()
    fake.rewrite("dag_5", retries=4)  # never ran: Airflow rewrites version 1 in place
    defs = refresh(fake, source, clock, seconds=60)
    assert fake.count("/tasks") == 0 and retries(defs, "dag_5") == 0  # too early to recheck
    defs = refresh(fake, source, clock, seconds=30 * 60)
    assert fake.count("/tasks") == 4  # the budget
    defs = refresh(fake, source, clock, seconds=60)
    assert fake.count("/tasks") == 2 and retries(defs, "dag_5") == 4  # the rest, next time


def test_a_version_that_ran_is_read_once_more_then_never_again():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2)
    source = source_for(fake, clock, open_recheck=timedelta(minutes=30))
    source.definitions()
    fake.rewrite("dag_1", retries=5)  # in place, before its first run
    clock.now += timedelta(seconds=10)
    fake.run("dag_1")  # the version is final from now on
    source.poll(clock.now - timedelta(minutes=1))
    refresh(fake, source, clock)
    assert fake.count("/tasks") == 0  # within the grace: Airflow's API may still serve its cached copy
    defs = refresh(fake, source, clock, seconds=SETTLE_GRACE.total_seconds())
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_1/tasks"]
    assert retries(defs, "dag_1") == 5
    defs = refresh(fake, source, clock, seconds=3600)  # settled: no recheck, unlike dag_0
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_0/tasks"]


def test_an_odd_dag_version_on_a_task_instance_does_not_fail_the_poll():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=1)
    fake.run("dag_0")
    fake.tis[0]["dag_version"] = {"id": None, "version_number": "x"}
    source = source_for(fake, clock)
    [snap] = source.poll(clock.now - timedelta(minutes=1))
    assert snap.pipeline == "dag_0" and source._dag_tasks.ran_versions == {}


def test_tags_follow_the_dag_list_without_a_task_read():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=1)
    source = source_for(fake, clock)
    source.definitions()
    fake.dags["dag_0"]["tags"] = [{"name": "nightly", "dag_id": "dag_0"}]
    [defn] = refresh(fake, source, clock)
    assert fake.count("/tasks") == 0 and defn.tags == ("nightly",) and defn.tasks[0].tags == ("nightly",)


def test_a_version_committed_after_a_refresh_with_an_earlier_created_at_is_still_seen():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=3)
    source = source_for(fake, clock)
    clock.now += timedelta(minutes=15)
    fake.reparse()
    source.definitions()
    late = fake._new_version("dag_2")  # its transaction began 5 minutes before the last refresh
    late["created_at"] = iso(clock.now - timedelta(minutes=5))
    fake.tasks["dag_2"] = [fake._task("train", 7)]
    defs = refresh(fake, source, clock, seconds=60)
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_2/tasks"]
    assert retries(defs, "dag_2") == 7


def test_a_dag_deleted_and_recreated_under_the_same_id_is_read_again():
    clock = Clock()
    fake = FakeAirflow3(clock, dags=2)
    source = source_for(fake, clock)
    clock.now += timedelta(minutes=1)
    fake.change("dag_1", retries=1)  # dag_1 is at version 2
    source.definitions()
    clock.now += timedelta(minutes=20)
    fake.versions = [v for v in fake.versions if v["dag_id"] != "dag_1"]  # deleted: its versions go too
    fake.add("dag_1")  # re-created: version 1 again, a new id
    defs = refresh(fake, source, clock)
    assert [r.url.path for r in fake.requests if r.url.path.endswith("/tasks")] == ["/api/v2/dags/dag_1/tasks"]
    assert retries(defs, "dag_1") == 0
