"""The extension point for runbook steps: one `Action` protocol, one module per action.

An action gets what a person on call would have in front of them — the alert, the source it came
from, the runbook's parameters and what the earlier steps found — and returns a `Finding`: a
structured answer the engine stores, later steps' `when:` conditions read, and pages render.
Actions do not catch their own failures to make them look fine: raise `ActionFailed` with a
reason (or let a foreign exception out) and the engine records the step as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Mapping, Protocol

from pydantic import BaseModel, ConfigDict, Field

from monitor.errors import DagwatchError
from monitor.model import Alert
from monitor.sources.base import Source


class ActionFailed(DagwatchError):
    """The step could not do its job; `reason` says why in words an operator can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Finding(BaseModel):
    """What one step found or did. `data` is the structured part conditions read
    (`when: {classify.category: transient}` reads `data["category"]` of step `classify`)."""

    model_config = ConfigDict(extra="forbid")

    ok: bool = True
    summary: str = Field("", max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict)


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StepContext:
    """Everything a step may use; I/O handles are passed in, never looked up."""

    alert: Alert
    source: Source | None
    params: Mapping[str, Any]
    results: Mapping[str, Finding]
    dry_run: bool
    clock: Callable[[], datetime]
    services: Mapping[str, Any] = field(default_factory=dict)  # store, policy, … for actions that need them

    def require_source(self) -> Source:
        if self.source is None:
            raise ActionFailed(f"source {self.alert.source!r} is not configured in dagwatch, so it cannot be asked or acted on")
        return self.source


class Action(Protocol):
    #: The name runbook files use (`action: task_logs`).
    name: ClassVar[str]
    #: True when the action changes something outside dagwatch (clear, trigger, webhook):
    #: skipped in dry-run, and only an operator or a policy that allows it may run it.
    mutating: ClassVar[bool]
    #: The step's `args:`, validated when the runbook file is loaded.
    Args: ClassVar[type[BaseModel]]

    def run(self, ctx: StepContext, args: BaseModel) -> Finding: ...
