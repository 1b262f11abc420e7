"""The service's dispatcher wakes when a group falls due, not only on commits and its periodic
tick: a `group_wait` or `group_interval` ends between ticks. Here the periodic tick is made a
minute long, so a delivery that waited for it would not come within the test's bound."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from monitor import service as service_module
from monitor.alerting import ingest
from monitor.config import Settings
from monitor.service import Service
from tests.fakes.alerts import task_failed
from tests.fakes.httpserver import RecordingServer
from tests.integration.server import wait_for


@pytest.fixture
def hook():
    with RecordingServer() as server:
        yield server


def test_a_group_is_sent_when_its_wait_ends_not_at_the_next_periodic_tick(tmp_path, hook, monkeypatch):
    monkeypatch.setattr(service_module, "DISPATCH_INTERVAL", timedelta(minutes=1))
    settings = Settings(
        data_dir=tmp_path,
        sources=[],
        receivers=[{"name": "hook", "kind": "webhook", "url": hook.url}],
        routes=[{"match": {}, "receivers": ["hook"]}],
        alerting={"group_wait": "2s", "group_interval": "2s"},
    )
    service = Service(settings)
    service.start()
    try:
        started = time.monotonic()
        ingest.submit(service.store, [task_failed("a", pipeline="etl")], service.policy)
        wait_for(lambda: len(hook.requests) == 1, limit=30)
        assert time.monotonic() - started >= 2  # not before its group_wait
        ingest.submit(service.store, [task_failed("b", pipeline="etl")], service.policy)  # within group_interval: waits for it
        wait_for(lambda: len(hook.requests) == 2, limit=30)
        assert [a["task_id"] for a in hook.requests[1].json()["alerts"]] == ["a", "b"]
    finally:
        service.stop()
