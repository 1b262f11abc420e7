"""`dagwatch up`: builds every part from the settings and runs them on one scheduler.

Jobs: each embedded pipeline on its schedule, each source's poll (never two of the same source
at once), the outbox dispatcher, and the heartbeat that shares the work with other replicas on
the same PostgreSQL: a source is polled by the replica holding its lease, a schedule's fire time
runs on the replica that claimed it, and every replica's dispatcher wakes on any replica's
alert changes (the store's LISTEN/NOTIFY). On SQLite one `dagwatch up` owns the database file.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor import metrics
from monitor.alerting import dispatch, ingest
from monitor.alerting.notifiers import Notifier, build
from monitor.config import (
    EmbeddedPipelineSettings,
    EmbeddedSourceSettings,
    ScheduleSettings,
    Settings,
    SlackReceiverSettings,
    SourceSettings,
)
from monitor.remediation import policies, suites
from monitor.remediation.engine import Engine
from monitor.remediation.runbook import load_all
from monitor.runner import Pipeline, Runner
from monitor.runner.dask_executor import DaskOptions
from monitor.runner.engine import Recorder, TaskContext
from monitor.runner.loader import load
from monitor.sources import registry
from monitor.sources.registry import Sources
from monitor.store import gauges, leases
from monitor.store.db import Store, open_store
from monitor.store.exclusive import ExclusiveLock, lock_path
from monitor.store.recorder import StoreRecorder
from monitor.tracking.check_results import store_reporter
from monitor.tracking.collector import Collector
from monitor.tracking.watch import Watcher

log = logging.getLogger(__name__)
DISPATCH_INTERVAL = timedelta(seconds=1)
POLICY_EVERY = timedelta(seconds=2)
MIN_TICK_GAP = 0.05  # seconds
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class ScheduledPipeline:
    source: str
    pipeline: Pipeline
    settings: EmbeddedPipelineSettings


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        runbooks = load_all(settings.runbooks.folder)  # the operator's files first: a bad one starts nothing
        suites.validate(settings)
        checks_folder = settings.checks.folder if settings.checks is not None else None
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(settings.store_url)
        self.recorder = StoreRecorder(self.store)
        self.notifiers: dict[str, Notifier] = build(settings.receivers, runbooks.values(), settings.templates)
        self.policy = ingest.AlertPolicy.from_settings(settings, runbooks=tuple(runbooks.values()))
        self.slack_signing_secrets = [
            r.signing_secret.get_secret_value()
            for r in settings.receivers
            if isinstance(r, SlackReceiverSettings) and r.signing_secret is not None
        ]
        self.runners: dict[str, Runner] = {}
        self.pipelines: list[ScheduledPipeline] = []
        self.sources: Sources = self._build_sources()
        self.collectors: list[Collector] = [self._collector(source) for source in settings.sources]
        self.runbooks = Engine.from_settings(
            settings.runbooks,
            runbooks,
            self.store,
            self.sources.find,
            services={"policy": self.policy, "notifiers": self.notifiers, "sources": self.sources.find, "checks_folder": checks_folder},
        )
        self._policy_watermark = 0
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="dagwatch-dispatcher", daemon=True)
        self._sends = ThreadPoolExecutor(settings.alerting.max_concurrent_sends, thread_name_prefix="dagwatch-send")
        self._exclusive: ExclusiveLock | None = None
        with self.store.session() as session:
            known = gauges.known_pipelines(session)
        metrics.register_store_collector(self.read_gauges, settings.metrics, seed=known)
        metrics.receivers_known(self.notifiers)

    def _build_sources(self) -> Sources:
        """Each configured source once, for the collectors, the API and the runbook engine alike.
        An embedded source gets its runner and every pipeline configured under it (it retries
        their failed runs); only the watched ones are scheduled."""
        loaded: dict[str, list[Pipeline]] = {}
        for source in self.settings.sources:
            if not isinstance(source, EmbeddedSourceSettings):
                continue
            loaded[source.name] = []
            for entry in source.pipelines:
                pipeline = load(entry.ref)
                loaded[source.name].append(pipeline)
                if source.watches(pipeline.name):
                    self.pipelines.append(ScheduledPipeline(source.name, pipeline, entry))
            self.runners[source.name] = build_runner(
                source,
                list(zip(loaded[source.name], source.pipelines)),
                data_dir=self.settings.data_dir,
                recorder=self.recorder,
                check_reporter=store_reporter(self.store, self.policy, source.name),
            )
        return registry.build_all(
            self.settings.sources,
            store=self.store,
            log_root=self.settings.data_dir / "logs",
            runners=self.runners,
            pipelines=loaded,
        )

    def _collector(self, source: SourceSettings) -> Collector:
        built = self.sources.get(source.name)
        watcher = Watcher(
            built,
            source,
            self.store,
            self.policy,
            ml_tags=getattr(source, "tags_as_ml", ("ml",)),
            definitions_every=getattr(source, "definitions_interval", timedelta(minutes=5)),
        )
        lease = leases.Lease(self.store, leases.SOURCE + source.name, leases.replica_id(), self.settings.cluster.lease_ttl)
        return Collector(built, self.store, self.policy, output_tasks=source.output_tasks, watcher=watcher, lease=lease)

    def hold_store(self) -> None:
        """On SQLite, own the database file for this process's life (an OS lock beside it): a
        second `dagwatch up` on it would poll, schedule and send everything twice. Commands that
        only read or write briefly do not take it. On PostgreSQL replicas share the work instead."""
        path = lock_path(self.settings.store_url)
        if path is not None and self._exclusive is None:
            self._exclusive = ExclusiveLock.take(path, what="dagwatch up")

    def start(self) -> None:
        self.hold_store()
        self.store.listen()
        alone = self._join_cluster()
        now = datetime.now(timezone.utc)
        for item in self.pipelines:
            schedule = item.settings.schedule
            if schedule is None:
                continue
            first = now if schedule.every and schedule.start_now else None
            self.scheduler.add_job(
                self.run_pipeline,
                trigger_for(schedule),
                args=[item],
                id=f"run:{item.source}:{item.pipeline.name}",
                name=f"run {item.pipeline.name}",
                **({"next_run_time": first} if first else {}),
            )
        for index, collector in enumerate(self.collectors):
            interval = next(s.poll_interval for s in self.settings.sources if s.name == collector.source.name)
            self.scheduler.add_job(
                collector.run,
                IntervalTrigger(seconds=interval.total_seconds(), jitter=min(1.0, interval.total_seconds() / 10)),
                id=f"poll:{collector.source.name}",
                next_run_time=now + timedelta(seconds=0.2 * index),
            )
        heartbeat = max(0.2, self.settings.cluster.lease_ttl.total_seconds() / 3)
        self.scheduler.add_job(
            self.heartbeat, IntervalTrigger(seconds=heartbeat), id="cluster-heartbeat", next_run_time=now + timedelta(seconds=heartbeat)
        )
        if self.settings.runbooks.policies:
            self.scheduler.add_job(
                self.start_policy_runbooks,
                IntervalTrigger(seconds=POLICY_EVERY.total_seconds()),
                id="runbook-policies",
                next_run_time=now + POLICY_EVERY,
            )
        if alone:  # a replica starting beside running ones must not interrupt their executions
            self.runbooks.recover()
        self.scheduler.start()
        self._dispatcher.start()
        self._started.set()

    @property
    def ready(self) -> bool:
        return self._started.is_set() and self.scheduler.running

    def _join_cluster(self) -> bool:
        """Announce this replica and take its first share of the sources before the first poll;
        True if no other replica is alive."""
        self._share_work()
        with self.store.session() as session:
            return leases.live_replicas(session) <= 1

    def heartbeat(self) -> None:
        """Every third of the lease time: this replica is alive, keeps its leases, and takes
        its share of the free or expired ones — polling a taken source at once, not a poll
        interval later, so a dead replica's sources go unpolled at most about one lease time."""
        try:
            taken = self._share_work()
        except Exception:  # the next beat tries again; the leases outlive one missed beat
            log.exception("cluster heartbeat failed")
            return
        now = datetime.now(timezone.utc)
        for name in taken:
            self.scheduler.modify_job(f"poll:{name.removeprefix(leases.SOURCE)}", next_run_time=now)

    def _share_work(self) -> list[str]:
        """Renew what this replica holds; take free source leases up to a fair share
        (sources ÷ live replicas, rounded up); hand one back per beat while holding more, so a
        replica that joins gets work. Returns the leases taken now."""
        me, ttl = leases.replica_id(), self.settings.cluster.lease_ttl
        with self.store.session() as session:
            leases.acquire(session, leases.REPLICA + me, me, ttl)
        with self.store.session() as session:
            mine = {name for name in leases.renew_all(session, me, ttl) if name.startswith(leases.SOURCE)}
            live = leases.live_replicas(session)
        names = [leases.SOURCE + c.source.name for c in self.collectors]
        share = math.ceil(len(names) / max(live, 1))
        taken: list[str] = []
        for name in names:
            if len(mine) >= share:
                break
            if name not in mine:
                with self.store.session() as session:
                    if leases.acquire(session, name, me, ttl):
                        mine.add(name)
                        taken.append(name)
        if len(mine) > share:
            with self.store.session() as session:
                leases.release(session, max(mine), me)
        return taken

    def run_pipeline(self, item: ScheduledPipeline) -> None:
        """One fire of a schedule: every replica's trigger fires, the one that claims the fire
        time in the store runs it."""
        fire = fire_time(item.settings.schedule, datetime.now(timezone.utc))
        try:
            with self.store.session() as session:
                claimed = leases.claim_fire(
                    session, source=item.source, pipeline=item.pipeline.name, scheduled_for=fire, replica=leases.replica_id()
                )
        except Exception:
            log.exception("could not claim the %s run of %s; skipped", fire, item.pipeline.name)
            return
        if not claimed:
            log.debug("the %s run of %s runs on another replica", fire, item.pipeline.name)
            return
        try:
            result = self.runners[item.source].run(item.pipeline, dict(item.settings.params))
            log.info("run %s of %s finished: %s", result.run_id, item.pipeline.name, result.state.value)
        except Exception:
            log.exception("run of %s could not complete", item.pipeline.name)

    def start_policy_runbooks(self) -> None:
        """The `runbooks.policies` job: start runbooks for new firing alerts they match."""
        try:
            _, self._policy_watermark = policies.start_due(self.runbooks, self.settings.runbooks.policies, self._policy_watermark)
        except Exception:  # a bad pass must not stop the next one
            log.exception("runbook policies pass failed")

    def _dispatch_loop(self) -> None:
        """Deliver as soon as an alert change is committed (the store signals it), when the next
        group is due (its group_wait or group_interval ends), and at least every
        DISPATCH_INTERVAL for retries and held resolves. Ticks are at least MIN_TICK_GAP apart:
        a burst of commits is one tick, not one per commit."""
        state = dispatch.TickState()
        last = 0.0
        while not self._stopping.is_set():
            if (wait := MIN_TICK_GAP - (time.monotonic() - last)) > 0:
                self._stopping.wait(wait)
            last = time.monotonic()
            self.store.alerts_changed.clear()
            idle = DISPATCH_INTERVAL.total_seconds()
            try:
                dispatch.tick(self.store, self.notifiers, self.policy, state=state, pool=self._sends)
                if state.next_flush_at is not None:
                    idle = min(idle, max(0.0, (state.next_flush_at - datetime.now(timezone.utc)).total_seconds()))
            except Exception:  # the loop must outlive a bad tick (database locked, notifier bug); it retries in a second
                log.exception("dispatcher tick failed")
            self.store.alerts_changed.wait(timeout=idle)

    def read_gauges(self) -> gauges.Reading:
        """What /metrics reads at scrape time: the store, plus the definitions the watchers hold
        (remote sources' schedules) and the embedded pipelines' configured schedules."""
        definitions = [d for c in self.collectors if c.watcher is not None for d in c.watcher.definitions]
        schedules = [(d.source, d.pipeline, d.schedule, d.paused) for d in definitions] + [
            (item.source, item.pipeline.name, _schedule_text(item.settings.schedule), False)
            for item in self.pipelines
            if item.settings.schedule is not None
        ]
        compat = (
            {s.name: s.kind for s in self.settings.sources if s.kind in ("airflow", "prefect")} if self.settings.metrics.compat else None
        )
        with self.store.session() as session:
            return gauges.read(
                session,
                now=datetime.now(timezone.utc),
                baseline_runs=self.settings.metrics.baseline_runs,
                schedules=schedules,
                receivers=[name for name, _ in self.policy.receivers],
                compat_kinds=compat,
                definitions=definitions,
            )

    def stop(self) -> None:
        self._stopping.set()
        self.store.alerts_changed.set()
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=10)
        self._sends.shutdown(wait=False, cancel_futures=True)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._started.is_set():
            try:  # hand the sources over now rather than after the lease time
                with self.store.session() as session:
                    leases.release_all(session, leases.replica_id())
            except Exception:
                log.warning("could not release this replica's leases; they expire by themselves", exc_info=True)
        self.runbooks.shutdown()
        for runner in self.runners.values():
            runner.close()
        self.recorder.close()
        for notifier in self.notifiers.values():
            close = getattr(notifier, "close", None)
            if close is not None:
                close()
        self.store.close()
        if self._exclusive is not None:
            self._exclusive.release()
            self._exclusive = None


