"""Convergence checks: read a training job's metric log and judge it.

``read_metrics`` (JSON lines, Lightning CSV, HF trainer_state, TensorBoard) or
``read_mlflow`` give ``Metrics``; ``load_rules`` gives ``ConvergenceRules``;
``evaluate`` gives a ``CheckResult`` naming the rule, step and value that fired.
All pure numpy; the optional readers import their packages lazily.
"""

from checks.convergence.early_stopping import Replay, StopDecision, replay_early_stopping
from checks.convergence.evaluate import evaluate
from checks.convergence.mlflow import fetch_metric_history, parse_mlflow_url, read_mlflow
from checks.convergence.readers import (
    read_hf_trainer_state,
    read_jsonl,
    read_lightning_csv,
    read_metrics,
    read_tensorboard,
)
from checks.convergence.rules import ConvergenceRules, load_rules
from checks.convergence.series import Metrics, Series

__all__ = [
    "ConvergenceRules",
    "Metrics",
    "Replay",
    "Series",
    "StopDecision",
    "evaluate",
    "fetch_metric_history",
    "load_rules",
    "parse_mlflow_url",
    "read_hf_trainer_state",
    "read_jsonl",
    "read_lightning_csv",
    "read_metrics",
    "read_mlflow",
    "read_tensorboard",
    "replay_early_stopping",
]
