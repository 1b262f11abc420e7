"""Notification templates: shipped, replaced from a folder, escaped by default, checked on load."""

from __future__ import annotations

import json
import logging
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.alerting.notifiers import build, email, opsgenie, pagerduty, slack, templating
from monitor.alerting.notifiers.templating import PIECES, SHIPPED, Templates, load
from monitor.cli import app
from monitor.config import FolderSettings, OpsgenieReceiverSettings, load_settings
from monitor.errors import ConfigError
from tests.fakes.alerts import alert, notification

EVIL = "<!channel> <https://evil.example|click> & <script>x</script>"


def folder(tmp_path: Path, **files: str) -> FolderSettings:
    """A templates folder holding `files` (keyword `slack_text` → slack_text.mrkdwn.j2, etc.)."""
    names = {
        "email_txt": "email.txt.j2",
        "email_html": "email.html.j2",
        **{name.split(".", 1)[0]: name for name in PIECES if not name.startswith("email.")},
    }
    for key, text in files.items():
        (tmp_path / names.get(key, key)).write_text(text)
    return FolderSettings(folder=str(tmp_path))


def test_every_shipped_file_is_a_known_template_and_renders_the_samples():
    assert sorted(p.name for p in SHIPPED.iterdir()) == sorted(PIECES)
    templating.shipped().check()


def test_a_file_in_the_folder_replaces_the_shipped_one_of_that_name_only(tmp_path):
    templates = load(
        folder(
            tmp_path,
            slack_text="{{ first.pipeline }} broke ({{ count }})",
            email_subject="[{{ tier }}] {{ first.task_id }} on {{ first.source }}",
        )
    )
    assert templates.replaced == ["email_subject.txt.j2", "slack_text.mrkdwn.j2"]
    note = notification()
    assert slack.fallback_text(note, templates) == "train_ranker broke (1)"
    assert email.subject(note, templates) == "[P1] fit_model on airflow-prod"
    assert email.plain_text(note, templates) == email.plain_text(note)  # not replaced: shipped
    assert [b["text"]["text"] for b in slack.blocks(note, templates=templates)[:1]] == ["🔴 [P1] FIRING: fit_model failed after 3 tries"]


def test_pipeline_text_is_escaped_in_mrkdwn_whatever_the_template_does(tmp_path):
    """`<!channel>` from a task's error must not page a channel: no filter un-escapes it, while a
    mention the operator writes into the template itself is theirs to make."""
    templates = load(
        folder(
            tmp_path,
            slack_text="<!here> {{ first.summary }} {{ first.summary|safe }} {{ first.summary|string }} "
            "{{ first.page|link(first.summary) }} {{ first.summary ~ 'x' }}",
        )
    )
    text = slack.fallback_text(notification(alerts=[alert(summary=EVIL)]), templates)
    assert text.startswith("<!here> ")
    rest = text.removeprefix("<!here> ")
    for forged in ("<!channel>", "<https://evil.example", "<script>"):
        assert forged not in rest, text
    assert "&lt;!channel&gt;" in rest and "<http://dagwatch.test/alerts/1|&lt;!channel&gt;" in rest


def test_no_filter_block_turns_escaped_text_back_into_markup(tmp_path):
    """A `{% filter %}` block's output skips the escaping of `{{ }}`; striptags would un-escape it."""
    with pytest.raises(ConfigError, match="line 1: No filter named 'striptags'"):
        load(folder(tmp_path, slack_text="{% filter striptags %}{{ first.summary }}{% endfilter %}"))
    templates = load(folder(tmp_path, slack_text="{% filter upper %}{{ first.summary }}{% endfilter %}"))
    assert "<!" not in slack.fallback_text(notification(alerts=[alert(summary=EVIL)]), templates)


def test_html_is_autoescaped_and_plain_text_is_not(tmp_path):
    templates = load(
        folder(tmp_path, email_html='<p>{{ first.summary }}</p><a href="{{ first.page }}">x</a>', email_txt="{{ first.summary }}")
    )
    mail = email.message(notification(alerts=[alert(summary=EVIL)]), "f@x", ["t@x"], templates)
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert "<script>" not in parsed.get_body(("html",)).get_content()
    assert "&lt;script&gt;x&lt;/script&gt;" in parsed.get_body(("html",)).get_content()
    assert parsed.get_body(("plain",)).get_content().strip() == EVIL


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(folder(tmp_path, email_txt="{{ headline }}\n\n{% for alert in alerts %}\n{{ alert.id }\n"))
    assert str(caught.value).startswith(f"{tmp_path / 'email.txt.j2'}: line 4: ")


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("ok\n{{ first.no_such_fact }}", 2, "no_such_fact"),
        ("{{ headline }}\n{{ count / 0 }}", 2, "ZeroDivisionError"),
        ("{{ first.__class__.__mro__ }}", 1, "__class__"),  # the sandbox hides internals
        ("{{ alerts.append(1) }}", 1, "SecurityError"),  # and refuses to change the notification
    ],
)
def test_a_sample_render_failure_names_the_file_and_line(tmp_path, text, line, words):
    with pytest.raises(ConfigError) as caught:
        load(folder(tmp_path, pagerduty_summary=text))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'pagerduty_summary.txt.j2'}: rendering a sample firing notification failed: line {line}: ")
    assert words in message


