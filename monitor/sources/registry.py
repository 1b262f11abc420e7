"""The one place that maps a configured `kind` to its Source class, built from its typed settings."""

from __future__ import annotations

from pathlib import Path

from monitor.config import AirflowSourceSettings, EmbeddedSourceSettings, PrefectSourceSettings, SourceSettings
from monitor.sources.base import Source
from monitor.store.db import Store


def build(settings: SourceSettings, *, store: Store, log_root: Path) -> Source:
    if isinstance(settings, EmbeddedSourceSettings):
        from monitor.sources.embedded import EmbeddedSource

        return EmbeddedSource(settings.name, store, log_root)
    if isinstance(settings, AirflowSourceSettings):
        from monitor.sources.airflow import AirflowSource

        return AirflowSource(settings)
    if isinstance(settings, PrefectSourceSettings):
        from monitor.sources.prefect import PrefectSource

        return PrefectSource(settings)
    raise TypeError(f"no source implements {type(settings).__name__}")
