import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from checks.drift import DriftThresholds, check_drift, decile_edges, ks_statistic, psi, psi_numeric
from checks.result import Status


def test_ks_statistic_equals_scipy():
    rng = np.random.default_rng(3)
    for n, m, shift in [(100, 80, 0.0), (1000, 3000, 0.3), (50, 50, 2.0)]:
        a, b = rng.normal(size=n), rng.normal(shift, size=m)
        assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    a, b = rng.integers(0, 5, 300).astype(float), rng.integers(0, 6, 200).astype(float)  # ties
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_psi_by_definition_and_deciles():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    ref = np.arange(1000.0)
    edges = decile_edges(ref)
    assert len(edges) == 9
    assert psi_numeric(ref, ref) == pytest.approx(0.0)
    # everything in the top decile: PSI is large
    assert psi_numeric(ref, np.full(100, 2000.0)) > 2


def make(n, seed, shift=0.0, cat_p=(0.5, 0.3, 0.2)):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n) + seed * n,
            "feature_0": rng.normal(size=n),
            "feature_1": rng.normal(shift, size=n),
            "city": rng.choice(["a", "b", "c"], size=n, p=list(cat_p)),
            "label": rng.integers(0, 2, n),
        }
    )


def test_no_drift_on_same_distribution():
    r = check_drift(make(20000, 1), make(20000, 2))
    assert r.status is Status.passed, r.summary
    assert [i.name for i in r.items] == ["feature_0", "feature_1", "city", "label"]  # id excluded
    assert {i.name: i.details["type"] for i in r.items}["label"] == "categorical"


def test_drift_names_features_and_amounts():
    r = check_drift(make(20000, 1), make(20000, 2, shift=0.5, cat_p=(0.2, 0.3, 0.5)))
    assert r.status is Status.failed
    assert r.details["drifted"] == ["feature_1", "city"]
    items = {i.name: i for i in r.items}
    assert items["feature_1"].observed["ks"] > 0.15 and items["feature_1"].observed["psi"] > 0.2
    assert "KS D" in items["feature_1"].message
    assert items["city"].details["max_frequency_diff"] == pytest.approx(0.3, abs=0.02)
    assert "feature_1" in r.summary and "largest PSI" in r.summary


def test_small_shift_passes_psi_but_ks_gate_catches_it():
    ref, cur = make(50000, 1), make(50000, 2, shift=0.15)
    loose = check_drift(ref, cur, thresholds=DriftThresholds(psi=0.2, ks=0.5))
    strict = check_drift(ref, cur, thresholds=DriftThresholds(psi=0.2, ks=0.05))
    assert loose.status is Status.passed and strict.details["drifted"] == ["feature_1"]


def test_new_categories_and_missing_values_are_reported():
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50, "x": np.r_[np.arange(90.0), [np.nan] * 10]})
    cur = pd.DataFrame({"c": ["a"] * 50 + ["z"] * 50, "x": np.arange(100.0)})
    items = {i.name: i for i in check_drift(ref, cur).items}
    assert items["c"].status is Status.failed
    assert items["c"].details["new_categories"] == ["z"] and items["c"].details["missing_categories"] == ["b"]
    assert items["x"].details["missing_rate_reference"] == pytest.approx(0.1)


def test_missing_or_empty_features_are_errors():
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]})
    cur = pd.DataFrame({"b": [1.0, 2.0]})
    r = check_drift(ref, cur)
    items = {i.name: i for i in r.items}
    assert items["a"].status is Status.error and "missing from current" in items["a"].message
    assert items["b"].status is Status.error and "no non-missing values in reference" in items["b"].message
    assert r.status is Status.error
