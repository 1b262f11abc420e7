"""Which Airflow DAGs' tasks must be read again: each DAG's tasks, cached with what they were read
against, and the decision when that may be stale.

Reading every DAG's tasks at every refresh costs one request per DAG (5,000 at 5,000 DAGs), and
Airflow re-parses every file about every 30 s, so the parse time alone says little. On Airflow 3 a
DAG's *version* says more: `latest_versions` finds each DAG's latest in one listing of recent
versions across all DAGs, and `to_read` picks the DAGs whose tasks may have changed. On Airflow 2
(or a role that may not read versions) the parse time is all there is.

`DagTaskCache` keeps the state and decides (`ran`, `to_read`, `put`, `tasks_of`, `keep_only` are
pure: the DAG list, versions, tasks and time come in as arguments). The reads go through the
`AirflowClient` and API prefix passed in: `read_tasks`, and `DagTaskCache.latest_versions`, whose
listing stops where the cache's state says it has seen enough.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.model import TaskDefinition
from monitor.sources.airflow_api import (
    Dag,
    DagVersion,
    Task,
    TaskInstance,
    aware,
    parse,
    timedelta_of,
)
from monitor.sources.airflow_auth import AirflowAuthError
from monitor.sources.airflow_http import (
    PAGE_LIMIT,
    AirflowClient,
    AirflowNotFound,
    AirflowRejected,
    quoted,
)
from monitor.sources.base import SourceUnavailable

log = logging.getLogger(__name__)

#: DAG versions are read newest first down to Airflow's time at the previous refresh (newest version
#: or parse time seen) minus this overlap: a version's row commits a little after its `created_at`,
#: and several dag-processors' clocks may differ a little.
VERSION_OVERLAP = timedelta(minutes=10)
#: Pages of versions one refresh may read (more only on a first refresh of a big estate, or after a
#: mass redeploy; DAGs not reached are then looked up one by one).
MAX_VERSION_PAGES = 100
#: A DAG version with no task instance yet is rewritten in place when its file changes (same id):
#: such "open" versions are re-read at most this often, when their file was re-parsed since…
OPEN_VERSION_RECHECK = timedelta(minutes=30)
#: …and at most this many per refresh, stalest first, so a refresh stays bounded.
MAX_OPEN_REREADS = 50
#: A version seen on a task instance is final; its tasks are read once more this long after, past
#: the API server's own cache revalidation ([core] min_serialized_dag_update_interval, 30 s).
SETTLE_GRACE = timedelta(minutes=2)


@dataclass
class _DagTasks:
    """One DAG's tasks as last read, and what they were read against."""

    tasks: tuple[TaskDefinition, ...]
    tags: tuple[str, ...]  # the DAG tags the definitions carry
    parsed: datetime | None  # the DAG's last_parsed_time when read
    version: DagVersion | None  # its latest version when read (None: unknown, or API v1)
    read_at: datetime
    settled: bool  # that version was known to have task instances, i.e. to be final


