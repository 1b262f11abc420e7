"""Runbooks started by themselves: the `runbooks.policies` of config, applied to firing alerts.

Off unless configured. Each pass looks at the firing alerts that appeared since the last pass
(an alert id watermark the caller keeps; the first pass sees every firing alert) and starts the
matching policies' runbooks; several dagwatch processes may run passes at once, since the
engine's run-once rule (a unique key in the store) makes the second start join the first. A
start refused (rate limit, alert resolved meanwhile) is logged and not retried: the rate limit
exists to stop automatic runs. Mutating steps run only where the policy says `allow_mutating`.
"""

from __future__ import annotations

import logging
from typing import Sequence

from monitor.alerting.routing import matches
from monitor.config import RunbookPolicySettings
from monitor.errors import DagwatchError
from monitor.remediation.engine import Engine, StartRequest
from monitor.remediation.runbook import alert_attributes
from monitor.store import alerts as alert_store

log = logging.getLogger(__name__)


def start_due(engine: Engine, policies: Sequence[RunbookPolicySettings], after_id: int, *, limit: int = 200) -> tuple[list[int], int]:
    """Start the policies' runbooks for firing alerts newer than `after_id` that they match;
    returns the new execution ids and the watermark for the next pass."""
    with engine.store.session() as session:
        candidates = alert_store.to_models(session, alert_store.firing_after(session, after_id=after_id, limit=limit), deliveries=False)
    started: list[int] = []
    for policy in policies:
        runbook = engine.runbooks.get(policy.runbook)
        if runbook is None:  # config validation names it; a running process just says so
            log.error("runbooks.policies names no runbook %r", policy.runbook)
            continue
        for alert in candidates:
            if not (matches(policy.match, alert_attributes(alert)) and runbook.applies_to(alert)):
                continue
            request = StartRequest(runbook.name, alert.id, started_by=f"policy:{runbook.name}", allow_mutating=policy.allow_mutating)
            try:
                result = engine.start(request)
            except DagwatchError as exc:  # rate limited, alert gone: the next pass tries again
                log.warning("policy %s could not start for alert %d: %s", runbook.name, alert.id, exc)
                continue
            if not result.joined:
                started.append(result.execution.id)
    return started, max((a.id for a in candidates), default=after_id)
