"""`dagwatch check …`: human and JSON output, exit 0 pass / 1 fail / 2 bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app

SUITES = "checks/suites"


@pytest.fixture
def frames(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"id": range(2000), **{f"feature_{i}": rng.normal(size=2000) for i in range(4)}, "label": rng.integers(0, 2, 2000)})
    good = tmp_path / "good.csv"
    df.to_csv(good, index=False)
    bad = df.copy()
    bad.loc[: len(bad) // 3, "feature_1"] = np.nan
    bad["feature_1"] = bad["feature_1"] + 3.0
    bad_path = tmp_path / "bad.parquet"
    bad.to_parquet(bad_path)
    return good, bad_path


def run(*args):
    return CliRunner().invoke(app, ["check", *args])


def test_quality_pass_fail_and_bad_input(frames, tmp_path):
    good, bad = frames
    ok = run("quality", f"{SUITES}/demo_values.json", str(good))
    assert ok.exit_code == 0 and ok.output.startswith("PASS quality check demo_values")
    failed = run("quality", f"{SUITES}/demo_values.json", str(bad), "--json")
    assert failed.exit_code == 1
    result = json.loads(failed.output)
    assert result["status"] == "failed" and any(i["name"] == "feature_1_not_null" and i["status"] == "failed" for i in result["items"])
    missing = run("quality", f"{SUITES}/demo_values.json", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "not found" in missing.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "expectations": [{"type": "expect_column_to_be_magic", "kwargs": {}}]}')
    assert run("quality", str(broken), str(good)).exit_code == 2


def test_convergence_nan_loss_fails_with_the_step(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "\n".join(json.dumps({"step": i, "split": "train", "loss": v}) for i, v in enumerate([0.9, 0.7, 0.6, float("nan")])).replace(
            "NaN", "NaN"
        )
    )
    result = run("convergence", str(metrics), "--json")
    assert result.exit_code == 1
    fired = [i for i in json.loads(result.output)["items"] if i["status"] == "failed"]
    assert fired and fired[0]["step"] == 3
    assert run("convergence", str(tmp_path / "none.jsonl")).exit_code == 2


def test_drift_names_the_feature(frames):
    good, bad = frames
    result = run("drift", str(good), str(bad))
    assert result.exit_code == 1 and "feature_1" in result.output.splitlines()[0]
    assert run("drift", str(good), str(good)).exit_code == 0
