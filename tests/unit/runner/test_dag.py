"""Definition-time checks: unknown dependencies, cycles, bad signatures are rejected with names."""

import pytest

from monitor.errors import PipelineDefinitionError
from monitor.runner import Pipeline, RetryPolicy, TaskSpec


def test_unknown_dependency_is_rejected_with_the_task_names():
    p = Pipeline("p")

    @p.task
    def a():
        return 1

    with pytest.raises(PipelineDefinitionError, match=r"task 'b' depends on 'nope', which is not defined"):

        @p.task(upstream=["nope"])
        def b(nope):
            return nope


def test_depending_on_a_function_of_another_pipeline_is_rejected():
    other = Pipeline("other")

    @other.task
    def x():
        return 1

    p = Pipeline("p")
    with pytest.raises(PipelineDefinitionError, match="not a task of this pipeline"):

        @p.task(upstream=[x])
        def y(x):
            return x


def test_cycle_is_rejected_and_named():
    specs = [
        TaskSpec(name="a", fn=lambda: 1, upstream=("c",)),
        TaskSpec(name="b", fn=lambda: 1, upstream=("a",)),
        TaskSpec(name="c", fn=lambda: 1, upstream=("b",)),
    ]
    with pytest.raises(PipelineDefinitionError, match="pipeline 'p' has a cycle: ") as info:
        Pipeline.build("p", specs)
    assert all(name in str(info.value) for name in "abc")


def test_builder_accepts_any_order_and_rejects_unknown_names():
    p = Pipeline.build("p", [TaskSpec(name="b", fn=lambda: 1, upstream=("a",)), TaskSpec(name="a", fn=lambda: 1)])
    assert p.order() == ["a", "b"]
    with pytest.raises(PipelineDefinitionError, match="depends on 'x', which is not defined"):
        Pipeline.build("p", [TaskSpec(name="b", fn=lambda: 1, upstream=("x",))])


def test_self_dependency_is_a_cycle():
    p = Pipeline("p")
    p.add(TaskSpec(name="a", fn=lambda: 1, upstream=()))
    with pytest.raises(PipelineDefinitionError, match="cycle"):
        p.add(TaskSpec(name="b", fn=lambda: 1, upstream=("a", "b")))


def test_duplicate_task_name_is_rejected():
    p = Pipeline("p")

    @p.task
    def a():
        return 1

    with pytest.raises(PipelineDefinitionError, match="defined twice"):
        p.task(a, name="a")


def test_argument_that_is_neither_ctx_nor_upstream_is_rejected():
    p = Pipeline("p")
    with pytest.raises(PipelineDefinitionError, match=r"takes argument 'rows'.*ctx.params"):

        @p.task
        def a(rows):
            return rows


def test_decorator_returns_the_plain_function():
    p = Pipeline("p")

    @p.task(retries=2)
    def a():
        return 41 + 1

    assert a() == 42
    assert p.tasks["a"].max_tries == 3


@pytest.mark.parametrize("bad", ["", "has space", "semi;colon"])
def test_bad_pipeline_names(bad):
    with pytest.raises(PipelineDefinitionError):
        Pipeline(bad)


def test_bad_retry_policy_values():
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(backoff=0.5)
