"""A Prefect 3 flow that trains a tiny model and gates it with dagwatch's `checks` library.

    python gated.py [SCENARIO] [WORKDIR]        # PREFECT_API_URL, DAGWATCH_URL, DAGWATCH_TOKEN set

Flow `dw-gated-train`: make_data → validate_input → train → check_convergence → evaluate → deploy.
Each gate is `checks.gate(...)` inside a task: the check runs, its result is POSTed to
`{DAGWATCH_URL}/api/v1/check-results` (best effort: an unreachable dagwatch is logged, never
raised), and a failing check raises `checks.CheckFailed`, so Prefect marks the task and the flow
run Failed and nothing after the gate runs. The report carries pipeline = flow name, run_id =
flow run id, task_id = task name, i.e. the same ids dagwatch's Prefect poller uses.

Scenarios (the `scenario` parameter):

    healthy       every gate passes, the model is "deployed"      → resolves earlier check alerts
    bad_data      5% of feature_1 is blank                         → quality_failed (P2) at validate_input
    nan_loss      a poisoned batch turns the gradient into NaN     → convergence_failed (P1) at check_convergence
    low_accuracy  the training labels are shuffled (no signal)     → output_failed (P2) at evaluate

A passing report of the same check (same pipeline and check name, any run) resolves its alert, so
the next run whose gate passes clears it.

Install: the Prefect worker's environment needs `checks` and numpy (no pandas, no Great
Expectations: the input check here is a custom numpy check, to show that `gate` takes any
callable returning a `CheckResult`). Either `pip install dagwatch` (brings everything, GX
included) or put the repository root on PYTHONPATH and `pip install numpy pydantic httpx pyyaml`.
Set DAGWATCH_URL and DAGWATCH_TOKEN (`dagwatch token create --name prefect --role operator`)
where the flow runs.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.runtime import flow_run, task_run

from checks import CheckItem, CheckResult, Kind, Status, gate

FLOW_NAME = "dw-gated-train"
SCENARIOS = ("healthy", "bad_data", "nan_loss", "low_accuracy")
COLUMNS = ["id", "feature_0", "feature_1", "feature_2", "feature_3", "label"]
MIN_ROWS = 1000
EPOCHS = 30
# Convergence rules (same schema as a rules YAML file, see checks/README.md).
RULES = {
    "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 5, "check_finite": True},
    "grad_norm": {"metric": "train_grad_norm", "max_value": 100.0},
    "relative_divergence": {"metric": "train_loss", "factor": 3.0},
    "loss_spike": {"metric": "train_loss", "window": 5, "factor": 3.0},
}
OUTPUT = {"minimum": {"accuracy": 0.8, "auc": 0.85}, "max_regression": 0.05}


def _gate(check, **kw):
    """`checks.gate` with the ids dagwatch's Prefect source uses; URL and token from the env."""
    return gate(check, pipeline=flow_run.flow_name, run_id=flow_run.id, task_id=task_run.task_name, **kw)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def read_csv(path: str) -> np.ndarray:
    """The data file as a float matrix; blank cells become NaN."""
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    if header != COLUMNS:
        raise ValueError(f"{path}: columns {header}, expected {COLUMNS}")
    return np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)


def input_quality(path: str) -> CheckResult:
    """A custom quality check (numpy only): columns, row count, no missing features, binary labels."""
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    items = [
        CheckItem(
            name="columns",
            status=Status.passed if header == COLUMNS else Status.failed,
            observed=header,
            threshold=COLUMNS,
            message=f"columns {header}",
        )
    ]
    if header != COLUMNS:
        return CheckResult.from_items(Kind.quality, "train_input", items, {"data": path})
    data = read_csv(path)
    rows = len(data)
    items.append(
        CheckItem(
            name="row_count",
            status=Status.passed if rows >= MIN_ROWS else Status.failed,
            observed=rows,
            threshold=MIN_ROWS,
            message=f"{rows} rows (need >= {MIN_ROWS})",
        )
    )
    for i, col in enumerate(COLUMNS[1:5], start=1):
        missing = int(np.isnan(data[:, i]).sum())
        items.append(
            CheckItem(
                name=f"{col}_not_null",
                status=Status.failed if missing else Status.passed,
                observed=missing,
                threshold=0,
                unexpected_count=missing,
                message=f"{col}: {missing} missing of {rows}",
            )
        )
    labels = data[:, -1]
    bad = labels[~np.isin(labels, (0.0, 1.0))]
    items.append(
        CheckItem(
            name="label_values",
            status=Status.failed if len(bad) else Status.passed,
            unexpected_count=len(bad),
            unexpected_examples=[float(v) for v in bad[:5]],
            message=f"label: {len(bad)} values outside {{0, 1}}",
        )
    )
    return CheckResult.from_items(Kind.quality, "train_input", items, {"data": path})


