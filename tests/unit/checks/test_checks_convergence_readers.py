"""Metric readers on real files in each format, and MLflow's paged REST history."""

import json
import math

import httpx
import numpy as np
import pytest

from checks.convergence import (
    read_hf_trainer_state,
    read_jsonl,
    read_lightning_csv,
    read_metrics,
    read_mlflow,
    read_tensorboard,
)
from checks.convergence.mlflow import HISTORY_PATH, parse_mlflow_url
from checks.errors import DataReadError


def test_jsonl_canonical_with_split_prefix_and_nan(tmp_path):
    p = tmp_path / "metrics.jsonl"
    lines = [
        {"step": 0, "epoch": 0, "split": "train", "loss": 2.0, "grad_norm": 1.5, "lr": 0.1},
        {"step": 10, "epoch": 0, "split": "val", "loss": 1.8, "acc": 0.6},
        {"step": 20, "epoch": 1, "split": "train", "loss": float("nan"), "grad_norm": float("inf"), "lr": 0.1},
        {"step": 20, "epoch": 1, "split": "val", "loss": 1.7, "note": "text is ignored"},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    m = read_metrics(p)
    assert m.names() == ["train_grad_norm", "train_loss", "train_lr", "val_acc", "val_loss"]
    assert m.get("val_loss").steps.tolist() == [10, 20]
    assert m.get("val_loss").values.tolist() == [1.8, 1.7]
    assert math.isnan(m.get("train_loss").values[1]) and m.get("train_grad_norm").values[1] == math.inf


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 0, "loss": 1}\n{"step": 1, "loss": \n')
    with pytest.raises(DataReadError, match=r"m.jsonl:2: not valid JSON"):
        read_jsonl(p)
    p.write_text("[1, 2]\n")
    with pytest.raises(DataReadError, match="must be a JSON object"):
        read_jsonl(p)
    with pytest.raises(DataReadError, match="not found"):
        read_metrics(tmp_path / "none.jsonl")
    (tmp_path / "m.xyz").write_text("")
    with pytest.raises(DataReadError, match="unknown metrics format"):
        read_metrics(tmp_path / "m.xyz")


def test_lightning_metrics_csv_written_by_csvlogger(tmp_path):
    """A real Lightning CSVLogger file: sparse rows, and a logged NaN stays NaN."""
    from pytorch_lightning.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="run", version=0)
    for step, (tl, vl) in enumerate([(2.0, None), (1.5, 1.6), (float("nan"), None), (1.2, 1.3)]):
        logger.log_metrics({"train_loss": tl, "epoch": step // 2}, step=step)
        if vl is not None:
            logger.log_metrics({"val_loss": vl, "epoch": step // 2}, step=step)
    logger.save()
    logger.finalize("success")
    path = tmp_path / "run" / "version_0" / "metrics.csv"
    m = read_metrics(path)
    assert m.get("val_loss").values.tolist() == [1.6, 1.3]
    assert m.get("val_loss").steps.tolist() == [1, 3]
    t = m.get("train_loss").values
    assert t[0] == 2.0 and math.isnan(t[2]) and len(t) == 4


def test_lightning_csv_rejects_non_numbers(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,val_loss\n0,0,oops\n")
    with pytest.raises(DataReadError, match=r"metrics.csv:2: column 'val_loss' value 'oops'"):
        read_lightning_csv(p)
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataReadError, match="no 'step' column"):
        read_lightning_csv(p)


def test_hf_trainer_state_maps_eval_to_val_and_skips_summary(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text(
        json.dumps(
            {
                "global_step": 30,
                "log_history": [
                    {"loss": 2.1, "grad_norm": 3.0, "learning_rate": 5e-5, "epoch": 0.3, "step": 10},
                    {"eval_loss": 1.9, "eval_accuracy": 0.5, "eval_runtime": 1.0, "epoch": 0.5, "step": 15},
                    {"loss": 1.7, "grad_norm": 2.5, "learning_rate": 4e-5, "epoch": 0.6, "step": 20},
                    {"eval_loss": 1.6, "eval_accuracy": 0.6, "epoch": 1.0, "step": 30},
                    {"train_runtime": 100.0, "train_loss": 1.9, "total_flos": 1e12, "epoch": 1.0, "step": 30},
                ],
            }
        )
    )
    m = read_metrics(p)
    assert m.get("val_loss").values.tolist() == [1.9, 1.6]
    assert m.get("train_loss").values.tolist() == [2.1, 1.7]  # "loss" found as the train loss
    assert m.get("train_grad_norm").steps.tolist() == [10, 20]
    assert "val_accuracy" in m.names()
    p.write_text('{"best_metric": 1}')
    with pytest.raises(DataReadError, match="no 'log_history'"):
        read_hf_trainer_state(p)


def test_tensorboard_event_files_written_by_summarywriter(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(tmp_path / "tb"))
    for step, v in enumerate([1.0, 0.8, 0.7, float("nan")]):
        w.add_scalar("train/loss", v, step)
        w.add_scalar("val/loss", v + 0.1, step)
    w.close()
    m = read_metrics(tmp_path / "tb")  # a run directory
    assert m.get("val_loss").values[:3] == pytest.approx([1.1, 0.9, 0.8])
    assert math.isnan(m.get("train_loss").values[3])
    event_file = next((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert read_tensorboard(event_file).get("train_loss").steps.tolist() == [0, 1, 2, 3]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataReadError, match=r"no metric values in the TensorBoard events \(no keys at all\)"):
        read_tensorboard(tmp_path / "empty")


class FakeMlflow:
    """A small MLflow tracking server as an httpx transport handler (pages of 3)."""

    def __init__(self, history):
        self.history = history
        self.requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path != HISTORY_PATH:
            return httpx.Response(404, json={"error_code": "ENDPOINT_NOT_FOUND"})
        q = request.url.params
        if q["run_id"] != "run1":
            return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"})
        points = self.history.get(q["metric_key"], [])
        start = int(q.get("page_token") or 0)
        page = points[start : start + 3]
        body = {"metrics": [{"key": q["metric_key"], "value": v, "timestamp": 0, "step": s} for s, v in page]}
        if start + 3 < len(points):
            body["next_page_token"] = str(start + 3)
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_mlflow_history_follows_pages():
    vals = [(s, 1.0 / (s + 1)) for s in range(10)] + [(10, float("nan"))]
    server = FakeMlflow({"val_loss": vals, "train_loss": [(0, 2.0)]})
    with httpx.Client(transport=httpx.MockTransport(server)) as client:
        m = read_mlflow(client, "http://mlflow.test:5000/", "run1", ["val_loss", "train_loss", "absent"])
    s = m.get("val_loss")
    assert s.steps.tolist() == list(range(11)) and math.isnan(s.values[-1])
    assert np.allclose(s.values[:10], [v for _, v in vals[:10]])
    assert "absent" not in m.names()
    assert len([r for r in server.requests if r.url.params["metric_key"] == "val_loss"]) == 4


def test_mlflow_errors_are_data_read_errors():
    server = FakeMlflow({})
    with httpx.Client(transport=httpx.MockTransport(server)) as client:
        with pytest.raises(DataReadError, match="HTTP 404"):
            read_mlflow(client, "http://mlflow.test", "other", ["val_loss"])
        with pytest.raises(DataReadError, match="no points"):
            read_mlflow(client, "http://mlflow.test", "run1", ["val_loss"])

    def down(request):
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(down)) as client:
        with pytest.raises(DataReadError, match="cannot fetch"):
            read_mlflow(client, "http://mlflow.test", "run1", ["val_loss"])


def test_parse_mlflow_url():
    assert parse_mlflow_url("mlflow+https://ml.example/?run_id=abc&metrics=val_loss,train_loss") == (
        "https://ml.example",
        "abc",
        ["val_loss", "train_loss"],
    )
    with pytest.raises(DataReadError, match="needs"):
        parse_mlflow_url("mlflow+http://h/?run_id=abc")
