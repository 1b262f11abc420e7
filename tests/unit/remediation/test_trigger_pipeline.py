"""trigger_pipeline's arguments and templating (a whitelist of `{params.NAME}` / `{alert.FIELD}`,
checked when a runbook loads, filled in when the step runs, nothing evaluated), the empty
pipeline that triggers nothing, and the shipped runbooks: drift-retrain loads with its defaults,
and pipeline-failure's commented rollback example is a valid step once uncommented while the
shipped file triggers nothing."""

from __future__ import annotations

import importlib.resources
import re
from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError

from monitor.errors import ConfigError
from monitor.model import Alert, AlertKind, AlertStatus, Tier
from monitor.remediation import runbook as runbooks
from monitor.remediation.actions.base import ActionFailed, StepContext
from monitor.remediation.actions.trigger_pipeline import (
    TriggerArgs,
    TriggerPipeline,
    render,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def alert(**fields) -> Alert:
    base = {
        "id": 42,
        "fingerprint": "f",
        "tier": Tier.P3,
        "status": AlertStatus.FIRING,
        "kind": AlertKind.DRIFT_DETECTED,
        "source": "airflow-prod",
        "pipeline": "features",
        "run_id": "r-7",
        "summary": "PSI 0.41",
        "started_at": NOW,
        "updated_at": NOW,
    }
    return Alert(**(base | fields))


def context(params: dict | None = None, services: dict | None = None, **alert_fields) -> StepContext:
    return StepContext(
        alert=alert(**alert_fields), source=None, params=params or {}, results={}, dry_run=False, clock=lambda: NOW, services=services or {}
    )


@pytest.mark.parametrize(
    "bad",
    [
        "{params.model.version}",  # no attribute access
        "{alert.summary}",  # not a whitelisted alert field
        "{alert.__class__}",
        "{os.environ}",
        "{params[0]}",
        "deploy {0}",
        "{}",
    ],
)
def test_anything_but_a_whitelisted_placeholder_is_refused_at_load(bad):
    with pytest.raises(ValidationError, match="is not a placeholder"):
        TriggerArgs.model_validate({"pipeline": bad})
    with pytest.raises(ValidationError, match="is not a placeholder"):
        TriggerArgs.model_validate({"pipeline": "deploy", "params": {"nested": [{"x": bad}]}})


def test_params_as_a_string_must_be_one_placeholder():
    with pytest.raises(ValidationError, match=r"must be one \{params.NAME\}"):
        TriggerArgs.model_validate({"pipeline": "train", "params": "epochs=3"})
    assert TriggerArgs.model_validate({"pipeline": "train", "params": "{params.training_params}"}).params == "{params.training_params}"


def test_placeholders_are_filled_from_params_and_the_alert():
    ctx = context({"model": "churn", "epochs": 3, "conf": {"lr": 0.1}})
    assert render("{params.epochs}", ctx) == 3  # a whole placeholder keeps its value's type
    assert render("{params.conf}", ctx) == {"lr": 0.1}
    assert render("rollback of {alert.pipeline} run {alert.run_id} (alert {alert.id}, {alert.kind}, {alert.tier})", ctx) == (
        "rollback of features run r-7 (alert 42, drift_detected, P3)"
    )
    assert render({"model": "{params.model}", "runs": ["{params.epochs}", 1], "task": "{alert.task_id}"}, ctx) == {
        "model": "churn",
        "runs": [3, 1],
        "task": None,
    }
    assert render("x{alert.task_id}y", ctx) == "xy"
    with pytest.raises(ActionFailed, match=r"the runbook has no parameter 'version' \(it has \['conf', 'epochs', 'model'\]\)"):
        render("{params.version}", ctx)


def test_an_empty_pipeline_triggers_nothing_and_needs_no_source():
    ctx = context({"training_pipeline": "", "training_source": "", "training_params": {}})
    args = TriggerArgs.model_validate(
        {"source": "{params.training_source}", "pipeline": "{params.training_pipeline}", "params": "{params.training_params}"}
    )
    finding = TriggerPipeline().run(ctx, args)
    assert not finding.ok and finding.data == {"triggered": False, "dry_run": False}
    assert finding.summary == "no pipeline to trigger ('{params.training_pipeline}' is empty for this start): nothing triggered"


def test_params_that_are_not_a_mapping_and_unreachable_sources_fail_with_reasons():
    step = TriggerPipeline()
    with pytest.raises(ActionFailed, match="gave int, not a mapping of parameters"):
        step.run(context({"p": 3}), TriggerArgs.model_validate({"pipeline": "train", "params": "{params.p}"}))
    with pytest.raises(ActionFailed, match="was given no source registry .* cannot reach source 'trainer'"):
        step.run(context(), TriggerArgs.model_validate({"source": "trainer", "pipeline": "train"}))
    with pytest.raises(ActionFailed, match="source 'trainer' is not configured in dagwatch"):
        step.run(context(services={"sources": {}.get}), TriggerArgs.model_validate({"source": "trainer", "pipeline": "train"}))
    with pytest.raises(ActionFailed, match="source 'airflow-prod' is not configured in dagwatch"):  # the alert's own, not built
        step.run(context(), TriggerArgs.model_validate({"pipeline": "train"}))


def test_a_bad_placeholder_in_a_runbook_file_names_the_step():
    document = {"name": "rb", "steps": [{"name": "deploy", "action": "trigger_pipeline", "args": {"pipeline": "{alert.summary}"}}]}
    with pytest.raises(ConfigError, match=r"steps\[0\] \(deploy\)\.args\.pipeline.*is not a placeholder"):
        runbooks.parse(document, "rb.yaml")


def test_drift_retrain_ships_loadable_and_trains_nothing_by_default():
    found = runbooks.load_all()["drift-retrain"]
    assert found.match == {"kind": "drift_detected"}
    assert found.params == {"training_pipeline": "", "training_source": "", "training_params": {}}
    assert [(s.name, s.action, s.mutating) for s in found.steps] == [
        ("health", "orchestrator_health", False),
        ("inputs", "verify_inputs", False),
        ("train", "trigger_pipeline", True),
        ("training", "follow_run", False),
        ("report", "notify", False),
    ]
    assert found.steps[2].when == {"inputs.ok": "true"} and found.steps[3].when == {"train.ok": "true"}


def test_pipeline_failure_documents_rollback_as_a_commented_trigger_pipeline_step():
    text = (importlib.resources.files("runbooks") / "pipeline-failure.yaml").read_text()
    shipped = runbooks.parse(yaml.safe_load(text), "pipeline-failure.yaml")
    assert "trigger_pipeline" not in {s.action for s in shipped.steps}  # nothing is triggered as shipped
    # The example, uncommented in place, makes a valid runbook with a rollback before escalate.
    example = re.search(r"^  # - name: rollback\n(?:  #   .*\n)+", text, re.MULTILINE)
    assert example is not None
    enabled = runbooks.parse(yaml.safe_load(text.replace(example[0], re.sub(r"^  # ", "  ", example[0], flags=re.MULTILINE))), "copy.yaml")
    rollback = next(s for s in enabled.steps if s.name == "rollback")
    assert rollback.action == "trigger_pipeline" and rollback.mutating and rollback.when == {"rerun.state": "!success"}
    assert rollback.args["pipeline"] == "deploy_model"
    assert [s.name for s in enabled.steps][-2:] == ["rollback", "escalate"]
