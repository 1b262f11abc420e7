"""The whole JSON API fuzzed from its own OpenAPI schema (issue 11, "must show"): schemathesis
generates valid and invalid requests for every operation and sends them, with an operator's token
so that acks, silences, events and runbook starts are exercised, to a real `dagwatch up` on
loopback. No answer may be a 5xx and every documented answer must match its schema — including
each 422, which names what is wrong.

Bounded for CI by a fixed number of examples per operation (hypothesis settings below; the
phases run are explicit examples, the schema's boundary "coverage" cases and generated ones),
so the run's length does not depend on the machine's speed, and no deadline fails it on time."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from monitor.alerting.ingest import AlertPolicy
from monitor.api.app import create_app
from monitor.store import open_store
from tests.integration.server import DagwatchProcess, create_token, free_port

CONFIG = """
data_dir: {data_dir}
server: {{max_body_bytes: 1048576}}
alerting: {{group_wait: 0s, group_interval: 1s}}
sources:
  - name: embedded
    kind: embedded
    poll_interval: 1s
    pipelines:
      - ref: monitor.demo.pipeline:pipeline
        params: {{scenario: cycle, rows: 1000}}
receivers:
  - name: console
    kind: console
"""
CHECKS = [not_a_server_error, response_schema_conformance]
EXAMPLES = 60  # per operation
STATEFUL_SCENARIOS = 60

SEED_EVENTS = [
    {"kind": "run_failed", "source": "embedded", "pipeline": "demo", "run_id": "r1", "task_id": "train", "summary": "train failed"},
    {"kind": "drift_detected", "source": "fuzz", "pipeline": "scoring", "summary": "feature drift"},
    {"kind": "task_retrying", "source": "fuzz", "pipeline": "etl", "run_id": "r2", "task_id": "load", "summary": "retrying"},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `dagwatch up` with alerts, a silence and a runbook to act on (so ids the fuzzer
    draws sometimes exist), and an operator's Authorization header."""
    tmp = tmp_path_factory.mktemp("fuzz")
    config = tmp / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp / "data"))
    auth = {"Authorization": f"Bearer {create_token(config, 'fuzzer')}"}
    proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
    try:
        proc.wait_healthy()
        seeded = httpx.post(f"{proc.url}/api/v1/events", json=SEED_EVENTS, headers=auth)
        assert seeded.status_code == 200 and seeded.json()["accepted"] == len(SEED_EVENTS), seeded.text
        silence = httpx.post(f"{proc.url}/api/v1/silences", json={"matchers": {"pipeline": "=etl"}, "duration": "1h"}, headers=auth)
        assert silence.status_code == 201, silence.text
        yield proc, auth
    finally:
        proc.stop()
    tracebacks = [line for line in proc.log_path.read_text().splitlines() if line.startswith("Traceback")]
    assert not tracebacks, f"the server logged {len(tracebacks)} traceback(s) while fuzzed: see {proc.log_path}"


def _openapi() -> dict:
    """The schema the server publishes at /openapi.json, from the same code, read at collection
    so that each operation is its own test (the routes do not depend on the configuration)."""
    app = create_app(open_store("sqlite://"), AlertPolicy(receivers=[], base_url="http://127.0.0.1:8000"))
    return app.openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_within_its_schema_and_never_5xx(case, served):
    proc, auth = served
    case.call_and_validate(base_url=proc.url, headers=auth, checks=CHECKS, timeout=30)


def test_a_typed_422_is_a_sentence_the_schema_allows(served):
    """Regression: a silence ending before it starts is refused by `verbs.silence` (InvalidRequest)
    with one sentence, which the published schema once did not allow (it documented only
    FastAPI's list of invalid fields), so a generated client would choke on it."""
    proc, auth = served
    case = schema["/api/v1/silences"]["POST"].Case(
        body={"matchers": {"pipeline": "=etl"}, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}
    )
    response = case.call_and_validate(base_url=proc.url, headers=auth, checks=CHECKS)
    assert response.status_code == 422 and "ends_at must be after starts_at" in response.json()["detail"]


def test_linked_operations_in_sequence_answer_within_their_schema(served):
    """Stateful: chains of calls the schema links (an event's alert ids into GET and ack of that
    alert, a silence's id into its DELETE, an execution's id into its GET), so the fuzzer reaches
    rows that exist, not only ids that 404."""
    proc, auth = served

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": proc.url, "headers": auth, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
    )


def test_the_fuzzed_schema_is_the_served_one_and_covers_the_api(served):
    """The fuzzer reaches every route a client uses (a route left out of the schema would be left
    out of the fuzzing too), and what it fuzzes is what the server publishes."""
    proc, _ = served
    served_schema = httpx.get(f"{proc.url}/openapi.json").json()
    assert served_schema == _openapi()
    paths = set(served_schema["paths"])
    assert {
        "/api/v1/events",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/silences/{silence_id}",
        "/api/v1/runbooks/{name}/executions",
        "/slack/actions",
        "/api/v1/check-results",
    } <= paths
