"""The mutating API on a real server: auth, event ingest (single, batch with bad items,
Alertmanager's webhook), acknowledge, silences."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server import DagwatchProcess, create_token, free_port, wait_for

CONFIG = """
data_dir: {data_dir}
sources: []
alerting: {{group_wait: 0s, group_interval: 1s}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    config = tmp / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=tmp / "data"))
    tokens = {"operator": create_token(config, "ops"), "viewer": create_token(config, "dash", "viewer")}
    proc = DagwatchProcess(config, free_port(), tmp / "dagwatch.log")
    proc.wait_healthy()
    yield proc, tokens
    proc.stop()


def auth(t):
    return {"Authorization": f"Bearer {t}"}


EVENT = {
    "kind": "run_failed",
    "source": "airflow-prod",
    "pipeline": "train",
    "run_id": "manual__1",
    "task_id": "fit",
    "try_number": 2,
    "occurred_at": "2026-11-26T10:00:00+00:00",
    "summary": "fit failed: CUDA OOM",
    "labels": {"team": "ml"},
}


def test_mutations_need_an_operator_token(server):
    proc, tokens = server
    assert httpx.post(f"{proc.url}/api/v1/events", json=EVENT).status_code == 401
    assert httpx.post(f"{proc.url}/api/v1/events", json=EVENT, headers=auth("dw_not-a-token")).status_code == 401
    viewer = httpx.post(f"{proc.url}/api/v1/events", json=EVENT, headers=auth(tokens["viewer"]))
    assert viewer.status_code == 403 and "needs operator" in viewer.json()["detail"]
    assert httpx.post(f"{proc.url}/api/v1/silences", json={"matchers": {"pipeline": "x"}, "duration": "1h"}).status_code == 401
    assert httpx.post(f"{proc.url}/api/v1/alerts/1/ack").status_code == 401


def test_single_event_fires_an_alert_and_ack_works(server):
    proc, tokens = server
    answer = httpx.post(f"{proc.url}/api/v1/events", json=EVENT, headers=auth(tokens["operator"])).json()
    assert answer["accepted"] == 1 and answer["items"][0]["status"] == "accepted"
    [alert_id] = answer["items"][0]["fired"]
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert (alert["tier"], alert["kind"], alert["pipeline"], alert["task_id"], alert["try_number"]) == (
        "P1",
        "run_failed",
        "train",
        "fit",
        2,
    )
    acked = httpx.post(f"{proc.url}/api/v1/alerts/{alert_id}/ack", json={"comment": "looking"}, headers=auth(tokens["operator"])).json()
    assert acked["acked_by"] == "ops" and acked["acked_at"]
    resolved = httpx.post(
        f"{proc.url}/api/v1/events",
        headers=auth(tokens["operator"]),
        json={"kind": "run_succeeded", "source": "airflow-prod", "pipeline": "train", "run_id": "manual__2"},
    ).json()
    assert resolved["items"][0]["resolved"] == [alert_id]
    conflict = httpx.post(f"{proc.url}/api/v1/alerts/{alert_id}/ack", headers=auth(tokens["operator"]))
    assert conflict.status_code == 409


def test_batch_rejects_exactly_the_bad_items_and_keeps_the_good_ones(server):
    proc, tokens = server
    batch = [
        {**EVENT, "run_id": "b1"},
        {**EVENT, "kind": "exploded"},
        {**EVENT, "occurred_at": "2026-11-26T10:00:00"},  # no zone
        {"kind": "quality_failed"},  # no source
        {**EVENT, "run_id": "b2", "surprise": 1},
        {**EVENT, "kind": "quality_failed", "run_id": "b3", "details": {"check": "orders_suite"}},
    ]
    answer = httpx.post(f"{proc.url}/api/v1/events", json=batch, headers=auth(tokens["operator"])).json()
    assert [i["status"] for i in answer["items"]] == ["accepted", "rejected", "rejected", "rejected", "rejected", "accepted"]
    assert answer["accepted"] == 2 and answer["rejected"] == 4
    reasons = {i["index"]: " ".join(i["errors"]) for i in answer["items"] if i["status"] == "rejected"}
    assert "kind" in reasons[1] and "timezone" in reasons[2] and "source" in reasons[3] and "surprise" in reasons[4]
    p2 = httpx.get(f"{proc.url}/api/v1/alerts", params={"tier": "P2"}).json()
    assert any(a["details"].get("check") == "orders_suite" for a in p2)


def test_garbage_bodies_get_clear_errors(server):
    proc, tokens = server
    bad = httpx.post(
        f"{proc.url}/api/v1/events", content=b"{not json", headers={**auth(tokens["operator"]), "Content-Type": "application/json"}
    )
    assert bad.status_code == 422
    scalar = httpx.post(f"{proc.url}/api/v1/events", json=42, headers=auth(tokens["operator"]))
    assert scalar.status_code == 400 and "event object" in scalar.json()["detail"]
    huge = httpx.post(f"{proc.url}/api/v1/events", json=[EVENT] * 1001, headers=auth(tokens["operator"]))
    assert huge.status_code == 413


