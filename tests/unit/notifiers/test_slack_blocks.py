"""Slack Block Kit messages, built without sockets; checked against the fake's block limits."""

from __future__ import annotations

import json

from monitor.alerting.notifiers import slack
from monitor.model import AlertKind, ExecutionStatus, NotificationAction, RunbookExecution, RunbookStep, StepStatus
from monitor.remediation.runbook import load_all
from tests.fakes.alerts import STARTED, alert, notification
from tests.fakes.slack import validate_blocks

SHIPPED = list(load_all().values())


def _actions(blocks):
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_firing_message_has_facts_error_links_and_its_buttons():
    blocks = slack.blocks(notification())
    assert validate_blocks(blocks) is None
    assert blocks[0]["type"] == "header" and "[P1] FIRING" in blocks[0]["text"]["text"]
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    for fact in ("P1", "train_ranker", "fit_model", "*Try*\n3"):
        assert fact in fields
    assert any("CUDA out of memory" in b.get("text", {}).get("text", "") for b in blocks)
    context = next(b for b in blocks if b["type"] == "context")["elements"][0]["text"]
    assert "<http://airflow.test/dags/train_ranker/grid|Orchestrator>" in context
    buttons = _actions(blocks)
    assert [b["action_id"] for b in buttons] == [slack.ACTION_RUNBOOK, slack.ACTION_ACK, slack.ACTION_SILENCE]
    assert buttons[0]["url"].startswith("http://dagwatch.test/runbooks/")
    assert all(slack.parse_action_value(b["value"]) == (1, "train_ranker/fit_model", None) for b in buttons)


def test_run_buttons_for_a_failed_task_name_their_runbook_and_ask_first():
    buttons = {b["action_id"]: b for b in _actions(slack.blocks(notification(), SHIPPED))}
    assert list(buttons) == [slack.ACTION_RUNBOOK, slack.ACTION_RUN_RUNBOOK, slack.ACTION_RETRY, slack.ACTION_ACK, slack.ACTION_SILENCE]
    assert slack.parse_action_value(buttons[slack.ACTION_RUN_RUNBOOK]["value"]) == (1, "train_ranker/fit_model", "pipeline-failure")
    assert slack.parse_action_value(buttons[slack.ACTION_RETRY]["value"]).runbook == "retry-failed"
    for action_id in (slack.ACTION_RUN_RUNBOOK, slack.ACTION_RETRY, slack.ACTION_SILENCE):
        assert {"title", "text", "confirm", "deny"} <= set(buttons[action_id]["confirm"])
    assert "confirm" not in buttons[slack.ACTION_ACK]


def test_run_buttons_only_where_a_runbook_applies_and_the_alert_fires():
    def ids(note, runbooks=SHIPPED):
        return [b["action_id"] for b in _actions(slack.blocks(note, runbooks))]

    failed = alert(links={})  # links.runbook is not needed for the buttons that run one
    assert ids(notification(alerts=[failed])) == [slack.ACTION_RUN_RUNBOOK, slack.ACTION_RETRY, slack.ACTION_ACK, slack.ACTION_SILENCE]
    assert ids(notification(alerts=[alert(kind=AlertKind.TASK_STUCK, links={})])) == [slack.ACTION_ACK, slack.ACTION_SILENCE]
    assert ids(notification(NotificationAction.ACKNOWLEDGED, alerts=[failed])) == [
        slack.ACTION_RUN_RUNBOOK,
        slack.ACTION_RETRY,
        slack.ACTION_SILENCE,
    ]
    assert ids(notification(NotificationAction.RESOLVED)) == []
    # Retry runs retry-failed: without that runbook there is no Retry button, and Run runbook never runs it.
    assert ids(notification(alerts=[failed]), [r for r in SHIPPED if r.name != "retry-failed"]) == [
        slack.ACTION_RUN_RUNBOOK,
        slack.ACTION_ACK,
        slack.ACTION_SILENCE,
    ]
    assert ids(notification(alerts=[failed]), [r for r in SHIPPED if r.name == "retry-failed"]) == [
        slack.ACTION_RETRY,
        slack.ACTION_ACK,
        slack.ACTION_SILENCE,
    ]


