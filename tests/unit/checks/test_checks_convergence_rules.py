"""Each convergence rule's pass, fail and error case, and the rules file."""

import json

import pytest

from checks.convergence import ConvergenceRules, Metrics, evaluate, load_rules, replay_early_stopping
from checks.convergence.rules import EarlyStoppingRule
from checks.errors import ConfigError
from checks.result import Status


def metrics(**series):
    """metrics(val_loss=[...]) with steps 0, 10, 20, ..."""
    return Metrics.from_points({k: [(10 * i, float(v)) for i, v in enumerate(vals)] for k, vals in series.items()})


def only(section, **overrides):
    """Rules with only ``section`` enabled (others off), overriding its fields."""
    doc = {name: {"enabled": name == section} for name in ConvergenceRules.model_fields}
    doc[section].update(overrides)
    return ConvergenceRules.model_validate(doc)


def item(result, name):
    return next(i for i in result.items if i.name == name)


NAN, INF = float("nan"), float("inf")


# --- early stopping -------------------------------------------------------------------


def test_replay_order_finite_first_then_thresholds_then_patience():
    r = replay_early_stopping([1.0, 0.5, NAN], stopping_threshold=0.6)
    assert r.stop.reason == "stopping_threshold" and r.stop.index == 1
    r = replay_early_stopping([1.0, NAN], stopping_threshold=0.1)
    assert r.stop.reason == "non_finite" and r.stop.index == 1
    r = replay_early_stopping([1.0, 5.0], divergence_threshold=5.0)  # strict
    assert r.stop is None
    r = replay_early_stopping([1.0, 5.1], divergence_threshold=5.0)
    assert r.stop.reason == "divergence_threshold"
    r = replay_early_stopping([1.0, 0.95, 0.95, 0.95], min_delta=0.1, patience=2)
    assert (r.stop.reason, r.stop.index, r.best) == ("patience", 2, 1.0)
    r = replay_early_stopping([0.1, 0.2, 0.3], mode="max", patience=1)
    assert r.stop is None and r.best == 0.3


@pytest.mark.parametrize(
    "values, status, step",
    [
        ([1.0, 0.8, 0.6, 0.5], Status.passed, None),
        ([1.0, 0.8, NAN], Status.failed, 20),
        ([1.0, 0.8, 12.0], Status.failed, 20),  # divergence_threshold 10
        ([1.0, 0.8, 0.9, 0.9, 0.9], Status.warning, 40),  # patience 3 exhausted
        ([1.0, 0.04, NAN], Status.passed, 10),  # target reached first: a success
    ],
)
def test_early_stopping_rule_verdicts(values, status, step):
    rules = only("early_stopping", divergence_threshold=10.0, stopping_threshold=0.05)
    it = item(evaluate(metrics(val_loss=values), rules), "early_stopping")
    assert (it.status, it.step) == (status, step), it.message
    if status is not Status.passed:
        assert str(step) in it.message


def test_early_stopping_patience_can_be_made_a_failure():
    rules = only("early_stopping", patience=1, patience_status="failed")
    assert evaluate(metrics(val_loss=[1, 2]), rules).status is Status.failed


def test_a_named_monitor_the_log_lacks_is_an_error_naming_what_it_has():
    r = evaluate(metrics(train_loss=[1, 0.5], val_acc=[0.5, 0.6]), only("early_stopping", monitor="val_loss"))
    message = item(r, "early_stopping").message
    assert r.status is Status.error and "'val_loss' not in the log; it has: train_loss, val_acc" in message
    assert "monitor_fallback" not in r.details  # a name the user wrote is never guessed around


def test_no_monitor_named_and_no_val_loss_watches_the_train_loss_and_says_so():
    r = evaluate(metrics(train_loss=[1.0, 0.8, 0.6, 0.5, 0.45]))  # the default rules, a healthy log
    it = item(r, "early_stopping")
    assert r.status is Status.passed and it.details["metric"] == "train_loss"
    assert it.message.startswith("watching train_loss (val_loss is not in the log and no monitor was named)")
    assert r.details["monitor"] == "train_loss"
    assert r.details["monitor_fallback"] == {"wanted": "val_loss", "used": "train_loss"}
    diverged = evaluate(metrics(train_loss=[1.0, 0.8, NAN]), only("early_stopping", patience=5))
    assert item(diverged, "early_stopping").status is Status.failed  # the stand-in is judged for real


def test_no_monitor_named_and_no_loss_at_all_is_an_error_naming_the_metrics():
    r = evaluate(metrics(val_acc=[0.5, 0.6]), only("early_stopping", patience=5))
    message = item(r, "early_stopping").message
    assert r.status is Status.error and "it has: val_acc" in message and "early_stopping.monitor" in message


# --- relative divergence --------------------------------------------------------------


def test_relative_divergence_pass_fail_error():
    rules = only("relative_divergence", factor=2.0)
    assert evaluate(metrics(train_loss=[3, 1, 1.9]), rules).status is Status.passed
    r = evaluate(metrics(train_loss=[3, 1, 1.5, 2.5]), rules)
    it = item(r, "relative_divergence")
    assert (r.status, it.step, it.observed, it.threshold) == (Status.failed, 30, 2.5, 2.0)
    r = evaluate(metrics(train_loss=[3, 1, INF]), rules)
    assert item(r, "relative_divergence").status is Status.failed
    assert evaluate(metrics(val_loss=[1]), rules).status is Status.error  # section set, metric absent