def test_alertmanager_webhook_fires_and_resolves(server):
    proc, tokens = server
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "dagwatch",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "AirflowSchedulerDown", "job": "airflow", "severity": "critical"},
                "annotations": {"summary": "scheduler heartbeat missing"},
                "startsAt": "2026-11-26T10:00:00Z",
                "fingerprint": "abc123",
            },
            {"status": "firing", "labels": {}},  # no alertname: still accepted as a generic alert
            {"labels": "not a map"},
        ],
    }
    answer = httpx.post(f"{proc.url}/api/v1/events/alertmanager", json=payload, headers=auth(tokens["operator"])).json()
    assert [i["status"] for i in answer["items"]] == ["accepted", "accepted", "rejected"]
    alert_id = answer["items"][0]["fired"][0]
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json()
    assert alert["kind"] == "infra_alert" and alert["source"] == "prometheus/airflow" and alert["summary"] == "scheduler heartbeat missing"
    assert alert["tier"] == "P1"  # severity=critical through alerting.severity_tiers
    label_less = httpx.get(f"{proc.url}/api/v1/alerts/{answer['items'][1]['fired'][0]}").json()
    assert label_less["kind"] == "infra_alert" and label_less["tier"] == "P2"  # never a silent P1 "source down"
    payload["alerts"] = [{**payload["alerts"][0], "status": "resolved", "endsAt": "2026-11-26T10:05:00Z"}]
    answer = httpx.post(f"{proc.url}/api/v1/events/alertmanager", json=payload, headers=auth(tokens["operator"])).json()
    assert answer["items"][0]["resolved"] == [alert_id]


def test_silences_create_list_expire(server):
    proc, tokens = server
    created = httpx.post(
        f"{proc.url}/api/v1/silences",
        headers=auth(tokens["operator"]),
        json={"matchers": {"pipeline": "~nightly_.*"}, "duration": "2h", "comment": "db migration"},
    )
    assert created.status_code == 201
    silence = created.json()
    assert silence["status"] == "active" and silence["created_by"] == "ops"
    event = {**EVENT, "pipeline": "nightly_etl", "run_id": "s1"}
    alert_id = httpx.post(f"{proc.url}/api/v1/events", json=event, headers=auth(tokens["operator"])).json()["items"][0]["fired"][0]
    listed = httpx.get(f"{proc.url}/api/v1/silences").json()
    assert [s["id"] for s in listed] == [silence["id"]]
    # the dispatcher marks it muted on its next tick
    alert = wait_for(lambda: (a := httpx.get(f"{proc.url}/api/v1/alerts/{alert_id}").json())["muted_by"] and a, limit=10)
    assert alert["muted_by"] == f"silence:{silence['id']}" and alert["notifications"] == []
    bad = httpx.post(
        f"{proc.url}/api/v1/silences", headers=auth(tokens["operator"]), json={"matchers": {"pipeline": "~("}, "duration": "1h"}
    )
    assert bad.status_code == 422
    expired = httpx.delete(f"{proc.url}/api/v1/silences/{silence['id']}", headers=auth(tokens["operator"])).json()
    assert expired["status"] == "expired"
    assert httpx.get(f"{proc.url}/api/v1/silences").json() == []
    assert httpx.delete(f"{proc.url}/api/v1/silences/99999", headers=auth(tokens["operator"])).status_code == 404


def test_check_results_fire_by_kind_and_a_pass_resolves(server):
    proc, tokens = server
    report = {
        "kind": "quality",
        "name": "orders_suite",
        "status": "failed",
        "summary": "1 of 8 failed",
        "items": [{"name": "amount_not_null", "status": "failed", "unexpected_count": 12}],
        "pipeline": "orders",
        "run_id": "r1",
        "task_id": "validate",
        "source": "airflow-prod",
    }
    answer = httpx.post(f"{proc.url}/api/v1/check-results", json=report, headers=auth(tokens["operator"]))
    assert answer.status_code == 202 and answer.json()["kind"] == "quality_failed"
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{answer.json()['fired'][0]}").json()
    assert (
        alert["tier"] == "P2"
        and alert["details"]["check"] == "orders_suite"
        and alert["details"]["not_passing"][0]["name"] == "amount_not_null"
    )
    convergence = httpx.post(
        f"{proc.url}/api/v1/check-results",
        headers=auth(tokens["operator"]),
        json={**report, "kind": "convergence", "name": "train_loss", "status": "failed", "summary": "loss is nan at step 40"},
    ).json()
    assert httpx.get(f"{proc.url}/api/v1/alerts/{convergence['fired'][0]}").json()["tier"] == "P1"
    passed = httpx.post(
        f"{proc.url}/api/v1/check-results",
        json={**report, "status": "passed", "run_id": "r2", "items": []},
        headers=auth(tokens["operator"]),
    ).json()
    assert passed["kind"] == "check_passed" and passed["resolved"] == [alert["id"]]
    assert (
        httpx.post(f"{proc.url}/api/v1/check-results", json={**report, "kind": "vibes"}, headers=auth(tokens["operator"])).status_code
        == 422
    )
    assert httpx.post(f"{proc.url}/api/v1/check-results", json=report).status_code == 401


def test_a_check_that_could_not_run_is_check_error_never_a_model_failure(server):
    """Issue 12: a log without the monitored metric is a configuration problem, not a failed model."""
    proc, tokens = server
    report = {
        "kind": "convergence",
        "name": "val_loss_gate",
        "status": "error",
        "pipeline": "trainer",
        "run_id": "r1",
        "summary": "metric val_loss is not in the log; it has: train_loss, lr",
        "source": "airflow-prod",
    }
    answer = httpx.post(f"{proc.url}/api/v1/check-results", json=report, headers=auth(tokens["operator"])).json()
    assert answer["kind"] == "check_error"
    alert = httpx.get(f"{proc.url}/api/v1/alerts/{answer['fired'][0]}").json()
    assert alert["tier"] == "P2" and "train_loss, lr" in alert["summary"]
    converged = httpx.get(f"{proc.url}/api/v1/alerts", params={"pipeline": "trainer", "kind": "convergence_failed"}).json()
    assert converged == []
    passed = httpx.post(
        f"{proc.url}/api/v1/check-results", json={**report, "status": "passed", "run_id": "r2"}, headers=auth(tokens["operator"])
    ).json()
    assert passed["resolved"] == [alert["id"]]
