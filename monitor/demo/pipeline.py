"""A small but honest ML pipeline: ingest → validate → features → train → evaluate → deploy.

Generated tabular data, logistic regression in numpy, a few hundred milliseconds per run. The
`scenario` parameter injects the failures on-call engineers actually see, so a newcomer watches
each become an alert and resolve:

- healthy     everything passes
- transient   training loses its parameter server on the first try; the retry resumes from the
              last checkpoint and succeeds
- persistent  the feature step hits a schema change upstream; every retry fails the same way
- nan_loss    training diverges (exploding gradients) and the loss becomes NaN
- bad_data    ingest delivers a third of a column as nulls; validation stops the pipeline
- cycle       one of the above per run, in a fixed rotation (the `dagwatch up` default)
"""

from __future__ import annotations

import json

import numpy as np

from monitor.runner import Pipeline, TaskContext

SCENARIOS = ("healthy", "transient", "persistent", "nan_loss", "bad_data")
CYCLE = ("persistent", "healthy", "transient", "nan_loss", "healthy", "bad_data", "healthy")
FEATURES = 4

pipeline = Pipeline(
    "demo_ml",
    params={"scenario": "healthy", "rows": 4000, "epochs": 8, "learning_rate": 0.5, "seed": 7},
    description="Generated data → logistic regression, with injectable failures.",
)


class DataValidationError(Exception):
    pass


class TrainingDiverged(Exception):
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


@pipeline.task(retries=2, retry_delay=0.5, timeout=60, tags=["ml"])
def ingest(ctx: TaskContext) -> dict:
    scenario = scenario_of(ctx)
    rng = np.random.default_rng(int(ctx.params["seed"]) + ctx.run_number)
    rows = int(ctx.params["rows"])
    x = rng.normal(size=(rows, FEATURES))
    true_w = np.array([1.5, -2.0, 0.7, 0.0])
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ true_w)))).astype(float)
    if scenario == "bad_data":
        x[rng.random(rows) < 0.33, 2] = np.nan
    print(f"ingested {rows} rows, scenario={scenario}")
    return {"x": x, "y": y, "scenario": scenario}


@pipeline.task(upstream=[ingest], timeout=60)
def validate(ctx: TaskContext, ingest: dict) -> dict:
    x, y = ingest["x"], ingest["y"]
    nulls = np.isnan(x).sum(axis=0)
    problems = [f"feature_{i} has {n} nulls ({n / len(x):.1%})" for i, n in enumerate(nulls) if n]
    if len(x) < 100:
        problems.append(f"only {len(x)} rows (expected at least 100)")
    if not set(np.unique(y)) <= {0.0, 1.0}:
        problems.append("label has values other than 0 and 1")
    if problems:
        raise DataValidationError("input data failed validation: " + "; ".join(problems))
    print(f"validated {len(x)} rows: no nulls, labels binary")
    return ingest


@pipeline.task(upstream=[validate], retries=1, retry_delay=0.5, timeout=60)
def features(ctx: TaskContext, validate: dict) -> dict:
    if validate["scenario"] == "persistent":
        raise FeatureStoreError(
            "feature store has no column 'user_embedding_v2' (the upstream schema changed); "
            "retrying will not help"
        )
    x = validate["x"]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    split = int(len(x) * 0.8)
    xs = (x - mean) / std
    return {
        "train": (xs[:split], validate["y"][:split]),
        "test": (xs[split:], validate["y"][split:]),
        "scenario": validate["scenario"],
    }


@pipeline.task(upstream=[features], retries=2, retry_delay=1.0, timeout=120, tags=["ml", "training"])
def train(ctx: TaskContext, features: dict) -> dict:
    """Gradient descent with a checkpoint per epoch: a retry resumes where the last try stopped."""
    x, y = features["train"]
    scenario = features["scenario"]
    checkpoint = ctx.checkpoint_dir / "state.npz"
    weights, start = np.zeros(FEATURES + 1), 0
    if checkpoint.exists():
        saved = np.load(checkpoint)
        weights, start = saved["weights"], int(saved["epoch"]) + 1
        print(f"resuming from checkpoint after epoch {start - 1}")
    xb = np.hstack([x, np.ones((len(x), 1))])
    lr = float(ctx.params["learning_rate"])
    history = []
    for epoch in range(start, int(ctx.params["epochs"])):
        if scenario == "transient" and epoch == 3 and ctx.try_number == 1:
            raise ConnectionError("lost connection to the parameter server at epoch 3 (simulated network blip)")
        p = 1 / (1 + np.exp(-(xb @ weights)))
        grad = xb.T @ (p - y) / len(y)
        if scenario == "nan_loss" and epoch >= 4:
            grad = grad * np.inf  # exploding gradients
        with np.errstate(all="ignore"):
            weights = weights - lr * grad
            p = 1 / (1 + np.exp(-(xb @ weights)))
            loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
        print(json.dumps({"epoch": epoch, "loss": loss, "grad_norm": float(np.linalg.norm(grad))}))
        history.append(loss)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss} at epoch {epoch} (gradient norm {np.linalg.norm(grad)})")
        np.savez(checkpoint, weights=weights, epoch=epoch)
    return {"weights": weights, "loss_history": history}


@pipeline.task(upstream=[train, features], timeout=60)
def evaluate(ctx: TaskContext, train: dict, features: dict) -> dict:
    x, y = features["test"]
    xb = np.hstack([x, np.ones((len(x), 1))])
    predictions = (1 / (1 + np.exp(-(xb @ train["weights"]))) > 0.5).astype(float)
    accuracy = float((predictions == y).mean())
    print(f"holdout accuracy {accuracy:.3f} on {len(y)} rows")
    return {"accuracy": accuracy, "rows": len(y)}


@pipeline.task(upstream=[evaluate], timeout=60)
def deploy(ctx: TaskContext, evaluate: dict) -> str:
    version = f"{ctx.run_id}"
    print(f"deployed model {version} (accuracy {evaluate['accuracy']:.3f})")
    return version
