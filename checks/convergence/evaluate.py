"""Apply the convergence rules to a set of metric series and give a verdict.

One item per rule; a fired rule names the step and the value that fired it. Each
rule is a small function ``(series, rule) -> CheckItem`` so it can be tested alone.
"""

from __future__ import annotations

import math

import numpy as np

from checks.convergence.early_stopping import replay_early_stopping
from checks.convergence.rules import (
    ConvergenceRules,
    EarlyStoppingRule,
    GradNormRule,
    LossSpikeRule,
    PlateauRule,
    RelativeDivergenceRule,
)
from checks.convergence.series import Metrics, Series
from checks.present import listing
from checks.result import CheckItem, CheckResult, Kind, Status, jsonable


def early_stopping_item(s: Series, rule: EarlyStoppingRule) -> CheckItem:
    replay = replay_early_stopping(
        s.values,
        mode=rule.mode,
        min_delta=rule.min_delta,
        patience=rule.patience,
        check_finite=rule.check_finite,
        stopping_threshold=rule.stopping_threshold,
        divergence_threshold=rule.divergence_threshold,
    )
    name = "early_stopping"
    details = {
        "metric": s.name,
        "evaluated": replay.evaluated,
        "best": jsonable(replay.best),
        "best_step": int(s.steps[replay.best_index]) if replay.best_index is not None else None,
    }
    stop = replay.stop
    if stop is None:
        return CheckItem(
            name=name,
            status=Status.passed,
            observed=jsonable(replay.best),
            details=details,
            message=f"{s.name}: EarlyStopping would not have stopped ({replay.evaluated} values)",
        )
    step = int(s.steps[stop.index])
    details["reason"] = stop.reason
    value = jsonable(stop.value)
    if stop.reason == "non_finite":
        status, msg, thr = Status.failed, f"{s.name} = {value} is not finite at step {step}", None
    elif stop.reason == "divergence_threshold":
        op = ">" if rule.mode == "min" else "<"
        status, thr = Status.failed, rule.divergence_threshold
        msg = f"{s.name} = {value} {op} divergence_threshold {thr} at step {step}"
    elif stop.reason == "stopping_threshold":
        op = "<" if rule.mode == "min" else ">"
        status, thr = Status.passed, rule.stopping_threshold
        msg = f"{s.name} = {value} {op} stopping_threshold {thr} at step {step}: target reached"
    else:
        status, thr = Status(rule.patience_status), rule.patience
        msg = (
            f"{s.name} did not improve by more than {rule.min_delta} for {stop.wait} validations "
            f"(patience {rule.patience}); stopped at step {step}, best {jsonable(stop.best)}"
        )
    return CheckItem(name=name, status=status, message=msg, observed=value, threshold=thr, step=step, details=details)


def relative_divergence_item(s: Series, rule: RelativeDivergenceRule) -> CheckItem:
    name = "relative_divergence"
    vals = s.values[rule.warmup :]
    steps = s.steps[rule.warmup :]
    if len(vals) == 0:
        return CheckItem(name=name, status=Status.passed, message=f"{s.name}: no points after warm-up")
    last, last_step = float(vals[-1]), int(steps[-1])
    finite = np.isfinite(vals)
    if not math.isfinite(last):
        return CheckItem(
            name=name,
            status=Status.failed,
            step=last_step,
            observed=jsonable(last),
            message=f"{s.name}: last value {jsonable(last)} is not finite (step {last_step})",
        )
    if not finite.any():
        return CheckItem(name=name, status=Status.passed, message=f"{s.name}: no finite values")
    idx = int(np.argmin(np.where(finite, vals, np.inf)) if rule.mode == "min" else np.argmax(np.where(finite, vals, -np.inf)))
    best = float(vals[idx])
    details = {"metric": s.name, "best": best, "best_step": int(steps[idx]), "factor": rule.factor}
    if best <= 0:
        return CheckItem(
            name=name,
            status=Status.passed,
            observed=last,
            details=details,
            message=f"{s.name}: best {best} <= 0, a ratio is meaningless",
        )
    if rule.mode == "min":
        bound, fired = rule.factor * best, last > rule.factor * best
    else:
        bound, fired = best / rule.factor, last < best / rule.factor
    op = ">" if rule.mode == "min" else "<"
    if fired:
        return CheckItem(
            name=name,
            status=Status.failed,
            step=last_step,
            observed=last,
            threshold=bound,
            details=details,
            message=f"{s.name} = {last:.6g} at step {last_step} {op} {rule.factor} x best {best:.6g}",
        )
    return CheckItem(
        name=name,
        status=Status.passed,
        observed=last,
        threshold=bound,
        step=last_step,
        details=details,
        message=f"{s.name} = {last:.6g} within {rule.factor} x best {best:.6g}",
    )


