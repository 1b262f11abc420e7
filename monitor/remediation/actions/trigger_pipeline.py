"""`trigger_pipeline`: start a new run of a pipeline with parameters — an Airflow DAG, a Prefect
deployment (`flow/deployment`) or an embedded pipeline — and hand its run id to `follow_run`.

It is how runbooks retrain (drift-retrain) and how they **roll back**. dagwatch has no rollback
of its own, because deploying a model is the user's own pipeline: a rollback is a
`trigger_pipeline` step that starts *your* deployment DAG / deployment / pipeline with the
parameters that deploy the previous version, for example

    - name: rollback
      action: trigger_pipeline
      when: {rerun.state: "!success"}
      args:
        source: airflow-prod                 # default: the alert's source
        pipeline: deploy_model               # your deployment DAG (Prefect: "flow/deployment")
        params: {model: "{params.model}", version: previous, reason: "rollback of {alert.pipeline} run {alert.run_id}"}

    - name: rolled-back
      action: follow_run
      when: {rollback.triggered: "true"}
      args: {after: rollback}

String values in `source`, `pipeline` and `params` may name the runbook's parameters as
`{params.NAME}` and the alert's fields as `{alert.FIELD}` (FIELD: id, source, pipeline, run_id,
task_id, kind, tier). That is all the templating there is: plain substitution, no expressions,
checked when the runbook loads. A value that is exactly one placeholder takes the parameter's
own value (a number stays a number; `params: "{params.training_params}"` passes a mapping).

A pipeline that comes out empty (its runbook parameter left blank) triggers nothing: the finding
says so with `ok: false, triggered: false`, and a later `when: {STEP.triggered: "true"}` skips
what follows. A paused Airflow DAG is refused, never unpaused.

The finding carries what `follow_run` needs: `run_id`, `triggered_at`, `source`, `pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.errors import PipelineNotFound
from monitor.remediation.actions.base import ActionFailed, Finding, StepContext
from monitor.sources.base import (
    ActionUnsupported,
    Source,
    SourceUnavailable,
    Triggerable,
)

#: The alert fields a template may name.
ALERT_FIELDS = frozenset({"id", "source", "pipeline", "run_id", "task_id", "kind", "tier"})
PLACEHOLDER = re.compile(r"\{(params|alert)\.([A-Za-z_][A-Za-z0-9_]*)\}")
_BRACED = re.compile(r"\{[^{}]*\}")


def _check_templates(value: Any) -> Any:
    """Every `{…}` in a string is a placeholder of the whitelisted form (a typo fails at load)."""
    if isinstance(value, str):
        for braced in _BRACED.findall(value):
            match = PLACEHOLDER.fullmatch(braced)
            if match is None or (match[1] == "alert" and match[2] not in ALERT_FIELDS):
                raise ValueError(
                    f"{braced} is not a placeholder: use {{params.NAME}} or {{alert.FIELD}} (FIELD: {', '.join(sorted(ALERT_FIELDS))})"
                )
    elif isinstance(value, dict):
        for item in value.values():
            _check_templates(item)
    elif isinstance(value, list):
        for item in value:
            _check_templates(item)
    return value


def render(value: Any, ctx: StepContext) -> Any:
    """`value` with its placeholders filled from the runbook's parameters and the alert."""
    if isinstance(value, dict):
        return {key: render(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, ctx) for item in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole is not None:
        return _lookup(whole[1], whole[2], ctx)
    return PLACEHOLDER.sub(lambda m: _text(_lookup(m[1], m[2], ctx)), value)


def _lookup(scope: str, name: str, ctx: StepContext) -> Any:
    if scope == "params":
        if name not in ctx.params:
            raise ActionFailed(f"{{params.{name}}}: the runbook has no parameter {name!r} (it has {sorted(ctx.params) or 'none'})")
        return ctx.params[name]
    value = getattr(ctx.alert, name)
    return getattr(value, "value", value)  # kind and tier are enums


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class TriggerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field("", description="The source to start the run on (by name); empty: the alert's source.")
    pipeline: str = Field(description="Airflow DAG id, Prefect `flow/deployment`, embedded pipeline name; empty: trigger nothing.")
    params: dict[str, Any] | str = Field(
        default_factory=dict,
        description="Airflow conf / Prefect parameters / embedded params, or one `{params.NAME}` naming a mapping.",
    )

    @field_validator("source", "pipeline", "params")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        return _check_templates(value)

    @field_validator("params")
    @classmethod
    def _one_placeholder(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, str) and PLACEHOLDER.fullmatch(value) is None:
            raise ValueError("a string here must be one {params.NAME} whose value is a mapping")
        return value


class TriggerPipeline:
    name: ClassVar[str] = "trigger_pipeline"
    mutating: ClassVar[bool] = True
    Args: ClassVar[type[TriggerArgs]] = TriggerArgs

    def run(self, ctx: StepContext, args: TriggerArgs) -> Finding:
        pipeline = _text(render(args.pipeline, ctx)).strip()
        if not pipeline:
            return Finding(
                ok=False,
                summary=f"no pipeline to trigger ({args.pipeline!r} is empty for this start): nothing triggered",
                data={"triggered": False, "dry_run": ctx.dry_run},
            )
        params = render(args.params, ctx)
        if not isinstance(params, dict):
            raise ActionFailed(f"params {args.params!r} gave {type(params).__name__}, not a mapping of parameters")
        source = self._source(ctx, _text(render(args.source, ctx)).strip())
        if not isinstance(source, Triggerable):
            raise ActionFailed(f"source {source.name} cannot start runs (it is not Triggerable)")
        started = ctx.clock()
        try:
            result = source.trigger(pipeline, params, dry_run=ctx.dry_run)
        except (SourceUnavailable, ActionUnsupported, PipelineNotFound) as exc:
            raise ActionFailed(f"{source.name} did not start {pipeline}: {exc}") from exc
        return Finding(
            summary=result.message or f"triggered {pipeline} on {source.name}",
            data={
                "triggered": not result.dry_run,
                "dry_run": result.dry_run,
                "run_id": result.run_id,
                "source": source.name,
                "pipeline": pipeline,
                "params": params,
                "triggered_at": started.isoformat(),
            },
        )

    @staticmethod
    def _source(ctx: StepContext, name: str) -> Source:
        if not name or name == ctx.alert.source:
            return ctx.require_source()
        find: Callable[[str], Source | None] | None = ctx.services.get("sources")
        if find is None:
            raise ActionFailed(
                f"this runbook engine was given no source registry (services['sources']), so it cannot reach source {name!r}"
            )
        found = find(name)
        if found is None:
            raise ActionFailed(f"source {name!r} is not configured in dagwatch, so no run can be started on it")
        return found
