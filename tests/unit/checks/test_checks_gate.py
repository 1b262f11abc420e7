"""The gate against a real HTTP server on loopback, and offline."""

import logging
import socket

import pytest

from checks import CheckFailed, CheckItem, CheckResult, DataReadError, Kind, Status, gate
from checks.gating import REPORT_PATH
from tests.fakes.httpserver import RecordingServer


class Receiver(RecordingServer):
    """A dagwatch stand-in: records POSTed check results, answers with ``status``."""

    def __init__(self, status=202):
        super().__init__(status)
        self.start()

    @property
    def received(self):
        return [(r.path, r.headers, r.json()) for r in self.requests]

    def close(self):
        self.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def result(status):
    return CheckResult(
        kind=Kind.quality, name="train_data", status=status, summary=f"it {status.value}", items=[CheckItem(name="x", status=status)]
    )


def test_passing_check_is_reported_and_returned(receiver):
    out = gate(
        lambda: result(Status.passed),
        url=receiver.url + "/",
        pipeline="train",
        run_id="r1",
        task_id="validate",
        token="s3cret",
        labels={"team": "ml"},
    )
    assert out.status is Status.passed
    path, headers, body = receiver.received[0]
    assert path == REPORT_PATH and headers["Authorization"] == "Bearer s3cret"
    assert (body["pipeline"], body["run_id"], body["task_id"], body["labels"]) == ("train", "r1", "validate", {"team": "ml"})
    assert CheckResult.model_validate({k: body[k] for k in CheckResult.model_fields}) == out
    assert body["reported_at"].endswith("+00:00")


@pytest.mark.parametrize("status", [Status.failed, Status.error])
def test_failing_check_is_reported_then_raises(receiver, status):
    with pytest.raises(CheckFailed) as info:
        gate(result(status), url=receiver.url)
    assert info.value.result.status is status
    assert receiver.received[0][2]["status"] == status.value


def test_warning_does_not_block(receiver):
    assert gate(result(Status.warning), url=receiver.url).status is Status.warning


def test_offline_or_refused_reports_are_logged_never_raised(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="checks.gating"):
        assert gate(result(Status.passed), url=f"http://127.0.0.1:{port}").ok
        with pytest.raises(CheckFailed):  # the check decides, not the reporting
            gate(result(Status.failed), url=f"http://127.0.0.1:{port}")
    assert "could not report check result 'train_data'" in caplog.text


def test_rejected_report_is_logged(caplog):
    r = Receiver(status=500)
    try:
        with caplog.at_level(logging.WARNING, logger="checks.gating"):
            assert gate(result(Status.passed), url=r.url).ok
        assert "HTTP 500" in caplog.text
    finally:
        r.close()


def test_airflow_context_from_environment(receiver, monkeypatch):
    monkeypatch.setenv("DAGWATCH_URL", receiver.url)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "train_dag")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "check_data")
    gate(result(Status.passed))
    body = receiver.received[0][2]
    assert (body["pipeline"], body["run_id"], body["task_id"]) == ("train_dag", "manual__1", "check_data")


def test_no_url_means_no_report(monkeypatch):
    monkeypatch.delenv("DAGWATCH_URL", raising=False)
    assert gate(result(Status.passed)).ok


def test_input_error_is_reported_as_error_and_propagates(receiver):
    def broken():
        raise DataReadError("/data/x.csv: data file not found")

    with pytest.raises(DataReadError):
        gate(broken, url=receiver.url, kind=Kind.quality, name="train_data")
    body = receiver.received[0][2]
    assert body["status"] == "error" and "data file not found" in body["summary"]