def grad_norm_item(s: Series, rule: GradNormRule) -> CheckItem:
    name = "grad_norm"
    vals = s.values
    bad = ~np.isfinite(vals)
    if rule.max_value is not None:
        bad |= np.where(np.isfinite(vals), vals > rule.max_value, False)
    details = {
        "metric": s.name,
        "max": jsonable(np.nanmax(np.where(np.isfinite(vals), vals, np.nan))) if np.isfinite(vals).any() else None,
        "offending": int(bad.sum()),
    }
    if bad.any():
        i = int(np.argmax(bad))
        value = float(vals[i])
        why = "is not finite" if not math.isfinite(value) else f"> max_value {rule.max_value}"
        return CheckItem(
            name=name,
            status=Status.failed,
            step=int(s.steps[i]),
            observed=jsonable(value),
            threshold=rule.max_value,
            details=details,
            message=f"{s.name} = {jsonable(value)} {why} at step {int(s.steps[i])} ({int(bad.sum())} of {len(vals)} points)",
        )
    return CheckItem(
        name=name,
        status=Status.passed,
        threshold=rule.max_value,
        details=details,
        observed=details["max"],
        message=f"{s.name}: all {len(vals)} values finite and bounded",
    )


def loss_spike_item(s: Series, rule: LossSpikeRule) -> CheckItem:
    name = "loss_spike"
    vals = s.values
    spikes: list[int] = []
    for i in range(rule.window, len(vals)):
        prev = vals[i - rule.window : i]
        prev = prev[np.isfinite(prev)]
        if len(prev) == 0 or not math.isfinite(vals[i]):
            continue  # non-finite values are the grad-norm / early-stopping rules' business
        med = float(np.median(prev))
        if med > 0 and vals[i] > rule.factor * med:
            spikes.append(i)
    details = {"metric": s.name, "spike_steps": [int(s.steps[i]) for i in spikes[:20]], "spikes": len(spikes)}
    if len(spikes) > rule.max_spikes:
        i = spikes[0]
        return CheckItem(
            name=name,
            status=Status(rule.status),
            step=int(s.steps[i]),
            observed=float(vals[i]),
            threshold=rule.factor,
            details=details,
            message=f"{len(spikes)} spike(s) in {s.name} (> {rule.factor} x median of previous "
            f"{rule.window}); first at step {int(s.steps[i])}: {float(vals[i]):.6g}",
        )
    return CheckItem(
        name=name,
        status=Status.passed,
        details=details,
        threshold=rule.factor,
        message=f"{s.name}: {len(spikes)} spike(s), {rule.max_spikes} tolerated",
    )


def plateau_item(s: Series, rule: PlateauRule) -> CheckItem:
    name = "plateau"
    vals = s.values[np.isfinite(s.values)]
    steps = s.steps[np.isfinite(s.values)]
    if len(vals) <= rule.window:
        return CheckItem(
            name=name, status=Status.passed, message=f"{s.name}: {len(vals)} finite points, plateau needs more than {rule.window}"
        )
    before, recent = vals[: -rule.window], vals[-rule.window :]
    if rule.mode == "min":
        old, new = float(before.min()), float(recent.min())
        gain = old - new
    else:
        old, new = float(before.max()), float(recent.max())
        gain = new - old
    rel = gain / abs(old) if old != 0 else (math.inf if gain > 0 else 0.0)
    details = {"metric": s.name, "best_before": old, "best_recent": new, "relative_improvement": jsonable(rel)}
    if rel < rule.min_rel_improvement:
        return CheckItem(
            name=name,
            status=Status.warning,
            step=int(steps[-1]),
            observed=jsonable(rel),
            threshold=rule.min_rel_improvement,
            details=details,
            message=f"{s.name} plateaued: last {rule.window} points improved the best by {rel:.3%} (< {rule.min_rel_improvement:.3%})",
        )
    return CheckItem(
        name=name,
        status=Status.passed,
        observed=jsonable(rel),
        threshold=rule.min_rel_improvement,
        details=details,
        message=f"{s.name} still improving ({rel:.3%} over the last {rule.window})",
    )


