"""The one result shape every check returns.

The service stores, routes and renders check results without knowing which kind
of check produced them, and pipelines POST the same JSON to dagwatch. So quality,
integrity, convergence, output and drift all answer with a ``CheckResult``: a
status, a one-line summary, and one ``CheckItem`` per expectation / rule / feature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Kind(str, Enum):
    quality = "quality"
    integrity = "integrity"
    convergence = "convergence"
    output = "output"
    drift = "drift"


class Status(str, Enum):
    """Outcome of an item or a whole check.

    ``error`` means "could not be evaluated" (missing column, missing metric), which is
    not the same as a failed expectation. ``warning`` is reported but never gates.
    """

    passed = "passed"
    failed = "failed"
    error = "error"
    warning = "warning"


# Worst first: a result that could not be fully evaluated is reported as error even
# if some other item failed, because its pass/fail picture is incomplete.
_SEVERITY = {Status.error: 3, Status.failed: 2, Status.warning: 1, Status.passed: 0}


def worst(statuses: Iterable[Status], default: Status = Status.passed) -> Status:
    """The most severe status among ``statuses`` (error > failed > warning > passed)."""
    found = list(statuses)
    return max(found, key=_SEVERITY.__getitem__) if found else default


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and non-finite floats into plain JSON values.

    NaN and inf become the strings "nan", "inf", "-inf": they are meaningful in a
    convergence verdict and JSON has no literal for them.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return str(value)


class CheckItem(BaseModel):
    """One expectation, rule or feature inside a check."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="expectation id, rule name or feature name")
    status: Status
    message: str = Field("", description="why, in one line: what was expected and what was seen")
    observed: Any = Field(None, description="the observed value (JSON)")
    threshold: Any = Field(None, description="the bound the observation was held against (JSON)")
    step: int | None = Field(None, description="training step where a convergence rule fired")
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = Field(default_factory=list, description="a few offending values")
    details: dict[str, Any] = Field(default_factory=dict)


class CheckResult(BaseModel):
    """The verdict of one check run."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    name: str
    status: Status
    summary: str
    items: list[CheckItem] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the check should let the pipeline go on (passed or only warnings)."""
        return self.status in (Status.passed, Status.warning)

    @classmethod
    def from_items(cls, kind: Kind, name: str, items: list[CheckItem], details: dict[str, Any] | None = None) -> CheckResult:
        """Build a result whose status and summary follow from its items."""
        status = worst(i.status for i in items)
        counts = {s: sum(1 for i in items if i.status is s) for s in Status}
        parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]]
        bad = [i.name for i in items if i.status in (Status.failed, Status.error)]
        summary = f"{len(items)} checks: " + ", ".join(parts) if items else "nothing to check"
        if bad:
            shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
            summary += f"; not passing: {shown}"
        return cls(kind=kind, name=name, status=status, summary=summary, items=items, details=details or {})
