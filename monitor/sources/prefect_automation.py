"""Push instead of poll: a Prefect automation that POSTs a dagwatch Event to /api/v1/events.

Prefect evaluates automations server-side on its event stream, so a failure reaches dagwatch
~0.1 s after it happens instead of one poll interval later, and still arrives when the poller
is backing off. The webhook's JSON body is rendered by Prefect's Jinja templating into exactly the
dagwatch Event shape (kind run_failed; source, pipeline, run_id as the poller names them), so a
pushed failure and the poller's later sighting of the same run share one alert fingerprint
(run_failed, source, pipeline, run_id) and dedupe into one alert.

One webhook call per failed flow run: Prefect 3 cannot put several events in one call without
losing some (checked in Prefect 3.9.1's server). An action runs once per trigger firing and the
webhook renders its payload once (`server/events/actions.py`, `CallWebhook.act`: `(payload,) =
await self._render(...)`, then one `block.call`). An event trigger's firing carries one event:
its bucket keeps a count and only the last event (`server/events/triggers.py`, `increment_bucket`
replaces `last_event`; `Firing(triggering_event=triggering_event or bucket.last_event)`), so
`threshold: N, within: T` would push the Nth failure and drop the other N-1. Compound and sequence
triggers combine firings of distinct child triggers, one (the latest) per child
(`models/composite_trigger_child_firing.py`, `upsert_child_firing` on conflict of
`child_trigger_id`), so they cannot gather N failures of one kind either. The template's `events`
(`TriggeredAction.all_events()`) is that one event plus one per child firing, and `flow_run`,
`flow`, `deployment` are read for the triggering event only. A storm of failed flow runs is
therefore for dagwatch's ingest to absorb (concurrent single-event requests), not for this hook.

`install_automation` is idempotent by name: it replaces an earlier automation and webhook block
of the same name, so re-running it after changing the dagwatch URL or token is safe. The bearer
token is stored in the webhook block's headers (a secret field on Prefect's side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from monitor.config import PrefectSourceSettings
from monitor.sources.prefect_api import PrefectApi


@dataclass(frozen=True)
class InstalledAutomation:
    automation_id: str
    block_document_id: str
    target: str


def event_template(source: str) -> str:
    """A Jinja template Prefect renders into one dagwatch Event (JSON)."""
    j = "| tojson"
    pipeline = "(flow.name ~ ('/' ~ deployment.name if deployment else ''))"
    message = "(flow_run.state.message or '')"
    return (
        "{"
        '"kind": "run_failed", '
        f'"source": {json.dumps(source)}, '
        f'"pipeline": {{{{ {pipeline} {j} }}}}, '
        f'"run_id": {{{{ (flow_run.id | string) {j} }}}}, '
        f'"occurred_at": {{{{ event.occurred.isoformat() {j} }}}}, '
        f'"summary": {{{{ ({pipeline} ~ " run " ~ flow_run.name ~ " " ~ flow_run.state.name ~ ": " ~ {message})[:3900] {j} }}}}, '
        '"details": {'
        f'"state": {{{{ flow_run.state.name {j} }}}}, '
        f'"error": {{{{ {message}[:2000] {j} }}}}, '
        f'"run_name": {{{{ flow_run.name {j} }}}}, '
        f'"run_count": {{{{ flow_run.run_count {j} }}}}, '
        f'"event_id": {{{{ (event.id | string) {j} }}}}, '
        '"pushed_by": "prefect-automation"}, '
        f'"labels": {{"flow": {{{{ flow.name {j} }}}}, "prefect_state": {{{{ flow_run.state.name {j} }}}}}}'
        "}"
    )


def _find(api: PrefectApi, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return api.request("POST", path, body)


def install_automation(
    settings: PrefectSourceSettings,
    dagwatch_url: str,
    token: str,
    *,
    name: str = "dagwatch-run-failed",
    transport: httpx.BaseTransport | None = None,
) -> InstalledAutomation:
    """Create (or replace) the webhook block and the automation on the Prefect server that
    `settings` points at; failed and crashed flow runs are then POSTed to
    `{dagwatch_url}/api/v1/events` with `Authorization: Bearer {token}`."""
    api = PrefectApi(settings, transport=transport)
    target = dagwatch_url.rstrip("/") + "/api/v1/events"
    try:
        block_type = api.request("GET", "block_types/slug/webhook")
        schemas = _find(api, "block_schemas/filter", {"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1})
        for old in _find(
            api, "block_documents/filter", {"block_documents": {"name": {"any_": [name]}}, "block_types": {"slug": {"any_": ["webhook"]}}}
        ):
            api.request("DELETE", f"block_documents/{old['id']}")
        block = api.request(
            "POST",
            "block_documents/",
            {
                "name": name,
                "block_type_id": block_type["id"],
                "block_schema_id": schemas[0]["id"],
                "data": {
                    "method": "POST",
                    "url": target,
                    "allow_private_urls": True,
                    "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                },
            },
        )
        for old in _find(api, "automations/filter", {"automations": {"name": {"any_": [name]}}}):
            api.request("DELETE", f"automations/{old['id']}")
        automation = api.request(
            "POST",
            "automations/",
            {
                "name": name,
                "description": "Pushes failed and crashed flow runs to dagwatch as run_failed events.",
                "enabled": True,
                "trigger": {
                    "type": "event",
                    "posture": "Reactive",
                    "threshold": 1,
                    "within": 0,
                    "match": {"prefect.resource.id": "prefect.flow-run.*"},
                    "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
                    "for_each": ["prefect.resource.id"],
                },
                "actions": [{"type": "call-webhook", "block_document_id": block["id"], "payload": event_template(settings.name)}],
            },
        )
    finally:
        api.close()
    return InstalledAutomation(automation_id=automation["id"], block_document_id=block["id"], target=target)
