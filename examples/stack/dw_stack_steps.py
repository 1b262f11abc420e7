"""The work of the compose stack's example pipelines, shared by its Airflow DAG and its Prefect flow.

`airflow_dags/dw_stack_train.py` and `prefect_flows/dw_stack_flow.py` only wire these steps into
their orchestrator, so both fail in the same ways, the ways the embedded demo
(`monitor/demo/pipeline.py`) shows on-call engineers:

    healthy     every step passes
    transient   `train` loses its parameter server on try 1; the retry resumes from the
                checkpoint and succeeds                          → task retrying (P3), resolved
    persistent  `features` hits an upstream schema change; every try fails the same way
                                                                 → task/run failed (P1)
    nan_loss    a poisoned batch turns the gradient into NaN     → convergence_failed (P1)
    bad_data    5 % of feature_1 arrives blank                   → quality_failed (P2)

Scheduled runs rotate through CYCLE (the demo's order) by their scheduled time, so every run of
one slot, and its retries, play the same scenario. Needs numpy and dagwatch's `checks` package
only (the stack's Airflow and Prefect images add both), never Airflow or Prefect: the
orchestrator passes in the try number and the run's ids.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from checks import CheckItem, CheckResult, Kind, Status

SCENARIOS = ("healthy", "transient", "persistent", "nan_loss", "bad_data")
CYCLE = ("persistent", "healthy", "transient", "nan_loss", "healthy", "bad_data", "healthy")
COLUMNS = ["id", "feature_0", "feature_1", "feature_2", "feature_3", "label"]
ROWS = 1200
EPOCHS = 20
# Same schema as a convergence rules file (checks/README.md): NaN/inf and divergence fail.
CONVERGENCE_RULES = {
    "early_stopping": {"monitor": "train_loss", "mode": "min", "patience": 5, "check_finite": True},
    "grad_norm": {"metric": "train_grad_norm", "max_value": 100.0},
    "relative_divergence": {"metric": "train_loss", "factor": 3.0},
}


class FeatureStoreError(Exception):
    """The persistent failure: a retry meets the same missing column."""


def choose(scenario: str, scheduled: datetime | None, period: timedelta) -> str:
    """`cycle` → the CYCLE entry of the run's schedule slot; a named scenario → itself."""
    if scenario != "cycle":
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)} or 'cycle'")
        return scenario
    slot = int(scheduled.timestamp() // period.total_seconds()) if scheduled else 0
    return CYCLE[slot % len(CYCLE)]


def dagwatch_token() -> str | None:
    """DAGWATCH_TOKEN, else the file DAGWATCH_TOKEN_FILE names (the stack's token job writes it)."""
    if os.environ.get("DAGWATCH_TOKEN"):
        return os.environ["DAGWATCH_TOKEN"]
    file = os.environ.get("DAGWATCH_TOKEN_FILE")
    if file and Path(file).is_file():
        return Path(file).read_text().strip() or None
    return None


def run_dir(root: str | Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    folder = Path(root) / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_data(folder: Path, scenario: str, seed: int = 7) -> str:
    """The input file: 4 standardised features, a label linear in them plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ROWS, 4))
    y = (x @ np.array([1.5, -2.0, 1.0, 0.5]) + 0.5 * rng.standard_normal(ROWS) > 0).astype(int)
    blank = set(rng.choice(ROWS, size=ROWS // 20, replace=False).tolist()) if scenario == "bad_data" else set()
    path = folder / "input.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for i in range(ROWS):
            feats = [f"{v:.6f}" for v in x[i]]
            if i in blank:
                feats[1] = ""
            out.writerow([i, *feats, int(y[i])])
    return str(path)


def _read(path: str):
    import numpy as np

    return np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)


def input_quality(path: str) -> CheckResult:
    """Data quality gate: no missing features, binary labels, enough rows."""
    import numpy as np

    data = _read(path)
    items = [
        CheckItem(
            name="row_count",
            status=Status.passed if len(data) >= ROWS // 2 else Status.failed,
            observed=len(data),
            threshold=ROWS // 2,
            message=f"{len(data)} rows",
        )
    ]
    for i, col in enumerate(COLUMNS[1:5], start=1):
        missing = int(np.isnan(data[:, i]).sum())
        items.append(
            CheckItem(
                name=f"{col}_not_null",
                status=Status.failed if missing else Status.passed,
                observed=missing,
                threshold=0,
                unexpected_count=missing,
                message=f"{col}: {missing} missing of {len(data)}",
            )
        )
    bad = int((~np.isin(data[:, -1], (0.0, 1.0))).sum())
    items.append(
        CheckItem(
            name="label_values",
            status=Status.failed if bad else Status.passed,
            unexpected_count=bad,
            message=f"label: {bad} values outside {{0, 1}}",
        )
    )
    return CheckResult.from_items(Kind.quality, "stack_input", items, {"data": path})


def features(path: str, scenario: str) -> str:
    """Join the feature store; in `persistent` its schema changed under us, on every try."""
    if scenario == "persistent":
        raise FeatureStoreError("feature store has no column 'user_embedding_v2' (the upstream schema changed); retrying will not help")
    return path


def train(path: str, folder: Path, scenario: str, try_number: int) -> str:
    """Logistic regression by gradient descent, a checkpoint per epoch (a retry resumes), one JSON
    metrics line per epoch in metrics.jsonl, which the convergence gate reads."""
    import numpy as np

    data = _read(path)
    x, y = np.hstack([data[:, 1:5], np.ones((len(data), 1))]), data[:, 5]
    checkpoint, metrics = folder / "state.npz", folder / "metrics.jsonl"
    w, start = np.zeros(x.shape[1]), 0
    if checkpoint.exists():
        saved = np.load(checkpoint)
        w, start = saved["w"], int(saved["epoch"]) + 1
        print(f"resuming from the checkpoint after epoch {start - 1}")
    else:
        metrics.unlink(missing_ok=True)
    for epoch in range(start, EPOCHS):
        if scenario == "transient" and epoch == 3 and try_number == 1:
            raise ConnectionError("lost connection to the parameter server at epoch 3 (a network blip)")
        with np.errstate(all="ignore"):
            p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
            grad = x.T @ (p - y) / len(y)
            if scenario == "nan_loss" and epoch >= 8:
                grad = grad * np.nan  # a poisoned batch (fp16 overflow, a division by zero...)
            w = w - 0.5 * grad
            p = np.clip(1 / (1 + np.exp(-np.clip(x @ w, -30, 30))), 1e-7, 1 - 1e-7)
            loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        with metrics.open("a") as log:  # NaN is written as the token readers expect
            log.write(json.dumps({"step": epoch, "split": "train", "loss": loss, "grad_norm": float(np.linalg.norm(grad))}) + "\n")
        np.savez(checkpoint, w=w, epoch=epoch)
    return str(metrics)


def convergence(metrics_path: str) -> CheckResult:
    """Convergence gate: finite loss, no divergence, bounded gradient norm."""
    from checks.convergence import ConvergenceRules, evaluate, read_jsonl

    return evaluate(read_jsonl(metrics_path), ConvergenceRules.model_validate(CONVERGENCE_RULES))
