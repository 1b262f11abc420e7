"""POST /slack/actions: Slack interactivity (the buttons of our alert messages).

Signature-checked with the receivers' signing secrets and replay-guarded (in the database,
store/replays.py: across restarts and replicas) before anything is read. Only a Slack user mapped to an operator in the signing receiver's `operators`
may act — Ack and Silence as much as Run runbook and Retry failed tasks: the mapping is the
boundary, not the ability to click. The answer (ephemeral, to the clicking user only) goes back
at once: Ack and Silence are a write each, and the message itself is updated by the normal
notification path; a runbook is only *started* here (`Engine.start`), its steps run in the
engine's workers, and a background thread posts "started" and then the result into the alert
message's thread, bounded by the runbook's own step timeouts.

Running once does not rest on the replay guard alone: a second click (a new signature) that
starts the same runbook for the same alert joins the execution the first one created, by the
engine's run-once rule in the database.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from monitor.alerting import verbs
from monitor.alerting.notifiers import slack
from monitor.alerting.notifiers.base import DeliveryError, Receipt
from monitor.api import auth
from monitor.errors import Conflict, InvalidRequest, NotFound
from monitor.model import RunbookExecution, utcnow
from monitor.remediation.engine import Engine, RateLimited, StartRequest
from monitor.store import alerts as alert_store
from monitor.store import audit
from monitor.store import groups as group_store
from monitor.store.audit import Outcome, Via
from monitor.store.replays import StoreReplayGuard

router = APIRouter(tags=["slack"])
log = logging.getLogger(__name__)
SILENCE_FOR = timedelta(hours=1)
#: The thread report waits for the runbook's step timeouts plus this, then says how far it got.
FOLLOW_MARGIN = timedelta(minutes=1)
RUNS = (slack.ACTION_RUN_RUNBOOK, slack.ACTION_RETRY)
OURS = (*RUNS, slack.ACTION_ACK, slack.ACTION_SILENCE)
#: Each button's action in the audit log.
AUDITED = {slack.ACTION_ACK: "ack", slack.ACTION_SILENCE: "silence", slack.ACTION_RUN_RUNBOOK: "run_runbook", slack.ACTION_RETRY: "retry"}


def _verified(request: Request, body: bytes) -> str | None:
    """The signing secret that verifies this request, or None (logged without the secret)."""
    secrets: list[str] = request.app.state.slack_signing_secrets
    last: slack.SlackRequestRejected | None = None
    for secret in secrets:
        try:
            slack.verify_slack_request(secret, request.headers, body, guard=StoreReplayGuard(request.app.state.store))
            return secret
        except slack.SlackRequestRejected as exc:
            last = exc
            if exc.replayed:
                break
    log.warning("rejected a Slack request: %s", last or "no slack receiver has a signing_secret")
    return None


@router.post("/slack/actions", include_in_schema=True)
async def slack_actions(request: Request) -> Response:
    body = await request.body()
    secret = await run_in_threadpool(_verified, request, body)  # the replay guard writes to the database
    if secret is None:
        return JSONResponse({"error": "request not signed by Slack"}, status_code=401)
    try:
        click = slack.parse_click(body)
    except ValueError as exc:
        return JSONResponse({"error": f"expected a form field `payload` with Slack's block_actions JSON ({exc})"}, status_code=400)
    text = await run_in_threadpool(_answer, request.app, secret, click, auth.peer_address(request))
    if not text:
        return Response(status_code=200)  # link buttons (runbook page, dashboard) need nothing from us
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


def interactive(app: FastAPI) -> list[slack.SlackNotifier]:
    """The Slack receivers this app's service built (`create_app(notifiers=…)`)."""
    return [n for n in app.state.notifiers.values() if isinstance(n, slack.SlackNotifier)]


def _answer(app: FastAPI, secret: str, click: slack.Click, address: str) -> str:
    ours = [(action_id, value) for action_id, value in click.actions if action_id in OURS]
    if not ours:
        return ""
    receivers = [n for n in interactive(app) if n.signed_with(secret)]
    operator = next((n.operators[click.user_id] for n in receivers if click.user_id in n.operators), None)
    if operator is None:
        where = ", ".join(n.name for n in receivers) or "…"
        for action_id, raw_value in ours:
            _refused(
                app,
                _caller(app, f"slack-user:{click.user_id}", address, action_id),
                _target(action_id, raw_value),
                "not mapped to a dagwatch operator",
            )
        return (
            f"You are not mapped to a dagwatch operator (ask an admin to add your Slack id {slack.escape(click.user_id)} "
            f"to receivers[{where}].operators); nothing was done."
        )
    return " ".join(_act(app, action_id, value, _caller(app, f"slack:{operator}", address, action_id)) for action_id, value in ours)


def _caller(app: FastAPI, name: str, address: str, action_id: str) -> auth.Caller:
    """The clicking Slack user as an audit caller; the receiver's `operators` mapping, not a
    role, decides whether the click acts."""
    return auth.Caller(name, "operator", Via.SLACK, address, AUDITED[action_id], keep=app.state.access.audit_keep)


