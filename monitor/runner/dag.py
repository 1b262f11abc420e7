"""Pipelines in plain Python: a `Pipeline` and tasks added with its `@pipeline.task` decorator.

The graph is checked as it is built, so a typo in a dependency or a cycle fails at import time
with the task's name, not at 3 a.m. in the middle of a run.
"""

from __future__ import annotations

import graphlib
import hashlib
import inspect
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterable, Literal

from monitor.errors import PipelineDefinitionError
from monitor.runner.retry import RetryPolicy

Executor = Literal["thread", "process", "dask"]
EXECUTORS: tuple[Executor, ...] = ("thread", "process", "dask")
CONTEXT_ARG = "ctx"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: Callable[..., Any]
    upstream: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: timedelta | None = None
    priority: int = 0
    #: None: the pipeline's default (`Runner.executor_of`).
    executor: Executor | None = None
    cache: bool = False
    cache_key: Callable[..., str] | None = None
    map_over: str | None = None
    on_failure: Callable[[Any, BaseException], None] | None = None
    tags: tuple[str, ...] = ()
    wants_ctx: bool = False
    inputs: tuple[str, ...] = ()
    code_hash: str = ""

    @property
    def max_tries(self) -> int:
        return self.retry.retries + 1


Upstream = str | Callable[..., Any]


