"""Notification text from Jinja templates: shipped in `templates/`, replaced file by file from
the folder named in config (`templates: {folder: …}`).

Each piece of text a person reads is one small template, so changing one piece is dropping one
file of the same name into the folder. The code around the templates keeps what a template must
not decide: the message's structure, buttons and what they run, each channel's length limits,
and that text from pipelines is escaped.

Escaping follows the file name, as Jinja's `select_autoescape` does:

    *.html.j2     HTML autoescape
    *.mrkdwn.j2   every `{{ value }}` is escaped for Slack mrkdwn (`&`, `<`, `>`) unless it is
                  markup a filter built from escaped parts (`url|link(text)`). No filter marks
                  pipeline text as markup, so a task's `<!channel>` stays text whatever the
                  template does; a mention the operator writes into the template itself works.
    *.txt.j2      plain text (Slack's header, subjects, the e-mail text part, PagerDuty, Opsgenie)

The environment is sandboxed and immutable (a template reads the notification, it cannot reach
Python internals or change what the next channel renders) and undefined names are errors, so a
misspelt variable fails `dagwatch config validate` instead of sending an empty line. Every
template is compiled and rendered against sample notifications when loaded; should a replaced
template still fail on a real notification, the shipped one renders it: a template bug must not
lose a page.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from monitor.alerting.notifiers import render
from monitor.config import FolderSettings
from monitor.errors import ConfigError
from monitor.model import Alert, AlertKind, AlertStatus, Notification, NotificationAction, Tier

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "templates"
#: An error longer than this is cut before any template sees it (templates cut further).
ERROR_LIMIT = 10_000
#: What a template can raise while rendering (an undefined name, `{{ 1 / 0 }}`, a bad filter argument).
RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


@dataclass(frozen=True)
class Piece:
    """One template: what it renders, and sample values of the variables only it gets."""

    what: str
    extra: dict[str, Any] = field(default_factory=dict)


PIECES: dict[str, Piece] = {
    "slack_text.mrkdwn.j2": Piece("Slack: the message `text` (phone notifications, clients without blocks)"),
    "slack_header.txt.j2": Piece("Slack: the header block; gets `icon`", {"icon": "🔴"}),
    "slack_fact.mrkdwn.j2": Piece(
        "Slack: one fact field of the first alert; gets `label`, `value`", {"label": "Pipeline", "value": "train_ranker"}
    ),
    "slack_error.mrkdwn.j2": Piece("Slack: the error section (left out when it renders empty)"),
    "slack_links.mrkdwn.j2": Piece("Slack: the links line (left out when it renders empty)"),
    "slack_group.mrkdwn.j2": Piece("Slack: the rest of the group (left out when it renders empty)"),
    "email_subject.txt.j2": Piece("E-mail: the subject (one line, cut to 200 characters)"),
    "email.txt.j2": Piece("E-mail: the plain-text part"),
    "email.html.j2": Piece("E-mail: the HTML part"),
    "pagerduty_summary.txt.j2": Piece("PagerDuty: the incident summary (one line, cut to 1024 characters)"),
    "opsgenie_message.txt.j2": Piece("Opsgenie: the alert message (one line, cut to 130 characters)"),
    "opsgenie_description.txt.j2": Piece("Opsgenie: the alert description"),
}


class Mrkdwn(str):
    """Markup a filter built from escaped parts (a link): written out as it is."""


def _mrkdwn_output(value: Any) -> str:
    """Every `{{ … }}` of a mrkdwn template passes here: what is not already markup is escaped."""
    return value if isinstance(value, Mrkdwn) else render.escape(str(value))


def _link(url: str, text: str) -> Mrkdwn:
    return Mrkdwn(render.mrkdwn_link(str(url), str(text)))


def _environment(kind: str, folder: Path | None) -> ImmutableSandboxedEnvironment:
    loaders = [FileSystemLoader(folder)] if folder else []
    finalize: Callable[[Any], Any] | None = _mrkdwn_output if kind == "mrkdwn" else None
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader([*loaders, FileSystemLoader(SHIPPED)]),
        undefined=StrictUndefined,
        autoescape=kind == "html",
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["one_line"] = render.one_line
    env.filters["cut"] = render.truncate
    if kind == "mrkdwn":
        env.filters["link"] = _link
        # A `{% filter %}` block's output is not passed through `finalize`, and striptags
        # un-escapes HTML entities: `{% filter striptags %}{{ summary }}{% endfilter %}` would
        # turn the escaped `&lt;!channel&gt;` back into a mention.
        del env.filters["striptags"]
    return env


def _kind(name: str) -> str:
    return name.removesuffix(".j2").rsplit(".", 1)[-1]


# --- what templates see -------------------------------------------------------------------------


def _alert(notification: Notification, alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "tier": alert.tier.value,
        "kind": alert.kind.value,
        "status": alert.status.value,
        "acked": alert.acked_at is not None,
        "summary": alert.summary,
        "source": alert.source,
        "pipeline": alert.pipeline,
        "run_id": alert.run_id,
        "task_id": alert.task_id,
        "try_number": alert.try_number,
        "started_at": alert.started_at.isoformat(),
        "labels": dict(alert.labels),
        "details": alert.details,
        "where": render.where(alert),
        "error": render.error_summary(alert, ERROR_LIMIT),
        "links": render.links(notification, alert),
        "page": render.alert_page(notification, alert),
    }


def context(notification: Notification) -> dict[str, Any]:
    """The variables every template gets (README lists them); built once per notification."""
    alerts = [_alert(notification, alert) for alert in notification.alerts]
    return {
        "action": notification.action.value,
        "headline": render.headline(notification),
        "tier": render.group_tier(notification.alerts).value,
        "alerts": alerts,
        "first": alerts[0],
        "count": len(alerts),
        "group_key": notification.group_key,
        "receiver": notification.receiver,
        "base_url": notification.base_url,
    }


def samples() -> list[Notification]:
    """What every template is rendered against when loaded: a firing group with every fact and
    text a pipeline can put in, and a bare alert through every other action."""
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    full = Alert(
        id=1,
        fingerprint="sample-1",
        tier=Tier.P1,
        status=AlertStatus.FIRING,
        kind=AlertKind.TASK_FAILED,
        source="airflow-prod",
        pipeline="train_ranker",
        run_id="scheduled__2024-05-01T12:00",
        task_id="fit_model",
        try_number=3,
        summary="fit_model failed after 3 tries <!channel> & <b>",
        details={"error": "RuntimeError: CUDA out of memory", "traceback": "Traceback...\nRuntimeError: CUDA out of memory"},
        labels={"team": "ml"},
        started_at=at,
        updated_at=at,
        links={
            "orchestrator": "https://airflow.example/dags/train_ranker/grid",
            "runbook": "https://dagwatch.example/runbooks/pipeline-failure/start?alert=1",
        },
    )
    bare = Alert(
        id=2,
        fingerprint="sample-2",
        tier=Tier.P3,
        status=AlertStatus.RESOLVED,
        kind=AlertKind.SOURCE_DOWN,
        source="prefect",
        summary="source prefect is down",
        started_at=at,
        updated_at=at,
    )
    common = {"receiver": "sample", "base_url": "https://dagwatch.example", "idempotency_key": "sample"}
    return [
        Notification(id=1, action=NotificationAction.FIRING, group_key="train_ranker", alerts=[full, bare], **common),
        *(
            Notification(id=2, action=action, group_key="prefect", alerts=[bare], **common)
            for action in (NotificationAction.RESOLVED, NotificationAction.ACKNOWLEDGED, NotificationAction.TEST)
        ),
    ]


# --- loading and rendering ----------------------------------------------------------------------


class Templates:
    """The compiled templates of one folder (None: the shipped ones)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.replaced = sorted(name for name in PIECES if folder and (folder / name).is_file())
        envs = {kind: _environment(kind, folder) for kind in ("html", "mrkdwn", "txt")}
        self._compiled = {name: _compile(envs[_kind(name)], name) for name in PIECES}

    def render(self, name: str, ctx: dict[str, Any], **extra: Any) -> str:
        """`name` over the notification's `context`; a replaced template that fails here logs
        why (file and line) and the shipped one renders instead."""
        try:
            return self._render(name, ctx, extra)
        except RENDER_ERRORS as exc:
            if name not in self.replaced:
                raise
            log.warning("template %s failed, the shipped one is used: %s", name, _failure(self._compiled[name], exc))
            return shipped().render(name, ctx, **extra)

    def check(self) -> None:
        """Render every template against `samples()`: ConfigError naming the file and line."""
        for notification in samples():
            ctx = context(notification)
            for name, piece in PIECES.items():
                try:
                    self._render(name, ctx, piece.extra)
                except RENDER_ERRORS as exc:
                    template = self._compiled[name]
                    raise ConfigError(
                        template.filename,
                        None,
                        f"rendering a sample {notification.action.value} notification failed: {_failure(template, exc)}",
                    ) from None

    def _render(self, name: str, ctx: dict[str, Any], extra: dict[str, Any]) -> str:
        return self._compiled[name].render({**ctx, **extra})


