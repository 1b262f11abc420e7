"""`Sources`, the service's one set of built sources: built once per configured source by
`registry.build_all`, found by name, and asked for an action only when the source can do it."""

from __future__ import annotations

import pytest

from monitor.config import AirflowSourceSettings, EmbeddedSourceSettings, PrefectSourceSettings
from monitor.errors import DagwatchError
from monitor.runner import Pipeline, Runner
from monitor.sources import registry
from monitor.sources.airflow import AirflowSource
from monitor.sources.base import ActionUnsupported, Markable, Retryable
from monitor.sources.embedded import EmbeddedSource
from monitor.sources.prefect import PrefectSource
from monitor.sources.registry import Sources, UnknownSource

SETTINGS = [
    EmbeddedSourceSettings(kind="embedded", name="local"),
    AirflowSourceSettings(kind="airflow", name="airflow-prod", url="http://127.0.0.1:9"),
    PrefectSourceSettings(kind="prefect", name="prefect", url="http://127.0.0.1:9/api"),
]


@pytest.fixture
def sources(store, data_dir):
    built = registry.build_all(
        SETTINGS,
        store=store,
        log_root=data_dir / "logs",
        runners={"local": Runner(data_dir=data_dir, source="local")},
        pipelines={"local": [Pipeline("nightly")]},
    )
    yield built
    for source in built:
        if hasattr(source, "close"):
            source.close()


def test_each_configured_source_is_built_once_in_config_order(sources):
    assert sources.names == ("local", "airflow-prod", "prefect") and len(sources) == 3
    assert [type(s) for s in sources] == [EmbeddedSource, AirflowSource, PrefectSource]
    assert sources.get("airflow-prod") is sources.get("airflow-prod")
    assert "prefect" in sources and "nope" not in sources
    assert sources.find("prefect") is sources.get("prefect") and sources.find("nope") is None


def test_an_unknown_name_is_a_typed_error_listing_the_configured_ones(sources):
    with pytest.raises(
        UnknownSource, match=r"no source named 'airflow' is configured \(configured: 'local', 'airflow-prod', 'prefect'\)"
    ) as err:
        sources.get("airflow")
    assert isinstance(err.value, DagwatchError) and err.value.configured == sources.names
    with pytest.raises(UnknownSource, match=r"\(configured: none\); add it under `sources:`"):
        Sources(()).get("local")


def test_actions_follow_the_protocols_each_source_implements(sources):
    assert all(isinstance(s, Retryable) for s in sources)
    assert [isinstance(s, Markable) for s in sources] == [False, True, False]
    assert sources.retryable("local") is sources.get("local")
    assert sources.markable("airflow-prod") is sources.get("airflow-prod")
    with pytest.raises(
        ActionUnsupported, match=r"source 'prefect' \(PrefectSource\) cannot mark_failed; sources that can: \['airflow-prod'\]"
    ):
        sources.markable("prefect")
    with pytest.raises(UnknownSource):
        sources.retryable("gone")


def test_the_embedded_source_gets_its_runner_and_pipelines(sources):
    with pytest.raises(DagwatchError, match="no run 'r-1' of 'nightly'"):  # it looked for the run: it can retry
        sources.retryable("local").clear_failed("nightly", "r-1", None, dry_run=True)


def test_two_sources_of_one_name_are_rejected(store, data_dir):
    one = registry.build(SETTINGS[0], store=store, log_root=data_dir)
    with pytest.raises(ValueError, match="two sources are named 'local'"):
        Sources([one, one])
