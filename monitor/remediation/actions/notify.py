"""`notify`: tell people what the runbook found so far, where they already look.

Two places, both about the alert the runbook runs for:

- the alert's history (`change: runbook`), which the alert page lists: always;
- the thread of the alert's Slack message, when it has one: for every alert group of the alert
  whose Slack receiver posted a message (the group's receipt: channel and ts), a reply through
  that receiver's Web API client (`SlackNotifier.post_in_thread` of the service's notifiers,
  `services["notifiers"]`).

Slack is posted to directly rather than through the outbox: an outbox notification carries an
alert state (firing, resolved, acked) that receivers render their own way, not a free text, and
the findings are a progress report that is only worth reading now; if Slack refuses, the finding
says so (ok: false) and the history note is there anyway. Not mutating: it changes nothing in a
pipeline. A dry run writes and posts nothing and shows the text it would post.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.alerting.notifiers import render
from monitor.alerting.notifiers.base import DeliveryError
from monitor.alerting.notifiers.slack import SlackNotifier
from monitor.remediation.actions.base import Finding, StepContext
from monitor.store import alerts as alert_store
from monitor.store import groups as group_store

NOTE_LIMIT = 3000
LINE_LIMIT = 300


class NotifyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field("runbook findings", max_length=200, description="The first line of the note.")
    steps: list[str] = Field(default_factory=list, description="The earlier steps to report; empty: every step so far.")
    slack: bool = Field(True, description="Also reply in the alert's Slack thread, when it has one.")


def report(ctx: StepContext, args: NotifyArgs) -> str:
    """The note: the title, then one line per reported finding."""
    chosen = [(name, ctx.results[name]) for name in args.steps if name in ctx.results] if args.steps else list(ctx.results.items())
    lines = [f"{args.title} (alert #{ctx.alert.id})"]
    lines += [
        render.truncate(f"• {name} — {'ok' if finding.ok else 'not ok'}: {render.one_line(finding.summary)}", LINE_LIMIT)
        for name, finding in chosen
    ]
    if not chosen:
        lines.append("• no step reported anything yet")
    return render.truncate("\n".join(lines), NOTE_LIMIT)


class Notify:
    name: ClassVar[str] = "notify"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[NotifyArgs]] = NotifyArgs

    def run(self, ctx: StepContext, args: NotifyArgs) -> Finding:
        text = report(ctx, args)
        if ctx.dry_run:
            return Finding(
                summary=f"dry run: would note on alert {ctx.alert.id} and its Slack thread: {render.one_line(text)}",
                data={"dry_run": True, "note": text},
            )
        with ctx.services["store"].session() as session:
            alert_store.add_history(session, alert_id=ctx.alert.id, at=ctx.clock(), change="runbook", event_id=None, note=text)
            threads = (
                {
                    (g.receiver, g.receipt["channel"], g.receipt["ts"])
                    for g in group_store.groups_of(session, alert_ids=[ctx.alert.id])
                    if g.receipt and g.receipt.get("channel") and g.receipt.get("ts")
                }
                if args.slack
                else set()
            )
        notifiers = ctx.services.get("notifiers", {})
        posted, failed = [], []
        for receiver, channel, ts in sorted(threads):
            notifier = notifiers.get(receiver)
            if not isinstance(notifier, SlackNotifier):
                continue
            try:
                notifier.post_in_thread({"channel": channel, "ts": ts}, text)
                posted.append(f"{receiver}:{channel}/{ts}")
            except DeliveryError as exc:
                failed.append(f"{receiver}: {exc}")
        where = (
            f"the alert page and {len(posted)} Slack thread(s)"
            if posted
            else "the alert page"
            if failed
            else "the alert page (no Slack thread to reply in)"
        )
        summary = f"noted on {where}" + (f"; Slack refused: {'; '.join(failed)}" if failed else "")
        return Finding(ok=not failed, summary=summary, data={"note": text, "slack_threads": posted, "slack_failed": failed})
