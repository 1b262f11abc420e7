"""`follow_run`: wait for the run a previous step re-ran (or triggered) to end, and say how.

Reads the store, which the collectors keep current, rather than asking the orchestrator again:
the runbook adds no load to what it watches. A run counts as ended when its state is final
and it ended after the step it follows started (a stale FAILED from before the clear is not
the answer). The step's own `timeout` bounds the wait.

The earlier step's finding names the run: `run_id`, and when it started (`cleared_at` of
`clear_failed`, `triggered_at` of `trigger_pipeline`); a run started on another source or
pipeline than the alert's (`trigger_pipeline`) is named by the finding's `source`/`pipeline`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from monitor.model import State
from monitor.remediation.actions.base import ActionFailed, Finding, StepContext
from monitor.store import runs


class FollowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str = Field(
        "clear", description="The earlier step whose run to follow (its finding has `run_id`, `cleared_at` or `triggered_at`)."
    )
    every: float = Field(2.0, gt=0, le=60, description="Seconds between looks at the store.")


class FollowRun:
    name: ClassVar[str] = "follow_run"
    mutating: ClassVar[bool] = False
    Args: ClassVar[type[FollowArgs]] = FollowArgs

    def run(self, ctx: StepContext, args: FollowArgs) -> Finding:
        earlier = ctx.results.get(args.after)
        started = (earlier.data.get("cleared_at") or earlier.data.get("triggered_at")) if earlier is not None else None
        if earlier is None or started is None:
            raise ActionFailed(f"step {args.after!r} did not re-run anything to follow")
        if earlier.data.get("dry_run"):
            run = f"run {earlier.data['run_id']}" if earlier.data.get("run_id") else "the new run"
            return Finding(summary=f"dry run: would wait for {run} to end", data={"dry_run": True})
        since = datetime.fromisoformat(started)
        alert, store = ctx.alert, ctx.services["store"]
        source, pipeline = earlier.data.get("source") or alert.source, earlier.data.get("pipeline") or alert.pipeline or ""
        while True:
            with store.session() as session:
                view = runs.get(session, source=source, pipeline=pipeline, run_id=earlier.data["run_id"])
            if view is not None and view.state.terminal and view.ended_at is not None and view.ended_at >= since:
                ok = view.state is State.SUCCESS
                return Finding(
                    ok=ok,
                    summary=f"run {view.run_id} of {view.pipeline} ended {view.state.value}",
                    data={"state": view.state.value, "run_id": view.run_id, "ended_at": view.ended_at.isoformat()},
                )
            time.sleep(args.every)
