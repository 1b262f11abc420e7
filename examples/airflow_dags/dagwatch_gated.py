"""A training DAG gated by dagwatch's `checks` library (Airflow 3 TaskFlow API; also parses on 2.x).

`dw_gated_train`: make_data → validate_input → train → check_convergence → evaluate → deploy.
Three gates, each a `checks.gate(...)` call inside its task:

    validate_input     quality: the input CSV against the shipped GX suites demo_schema and
                       demo_values (columns, dtypes, row count, no missing features, binary labels)
    check_convergence  convergence: the metrics.jsonl `train` wrote, against the rules in RULES
                       (NaN/inf, divergence, exploding gradients, loss spikes, plateaus)
    evaluate           output: accuracy and AUC on held-out rows vs floors and the deployed model

`gate` runs the check, POSTs the result to `{DAGWATCH_URL}/api/v1/check-results` with
`Authorization: Bearer {DAGWATCH_TOKEN}` (best effort: an unreachable dagwatch is logged, never
raised), and raises `checks.CheckFailed` when the check fails or cannot be evaluated, so Airflow
marks the task failed and the tasks after it upstream_failed: a bad model is never deployed.
pipeline, run_id and task_id come from Airflow's AIRFLOW_CTX_DAG_ID / _DAG_RUN_ID / _TASK_ID,
which Airflow sets in every task, so the report matches the run dagwatch's Airflow source sees.

Alerts in dagwatch (a passing report of the same check, same DAG, in any later run resolves them):

    quality check failed (validate_input)        → quality_failed      P2
    convergence check failed (check_convergence) → convergence_failed  P1
    output check failed (evaluate)               → output_failed       P2

Try it: trigger with conf {"scenario": "bad_data" | "nan_loss" | "low_accuracy"} to fail each
gate in turn, then with {"scenario": "healthy"} (the default) to resolve the alerts.

Install into the Airflow environment (workers, and the DAG processor for parsing):

    pip install './checks[quality]'           # from a dagwatch checkout: dagwatch-checks + Great Expectations, none of the service

and set DAGWATCH_URL and DAGWATCH_TOKEN (`dagwatch token create --name airflow --role ingest`)
for the workers. `checks` and numpy are imported inside the tasks only, so this file parses even
where they are missing (the test Airflow servers load it without them); the tasks then fail with
ImportError, which is what you want to notice. GX costs a few seconds to import, once per task.

Gates have retries=0 (a check verdict does not change on retry); `train` has retries. Every task
has a timeout. If you tag such a DAG for dagwatch's ML policy, give the gates one retry too.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import Param, dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
    from airflow.models.param import Param

WORKDIR = Path(os.environ.get("DAGWATCH_GATED_WORKDIR", "/tmp/dagwatch-gated"))
COLUMNS = ["id", "feature_0", "feature_1", "feature_2", "feature_3", "label"]
EPOCHS = 30
RULES = {  # same schema as a convergence rules YAML file (checks/README.md)
    "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 5, "check_finite": True},
    "grad_norm": {"metric": "train_grad_norm", "max_value": 100.0},
    "relative_divergence": {"metric": "train_loss", "factor": 3.0},
    "loss_spike": {"metric": "train_loss", "window": 5, "factor": 3.0},
}
OUTPUT = {"minimum": {"accuracy": 0.8, "auc": 0.85}, "max_regression": 0.05}
GATE = {"retries": 0, "execution_timeout": timedelta(minutes=10)}


def _sigmoid(z):
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _log_loss(y, p) -> float:
    import numpy as np

    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _load(path: str):
    import numpy as np

    return np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)


@dag(
    dag_id="dw_gated_train",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["dagwatch-example", "gated"],
    params={"scenario": Param("healthy", enum=["healthy", "bad_data", "nan_loss", "low_accuracy"])},
    default_args={"execution_timeout": timedelta(minutes=10), "retries": 0},
    doc_md=__doc__,
)
def dw_gated_train():
    @task
    def make_data(params=None, run_id=None) -> str:
        """Write the input: 4 standardised features, a label linear in them plus noise."""
        import numpy as np

        rng = np.random.default_rng(7)
        rows = 1500
        x = rng.standard_normal((rows, 4))
        y = (x @ np.array([1.5, -2.0, 1.0, 0.5]) + 0.5 * rng.standard_normal(rows) > 0).astype(int)
        out = WORKDIR / run_id.replace(":", "_").replace("+", "_")
        out.mkdir(parents=True, exist_ok=True)
        path = out / "train.csv"
        blank = set(rng.choice(rows, size=rows // 20, replace=False).tolist()) if params["scenario"] == "bad_data" else set()
        with path.open("w") as f:
            f.write(",".join(COLUMNS) + "\n")
            for i in range(rows):
                feats = [f"{v:.6f}" for v in x[i]]
                if i in blank:
                    feats[1] = ""
                f.write(",".join([str(i), *feats, str(int(y[i]))]) + "\n")
        return str(path)

    @task(**GATE)
    def validate_input(path: str) -> str:
        from checks import Kind, gate, run_quality
        from checks.quality import shipped_suite

        for suite in ("demo_schema", "demo_values"):  # URL, token and ids come from the environment
            gate(lambda s=suite: run_quality(shipped_suite(s), path), kind=Kind.quality, name=f"train_input_{suite}")
        return path

    @task(retries=2, retry_delay=timedelta(seconds=30))
    def train(path: str, params=None) -> dict:
        """Logistic regression by full-batch gradient descent; one JSON line per split per epoch."""
        import numpy as np

        data = _load(path)
        x, y = data[:, 1:5], data[:, 5]
        if params["scenario"] == "low_accuracy":
            y = np.random.default_rng(3).permutation(y)  # a broken join: labels no longer match rows
        cut = int(len(x) * 0.8)
        w, b, lr = np.zeros(x.shape[1]), 0.0, 0.5
        metrics = Path(path).with_name("metrics.jsonl")
        with metrics.open("w") as log:
            for epoch in range(1, EPOCHS + 1):
                p = _sigmoid(x[:cut] @ w + b)
                grad_w, grad_b = x[:cut].T @ (p - y[:cut]) / cut, float(np.mean(p - y[:cut]))
                if params["scenario"] == "nan_loss" and epoch == 12:
                    grad_w = grad_w * np.nan  # a poisoned batch (fp16 overflow, a division by zero...)
                w, b = w - lr * grad_w, b - lr * grad_b
                train_p, val_p = _sigmoid(x[:cut] @ w + b), _sigmoid(x[cut:] @ w + b)
                log.write(
                    json.dumps(
                        {"step": epoch, "split": "train", "loss": _log_loss(y[:cut], train_p), "grad_norm": float(np.linalg.norm(grad_w))}
                    )
                    + "\n"
                )
                log.write(
                    json.dumps(
                        {"step": epoch, "split": "val", "loss": _log_loss(y[cut:], val_p), "acc": float(np.mean((val_p >= 0.5) == y[cut:]))}
                    )
                    + "\n"
                )
        model = Path(path).with_name("model.json")
        model.write_text(json.dumps({"w": w.tolist(), "b": b, "val_from_row": cut}))
        return {"data": path, "metrics": str(metrics), "model": str(model)}

    @task(**GATE)
    def check_convergence(trained: dict) -> dict:
        from checks import Kind, gate
        from checks.convergence import ConvergenceRules, evaluate, read_metrics

        rules = ConvergenceRules.model_validate(RULES)
        gate(lambda: evaluate(read_metrics(trained["metrics"]), rules), kind=Kind.convergence, name="train_metrics")
        return trained

    @task(**GATE)
    def evaluate(trained: dict) -> dict:
        import numpy as np

        from checks import Kind, gate
        from checks.output import OutputThresholds, check_output

        data, model = _load(trained["data"]), json.loads(Path(trained["model"]).read_text())
        x, y = data[model["val_from_row"] :, 1:5], data[model["val_from_row"] :, 5].astype(int)
        score = _sigmoid(x @ np.array(model["w"]) + model["b"])
        deployed_file = WORKDIR / "deployed.json"
        deployed = json.loads(deployed_file.read_text()) if deployed_file.is_file() else None
        result = gate(
            lambda: check_output(OutputThresholds.model_validate(OUTPUT), y_true=y, y_score=score, deployed=deployed),
            kind=Kind.output,
            name="model_output",
        )
        return {**trained, "scores": {k: result.details["metrics"][k] for k in OUTPUT["minimum"]}}

    @task
    def deploy(evaluated: dict) -> str:
        (WORKDIR / "deployed.json").write_text(json.dumps(evaluated["scores"]))  # the new reference
        return evaluated["model"]

    deploy(evaluate(check_convergence(train(validate_input(make_data())))))


dw_gated_train()
