"""`orchestrator_health`: is the orchestrator itself well (scheduler, workers, database)?

Asked first because a sick scheduler explains a failure better than any task log, and a retry
into a broken orchestrator only fails again. An unreachable orchestrator is a finding (not ok),
not a step failure: the runbook goes on and later steps decide with `when: {health.ok: "true"}`.
"""

from __future__ import annotations

from typing import ClassVar

from monitor.remediation.actions.base import Finding, NoArgs, StepContext
from monitor.sources.base import SourceUnavailable


class OrchestratorHealth:
    name: ClassVar[str] = "orchestrator_health"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[NoArgs]] = NoArgs

    def run(self, ctx: StepContext, args: NoArgs) -> Finding:
        source = ctx.require_source()
        try:
            health = source.health()
        except SourceUnavailable as exc:
            return Finding(
                ok=False,
                summary=f"{source.name} is unreachable: {exc}",
                data={"reachable": False, "healthy": False, "problems": [str(exc)]},
            )
        problems = list(health.problems)
        summary = f"{source.name} is healthy" if health.healthy else f"{source.name} is unhealthy: {'; '.join(problems)}"
        return Finding(
            ok=health.healthy,
            summary=summary,
            data={"reachable": True, "healthy": health.healthy, "problems": problems, "details": dict(health.details)},
        )