def test_execution_report_lists_every_step_in_one_line_each():
    execution = RunbookExecution(
        id=12,
        runbook="pipeline-failure",
        alert_id=1,
        attempt=1,
        source="embedded",
        dry_run=False,
        status=ExecutionStatus.FAILED,
        started_by="slack:alice",
        started_at=STARTED,
        result="step logs failed",
        steps=[
            RunbookStep(
                position=0,
                name="health",
                action="orchestrator_health",
                mutating=False,
                status=StepStatus.SUCCEEDED,
                summary="healthy\n(2 workers)",
            ),
            RunbookStep(position=1, name="logs", action="task_logs", mutating=False, status=StepStatus.FAILED, summary="<!channel> gone"),
            RunbookStep(position=2, name="clear", action="clear_failed", mutating=True, status=StepStatus.SKIPPED),
        ],
    )
    text = slack.execution_report(execution, link="http://dagwatch.test/api/v1/runbooks/executions/12")
    lines = text.splitlines()
    assert lines[0].startswith("❌ runbook *pipeline-failure* (execution #12, started by slack:alice) failed: step logs failed")
    assert lines[1:4] == ["• health — succeeded: healthy (2 workers)", "• logs — failed: &lt;!channel&gt; gone", "• clear — skipped"]
    assert lines[4] == "<http://dagwatch.test/api/v1/runbooks/executions/12|execution #12>"


def test_untrusted_text_is_escaped():
    blocks = slack.blocks(notification(alerts=[alert(details={"error": "<!channel> <http://evil|click> & co"})]))
    text = json.dumps(blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_big_group_stays_within_slack_limits():
    many = [alert(i, summary="x" * 400, details={"error": "e" * 20_000}) for i in range(1, 40)]
    blocks = slack.blocks(notification(alerts=many))
    assert validate_blocks(blocks) is None
    listing = next(b for b in blocks if b["type"] == "section" and "…and" in b.get("text", {}).get("text", ""))
    assert "and 29 more" in listing["text"]["text"]


def test_action_value_round_trip_and_rejects_foreign_values():
    value = slack.action_value(alert(42), "g" * 5000)
    assert len(value) <= 2000 and slack.parse_action_value(value)[0] == 42
    for bad in ("{}", "[1]", '{"alert_id": "1"}'):
        try:
            slack.parse_action_value(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_thread_reply_names_the_alerts():
    assert slack.thread_reply(notification(NotificationAction.RESOLVED, alerts=[alert(1), alert(2)])) == "✅ Resolved: #1, #2"


def test_event_data_cannot_mention_the_channel_or_disguise_a_link():
    """Issue 11: `<!channel>` in a summary reached the top-level `text` (read as mrkdwn), and a URL
    from details.url could end Slack's `<url|text>` early to show one address and open another."""
    evil = alert(
        summary="<!channel> <@U024BE7LH> disk full <https://evil.example|https://airflow.test>",
        links={"orchestrator": "https://airflow.test/x|Orchestrator> <https://evil.example", "dashboard": "http://dagwatch.test/alerts/1"},
    )
    note = notification(alerts=[evil, alert(2, summary="<!here> too")])
    text = slack.fallback_text(note)
    assert "<!channel>" not in text and "<@U024BE7LH>" not in text and "&lt;!channel&gt;" in text
    mrkdwn = json.dumps(_mrkdwn(slack.blocks(note)))  # plain_text (the header) is never parsed by Slack
    for forged in ("<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil.example"):
        assert forged not in mrkdwn
    assert "|Orchestrator>" not in mrkdwn  # that URL was no web URL: no link at all
    assert slack.mrkdwn_link("https://a.test/x|y>z", "a <b>") == "<https://a.test/x%7Cy&gt;z|a &lt;b&gt;>"


def _mrkdwn(value):
    if isinstance(value, dict):
        found = [value["text"]] if value.get("type") == "mrkdwn" else []
        return found + [t for v in value.values() for t in _mrkdwn(v)]
    if isinstance(value, list):
        return [t for v in value for t in _mrkdwn(v)]
    return []


def test_only_web_links_are_kept_on_an_alert():
    """A `javascript:` URL in details.url would run in the browser of whoever clicks the link."""
    for bad in (
        "javascript:alert(document.cookie)",
        "JaVaScRiPt://x/%0aalert(1)",
        "data:text/html,<script>x</script>",
        "http://a.test/x y",
        "https://",
        "//evil.example/x",
        'http://a.test/"onmouseover=x',
    ):
        assert "orchestrator" not in alert(links={"orchestrator": bad}).links, bad
    assert alert(links={"orchestrator": "https://airflow.test/dags/x/grid?run_id=a%20b"}).links["orchestrator"].startswith("https://")
