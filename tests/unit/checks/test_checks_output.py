import itertools

import numpy as np
import pytest

from checks.errors import CheckInputError, ConfigError
from checks.output import OutputThresholds, accuracy, check_output, f1, load_thresholds, roc_auc
from checks.result import Status


def brute_auc(y, s):
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_metrics_against_definitions():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 200)
        s = np.round(rng.random(200) + 0.3 * y, 1)  # rounded: many ties
        assert roc_auc(y, s) == pytest.approx(brute_auc(y, s))
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([1, 0, 0, 1, 1])
    assert accuracy(y, p) == 0.6
    assert f1(y, p) == pytest.approx(2 * 2 / (3 + 3))
    assert f1([0, 0], [0, 0]) == 0.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: roc_auc([1, 1], [0.1, 0.2]), "both classes"),
        (lambda: accuracy([0, 1, 2], [0, 1, 1]), "only 0 and 1"),
        (lambda: accuracy([0, 1], [0, 1, 1]), "differ in length"),
        (lambda: check_output(OutputThresholds(), y_true=[0, 1]), "need y_pred or y_score"),
    ],
)
def test_bad_prediction_inputs(call, match):
    with pytest.raises(CheckInputError, match=match):
        call()


def test_thresholds_and_deployed_model():
    t = OutputThresholds(minimum={"accuracy": 0.8, "auc": 0.85}, max_regression=0.02)
    r = check_output(t, metrics={"accuracy": 0.86, "auc": 0.9}, deployed={"accuracy": 0.87, "auc": 0.95})
    items = {i.name: i for i in r.items}
    assert items["accuracy"].status is Status.passed
    assert items["accuracy_vs_deployed"].status is Status.passed  # -0.01 within 0.02
    assert items["auc_vs_deployed"].status is Status.failed  # -0.05
    assert items["auc_vs_deployed"].threshold == pytest.approx(0.93)
    assert r.status is Status.failed and "auc_vs_deployed" in r.summary
    assert check_output(t, metrics={"accuracy": 0.7, "auc": 0.9}).status is Status.failed
    assert check_output(t, metrics={"accuracy": float("nan"), "auc": 0.9}).status is Status.failed
    r = check_output(t, metrics={"accuracy": 0.9})
    assert r.status is Status.error and "'auc' not available" in {i.name: i for i in r.items}["auc"].message


def test_metrics_from_predictions_feed_the_thresholds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    score = np.clip(y * 0.6 + rng.random(1000) * 0.5, 0, 1)
    r = check_output(OutputThresholds(minimum={"accuracy": 0.9, "f1": 0.9, "auc": 0.95}), y_true=y, y_score=score)
    assert r.status is Status.passed, r.summary
    assert r.details["metrics"]["auc"] == pytest.approx(brute_auc(y[:200], score[:200]), abs=0.05)


def test_latency_budgets():
    lat = np.arange(1, 1001, dtype=float)  # p50 500.5, p95 950.05, p99 990.01
    t = OutputThresholds(latency_ms={"p50": 600, "p95": 900, "p99": 1000})
    items = {i.name: i for i in check_output(t, latencies_ms=lat).items}
    assert items["latency_p50"].status is Status.passed
    assert items["latency_p95"].status is Status.failed and items["latency_p95"].observed == pytest.approx(950.05)
    assert items["latency_p99"].status is Status.passed
    assert check_output(t).status is Status.error


def test_thresholds_file(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("minimum: {accuracy: 0.9}\nlatency_ms: {p95: 200}\n")
    assert load_thresholds(p).latency_ms == {"p95": 200}
    p.write_text("latency_ms: {p90: 200}\n")
    with pytest.raises(ConfigError, match="invalid thresholds"):
        load_thresholds(p)
    with pytest.raises(ConfigError, match="not found"):
        load_thresholds(tmp_path / "none.yaml")
