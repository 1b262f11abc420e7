"""A small but honest ML pipeline with validation gates:

    ingest → validate (data quality, Great Expectations) → features → train
           → check_convergence → evaluate → check_output, check_drift → deploy

Generated tabular data, logistic regression in numpy, a second or two per run. A gate is a task:
when its check fails, everything after it is marked upstream_failed and the check's alert fires
(quality P2, convergence P1, output P2, drift P3); the next passing check resolves it. The
`scenario` parameter injects the failures on-call engineers actually see:

- healthy     everything passes
- transient   training loses its parameter server on the first try; the retry resumes from the
              last checkpoint and succeeds
- persistent  the feature step hits a schema change upstream; every retry fails the same way
- nan_loss    training diverges (exploding gradients): the convergence gate stops it before deploy
- bad_data    ingest delivers a third of a column as nulls: the quality gate stops it before training
- degraded    labels arrive noisy: the model is worse than the deployed one, the output gate holds it
- drift       the serving data shifted: the drift gate reports which features moved
- cycle       one per run in a fixed rotation (the `dagwatch up` default)
"""

from __future__ import annotations

import atexit
import json
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from monitor.runner import Pipeline, TaskContext

SCENARIOS = ("healthy", "transient", "persistent", "nan_loss", "bad_data", "degraded", "drift")
CYCLE = ("persistent", "healthy", "transient", "nan_loss", "healthy", "bad_data", "healthy")
FEATURES = 4
SUITES = Path(__file__).resolve().parents[2] / "checks" / "suites"
SUITE = SUITES / "demo_values.json"
CONVERGENCE_RULES = SUITES / "demo_convergence.json"

pipeline = Pipeline(
    "demo_ml",
    params={"scenario": "healthy", "rows": 4000, "epochs": 8, "learning_rate": 0.5, "seed": 7, "min_accuracy": 0.7},
    description="Generated data → logistic regression, with validation gates and injectable failures.",
)


class TrainingError(Exception):
    pass


class FeatureStoreError(Exception):
    pass


def scenario_of(ctx: TaskContext) -> str:
    chosen = str(ctx.params.get("scenario", "healthy"))
    if chosen == "cycle":
        return CYCLE[ctx.run_number % len(CYCLE)]
    if chosen not in SCENARIOS:
        raise ValueError(f"unknown scenario {chosen!r}; choose one of {SCENARIOS} or 'cycle'")
    return chosen


def demo_dir(ctx: TaskContext) -> Path:
    """Where the demo keeps what outlives a run: the drift reference and the deployed model."""
    folder = ctx.checkpoint_root.parent / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_pool_lock = threading.Lock()
_pool: Any = None


def quality_pool() -> Any:
    """Great Expectations runs in one worker process, started on first use: the service process
    never imports GX (2-4 s, ~470 MB), and GX is not thread-safe."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from checks.quality import QualityPool

            _pool = QualityPool(workers=1)
            atexit.register(_pool.close)
        return _pool


def gate(ctx: TaskContext, check: Callable[[], Any]) -> Any:
    """Run a check as this task's gate: report the verdict to dagwatch, raise if it blocks."""
    from checks import gate as run_gate
    from checks.errors import CheckFailed

    try:
        result = run_gate(check)
    except CheckFailed as failed:
        ctx.report_check(failed.result)
        raise
    ctx.report_check(result)
    return result


@pipeline.task(retries=2, retry_delay=0.5, timeout=60, tags=["ml"])
def ingest(ctx: TaskContext) -> dict:
    import pandas as pd

    scenario = scenario_of(ctx)
    rng = np.random.default_rng(int(ctx.params["seed"]) + ctx.run_number)
    rows = int(ctx.params["rows"])
    x = rng.normal(size=(rows, FEATURES))
    if scenario == "drift":
        x[:, 0] += 1.5
        x[:, 3] *= 2.5
    true_w = np.array([1.5, -2.0, 0.7, 0.0])
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ true_w)))).astype(int)
    if scenario == "degraded":
        y = np.where(rng.random(rows) < 0.45, 1 - y, y)
    if scenario == "bad_data":
        x[rng.random(rows) < 0.33, 1] = np.nan
    frame = pd.DataFrame({"id": np.arange(rows), **{f"feature_{i}": x[:, i] for i in range(FEATURES)}, "label": y})
    path = ctx.checkpoint_dir / "ingest.parquet"
    frame.to_parquet(path)
    print(f"ingested {rows} rows to {path.name}, scenario={scenario}")
    return {"path": str(path), "scenario": scenario}


@pipeline.task(upstream=[ingest], timeout=120)
def validate(ctx: TaskContext, ingest: dict) -> dict:
    """Data quality gate: the demo suite (nulls, ranges, means, labels) in the GX worker."""
    result = gate(ctx, lambda: quality_pool().submit(SUITE, ingest["path"]).result(timeout=120))
    print(f"quality: {result.summary}")
    return ingest


@pipeline.task(upstream=[validate], retries=1, retry_delay=0.5, timeout=60)
def features(ctx: TaskContext, validate: dict) -> dict:
    import pandas as pd

    if validate["scenario"] == "persistent":
        raise FeatureStoreError("feature store has no column 'user_embedding_v2' (the upstream schema changed); retrying will not help")
    frame = pd.read_parquet(validate["path"])
    x = frame[[f"feature_{i}" for i in range(FEATURES)]].to_numpy()
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    split = int(len(x) * 0.8)
    xs = (x - mean) / std
    y = frame["label"].to_numpy(dtype=float)
    return {"train": (xs[:split], y[:split]), "test": (xs[split:], y[split:]), "scenario": validate["scenario"], "path": validate["path"]}


