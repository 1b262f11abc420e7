"""The embedded runner: pipelines in plain Python, run with retries, timeouts and caching."""

from monitor.runner.context import TaskContext
from monitor.runner.dag import Pipeline, TaskSpec
from monitor.runner.engine import NullRecorder, Recorder, RetryImpossible, RetryPlan, RunError, Runner, RunResult
from monitor.runner.retry import RetryPolicy

__all__ = [
    "NullRecorder",
    "Pipeline",
    "Recorder",
    "RetryImpossible",
    "RetryPlan",
    "RetryPolicy",
    "RunError",
    "RunResult",
    "Runner",
    "TaskContext",
    "TaskSpec",
]
