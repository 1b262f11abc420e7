"""The shipped templates render what the notifiers rendered before templates existed.

`golden/before_templates.json` was recorded from the hand-written renderers (commit before the
templates came in) over the cases below: plain, grouped, every action, hostile text, missing
facts and oversized groups. A change to a shipped template, to a filter or to the facts handed
to templates shows up here as a diff of what people receive. Re-record only on purpose:
`DAGWATCH_RECORD_GOLDEN=1 pytest tests/unit/notifiers/test_golden.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from monitor.alerting.notifiers import email, pagerduty, slack
from monitor.model import AlertKind, Notification, NotificationAction, Tier
from monitor.remediation.runbook import load_all
from tests.fakes.alerts import alert, notification

GOLDEN = Path(__file__).parent / "golden" / "before_templates.json"
RECORD = os.environ.get("DAGWATCH_RECORD_GOLDEN") == "1"
SHIPPED = list(load_all().values())
ROUTING_KEY = "r" * 32

HOSTILE = alert(
    9,
    summary="<!channel> <@U024BE7LH> disk full\n<https://evil.example|https://airflow.test> & <script>x</script>",
    pipeline="p<b>|x",
    task_id="t&<!here>",
    details={"error": "<!channel> <http://evil|click> & co ```\n<script>alert(1)</script>"},
    links={
        "orchestrator": "https://airflow.test/x|Orchestrator> <https://evil.example",
        "dashboard": "http://dagwatch.test/alerts/9?a=1&b=<2>",
        "runbook": "javascript:alert(1)",
    },
)


def cases() -> dict[str, Notification]:
    many = [alert(i, summary=f"summary {i} " + "x" * 300, details={"error": "e" * 3000}, tier=Tier.P2) for i in range(1, 61)]
    return {
        "firing": notification(),
        "group": notification(
            alerts=[
                alert(1, tier=Tier.P2),
                alert(2, tier=Tier.P1, task_id="evaluate"),
                alert(3, tier=Tier.P3, task_id=None, run_id=None, try_number=None),
            ]
        ),
        "resolved": notification(NotificationAction.RESOLVED, alerts=[alert(1), alert(2)]),
        "acknowledged": notification(NotificationAction.ACKNOWLEDGED),
        "test": notification(
            NotificationAction.TEST, alerts=[alert(0, kind=AlertKind.POLICY_VIOLATION, summary="Test notification", details={}, links={})]
        ),
        "hostile": notification(alerts=[HOSTILE, alert(2, summary="<!here> too & <b>")]),
        "bare": notification(
            alerts=[alert(4, links={}, details={}, pipeline=None, run_id=None, task_id=None, try_number=None, kind=AlertKind.SOURCE_DOWN)]
        ),
        "traceback_only": notification(alerts=[alert(5, details={"traceback": "Traceback\n  f()\nValueError: <x> & y"})]),
        "stuck": notification(alerts=[alert(6, kind=AlertKind.TASK_STUCK, details={"reason": "running for 3h"})]),
        "big": notification(alerts=many),
    }


def rendered(note: Notification) -> dict[str, Any]:
    """Everything a person reads, per channel, as the channels build it."""
    return {
        "slack_blocks": slack.blocks(note, SHIPPED),
        "slack_text": slack.fallback_text(note),
        "email_subject": email.subject(note),
        "email_text": email.plain_text(note),
        "email_html": email.html_body(note),
        "pagerduty_event": pagerduty.build_event(note, ROUTING_KEY),
    }


def _record() -> dict[str, Any]:
    return json.loads(json.dumps({name: rendered(note) for name, note in cases().items()}, ensure_ascii=False))


if RECORD:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(_record(), indent=1, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("case", list(cases()))
def test_shipped_templates_render_what_was_sent_before(case):
    expected = json.loads(GOLDEN.read_text())[case]
    now = json.loads(json.dumps(rendered(cases()[case]), ensure_ascii=False))
    for part in expected:
        assert now[part] == expected[part], f"{case}: {part} differs from the recording"