_RULES = (
    ("early_stopping", "monitor", early_stopping_item),
    ("relative_divergence", "metric", relative_divergence_item),
    ("grad_norm", "metric", grad_norm_item),
    ("loss_spike", "metric", loss_spike_item),
    ("plateau", "metric", plateau_item),
)


# What early stopping watches when nobody named a monitor and the default (val_loss) is not
# logged: a run that logs only its training loss is judged on that, not failed for lacking one.
FALLBACK_MONITORS = ("train_loss",)


def _has(metrics: Metrics, metric: str) -> bool:
    series = metrics.get(metric)
    return series is not None and len(series) > 0


def monitored(rule: EarlyStoppingRule, metrics: Metrics) -> tuple[EarlyStoppingRule, str | None]:
    """The early-stopping rule to apply, and the metric it stood in for (None: as written).

    A monitor the user named is kept even when absent: that is a configuration problem
    for the user to fix, never guessed around.
    """
    if "monitor" in rule.model_fields_set or _has(metrics, rule.monitor):
        return rule, None
    for candidate in FALLBACK_MONITORS:
        if _has(metrics, candidate):
            return rule.model_copy(update={"monitor": candidate}), rule.monitor
    return rule, None


def _absent(section: str, metric: str, metrics: Metrics, hint: str) -> CheckItem:
    return CheckItem(
        name=section, status=Status.error, message=f"metric {metric!r} not in the log; it has: {listing(metrics.names())}{hint}"
    )


def evaluate(metrics: Metrics, rules: ConvergenceRules | None = None, *, name: str = "convergence") -> CheckResult:
    """All enabled rules over ``metrics``.

    Early stopping always runs (Lightning's ``strict=True`` raises on a missing monitor
    too); with no monitor named and ``val_loss`` not logged it watches ``train_loss``
    and says so. A metric the log lacks is an *error* item naming the metrics it has
    (bad input, exit 2 in the CLI: never a failed model) when the rule's section was
    written in the rules file or it is early stopping's; otherwise the rule is listed
    under ``details.not_evaluated``.
    """
    rules = rules or ConvergenceRules()
    items: list[CheckItem] = []
    not_evaluated: list[str] = []
    details: dict = {"source": metrics.source, "metrics": metrics.names()}
    for section, field, fn in _RULES:
        rule = getattr(rules, section)
        if not rule.enabled:
            continue
        stood_in_for = None
        if section == "early_stopping":
            rule, stood_in_for = monitored(rule, metrics)
            details["monitor"] = rule.monitor
        metric = getattr(rule, field)
        if not _has(metrics, metric):
            if section == "early_stopping":
                items.append(_absent(section, metric, metrics, "; name the metric to watch in early_stopping.monitor"))
            elif section in rules.model_fields_set:
                items.append(_absent(section, metric, metrics, f"; set {section}.{field} or disable the section"))
            else:
                not_evaluated.append(f"{section} ({metric} absent)")
            continue
        item = fn(metrics.get(metric), rule)
        if stood_in_for is not None:
            details["monitor_fallback"] = {"wanted": stood_in_for, "used": metric}
            item = item.model_copy(
                update={
                    "message": f"watching {metric} ({stood_in_for} is not in the log and no monitor was named): {item.message}",
                    "details": {**item.details, "monitor_fallback": stood_in_for},
                }
            )
        items.append(item)
    details["not_evaluated"] = not_evaluated
    return CheckResult.from_items(Kind.convergence, name, items, details)
