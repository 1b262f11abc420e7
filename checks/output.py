"""Output quality: is the new model good enough, and no worse than the one deployed?

Metrics come either from predictions (numpy arrays of labels, predicted labels and
scores; computed here, binary classification) or from numbers the training job
already reported. Each metric is held against an absolute floor and, when the
deployed model's metrics are given, against that model minus ``max_regression``.
Latency percentiles are held against budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from checks.errors import CheckInputError, ConfigError
from checks.result import CheckItem, CheckResult, Kind, Status


class OutputThresholds(BaseModel):
    """Floors and budgets; every metric here is "higher is better"."""

    model_config = ConfigDict(extra="forbid")

    minimum: dict[str, float] = Field(default_factory=dict, description="metric -> lowest acceptable value")
    max_regression: float = Field(0.01, ge=0, description="largest drop allowed below the deployed model")
    latency_ms: dict[Literal["p50", "p95", "p99"], float] = Field(default_factory=dict, description="percentile -> budget in milliseconds")


def load_thresholds(path: str | Path) -> OutputThresholds:
    import json

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        doc = __import__("yaml").safe_load(text) if p.suffix in (".yaml", ".yml") else json.loads(text)
        return OutputThresholds.model_validate(doc or {})
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: thresholds file not found", path=str(p)) from exc
    except ValidationError as exc:
        raise ConfigError(f"{p}: invalid thresholds: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", path=str(p)) from exc
    except Exception as exc:
        raise ConfigError(f"{p}: cannot parse thresholds: {exc}", path=str(p)) from exc


def _binary(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise CheckInputError(f"{what} must be one-dimensional, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise CheckInputError(f"{what} must hold only 0 and 1 (binary classification)")
    return y.astype(bool)


def accuracy(y_true, y_pred) -> float:
    t, p = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    _same_length(t, p)
    return float((t == p).mean()) if len(t) else float("nan")


def f1(y_true, y_pred) -> float:
    """F1 of the positive class; 0.0 when there are no true and no predicted positives' overlap."""
    t, p = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    _same_length(t, p)
    tp = int((t & p).sum())
    denom = int(t.sum()) + int(p.sum())
    return 2 * tp / denom if denom else 0.0


def roc_auc(y_true, y_score) -> float:
    """ROC AUC by the rank statistic (Mann-Whitney U), ties counted half."""
    t = _binary(y_true, "y_true")
    s = np.asarray(y_score, dtype=np.float64)
    _same_length(t, s)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise CheckInputError("AUC needs both classes in y_true")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _same_length(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise CheckInputError(f"labels and predictions differ in length ({len(a)} vs {len(b)})")


def metrics_from_predictions(y_true, y_pred=None, y_score=None, *, threshold: float = 0.5) -> dict[str, float]:
    """accuracy and f1 from predicted labels (or scores cut at ``threshold``), auc from scores."""
    if y_pred is None and y_score is None:
        raise CheckInputError("need y_pred or y_score")
    if y_pred is None:
        y_pred = (np.asarray(y_score, dtype=np.float64) >= threshold).astype(int)
    out = {"accuracy": accuracy(y_true, y_pred), "f1": f1(y_true, y_pred)}
    if y_score is not None:
        out["auc"] = roc_auc(y_true, y_score)
    return out


def check_output(
    thresholds: OutputThresholds,
    *,
    metrics: Mapping[str, float] | None = None,
    y_true=None,
    y_pred=None,
    y_score=None,
    deployed: Mapping[str, float] | None = None,
    latencies_ms=None,
    name: str = "output",
) -> CheckResult:
    """Hold model metrics (given, or computed from predictions) and latencies against ``thresholds``."""
    values = dict(metrics or {})
    if y_true is not None:
        values.update(metrics_from_predictions(y_true, y_pred, y_score))
    items: list[CheckItem] = []
    for metric, floor in thresholds.minimum.items():
        if metric not in values:
            items.append(
                CheckItem(
                    name=metric,
                    status=Status.error,
                    threshold=floor,
                    message=f"metric {metric!r} not available (have {', '.join(sorted(values))})",
                )
            )
            continue
        v = float(values[metric])
        ok = v >= floor  # NaN fails
        items.append(
            CheckItem(
                name=metric,
                status=Status.passed if ok else Status.failed,
                observed=v,
                threshold=floor,
                message=f"{metric} = {v:.4f} {'>=' if ok else '<'} {floor}",
            )
        )
        if deployed is not None and metric in deployed:
            ref = float(deployed[metric])
            bound = ref - thresholds.max_regression
            ok = v >= bound
            items.append(
                CheckItem(
                    name=f"{metric}_vs_deployed",
                    status=Status.passed if ok else Status.failed,
                    observed=v,
                    threshold=bound,
                    details={"deployed": ref, "delta": v - ref},
                    message=f"{metric} = {v:.4f} vs deployed {ref:.4f} ({v - ref:+.4f}; allowed -{thresholds.max_regression})",
                )
            )
    if thresholds.latency_ms:
        if latencies_ms is None or len(latencies_ms) == 0:
            items.append(CheckItem(name="latency", status=Status.error, message="latency budgets set but no latencies given"))
        else:
            lat = np.asarray(latencies_ms, dtype=np.float64)
            for pct, budget in sorted(thresholds.latency_ms.items()):
                v = float(np.percentile(lat, float(pct[1:])))
                ok = v <= budget
                items.append(
                    CheckItem(
                        name=f"latency_{pct}",
                        status=Status.passed if ok else Status.failed,
                        observed=v,
                        threshold=budget,
                        message=f"{pct} = {v:.1f} ms {'<=' if ok else '>'} budget {budget} ms",
                    )
                )
    return CheckResult.from_items(Kind.output, name, items, {"metrics": values, "deployed": dict(deployed or {})})