@task
def make_data(workdir: str, scenario: str, rows: int = 1500) -> str:
    """Write the input file: 4 standardised features, a label linear in them plus noise."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, 4))
    y = (x @ np.array([1.5, -2.0, 1.0, 0.5]) + 0.5 * rng.standard_normal(rows) > 0).astype(int)
    path = Path(workdir) / "train.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    blank = set(rng.choice(rows, size=rows // 20, replace=False).tolist()) if scenario == "bad_data" else set()
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for i in range(rows):
            feats = [f"{v:.6f}" for v in x[i]]
            if i in blank:
                feats[1] = ""
            out.writerow([i, *feats, int(y[i])])
    return str(path)


@task
def validate_input(path: str) -> dict:
    return _gate(lambda: input_quality(path), kind=Kind.quality, name="train_input").model_dump(mode="json")


@task
def train(path: str, workdir: str, scenario: str) -> dict:
    """Logistic regression by full-batch gradient descent; one JSON line per split per epoch."""
    data = read_csv(path)
    x, y = data[:, 1:5], data[:, 5]
    if scenario == "low_accuracy":
        y = np.random.default_rng(3).permutation(y)  # a broken join: labels no longer match rows
    cut = int(len(x) * 0.8)
    w, b, lr = np.zeros(x.shape[1]), 0.0, 0.5
    metrics = Path(workdir) / "metrics.jsonl"
    with metrics.open("w") as log:
        for epoch in range(1, EPOCHS + 1):
            p = _sigmoid(x[:cut] @ w + b)
            grad_w, grad_b = x[:cut].T @ (p - y[:cut]) / cut, float(np.mean(p - y[:cut]))
            if scenario == "nan_loss" and epoch == 12:
                grad_w = grad_w * np.nan  # a poisoned batch (fp16 overflow, a division by zero...)
            w, b = w - lr * grad_w, b - lr * grad_b
            train_p, val_p = _sigmoid(x[:cut] @ w + b), _sigmoid(x[cut:] @ w + b)
            val_acc = float(np.mean((val_p >= 0.5) == y[cut:]))
            log.write(
                json.dumps(
                    {"step": epoch, "split": "train", "loss": _log_loss(y[:cut], train_p), "grad_norm": float(np.linalg.norm(grad_w))}
                )
                + "\n"
            )
            log.write(json.dumps({"step": epoch, "split": "val", "loss": _log_loss(y[cut:], val_p), "acc": val_acc}) + "\n")
    model = Path(workdir) / "model.json"
    model.write_text(json.dumps({"w": w.tolist(), "b": b, "val_from_row": cut}))
    return {"metrics": str(metrics), "model": str(model)}


@task
def check_convergence(metrics_path: str) -> dict:
    from checks.convergence import ConvergenceRules, evaluate, read_jsonl

    rules = ConvergenceRules.model_validate(RULES)
    return _gate(lambda: evaluate(read_jsonl(metrics_path), rules), kind=Kind.convergence, name="train_metrics").model_dump(mode="json")


@task
def evaluate_model(path: str, model_path: str, deployed_path: str) -> dict:
    """Output gate: accuracy and AUC on the held-out rows vs floors and the deployed model."""
    from checks.output import OutputThresholds, check_output

    data, model = read_csv(path), json.loads(Path(model_path).read_text())
    x, y = data[model["val_from_row"] :, 1:5], data[model["val_from_row"] :, 5].astype(int)
    score = _sigmoid(x @ np.array(model["w"]) + model["b"])
    deployed = json.loads(Path(deployed_path).read_text()) if Path(deployed_path).is_file() else None
    result = _gate(
        lambda: check_output(OutputThresholds.model_validate(OUTPUT), y_true=y, y_score=score, deployed=deployed),
        kind=Kind.output,
        name="model_output",
    )
    return result.details["metrics"]


@task
def deploy(model_path: str, metrics: dict, deployed_path: str) -> str:
    Path(deployed_path).write_text(json.dumps({k: metrics[k] for k in OUTPUT["minimum"]}))
    return model_path


@flow(name=FLOW_NAME)
def gated_train(scenario: str = "healthy", workdir: str = "dw-gated-work") -> str:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
    run_dir = str(Path(workdir) / str(flow_run.id))
    data = make_data(run_dir, scenario)
    validate_input(data)
    trained = train(data, run_dir, scenario)
    check_convergence(trained["metrics"])
    deployed_path = str(Path(workdir) / "deployed.json")  # the live model's metrics, shared by runs
    metrics = evaluate_model(data, trained["model"], deployed_path)
    return deploy(trained["model"], metrics, deployed_path)


def main(argv: list[str]) -> int:
    scenario = argv[1] if len(argv) > 1 else "healthy"
    workdir = argv[2] if len(argv) > 2 else os.environ.get("DAGWATCH_GATED_WORKDIR", "dw-gated-work")
    state = gated_train(scenario, workdir, return_state=True)
    # One JSON line on stdout so a caller (the integration test) can find the run in Prefect's API.
    print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.type.value}), flush=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
