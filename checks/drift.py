"""Data drift per feature: PSI over reference deciles and the two-sample KS statistic D.

At the row counts pipelines see, every KS p-value is ~0, so the gate is on the
effect sizes, D and PSI, never on p-values. Numeric features: PSI over the
reference's deciles (bins ``(q_{i-1}, q_i]``, open at both ends) and KS D.
Categorical features (strings, booleans, categories, and integers with few
distinct values): PSI over category frequencies, plus the largest frequency
difference and the categories that appeared or vanished. NaN is dropped before
binning; the change in missing rate is reported, not gated.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from checks.present import listing
from checks.result import CheckItem, CheckResult, Kind, Status

EPS = 1e-4  # floor for empty bins: PSI is infinite otherwise


class DriftThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    psi: float = Field(0.2, gt=0, description="PSI above this is drift (0.1 moderate, 0.2 significant)")
    ks: float = Field(0.1, gt=0, le=1, description="KS statistic D above this is drift (numeric only)")
    max_categories: int = Field(20, ge=2, description="integer columns with at most this many values are categorical")


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    """Population stability index of two proportion vectors (floored at ``eps``)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), eps, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def decile_edges(reference: np.ndarray) -> np.ndarray:
    """Inner bin edges: the reference's 10th..90th percentiles, duplicates merged."""
    return np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))


def binned_proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="left")  # x <= edge goes to that edge's bin
    return np.bincount(idx, minlength=len(edges) + 1) / max(len(values), 1)


def psi_numeric(reference: np.ndarray, current: np.ndarray) -> float:
    edges = decile_edges(reference)
    return psi(binned_proportions(reference, edges), binned_proportions(current, edges))


