"""The functions behind ``dagwatch check ...``: results, text, exit codes, bad input."""

import json

import numpy as np
import pytest

from checks.cli import exit_code, render_text, run_convergence, run_drift, run_quality
from checks.errors import CheckInputError, ConfigError, DataReadError
from checks.quality import shipped_suite
from checks.result import CheckResult, Status


def test_quality_end_to_end(tmp_path, frame):
    data = tmp_path / "train.parquet"
    bad = frame.copy()
    bad.loc[1, "label"] = 9
    bad.to_parquet(data, index=False)
    r = run_quality(shipped_suite("demo_values"), data)
    assert r.status is Status.failed and exit_code(r) == 1
    text = render_text(r)
    assert text.startswith("FAIL quality check demo_values:")
    assert "FAIL  label_values: 1 of 2000 values unexpected" in text and "e.g. 9" in text
    assert CheckResult.model_validate_json(r.model_dump_json()) == r


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_convergence_end_to_end(tmp_path):
    rows = []
    for step in range(0, 200, 10):
        rows.append({"step": step, "split": "train", "loss": 1 / (1 + step), "grad_norm": 1.0})
        rows.append({"step": step, "split": "val", "loss": 1.2 / (1 + step)})
    good = write_jsonl(tmp_path / "good.jsonl", rows)
    r = run_convergence(good)
    assert r.status is Status.passed and exit_code(r) == 0
    rows.append({"step": 200, "split": "val", "loss": float("nan")})
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    r = run_convergence(bad)
    assert r.status is Status.failed and exit_code(r) == 1
    assert "FAIL  early_stopping (step 200): val_loss = nan is not finite at step 200" in render_text(r)
    rules = tmp_path / "rules.yaml"
    rules.write_text("early_stopping:\n  check_finite: false\n  patience: 100\n")
    assert run_convergence(bad, rules).details["rules_file"] == str(rules)


def test_convergence_bad_input(tmp_path):
    with pytest.raises(DataReadError, match="not found"):
        run_convergence(tmp_path / "none.jsonl")
    rules = tmp_path / "r.yaml"
    rules.write_text("bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        run_convergence(tmp_path / "none.jsonl", rules)  # rules are checked first


def test_drift_end_to_end(tmp_path, make_frame):
    ref, cur = make_frame(n=20000, seed=1), make_frame(n=20000, seed=2)
    cur["feature_2"] = cur["feature_2"] * 2 + 1
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False)
    r = run_drift(tmp_path / "ref.csv", tmp_path / "cur.parquet")
    assert r.status is Status.failed and r.details["drifted"] == ["feature_2"]
    assert exit_code(r) == 1 and "FAIL  feature_2: PSI" in render_text(r)
    assert run_drift(tmp_path / "ref.csv", tmp_path / "ref.csv").status is Status.passed
    with pytest.raises(DataReadError, match="data file not found"):
        run_drift(tmp_path / "ref.csv", tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="psi"):
        run_drift(tmp_path / "ref.csv", tmp_path / "ref.csv", psi_threshold=-1)


def test_all_bad_input_is_one_catchable_type(tmp_path):
    for call in (
        lambda: run_quality(tmp_path / "s.json", tmp_path / "d.csv"),
        lambda: run_convergence(tmp_path / "m.jsonl"),
        lambda: run_drift(tmp_path / "a.csv", tmp_path / "b.csv"),
    ):
        with pytest.raises(CheckInputError) as info:
            call()
        assert str(tmp_path) in str(info.value)


def test_warning_exits_zero(tmp_path):
    rows = [{"step": s, "split": "val", "loss": v} for s, v in enumerate([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])]
    r = run_convergence(write_jsonl(tmp_path / "m.jsonl", rows))
    assert r.status is Status.warning and exit_code(r) == 0
    assert render_text(r).startswith("WARN")
    assert np.isfinite(r.items[0].details["best"])