def _compile(env: ImmutableSandboxedEnvironment, name: str) -> Template:
    try:
        return env.get_template(name)
    except TemplateSyntaxError as exc:
        raise ConfigError(exc.filename or name, None, f"line {exc.lineno}: {exc.message}") from None


def _failure(template: Template, exc: BaseException) -> str:
    """`line N: Type: message`, the line being the template's (Jinja puts it in the traceback)."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == template.filename]
    where = f"line {lines[-1]}: " if lines else ""
    return f"{where}{type(exc).__name__}: {exc}"


@cache
def shipped() -> Templates:
    """The templates in the package, checked once per process."""
    templates = Templates(None)
    templates.check()
    return templates


def load(settings: FolderSettings | None) -> Templates:
    """The templates `templates:` in config names, checked; the shipped ones when it names none.

    A file whose name is no template is refused (a misspelt name would be silently unused),
    except helpers for `{% import %}`, whose names start with `_`."""
    if settings is None:
        return shipped()
    folder = Path(settings.folder)
    if not folder.is_dir():
        raise ConfigError(str(folder), None, "templates.folder is not a folder")
    unknown = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in PIECES and not p.name.startswith(("_", ".")))
    if unknown:
        raise ConfigError(
            str(folder / unknown[0]),
            None,
            f"not a template name; the templates are {', '.join(PIECES)} (helpers for {{% import %}} start with _)",
        )
    templates = Templates(folder)
    templates.check()
    return templates