def _sorted_proportions(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``binned_proportions`` on sorted data: 9 binary searches instead of a pass over n values."""
    upto = np.searchsorted(sorted_values, edges, side="right")  # count of x <= edge
    counts = np.diff(np.concatenate([[0], upto, [len(sorted_values)]]))
    return counts / max(len(sorted_values), 1)


def psi_and_ks_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """PSI over reference deciles and KS D from already sorted samples: one sort serves both."""
    edges = decile_edges(ref_sorted)
    value = psi(_sorted_proportions(ref_sorted, edges), _sorted_proportions(cur_sorted, edges))
    return value, _ks_sorted(ref_sorted, cur_sorted)


def _ks_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """KS D of two sorted samples by one merge: walk the pooled order, the running
    difference of the two empirical CDFs peaks at D. Integer steps keep it exact."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    steps = np.cumsum(np.where(order < n, m, -n).astype(np.int64))  # (F_a - F_b) * n * m
    values = pooled[order]
    run_ends = np.append(values[1:] != values[:-1], True)  # F counts every tied value
    return float(np.abs(steps[run_ends]).max() / (n * m))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D = max |F_ref(x) - F_cur(x)| (scipy's ``ks_2samp`` statistic)."""
    a = np.sort(np.asarray(reference, dtype=np.float64))
    b = np.sort(np.asarray(current, dtype=np.float64))
    return _ks_sorted(a, b)


def category_frequencies(reference: pd.Series, current: pd.Series) -> tuple[list, np.ndarray, np.ndarray]:
    r = reference.value_counts(normalize=True, dropna=True)
    c = current.value_counts(normalize=True, dropna=True)
    cats = list(r.index.union(c.index, sort=False))
    return cats, r.reindex(cats, fill_value=0.0).to_numpy(float), c.reindex(cats, fill_value=0.0).to_numpy(float)


def is_categorical(s: pd.Series, max_categories: int) -> bool:
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == bool or not pd.api.types.is_numeric_dtype(s):
        return True
    return pd.api.types.is_integer_dtype(s) and s.nunique(dropna=True) <= max_categories


def feature_drift(name: str, reference: pd.Series, current: pd.Series, t: DriftThresholds) -> CheckItem:
    miss = {
        "missing_rate_reference": float(reference.isna().mean()) if len(reference) else 0.0,
        "missing_rate_current": float(current.isna().mean()) if len(current) else 0.0,
    }
    ref, cur = reference.dropna(), current.dropna()
    if len(ref) == 0 or len(cur) == 0:
        where, rows = ("reference", len(reference)) if len(ref) == 0 else ("current", len(current))
        return CheckItem(
            name=name,
            status=Status.error,
            details=miss,
            message=f"{name}: no non-missing values in {where} ({rows} rows, all missing)"
            if rows
            else f"{name}: no non-missing values in {where} (it has no rows)",
        )
    if is_categorical(reference, t.max_categories):
        cats, pr, pc = category_frequencies(ref, cur)
        value = psi(pr, pc)
        diff = np.abs(pr - pc)
        details = {
            **miss,
            "type": "categorical",
            "psi": value,
            "max_frequency_diff": float(diff.max()),
            "new_categories": [str(k) for k, p in zip(cats, pr) if p == 0][:10],
            "missing_categories": [str(k) for k, p in zip(cats, pc) if p == 0][:10],
        }
        drifted = value > t.psi
        msg = f"PSI {value:.4f} > {t.psi}" if drifted else f"PSI {value:.4f}"
        return CheckItem(
            name=name,
            status=Status.failed if drifted else Status.passed,
            observed={"psi": value},
            threshold={"psi": t.psi},
            details=details,
            message=msg,
        )
    r = np.sort(ref.to_numpy(dtype=np.float64))
    c = np.sort(cur.to_numpy(dtype=np.float64))
    value, d = psi_and_ks_sorted(r, c)
    details = {**miss, "type": "numeric", "psi": value, "ks": d, "mean_reference": float(r.mean()), "mean_current": float(c.mean())}
    reasons = ([f"PSI {value:.4f} > {t.psi}"] if value > t.psi else []) + ([f"KS D {d:.4f} > {t.ks}"] if d > t.ks else [])
    msg = "; ".join(reasons) if reasons else f"PSI {value:.4f}, KS D {d:.4f}"
    return CheckItem(
        name=name,
        status=Status.failed if reasons else Status.passed,
        observed={"psi": value, "ks": d},
        threshold={"psi": t.psi, "ks": t.ks},
        details=details,
        message=msg,
    )


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Iterable[str] | None = None,
    exclude: Iterable[str] = ("id",),
    thresholds: DriftThresholds | None = None,
    name: str = "drift",
) -> CheckResult:
    """Drift of each feature of ``current`` against ``reference``; drifted features fail.

    ``features`` defaults to the reference's columns minus ``exclude`` (identifiers
    always "drift"). A feature missing from either frame, or with no values in it, is an
    error item (could not evaluate) naming what that frame has.
    """
    t = thresholds or DriftThresholds()
    skip = set(exclude)
    cols = list(features) if features is not None else [c for c in reference.columns if c not in skip]
    items = []
    for col in cols:
        if col not in reference.columns or col not in current.columns:
            where, frame = ("reference", reference) if col not in reference.columns else ("current", current)
            items.append(
                CheckItem(
                    name=str(col), status=Status.error, message=f"{col}: column missing from {where}; it has: {listing(frame.columns)}"
                )
            )
            continue
        items.append(feature_drift(str(col), reference[col], current[col], t))
    result = CheckResult.from_items(
        Kind.drift,
        name,
        items,
        {
            "rows_reference": len(reference),
            "rows_current": len(current),
            "drifted": [i.name for i in items if i.status is Status.failed],
            "thresholds": t.model_dump(),
        },
    )
    drifted = result.details["drifted"]
    if drifted:
        worst = max((i for i in items if i.status is Status.failed), key=lambda i: i.details.get("psi", 0.0))
        result.summary = (
            f"{len(drifted)} of {len(items)} features drifted: {', '.join(drifted[:10])}; "
            f"largest PSI {worst.details['psi']:.3f} on {worst.name}"
        )
    return result
