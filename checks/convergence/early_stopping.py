"""PyTorch Lightning ``EarlyStopping`` replayed over a recorded series.

The semantics are Lightning's, exactly, so a verdict here says what the training
job's own callback would have done (tests replay 1,000+ random sequences through
Lightning 2.6 and compare). At each validation, in this order:

1. ``check_finite`` and the value is NaN/inf -> stop (``non_finite``);
2. ``stopping_threshold`` reached, strictly (``<`` in min mode) -> stop, a success;
3. ``divergence_threshold`` passed, strictly (``>`` in min mode) -> stop;
4. improvement means ``current - min_delta' < best`` where Lightning flips the sign of
   ``min_delta`` in min mode (so: ``current + min_delta < best``); on improvement
   ``best = current`` and ``wait = 0``;
5. otherwise ``wait += 1`` and stop when ``wait >= patience``.

``best`` starts at +inf (min) / -inf (max). Comparisons are plain IEEE floats, so a
NaN never improves and never crosses a threshold, as with torch tensors.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Reason = Literal["non_finite", "stopping_threshold", "divergence_threshold", "patience"]


@dataclass(frozen=True)
class StopDecision:
    index: int  # position in the series
    value: float
    reason: Reason
    best: float
    wait: int


@dataclass(frozen=True)
class Replay:
    stop: StopDecision | None  # None: the callback never stopped
    best: float
    best_index: int | None
    wait: int
    evaluated: int


def replay_early_stopping(
    values: Iterable[float],
    *,
    mode: Literal["min", "max"] = "min",
    min_delta: float = 0.0,
    patience: int = 3,
    check_finite: bool = True,
    stopping_threshold: float | None = None,
    divergence_threshold: float | None = None,
) -> Replay:
    """Feed values to Lightning's decision rule until it stops; return where and why."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    better = operator.lt if mode == "min" else operator.gt
    delta = min_delta if mode == "max" else -min_delta  # Lightning: min_delta *= 1 if gt else -1
    best = float("inf") if mode == "min" else float("-inf")
    best_index: int | None = None
    wait = 0
    i = -1
    for i, raw in enumerate(values):
        current = float(raw)
        reason: Reason | None = None
        if check_finite and current - current != 0.0:  # NaN or +-inf (math.isfinite, inlined)
            reason = "non_finite"
        elif stopping_threshold is not None and better(current, stopping_threshold):
            reason = "stopping_threshold"
        elif divergence_threshold is not None and better(-current, -divergence_threshold):
            reason = "divergence_threshold"
        elif better(current - delta, best):
            best, best_index, wait = current, i, 0
        else:
            wait += 1
            if wait >= patience:
                reason = "patience"
        if reason is not None:
            return Replay(StopDecision(i, current, reason, best, wait), best, best_index, wait, i + 1)
    return Replay(None, best, best_index, wait, i + 1)
