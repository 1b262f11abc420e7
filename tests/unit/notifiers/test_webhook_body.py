"""The webhook body and its signature, built without sockets."""

from __future__ import annotations

import json

from monitor.alerting.notifiers import webhook
from monitor.model import Alert, NotificationAction
from tests.fakes.alerts import alert, notification


def test_body_is_the_notification_with_alerts_as_alert_json():
    n = notification(NotificationAction.RESOLVED, alerts=[alert(1), alert(2)])
    document = json.loads(webhook.body(n))
    assert (document["action"], document["group_key"], document["idempotency_key"]) == (
        "resolved", "train_ranker/fit_model", "dagwatch-7")
    assert [Alert.model_validate(a) for a in document["alerts"]] == n.alerts


def test_signature_is_hmac_sha256_of_the_exact_bytes():
    raw = webhook.body(notification())
    header = webhook.signature("k", raw)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert webhook.verify_signature("k", raw, header)
    assert not webhook.verify_signature("k", raw + b" ", header)
    assert not webhook.verify_signature("other", raw, header)
    assert not webhook.verify_signature("k", raw, None)


def test_headers_carry_idempotency_key_and_signature_only_with_a_secret():
    raw = webhook.body(notification())
    assert webhook.headers(notification(), raw, None)["Idempotency-Key"] == "dagwatch-7"
    assert "X-Dagwatch-Signature" not in webhook.headers(notification(), raw, None)
    assert webhook.headers(notification(), raw, "k")["X-Dagwatch-Signature"] == webhook.signature("k", raw)
