"""The README's alert JSON is the shape `model.Alert` serves: same keys, and it validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

from monitor.model import Alert, NotificationStatus, NotificationView

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def documented() -> dict:
    block = re.search(r"An alert \(`GET /api/v1/alerts/\{id\}`.*?```json\n(.*?)```", README, re.S)
    assert block, "the README lost its alert example"
    return json.loads(block.group(1))


def test_the_documented_alert_has_every_field_and_no_other():
    alert = documented()
    assert set(alert) == set(Alert.model_fields)
    assert set(alert["notifications"][0]) == set(NotificationView.model_fields)


def test_the_documented_alert_is_one_the_api_could_serve():
    parsed = Alert.model_validate(documented())
    assert parsed.links["runbook"].endswith("/start?alert_id=42")


def test_every_notification_status_is_documented_and_no_other():
    sentence = README[README.index("a notification's `status` is") :].split(".")[0]
    sentence = re.sub(r"\([^)]*\)", "", sentence.removeprefix("a notification's `status` is"))
    listed = {word.strip() for word in re.split(r",| or ", sentence) if word.strip()}
    assert listed == {status.value for status in NotificationStatus}
