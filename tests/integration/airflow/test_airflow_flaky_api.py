"""One blip does not fail a poll: dagwatch's Airflow source polled through a proxy that answers 500
or stalls 5 s on one request in ten (tests/fakes/flaky_proxy.py, seeded) in front of the real
Airflow 3: every poll returns, and returns what polling Airflow directly returns."""

from __future__ import annotations

from tests.fakes.flaky_proxy import FlakyProxy
from tests.integration.airflow.conftest import source_for

POLLS = 30


def test_every_poll_through_a_flaky_api_succeeds(airflow3, api3):
    run_id = api3.trigger("dw_fail_always")
    assert api3.wait_run("dw_fail_always", run_id)["state"] == "failed"
    with FlakyProxy(airflow3.url, seed=8, every=10, stall=5.0) as proxy:
        # A read timeout below the stall: a stalled request is abandoned and retried, not waited out.
        source = source_for(airflow3, url=proxy.url, timeout=3)
        for _ in range(POLLS):  # a collector cycle each: any SourceUnavailable fails the test here
            source.health()
            source.definitions()
            flaky = {s.run_id: s for s in source.poll(None)}
    assert proxy.count("500") >= 5 and proxy.count("stall") >= 5, proxy.faults
    direct = {s.run_id: s for s in source_for(airflow3).poll(None)}
    assert flaky[run_id].tasks == direct[run_id].tasks
    assert flaky[run_id].tasks[0].error == "ValueError: dagwatch-example: source table raw.events is missing"
