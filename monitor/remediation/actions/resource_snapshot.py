"""`resource_snapshot`: CPU, memory and GPU around the failure, where dagwatch can know them —
was the task starved, out of memory, or on a saturated GPU?

- Prometheus, when `runbooks.prometheus_url` is set: each query (shipped: node_exporter CPU and
  memory, DCGM GPU utilisation and memory; `runbooks.prometheus_queries` adds or replaces) over
  [failure − `before`, failure + `after`] (never past now) and at the failure itself, on the
  machines `runbooks.prometheus_selector` picks (filled from the alert). The failure time is the
  alert's `started_at`, the `occurred_at` of its first failure event.
- `nvidia-smi` on dagwatch's own host when installed (where embedded-runner tasks run): what the
  GPUs show now, not at the failure — `sampled_at` says when.
- The task try's own figures, as stored with the task run (`data["task"]`): the embedded runner
  measures each try that returns — CPU seconds, and peak RSS with `memory_scope` saying whose
  memory it is ("task" for a process task's own child, "process" for a thread task, which shares
  dagwatch's). Other sources record none, and a try killed by its timeout has none; the finding
  says so rather than guessing.

Prometheus unreachable, or a query it rejects, is a finding (ok false, the reason), never a crash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.config import Duration, RunbookSettings
from monitor.remediation import gpu, placeholders
from monitor.remediation import prometheus_query as prom
from monitor.remediation.actions.base import Finding, StepContext
from monitor.remediation.actions.task_logs import map_index_of
from monitor.store import runs


class ResourceArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: Duration = Field(timedelta(minutes=10), description="Window start, before the failure.")
    after: Duration = Field(timedelta(minutes=1), description="Window end, after the failure (never later than now).")
    step: Duration | None = Field(None, description="Range query resolution; default: the window / 200, at least 1s.")
    max_series: int = Field(10, ge=1, le=200, description="Series kept per query, the busiest first.")
    nvidia_smi: bool = Field(True, description="Ask nvidia-smi on this host when it is installed.")
    nvidia_smi_timeout: Duration = Field(timedelta(seconds=5))


class ResourceSnapshot:
    name: ClassVar[str] = "resource_snapshot"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[ResourceArgs]] = ResourceArgs

    def run(self, ctx: StepContext, args: ResourceArgs) -> Finding:
        settings: RunbookSettings = ctx.services.get("runbook_settings") or RunbookSettings()
        now = ctx.clock()
        failure_at = min(ctx.alert.started_at, now)
        start, end = failure_at - args.before, min(failure_at + args.after, now)
        window = {"failure_at": failure_at, "start": start, "end": end}
        prometheus = _prometheus(ctx, settings, args, window)
        gpus = (
            gpu.query(timeout=args.nvidia_smi_timeout.total_seconds())
            if args.nvidia_smi
            else {"available": False, "reason": "not asked (args.nvidia_smi)"}
        )
        gpus["sampled_at"] = ctx.clock()
        task = _task_usage(ctx)
        ok = prometheus.get("ok", True)
        parts = [_prometheus_summary(prometheus), f"nvidia-smi: {_gpu_summary(gpus)}", f"task: {_task_summary(task)}"]
        data = {
            "window": window,
            "prometheus_reachable": prometheus.get("reachable"),
            "prometheus": prometheus,
            "nvidia_smi": gpus,
            "task": task,
        }
        if not ok:
            data["reason"] = prometheus["reason"]
        return Finding(ok=ok, summary="; ".join(parts), data=data)


def _prometheus(ctx: StepContext, settings: RunbookSettings, args: ResourceArgs, window: dict[str, Any]) -> dict[str, Any]:
    if not settings.prometheus_url:
        return {"configured": False, "reachable": None, "reason": "runbooks.prometheus_url is not set"}
    selector = placeholders.fill(settings.prometheus_selector, ctx.alert, escape=prom.promql_string, missing="")
    span = window["end"] - window["start"]
    step = args.step or max(span / 200, timedelta(seconds=1))
    found: dict[str, Any] = {"configured": True, "url": settings.prometheus_url, "selector": selector, "step_seconds": step.total_seconds()}
    try:
        with prom.Client(settings.prometheus_url, timeout=settings.prometheus_timeout.total_seconds()) as client:
            queries = prom.snapshot(
                client,
                prom.queries(settings.prometheus_queries),
                selector=selector,
                failure_at=window["failure_at"],
                start=window["start"],
                end=window["end"],
                step=step,
                max_series=args.max_series,
            )
    except prom.PrometheusUnreachable as exc:
        return found | {"reachable": False, "ok": False, "reason": str(exc), "queries": {}}
    rejected = {name: q["error"] for name, q in queries.items() if "error" in q}
    found |= {"reachable": True, "ok": not rejected, "queries": queries}
    if rejected:
        found["reason"] = "Prometheus rejected " + "; ".join(f"{name}: {error}" for name, error in rejected.items())
    return found


def _task_usage(ctx: StepContext) -> dict[str, Any]:
    """What the alert's task try used, from the store (where the embedded runner's recorder put it)."""
    alert, store = ctx.alert, ctx.services.get("store")
    if not (alert.pipeline and alert.run_id and alert.task_id):
        return {"recorded": False, "reason": "the alert names no task run"}
    if store is None:
        return {"recorded": False, "reason": "no store to read the task run from"}
    with store.session() as session:
        usage = runs.task_usage(
            session, source=alert.source, pipeline=alert.pipeline, run_id=alert.run_id, task_id=alert.task_id, map_index=map_index_of(alert)
        )
    if usage is None:
        return {"recorded": False, "reason": f"the store has no task run {alert.task_id} of run {alert.run_id}"}
    if usage["cpu_seconds"] is None:
        return {
            "recorded": False,
            "reason": "no figures for this try (only the embedded runner measures them, and not for a try it killed)",
        }
    return {"recorded": True, **usage}


def _task_summary(found: dict[str, Any]) -> str:
    if not found["recorded"]:
        return found["reason"]
    memory = "" if found["max_rss_bytes"] is None else f", peak RSS {found['max_rss_bytes'] / 2**20:.0f} MiB ({found['memory_scope']})"
    return f"{found['cpu_seconds']:.2f} CPU s{memory}"


def _prometheus_summary(found: dict[str, Any]) -> str:
    if not found.get("configured"):
        return f"Prometheus: not asked ({found['reason']})"
    if not found.get("reachable"):
        return f"Prometheus: {found['reason']}"
    parts = []
    for name, query in found["queries"].items():
        if "error" in query:
            parts.append(f"{name} rejected")
        elif not query["series"]:
            parts.append(f"{name} no data")
        else:
            top = query["series"][0]
            peak = top["max"] if top["max"] is not None else top["at_failure"]
            parts.append(f"{name} peak {peak:.2f}" + (f" at failure {top['at_failure']:.2f}" if top["at_failure"] is not None else ""))
    return "Prometheus: " + ", ".join(parts)


def _gpu_summary(found: dict[str, Any]) -> str:
    if not found.get("available"):
        return found["reason"]
    return (
        ", ".join(
            f"GPU {g.get('index')} {g.get('utilization.gpu')}% busy, {g.get('memory.used')}/{g.get('memory.total')} MiB"
            for g in found["gpus"]
        )
        or "no GPUs listed"
    )