def test_unknown_names_are_refused_and_underscore_helpers_are_importable(tmp_path):
    (tmp_path / "slack_txt.mrkdwn.j2").write_text("{{ headline }}")
    with pytest.raises(ConfigError, match=r"slack_txt.mrkdwn.j2: not a template name; the templates are slack_text.mrkdwn.j2"):
        load(FolderSettings(folder=str(tmp_path)))
    (tmp_path / "slack_txt.mrkdwn.j2").unlink()
    templates = load(
        folder(
            tmp_path,
            **{"_macros.j2": "{% macro where(a) %}{{ a.pipeline }}/{{ a.task_id }}{% endmacro %}"},
            pagerduty_summary='{% import "_macros.j2" as m %}{{ m.where(first) }}: {{ headline }}',
        )
    )
    event = pagerduty.build_event(notification(), "r" * 32, templates=templates)
    assert event["payload"]["summary"] == "train_ranker/fit_model: [P1] FIRING: fit_model failed after 3 tries"
    with pytest.raises(ConfigError, match="not a folder"):
        load(FolderSettings(folder=str(tmp_path / "nope")))


def test_a_replaced_template_failing_on_a_real_notification_falls_back_to_the_shipped_one(tmp_path, caplog):
    """The samples have at most two alerts; this group has three, the third without an owner label."""
    templates = load(folder(tmp_path, slack_text="{% if count > 2 %}{{ alerts[2].labels.owner }}{% endif %}{{ headline }}"))
    bare = notification(alerts=[alert(1), alert(2), alert(3)])
    with caplog.at_level(logging.WARNING, logger=templating.__name__):
        text = slack.fallback_text(bare, templates)
    assert text == slack.fallback_text(bare)
    assert "template slack_text.mrkdwn.j2 failed, the shipped one is used: line 1: UndefinedError" in caplog.text


def test_channel_limits_hold_whatever_a_template_renders(tmp_path):
    long = "{% for i in range(5000) %}x\n{% endfor %}"
    templates = load(
        folder(
            tmp_path,
            slack_header=long,
            slack_text=long,
            email_subject=long,
            pagerduty_summary=long,
            opsgenie_message=long,
            slack_group=long,
        )
    )
    note = notification()
    blocks = slack.blocks(note, templates=templates)
    assert len(blocks[0]["text"]["text"]) == slack.HEADER_LIMIT
    assert all(len(b["text"]["text"]) <= slack.SECTION_LIMIT for b in blocks if b["type"] == "section" and "text" in b)
    assert len(slack.fallback_text(note, templates)) == 3000
    assert len(email.subject(note, templates)) == email.SUBJECT_LIMIT and "\n" not in email.subject(note, templates)
    assert len(pagerduty.trigger_payload(note, templates)["summary"]) == pagerduty.SUMMARY_LIMIT
    settings = OpsgenieReceiverSettings(kind="opsgenie", name="og", api_key="k")
    call = opsgenie.calls(note, "fingerprint")[0]
    assert len(opsgenie.create_body(note, call, settings, templates)["message"]) == opsgenie.MESSAGE_LIMIT


def test_an_empty_body_piece_leaves_its_block_out(tmp_path):
    templates = load(folder(tmp_path, slack_error="", slack_links="{# no links #}"))
    kinds = [b["type"] for b in slack.blocks(notification(), templates=templates)]
    assert kinds == ["header", "section", "actions"]


def test_config_names_the_folder_and_the_service_and_validate_use_it(tmp_path):
    templates_dir = tmp_path / "tpl"
    templates_dir.mkdir()
    folder(templates_dir, slack_text="custom {{ first.pipeline }}")
    config = tmp_path / "dagwatch.yaml"
    config.write_text(
        f"templates: {{folder: {templates_dir}}}\n"
        "receivers: [{name: sl, kind: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}]\n"
    )
    settings = load_settings(config)
    assert settings.templates == FolderSettings(folder=str(templates_dir))
    notifier = build(settings.receivers, templates=settings.templates)["sl"]
    assert isinstance(notifier._templates, Templates) and notifier._templates.replaced == ["slack_text.mrkdwn.j2"]

    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "1 template(s) replaced" in result.output
    (templates_dir / "email.html.j2").write_text("<p>{{ first.summray }}</p>")
    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 2
    assert f"{templates_dir / 'email.html.j2'}: rendering a sample firing notification failed: line 1: UndefinedError" in result.output
    assert "summray" in result.output


def test_what_templates_see_is_plain_data():
    ctx = templating.context(notification(alerts=[alert(1), alert(2, task_id=None)]))
    json.dumps(ctx)  # no models, no methods: only what the README lists
    assert set(ctx) == {"action", "headline", "tier", "alerts", "first", "count", "group_key", "receiver", "base_url"}
    assert [label for label, _ in ctx["alerts"][1]["where"]] == ["Source", "Pipeline", "Run", "Try"]
