"""The one place that maps an action name in a runbook file to its implementation: import the
module, add its action to `_ALL`."""

from __future__ import annotations

from monitor.remediation.actions.base import Action
from monitor.remediation.actions.classify_failure import ClassifyFailure
from monitor.remediation.actions.clear_failed import ClearFailed
from monitor.remediation.actions.escalate import Escalate
from monitor.remediation.actions.follow_run import FollowRun
from monitor.remediation.actions.notify import Notify
from monitor.remediation.actions.orchestrator_health import OrchestratorHealth
from monitor.remediation.actions.resource_snapshot import ResourceSnapshot
from monitor.remediation.actions.task_logs import TaskLogs
from monitor.remediation.actions.trigger_pipeline import TriggerPipeline
from monitor.remediation.actions.verify_inputs import VerifyInputs

_ALL: tuple[Action, ...] = (
    OrchestratorHealth(),
    TaskLogs(),
    ClassifyFailure(),
    VerifyInputs(),
    ResourceSnapshot(),
    ClearFailed(),
    FollowRun(),
    Escalate(),
    TriggerPipeline(),
    Notify(),
)

ACTIONS: dict[str, Action] = {action.name: action for action in _ALL}