def test_relative_divergence_warmup_and_max_mode():
    assert evaluate(metrics(train_loss=[0.01, 1, 1.2]), only("relative_divergence", warmup=1)).status is Status.passed
    r = evaluate(metrics(val_acc=[0.5, 0.9, 0.3]), only("relative_divergence", metric="val_acc", mode="max", factor=2))
    assert r.status is Status.failed


# --- gradient norm --------------------------------------------------------------------


def test_grad_norm_pass_fail_error():
    rules = only("grad_norm", max_value=100.0)
    assert evaluate(metrics(grad_norm=[1, 50, 99]), rules).status is Status.passed  # unprefixed = train
    r = evaluate(metrics(train_grad_norm=[1, 150, NAN]), rules)
    it = item(r, "grad_norm")
    assert (r.status, it.step, it.observed, it.details["offending"]) == (Status.failed, 10, 150.0, 2)
    r = evaluate(metrics(train_grad_norm=[1, INF]), only("grad_norm", max_value=None))
    assert item(r, "grad_norm").observed == "inf" and "not finite" in item(r, "grad_norm").message
    assert evaluate(metrics(val_loss=[1]), rules).status is Status.error


# --- loss spikes ----------------------------------------------------------------------


def test_loss_spike_pass_fail_error():
    base = [1.0 - 0.01 * i for i in range(20)]
    rules = only("loss_spike", window=5, factor=3.0)
    assert evaluate(metrics(train_loss=base), rules).status is Status.passed
    spiky = base[:12] + [5.0] + base[13:]
    it = item(evaluate(metrics(train_loss=spiky), rules), "loss_spike")
    assert (it.status, it.step, it.observed) == (Status.failed, 120, 5.0)
    assert evaluate(metrics(train_loss=spiky), only("loss_spike", window=5, max_spikes=1)).status is Status.passed
    assert evaluate(metrics(train_loss=spiky), only("loss_spike", window=5, status="warning")).status is Status.warning
    assert evaluate(metrics(val_loss=[1]), rules).status is Status.error


# --- plateau (a warning, never a failure) ---------------------------------------------


def test_plateau_warns_pass_and_error():
    rules = only("plateau", window=3, min_rel_improvement=0.01)
    assert evaluate(metrics(val_loss=[1.0, 0.8, 0.6, 0.5, 0.4]), rules).status is Status.passed
    r = evaluate(metrics(val_loss=[1.0, 0.5, 0.5, 0.499, 0.4999]), rules)
    assert r.status is Status.warning and r.ok and item(r, "plateau").step == 40
    assert evaluate(metrics(val_loss=[1.0, 0.5]), rules).status is Status.passed  # too few points
    assert evaluate(metrics(train_loss=[1.0]), rules).status is Status.error


def test_default_rules_skip_absent_metrics_but_report_them():
    r = evaluate(metrics(val_loss=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))
    assert r.status is Status.passed
    assert [i.name for i in r.items] == ["early_stopping", "plateau"]
    assert "grad_norm (train_grad_norm absent)" in r.details["not_evaluated"]


def test_verdict_names_rule_step_and_value():
    r = evaluate(metrics(val_loss=[1.0, 0.9, 0.8], train_loss=[1.0, 0.5, 40.0], train_grad_norm=[1, 2, NAN]))
    assert r.status is Status.failed
    failed = {i.name: (i.step, i.observed) for i in r.items if i.status is Status.failed}
    assert failed["relative_divergence"] == (20, 40.0) and failed["grad_norm"] == (20, "nan")


# --- the rules file -------------------------------------------------------------------


def test_rules_from_yaml_and_json(tmp_path):
    y = tmp_path / "rules.yaml"
    y.write_text("early_stopping:\n  monitor: val_acc\n  mode: max\n  patience: 5\nplateau:\n  enabled: false\n")
    rules = load_rules(y)
    assert rules.early_stopping == EarlyStoppingRule(monitor="val_acc", mode="max", patience=5)
    assert not rules.plateau.enabled and rules.grad_norm.max_value == 1000.0
    j = tmp_path / "rules.json"
    j.write_text(json.dumps({"grad_norm": {"max_value": 10}}))
    assert load_rules(j).grad_norm.max_value == 10
    (tmp_path / "empty.yaml").write_text("")
    assert load_rules(tmp_path / "empty.yaml") == ConvergenceRules()
    assert load_rules(None) == ConvergenceRules()


@pytest.mark.parametrize(
    "text, match",
    [
        ("early_stopping:\n  patiense: 3\n", r"early_stopping.patiense: Extra inputs are not permitted"),
        ("spikes: {}\n", "spikes: Extra inputs"),
        ("early_stopping:\n  patience: -1\n", "early_stopping.patience"),
        ("early_stopping:\n  mode: sideways\n", "early_stopping.mode"),
        ("relative_divergence:\n  factor: 0.5\n", "relative_divergence.factor"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: [\n", "cannot parse rules"),
    ],
)
def test_bad_rules_files_are_config_errors(tmp_path, text, match):
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_rules(p)
    assert str(p) in str(info.value)


def test_missing_rules_file(tmp_path):
    with pytest.raises(ConfigError, match="rules file not found"):
        load_rules(tmp_path / "nope.yaml")
