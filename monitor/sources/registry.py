"""The one place that maps a configured `kind` to its Source class, built from its typed settings,
and `Sources`, the service's one set of built sources by name.

Every part that reads or acts on an orchestrator — the collectors, the API, the Slack handler, the
runbook engine — takes its source from the same `Sources`, so each source is built once: one HTTP
client, one token, one back-off state per orchestrator, and an embedded source that knows the
runner and pipelines it retries with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

from monitor.config import AirflowSourceSettings, EmbeddedSourceSettings, PrefectSourceSettings, SourceSettings
from monitor.errors import DagwatchError
from monitor.sources.base import ActionUnsupported, Markable, Retryable, Source
from monitor.store.db import Store

if TYPE_CHECKING:
    from monitor.runner import Pipeline, Runner


class UnknownSource(DagwatchError):
    """No source of that name is configured (an alert from a source since removed from the
    config, or a typo in a request)."""

    def __init__(self, name: str, configured: Sequence[str]) -> None:
        self.name = name
        self.configured = tuple(configured)
        names = ", ".join(repr(n) for n in self.configured) or "none"
        super().__init__(f"no source named {name!r} is configured (configured: {names}); add it under `sources:` in dagwatch.yaml")


class Sources:
    """Built sources by name. Read-only once built: the service builds it at start."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self._by_name: dict[str, Source] = {}
        for source in sources:
            if source.name in self._by_name:
                raise ValueError(f"two sources are named {source.name!r}; names must be unique")
            self._by_name[source.name] = source

    @property
    def names(self) -> tuple[str, ...]:
        """Names in configuration order."""
        return tuple(self._by_name)

    def get(self, name: str) -> Source:
        """The source named `name`; raises `UnknownSource` listing the configured names."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSource(name, self.names) from None

    def find(self, name: str) -> Source | None:
        """The source named `name`, or None: for callers to whom a missing source is an answer
        (a runbook for an alert whose source left the config reports it, it does not crash)."""
        return self._by_name.get(name)

    def retryable(self, name: str) -> Retryable:
        """The source, if it can re-run failed tasks; raises `UnknownSource` or `ActionUnsupported`."""
        source = self.get(name)
        if not isinstance(source, Retryable):
            raise ActionUnsupported(self._unsupported(name, "clear_failed", Retryable))
        return source

    def markable(self, name: str) -> Markable:
        """The source, if it can mark a task failed; raises `UnknownSource` or `ActionUnsupported`."""
        source = self.get(name)
        if not isinstance(source, Markable):
            raise ActionUnsupported(self._unsupported(name, "mark_failed", Markable))
        return source

    def _unsupported(self, name: str, action: str, protocol: type) -> str:
        able = [n for n, s in self._by_name.items() if isinstance(s, protocol)]
        kind = type(self._by_name[name]).__name__
        return f"source {name!r} ({kind}) cannot {action}; sources that can: {able or 'none'}"

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Source]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def build(
    settings: SourceSettings,
    *,
    store: Store,
    log_root: Path,
    runner: Runner | None = None,
    pipelines: Sequence[Pipeline] = (),
) -> Source:
    """`runner` and `pipelines` are the embedded source's (what it retries runs with); other
    kinds take everything from their settings."""
    if isinstance(settings, EmbeddedSourceSettings):
        from monitor.sources.embedded import EmbeddedSource

        return EmbeddedSource(settings.name, store, log_root, runner=runner, pipelines=pipelines)
    if isinstance(settings, AirflowSourceSettings):
        from monitor.sources.airflow import AirflowSource

        return AirflowSource(settings)
    if isinstance(settings, PrefectSourceSettings):
        from monitor.sources.prefect import PrefectSource

        return PrefectSource(settings)
    raise TypeError(f"no source implements {type(settings).__name__}")


def build_all(
    settings: Iterable[SourceSettings],
    *,
    store: Store,
    log_root: Path,
    runners: Mapping[str, Runner] | None = None,
    pipelines: Mapping[str, Sequence[Pipeline]] | None = None,
) -> Sources:
    """Every configured source, once; `runners` and `pipelines` by embedded source name."""
    runners, pipelines = runners or {}, pipelines or {}
    return Sources(
        build(s, store=store, log_root=log_root, runner=runners.get(s.name), pipelines=pipelines.get(s.name, ())) for s in settings
    )