class DagTaskCache:
    """The tasks of one source's DAGs, and when to read them again. `source` names it in logs;
    `open_recheck` and `max_open_rereads` bound the re-reads of open versions (see `to_read`)."""

    def __init__(self, source: str, *, open_recheck: timedelta = OPEN_VERSION_RECHECK, max_open_rereads: int = MAX_OPEN_REREADS) -> None:
        self.source = source
        self.open_recheck = open_recheck
        self.max_open_rereads = max_open_rereads
        self._dags: dict[str, _DagTasks] = {}
        self._versions_mark: datetime | None = None  # Airflow's time at the last refresh (its clock, not ours)
        #: DAG → the newest version it has task instances on, and when the poll first saw that.
        self.ran_versions: dict[str, tuple[DagVersion, datetime]] = {}

    def ran(self, ti: TaskInstance, now: datetime) -> None:
        """Remember the newest DAG version each DAG has task instances on: from then on Airflow
        never rewrites that version in place (see `to_read`)."""
        version = ti.dag_version
        if version is None or version.dag_id != ti.dag_id:
            return
        known = self.ran_versions.get(ti.dag_id)
        if known is None or (known[0].id != version.id and _newer(version, known[0])):
            self.ran_versions[ti.dag_id] = (version, now)

    def to_read(self, dags: list[Dag], versions: dict[str, DagVersion | None] | None, now: datetime) -> set[str]:
        """Which DAGs' tasks to read this refresh.

        Without versions (API v1, or a v2 without `dagVersions`): every DAG whose file was re-parsed
        since its tasks were read — Airflow re-parses every file about every 30 s, so that is
        nearly all of them. With versions (Airflow 3): a DAG whose latest version changed. Airflow
        makes a new version only when the serialized DAG changed *and* the current version has task
        instances; a version without any is rewritten in place, id unchanged. So a version is
        "open" until a polled task instance runs on it; when it settles its tasks are read once
        more (the structure as it ran), and meanwhile an open version whose file was re-parsed is
        re-read at most every `open_recheck`, `max_open_rereads` per refresh, stalest first."""
        why: dict[str, set[str]] = {"new": set(), "reparsed": set(), "new version": set(), "settled": set()}
        due: list[tuple[datetime, str]] = []
        for dag in dags:
            cached = self._dags.get(dag.dag_id)
            version = versions.get(dag.dag_id) if versions is not None else None
            reparsed = dag.last_parsed_time is None or cached is None or cached.parsed != dag.last_parsed_time
            if cached is None:
                why["new"].add(dag.dag_id)
            elif version is None:  # nothing better than the parse time
                if reparsed:
                    why["reparsed"].add(dag.dag_id)
            elif cached.version is None or cached.version.id != version.id:
                why["new version"].add(dag.dag_id)  # the DAG changed
            elif cached.settled:
                continue
            elif self._settled(dag.dag_id, version, now):
                why["settled"].add(dag.dag_id)  # it ran on this version: read what ran, once
            elif reparsed and now - cached.read_at >= self.open_recheck:
                due.append((cached.read_at, dag.dag_id))
        due.sort()
        why["open recheck"] = {dag_id for _, dag_id in due[: max(0, self.max_open_rereads)]}
        log.debug(
            "%s: DAG tasks to read: %s (%d open versions due)",
            self.source,
            ", ".join(f"{len(ids)} {reason}" for reason, ids in why.items()),
            len(due),
        )
        return set().union(*why.values())

    def _settled(self, dag_id: str, version: DagVersion, now: datetime) -> bool:
        ran = self.ran_versions.get(dag_id)
        return ran is not None and ran[0].id == version.id and now - ran[1] >= SETTLE_GRACE

    def put(
        self, dag: Dag, tags: tuple[str, ...], version: DagVersion | None, tasks: tuple[TaskDefinition, ...] | None, now: datetime
    ) -> None:
        """Cache a DAG's `tasks` as just read (`read_tasks`) against `version`, its latest. None: the
        DAG was gone; should the next DAG list still hold it, its tasks are read again then."""
        if tasks is None:
            self._dags[dag.dag_id] = _DagTasks((), tags, None, None, now, False)
            return
        settled = version is not None and self._settled(dag.dag_id, version, now)
        self._dags[dag.dag_id] = _DagTasks(tasks, tags, dag.last_parsed_time, version, now, settled)

    def tasks_of(self, dag_id: str, tags: tuple[str, ...]) -> tuple[TaskDefinition, ...]:
        """A DAG's cached tasks, carrying `tags`: they come from the DAG list, fresher than the tasks."""
        cached = self._dags[dag_id]
        if cached.tags != tags:
            cached.tasks = tuple(t.model_copy(update={"tags": tags}) for t in cached.tasks)
            cached.tags = tags
        return cached.tasks

    def keep_only(self, dag_ids: Iterable[str]) -> None:
        """Forget the DAGs not listed: deleted, stale or no longer watched."""
        listed = set(dag_ids)
        for gone in [d for d in self._dags if d not in listed]:
            del self._dags[gone]

    def latest_versions(
        self, client: AirflowClient, prefix: str, dags: list[Dag], parsed: datetime | None
    ) -> dict[str, DagVersion | None] | None:
        """The latest version of each DAG (None where none is visible), or None when this Airflow
        has no `dagVersions` endpoint (or this user may not read it): then the parse time decides.

        One listing across DAGs (`~`), newest first (`order_by=-id`: ids are UUIDv7), read down to
        VERSION_OVERLAP before the previous refresh's mark — usually one page — and further only
        while a DAG new to the cache has not been met. The mark is Airflow's time, not ours: the
        newest version or parse time (`parsed`, the DAG list's latest `last_parsed_time`) seen so
        far. A DAG met nowhere keeps the version its tasks were read against; if the listing had
        to stop early, the DAGs it did not reach are looked up one by one."""
        path = f"{prefix}/dags/~/dagVersions"
        new = {d.dag_id for d in dags if d.dag_id not in self._dags}
        floor = self._versions_mark - VERSION_OVERLAP if self._versions_mark is not None else None
        found: dict[str, DagVersion] = {}
        newest: datetime | None = None
        complete, offset = False, 0
        try:
            for _ in range(MAX_VERSION_PAGES):
                page = client.get(path, {"order_by": "-id", "limit": PAGE_LIMIT, "offset": offset})
                items = page.get("dag_versions") if isinstance(page, dict) else None
                if not isinstance(items, list):
                    reason = f"Airflow's {path} answered without a `dag_versions` list"
                    client.backoff.failed(reason)
                    raise SourceUnavailable(reason)
                for item in items:
                    version = parse(DagVersion, item, "dagVersions")
                    if version.created_at is None:
                        raise SourceUnavailable(f"Airflow's {path} answered a version without `created_at`")
                    created = aware(version.created_at)
                    newest = created if newest is None else max(newest, created)
                    if floor is None:
                        floor = created - VERSION_OVERLAP  # a first refresh: the newest version anchors it
                    if created < floor and not new:
                        complete = True
                        break
                    found.setdefault(version.dag_id, version)  # newest first: the first met is the latest
                    new.discard(version.dag_id)
                if complete:
                    break
                offset += len(items)
                total = page.get("total_entries")
                if len(items) < PAGE_LIMIT or (isinstance(total, int) and offset >= total):
                    complete = True
                    break
        except (AirflowNotFound, AirflowRejected) as exc:
            log.info("no usable DAG versions at %s (%s): DAG tasks are re-read when their file is re-parsed", client.base_url, exc)
            return None
        except AirflowAuthError as exc:
            if "HTTP 403" not in str(exc):
                raise
            client.backoff.succeeded()  # a role without DAG-version access: not an outage
            log.info("%s: DAG tasks are re-read when their file is re-parsed", exc)
            return None
        marks = [m for m in (self._versions_mark, newest, aware(parsed) if parsed else None) if m is not None]
        self._versions_mark = max(marks, default=None)
        out: dict[str, DagVersion | None] = {}
        for dag in dags:
            version = found.get(dag.dag_id)
            cached = self._dags.get(dag.dag_id)
            known = cached.version if cached is not None else None
            if known is not None and (version is None or _newer(known, version)):
                # met nowhere (unchanged, if the listing reached the floor) or only an older one
                version = known if complete or version is not None else None
            if version is None and not complete:
                version = _latest_version_of(client, prefix, dag.dag_id)
            out[dag.dag_id] = version
        return out


