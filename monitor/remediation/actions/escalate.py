"""`escalate`: a failure the runbook could not fix becomes a page.

Raises the alert's tier (routing it afresh, so P1 receivers hear of it) and, when it already
pages, sends it to `alerting.escalate_to`. The notification goes through the normal outbox.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from monitor.alerting import verbs
from monitor.remediation.actions.base import Finding, StepContext


class EscalateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: Literal["P1", "P2"] = "P1"
    note: str = "the runbook could not fix it"


class Escalate:
    name: ClassVar[str] = "escalate"
    mutating: ClassVar[bool] = False  # it changes dagwatch's own alert, not the pipeline
    Args: ClassVar[type[EscalateArgs]] = EscalateArgs

    def run(self, ctx: StepContext, args: EscalateArgs) -> Finding:
        if ctx.dry_run:
            return Finding(summary=f"dry run: would escalate alert {ctx.alert.id} to {args.tier}", data={"dry_run": True})
        with ctx.services["store"].session() as session:
            outcome = verbs.escalate(
                session, alert_id=ctx.alert.id, tier=args.tier, note=args.note, policy=ctx.services["policy"], now=ctx.clock()
            )
        return Finding(summary=outcome, data={"tier": args.tier})