def _target(action_id: str, raw_value: str) -> str:
    try:
        value = slack.parse_action_value(raw_value)
    except ValueError:
        return "(not a dagwatch button)"
    return f"{value.runbook} for alert #{value.alert_id}" if action_id in RUNS else f"alert #{value.alert_id}"


def _refused(app: FastAPI, who: auth.Caller, target: str, reason: str) -> None:
    with app.state.store.session() as db:
        who.record(db, target=target, outcome=Outcome.REFUSED, reason=reason)


def _act(app: FastAPI, action_id: str, raw_value: str, who: auth.Caller) -> str:
    try:
        value = slack.parse_action_value(raw_value)
    except ValueError:
        return "That button is not one of dagwatch's."
    if action_id in RUNS:
        return _run(app, value, who)
    now = utcnow()
    target = f"alert #{value.alert_id}"
    try:
        with app.state.store.session() as db:
            if action_id == slack.ACTION_ACK:
                alert = verbs.ack(db, alert_id=value.alert_id, who=who.name, now=now, comment="from Slack")
                who.record(db, target=target, now=now)
                return f"Alert #{value.alert_id} acknowledged by {alert.acked_by}."
            silence = verbs.silence_alert(
                db, alert_id=value.alert_id, who=who.name, now=now, duration=SILENCE_FOR, comment=f"from Slack on alert #{value.alert_id}"
            )
            db.flush()
            who.record(db, target=target, detail=f"silence #{silence.id} for {SILENCE_FOR}", now=now)
            alert = alert_store.get(db, alert_id=value.alert_id)
            return f"Silenced {alert.kind} of {alert.pipeline or alert.source} for 1 hour (silence #{silence.id})."
    except NotFound:
        _refused(app, who, target, "the alert does not exist")
        return f"Alert #{value.alert_id} no longer exists."
    except Conflict as exc:
        _refused(app, who, target, str(exc))
        return f"Not done: {exc}."


def _run(app: FastAPI, value: slack.ActionValue, who: auth.Caller) -> str:
    """Start (or join) the button's runbook; the steps run in the engine's workers."""
    engine: Engine | None = app.state.runbook_engine
    if engine is None:
        return "Runbooks are not enabled in this dagwatch process; nothing was started."
    if not value.runbook:
        return "That button is not one of dagwatch's."
    target = f"{value.runbook} for alert #{value.alert_id}"
    try:
        started = engine.start(StartRequest(value.runbook, value.alert_id, started_by=who.name))
    except (NotFound, InvalidRequest, RateLimited) as exc:
        _refused(app, who, target, str(exc))
        return f"Not started: {exc}"
    with app.state.store.session() as db:  # after the engine's own transaction, which made the execution
        who.record(db, target=target, detail=audit.execution_detail(started.execution.id, joined=started.joined, dry_run=False))
    execution = started.execution
    if started.joined:
        state = f"already ran ({execution.status.value})" if execution.status.finished else "is already running"
        return (
            f"{execution.runbook} {state} for alert #{value.alert_id}: execution #{execution.id}, "
            f"started by {execution.started_by}; nothing new was started."
        )
    followed = _follow_in_thread(app, engine, execution, value.group_key)
    where = "its result will be posted in this alert's thread" if followed else "follow it on dagwatch"
    return f"Started runbook {execution.runbook} for alert #{value.alert_id} (execution #{execution.id}); {where}."


def _follow_in_thread(app: FastAPI, engine: Engine, execution: RunbookExecution, group_key: str) -> bool:
    """Post "started" and, when it ends, the execution's result in the alert message's thread,
    from a background thread; False when there is no thread to post in (webhook mode, the
    message not sent yet, its receiver not interactive in this process)."""
    with app.state.store.session() as db:
        groups = group_store.groups_of(db, alert_ids=[execution.alert_id]) if execution.alert_id else []
        thread = next(((g.receiver, dict(g.receipt)) for g in groups if g.group_key == group_key and g.receipt), None)
    notifier = next((n for n in interactive(app) if n.name == thread[0]), None) if thread else None
    if thread is None or notifier is None:
        log.info("runbook execution %d: no Slack thread to report to", execution.id)
        return False
    runbook = engine.runbooks[execution.runbook]
    bound = sum((step.timeout for step in runbook.steps), FOLLOW_MARGIN).total_seconds()
    link = f"{app.state.policy.base_url}/api/v1/runbooks/executions/{execution.id}"
    threading.Thread(
        target=_report,
        args=(engine, execution, notifier, thread[1], bound, link),
        name=f"dagwatch-slack-execution-{execution.id}",
        daemon=True,
    ).start()
    return True


def _report(engine: Engine, execution: RunbookExecution, notifier: slack.SlackNotifier, receipt: Receipt, bound: float, link: str) -> None:
    try:
        notifier.post_in_thread(receipt, slack.execution_started(execution))
        try:
            done = engine.wait(execution.id, timeout=bound)
        except (TimeoutError, CancelledError):  # still running past its steps' timeouts, or the engine stopped
            done = engine.get(execution.id)
        notifier.post_in_thread(receipt, slack.execution_report(done, link=link))
    except DeliveryError as exc:
        log.warning("runbook execution %d: could not post to the Slack thread: %s", execution.id, exc)