class Pipeline:
    """A named DAG of tasks plus default parameters.

    Example::

        pipeline = Pipeline("train_model", params={"epochs": 5})

        @pipeline.task(retries=2, timeout=60)
        def ingest(ctx): ...

        @pipeline.task(upstream=[ingest])
        def train(ctx, ingest): ...
    """

    def __init__(
        self,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        description: str = "",
        executor: Executor | None = None,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise PipelineDefinitionError(f"pipeline name {name!r} must be letters, digits, '_', '-' or '.'")
        self.name = name
        self.params: dict[str, Any] = dict(params or {})
        self.description = description
        if executor is not None and executor not in EXECUTORS:
            raise PipelineDefinitionError(f"pipeline {name!r}: executor must be one of {list(EXECUTORS)}, not {executor!r}")
        #: Where its tasks that name no executor run; None: where the runner's configuration says.
        self.executor: Executor | None = executor
        self.tasks: dict[str, TaskSpec] = {}
        self._names_by_fn: dict[Callable[..., Any], str] = {}

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        upstream: Iterable[Upstream] = (),
        retries: int = 0,
        retry_delay: float | timedelta = 1.0,
        backoff: float = 2.0,
        max_delay: float | timedelta = 300.0,
        jitter: float = 0.1,
        timeout: float | timedelta | None = None,
        priority: int = 0,
        executor: Executor | None = None,
        cache: bool = False,
        cache_key: Callable[..., str] | None = None,
        map_over: Upstream | None = None,
        on_failure: Callable[[Any, BaseException], None] | None = None,
        tags: Iterable[str] = (),
    ) -> Any:
        """Register a task; returns the function unchanged so it stays callable and picklable."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            task_name = name or func.__name__
            deps = tuple(self._resolve(task_name, u) for u in upstream)
            mapped = self._resolve(task_name, map_over) if map_over is not None else None
            if mapped is not None and mapped not in deps:
                deps = (*deps, mapped)
            accepted = _check_signature(self.name, task_name, func, deps)
            spec = TaskSpec(
                name=task_name,
                fn=func,
                upstream=deps,
                retry=RetryPolicy(
                    retries=retries,
                    delay=_seconds(retry_delay),
                    backoff=backoff,
                    max_delay=_seconds(max_delay),
                    jitter=jitter,
                ),
                timeout=timedelta(seconds=timeout) if isinstance(timeout, (int, float)) else timeout,
                priority=priority,
                executor=executor,
                cache=cache or cache_key is not None,
                cache_key=cache_key,
                map_over=mapped,
                on_failure=on_failure,
                tags=tuple(tags),
                wants_ctx=CONTEXT_ARG in accepted,
                inputs=tuple(d for d in deps if d in accepted),
                code_hash=_code_hash(func),
            )
            self.add(spec)
            self._names_by_fn[func] = task_name
            return func

        return register(fn) if fn is not None else register

    @classmethod
    def build(
        cls,
        name: str,
        tasks: Iterable[TaskSpec],
        *,
        params: dict[str, Any] | None = None,
        executor: Executor | None = None,
    ) -> "Pipeline":
        """The builder form: all tasks at once, in any order (e.g. generated from a config file)."""
        pipeline = cls(name, params=params, executor=executor)
        for spec in tasks:
            if spec.name in pipeline.tasks:
                raise PipelineDefinitionError(f"pipeline {name!r}: task {spec.name!r} is defined twice")
            pipeline.tasks[spec.name] = spec
        validate_graph(name, pipeline.tasks)
        return pipeline

    def add(self, spec: TaskSpec) -> None:
        """Add a task built elsewhere (the builder form); the graph is re-checked."""
        if spec.name in self.tasks:
            raise PipelineDefinitionError(f"pipeline {self.name!r}: task {spec.name!r} is defined twice")
        if spec.executor is not None and spec.executor not in EXECUTORS:
            raise PipelineDefinitionError(f"task {spec.name!r}: executor must be one of {list(EXECUTORS)}, not {spec.executor!r}")
        if spec.timeout is not None and spec.timeout.total_seconds() <= 0:
            raise PipelineDefinitionError(f"task {spec.name!r}: timeout must be positive")
        self.tasks[spec.name] = spec
        try:
            validate_graph(self.name, self.tasks)
        except PipelineDefinitionError:
            del self.tasks[spec.name]
            raise

    def _resolve(self, task_name: str, ref: Upstream) -> str:
        if callable(ref):
            if ref not in self._names_by_fn:
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r}: task {task_name!r} depends on {getattr(ref, '__name__', ref)!r}, "
                    "which is not a task of this pipeline"
                )
            return self._names_by_fn[ref]
        return ref

    def order(self) -> list[str]:
        return list(graphlib.TopologicalSorter({n: t.upstream for n, t in self.tasks.items()}).static_order())

    def downstream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.tasks}
        for spec in self.tasks.values():
            for dep in spec.upstream:
                out[dep].append(spec.name)
        return out

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, tasks={list(self.tasks)})"


def validate_graph(pipeline: str, tasks: dict[str, TaskSpec]) -> None:
    """Reject unknown dependencies and cycles, naming the tasks involved."""
    for spec in tasks.values():
        for dep in spec.upstream:
            if dep not in tasks:
                raise PipelineDefinitionError(
                    f"pipeline {pipeline!r}: task {spec.name!r} depends on {dep!r}, which is not defined; known tasks: {sorted(tasks)}"
                )
    try:
        graphlib.TopologicalSorter({n: t.upstream for n, t in tasks.items()}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise PipelineDefinitionError(f"pipeline {pipeline!r} has a cycle: {cycle}") from None


def _check_signature(pipeline: str, task: str, func: Callable[..., Any], deps: tuple[str, ...]) -> set[str]:
    """A task may take `ctx` and its upstream tasks' results by name; anything else is a mistake.

    Returns the names the function accepts (all of them when it takes **kwargs)."""
    accepted: set[str] = set()
    for param in inspect.signature(func).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepted.update(deps)
            accepted.add(CONTEXT_ARG)
        elif param.name == CONTEXT_ARG or param.name in deps:
            accepted.add(param.name)
        elif (
            param.name not in deps
            and param.default is inspect.Parameter.empty
            and param.kind
            not in (
                inspect.Parameter.VAR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            )
        ):
            raise PipelineDefinitionError(
                f"pipeline {pipeline!r}: task {task!r} takes argument {param.name!r}, which is neither "
                f"'{CONTEXT_ARG}' nor an upstream task ({list(deps)}); read parameters from ctx.params"
            )
    return accepted


def _code_hash(func: Callable[..., Any]) -> str:
    """Changing a task's code invalidates its cached results."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        source = func.__qualname__
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
