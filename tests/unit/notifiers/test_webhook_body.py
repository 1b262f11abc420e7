"""The webhook body and its signature, built without sockets."""

from __future__ import annotations

import json

from monitor.alerting.notifiers import webhook
from monitor.model import Alert, NotificationAction
from tests.fakes.alerts import alert, notification


def test_body_is_the_notification_with_alerts_as_alert_json():
    n = notification(NotificationAction.RESOLVED, alerts=[alert(1), alert(2)])
    document = json.loads(webhook.body(n))
    assert (document["action"], document["group_key"], document["idempotency_key"]) == ("resolved", "train_ranker/fit_model", "dagwatch-7")
    assert [Alert.model_validate(a) for a in document["alerts"]] == n.alerts


def test_body_is_strict_compact_utf8_json_with_its_keys_in_order():
    failed = alert(1).model_copy(update={"summary": "fit ✗ «loss»", "details": {"loss": float("nan"), "lr": 1e-5}})
    raw = webhook.body(notification(alerts=[failed, alert(2)]))

    def not_json(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    document = json.loads(raw, parse_constant=not_json)
    assert list(document) == ["version", "id", "receiver", "action", "group_key", "idempotency_key", "title", "alerts"]
    assert raw.startswith(b'{"version":"1","id":') and '"summary":"fit ✗ «loss»"'.encode() in raw  # compact, not escaped
    assert document["alerts"][0]["details"] == {"loss": None, "lr": 1e-5}
    assert [a["id"] for a in document["alerts"]] == [1, 2]


def test_signature_is_hmac_sha256_of_the_timestamp_and_the_exact_bytes():
    raw = webhook.body(notification())
    header = webhook.signature("k", 1_800_000_000, raw)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    now = 1_800_000_000 + 10
    assert webhook.verify_signature("k", raw, header, "1800000000", now=now)
    assert not webhook.verify_signature("k", raw + b" ", header, "1800000000", now=now)
    assert not webhook.verify_signature("other", raw, header, "1800000000", now=now)
    assert not webhook.verify_signature("k", raw, None, "1800000000", now=now)
    assert not webhook.verify_signature("k", raw, header, "1800000001", now=now)  # the timestamp is signed
    assert not webhook.verify_signature("k", raw, header, None, now=now)


def test_a_captured_request_replayed_later_is_refused():
    raw = webhook.body(notification())
    sent = webhook.headers(notification(), raw, "k", now=1_800_000_000)
    stamp, header = sent["X-Dagwatch-Timestamp"], sent["X-Dagwatch-Signature"]
    assert webhook.verify_signature("k", raw, header, stamp, now=1_800_000_000 + 299)
    assert not webhook.verify_signature("k", raw, header, stamp, now=1_800_000_000 + 301)


def test_headers_carry_idempotency_key_and_signature_only_with_a_secret():
    raw = webhook.body(notification())
    assert webhook.headers(notification(), raw, None)["Idempotency-Key"] == "dagwatch-7"
    assert "X-Dagwatch-Signature" not in webhook.headers(notification(), raw, None)
    signed = webhook.headers(notification(), raw, "k", now=1_800_000_000)
    assert signed["X-Dagwatch-Timestamp"] == "1800000000"
    assert signed["X-Dagwatch-Signature"] == webhook.signature("k", 1_800_000_000, raw)