def trigger_for(schedule: ScheduleSettings) -> CronTrigger | IntervalTrigger:
    """A cron reads its times in the schedule's zone (summer time included); an interval counts
    from one fixed instant, so every replica's trigger fires at the same times and they compete
    for the same fire time (`run_pipeline`)."""
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(schedule.timezone))
    return IntervalTrigger(seconds=schedule.every.total_seconds(), start_date=EPOCH, timezone=timezone.utc)  # type: ignore[union-attr]


def build_runner(
    source: EmbeddedSourceSettings,
    pipelines: list[tuple[Pipeline, EmbeddedPipelineSettings]],
    *,
    data_dir: Path,
    recorder: Recorder,
    check_reporter: Callable[[TaskContext, Any], None],
) -> Runner:
    """The embedded source's runner as its settings say (executors, the Dask cluster), for
    `dagwatch up` and `dagwatch run` alike: a pipeline configured for Dask runs there either way."""
    dask = source.dask
    return Runner(
        data_dir=data_dir,
        recorder=recorder,
        source=source.name,
        max_workers=source.max_workers,
        check_reporter=check_reporter,
        default_executor=source.executor,
        pipeline_executors={pipeline.name: entry.executor for pipeline, entry in pipelines if entry.executor},
        dask=DaskOptions(
            scheduler_address=dask.scheduler_address,
            workers=dask.workers,
            threads_per_worker=dask.threads_per_worker,
            connect_timeout=dask.connect_timeout.total_seconds(),
            dashboard=dask.dashboard,
        ),
    )


def fire_time(schedule: ScheduleSettings, now: datetime) -> datetime:
    """The fire time a trigger firing at `now` stands for, in UTC: the last multiple of the
    interval since the epoch, or for a cron the whole minute of its zone's clock. Triggers never
    fire early, and every replica's fire for one time maps to the same instant, which only one
    of them can claim; the twice-lived hour of a summer-time change is two instants, not one."""
    if schedule.cron:
        local = now.astimezone(ZoneInfo(schedule.timezone))
        return local.replace(second=0, microsecond=0).astimezone(timezone.utc)
    period = schedule.every.total_seconds()  # type: ignore[union-attr]
    return EPOCH + timedelta(seconds=math.floor((now - EPOCH).total_seconds() / period) * period)


def _schedule_text(schedule: ScheduleSettings) -> str:
    """An embedded pipeline's schedule as the sources write theirs (`every 20s`, or the cron)."""
    return schedule.cron if schedule.cron else f"every {schedule.every.total_seconds():g}s"  # type: ignore[union-attr]