@pipeline.task(upstream=[features], retries=2, retry_delay=1.0, timeout=120, tags=["ml", "training"])
def train(ctx: TaskContext, features: dict) -> dict:
    """Gradient descent with a checkpoint per epoch: a retry resumes where the last try stopped.
    Metrics go to metrics.jsonl, which the convergence gate reads."""
    x, y = features["train"]
    scenario = features["scenario"]
    checkpoint = ctx.checkpoint_dir / "state.npz"
    metrics_path = ctx.checkpoint_dir / "metrics.jsonl"
    weights, start = np.zeros(FEATURES + 1), 0
    if checkpoint.exists():
        saved = np.load(checkpoint)
        weights, start = saved["weights"], int(saved["epoch"]) + 1
        print(f"resuming from checkpoint after epoch {start - 1}")
    elif metrics_path.exists():
        metrics_path.unlink()
    xb = np.hstack([x, np.ones((len(x), 1))])
    lr = float(ctx.params["learning_rate"])
    for epoch in range(start, int(ctx.params["epochs"])):
        if scenario == "transient" and epoch == 3 and ctx.try_number == 1:
            raise ConnectionError("lost connection to the parameter server at epoch 3 (simulated network blip)")
        with np.errstate(all="ignore"):
            p = 1 / (1 + np.exp(-(xb @ weights)))
            grad = xb.T @ (p - y) / len(y)
            if scenario == "nan_loss" and epoch >= 4:
                grad = grad * np.inf  # exploding gradients
            weights = weights - lr * grad
            p = 1 / (1 + np.exp(-(xb @ weights)))
            loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
        record = {"step": epoch, "epoch": epoch, "split": "train", "loss": loss, "grad_norm": float(np.linalg.norm(grad))}
        line = json.dumps(record)  # NaN and Infinity are written as the tokens readers expect
        print(line)
        with metrics_path.open("a") as fh:
            fh.write(line + "\n")
        np.savez(checkpoint, weights=weights, epoch=epoch)
    return {"weights": weights, "metrics": str(metrics_path)}


@pipeline.task(upstream=[train], timeout=60, tags=["ml"])
def check_convergence(ctx: TaskContext, train: dict) -> dict:
    """Convergence gate: finite loss, no divergence, bounded gradient norm."""
    from checks.cli import run_convergence

    gate(ctx, lambda: run_convergence(train["metrics"], CONVERGENCE_RULES))
    return train


@pipeline.task(upstream=[check_convergence, features], timeout=60)
def evaluate(ctx: TaskContext, check_convergence: dict, features: dict) -> dict:
    x, y = features["test"]
    xb = np.hstack([x, np.ones((len(x), 1))])
    scores = 1 / (1 + np.exp(-(xb @ check_convergence["weights"])))
    print(f"scored {len(y)} holdout rows")
    return {"y_true": y.astype(int).tolist(), "y_score": scores.tolist(), "path": features["path"]}


@pipeline.task(upstream=[evaluate], timeout=60)
def check_output(ctx: TaskContext, evaluate: dict) -> dict:
    """Output gate: accuracy over a floor and no worse than the deployed model."""
    from checks.output import OutputThresholds
    from checks.output import check_output as judge

    deployed_file = demo_dir(ctx) / "deployed.json"
    deployed = json.loads(deployed_file.read_text())["metrics"] if deployed_file.exists() else None
    thresholds = OutputThresholds(minimum={"accuracy": float(ctx.params["min_accuracy"])}, max_regression=0.05)
    result = gate(
        ctx,
        lambda: judge(
            thresholds, y_true=np.array(evaluate["y_true"]), y_score=np.array(evaluate["y_score"]), deployed=deployed, name="demo_model"
        ),
    )
    return {name: item.observed for name, item in ((i.name, i) for i in result.items) if isinstance(item.observed, (int, float))}


@pipeline.task(upstream=[evaluate], timeout=60)
def check_drift(ctx: TaskContext, evaluate: dict) -> str:
    """Drift gate: this run's features against the reference kept from the first healthy run."""
    import pandas as pd

    from checks.drift import check_drift as judge

    reference = demo_dir(ctx) / "reference.parquet"
    current = pd.read_parquet(evaluate["path"])
    if not reference.exists():
        current.to_parquet(reference)
        print("no reference yet: this run's data becomes the drift reference")
        return "reference saved"
    result = gate(ctx, lambda: judge(pd.read_parquet(reference), current, exclude=("id", "label"), name="demo_features"))
    return result.summary


@pipeline.task(upstream=[check_output, check_drift], timeout=60)
def deploy(ctx: TaskContext, check_output: dict, check_drift: str) -> str:
    metrics = {k: v for k, v in check_output.items() if k in ("accuracy", "f1", "auc")}
    (demo_dir(ctx) / "deployed.json").write_text(json.dumps({"run_id": ctx.run_id, "metrics": metrics}))
    print(f"deployed model {ctx.run_id} ({', '.join(f'{k} {v:.3f}' for k, v in metrics.items())})")
    return ctx.run_id