def read_tasks(client: AirflowClient, prefix: str, dag_id: str, tags: tuple[str, ...]) -> tuple[TaskDefinition, ...] | None:
    """One DAG's tasks, each carrying the DAG's `tags`; None if the DAG is gone."""
    try:
        data = client.get(f"{prefix}/dags/{quoted(dag_id)}/tasks")
    except AirflowNotFound:  # deleted since the DAG list was read: gone from the next one
        log.info("DAG %s disappeared while its tasks were read", dag_id)
        return None
    return tuple(
        _task_definition(parse(Task, item, "tasks"), tags) for item in (data.get("tasks") if isinstance(data, dict) else None) or []
    )


def _latest_version_of(client: AirflowClient, prefix: str, dag_id: str) -> DagVersion | None:
    try:
        data = client.get(f"{prefix}/dags/{quoted(dag_id)}/dagVersions", {"order_by": "-version_number", "limit": 1})
    except (AirflowNotFound, AirflowRejected):  # deleted meanwhile, or not asked this way here
        return None
    items = data.get("dag_versions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise SourceUnavailable(f"Airflow's dagVersions of {dag_id} answered without a `dag_versions` list")
    return parse(DagVersion, items[0], "dagVersions") if items else None


def _newer(a: DagVersion, b: DagVersion) -> bool:
    """Whether version `a` was made after `b` (a DAG deleted and re-created restarts at number 1)."""
    far = datetime.min.replace(tzinfo=UTC)
    return (aware(a.created_at or far), a.version_number) > (aware(b.created_at or far), b.version_number)


def _task_definition(task: Task, dag_tags: tuple[str, ...]) -> TaskDefinition:
    timeout = timedelta_of(task.execution_timeout)
    return TaskDefinition(
        task_id=task.task_id,
        retries=int(task.retries) if task.retries is not None else None,
        timeout_seconds=timeout.total_seconds() if timeout is not None else None,
        tags=dag_tags,  # Airflow tags DAGs, not tasks: every task carries its DAG's tags
        owners=(task.owner,) if task.owner else (),
        downstream=tuple(task.downstream_task_ids),
    )
