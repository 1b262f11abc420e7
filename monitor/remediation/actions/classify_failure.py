"""`classify_failure`: transient or persistent, and why — the fork of the pipeline-failure
runbook (retry only what is worth retrying).

It reads the `task_logs` step's finding when there is one (the whole log tail says more than the
alert's one line: an OOM-kill is in the log, not in the exception), else the alert's own error
and traceback. History: the same task's previous failed runs, from the alerts the store keeps;
the same error on `same_after` of them makes the failure persistent whatever the patterns say.
Extra patterns come from the step's `args.patterns` and from config (`services["patterns"]`,
the `runbooks.patterns` key), both tried before the shipped ones.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from monitor.remediation.actions.base import Finding, StepContext
from monitor.remediation.classify import SHIPPED, Pattern, classify_with_history
from monitor.store.db import Store
from monitor.store.remediation_queries import previous_failures

_LOG_KEYS = ("traceback", "log_tail", "error_line", "error")


class ClassifyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    same_after: int = Field(3, ge=1, le=100)  # this many earlier runs failing the same way → persistent
    history: int = Field(5, ge=0, le=100)  # how many earlier failed runs to compare with
    patterns: list[Pattern] = Field(default_factory=list)  # tried before config's and the shipped ones


class ClassifyFailure:
    name: ClassVar[str] = "classify_failure"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[ClassifyArgs]] = ClassifyArgs

    def run(self, ctx: StepContext, args: ClassifyArgs) -> Finding:
        patterns = [*args.patterns, *ctx.services.get("patterns", ()), *SHIPPED]
        previous = _history(ctx, args.history)
        found = classify_with_history(_failure_text(ctx), previous, patterns, same_after=args.same_after)
        data = {
            "category": found.category,
            "rule": found.rule,
            "matched": found.matched,
            "reason": found.reason,
            "history_matches": found.history_matches,
            "history_runs": len(previous),
        }
        return Finding(summary=f"{found.category} ({found.rule}): {found.reason}", data=data)


def _failure_text(ctx: StepContext) -> str:
    """The log read by an earlier step if one did (the newest such finding), else the alert's."""
    for finding in reversed(list(ctx.results.values())):
        text = _join(finding.data, _LOG_KEYS)
        if text:
            return text
    return alert_text(ctx.alert.details, ctx.alert.summary)


def alert_text(details: Mapping[str, Any], summary: str) -> str:
    """What an alert says about its failure: traceback, then the error line, else the summary."""
    return _join(details, ("traceback", "error")) or summary


def _join(data: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The non-empty texts under `keys`, in order, each once (an error line is usually the end
    of the traceback, and the traceback is usually inside the log tail)."""
    parts: list[str] = []
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip() and not any(value in part for part in parts):
            parts = [part for part in parts if part not in value] + [value]
    return "\n".join(parts)


def _history(ctx: StepContext, runs: int) -> list[str]:
    alert, store = ctx.alert, ctx.services.get("store")
    if not isinstance(store, Store) or not (alert.pipeline and alert.task_id) or runs <= 0:
        return []
    with store.session() as session:
        past = previous_failures(
            session, source=alert.source, pipeline=alert.pipeline, task_id=alert.task_id, exclude_run_id=alert.run_id, runs=runs
        )
    return [alert_text(p.details, p.summary) for p in past]
