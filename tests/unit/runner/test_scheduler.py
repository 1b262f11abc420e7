"""The pure scheduler: order, priority, fan-in, mapping and upstream_failed propagation."""

from monitor.model import State
from monitor.runner.scheduler import Node, Scheduler


def drain(s: Scheduler) -> list:
    order = []
    while (key := s.pop_ready()) is not None:
        order.append(key[0])
        s.succeed(key)
    return order


def test_dependencies_run_before_dependents():
    s = Scheduler({"a": Node(()), "b": Node(("a",)), "c": Node(("a",)), "d": Node(("b", "c"))})
    order = drain(s)
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert s.done


def test_fan_in_waits_for_every_upstream():
    s = Scheduler({"a": Node(()), "b": Node(()), "join": Node(("a", "b"))})
    first = s.pop_ready()
    s.succeed(first)
    assert s.pop_ready()[0] in {"a", "b"}  # the other root, not the join
    assert not s.has_ready()


def test_all_independent_tasks_are_ready_at_once_for_parallelism():
    s = Scheduler({f"t{i}": Node(()) for i in range(5)})
    ready = [s.pop_ready() for _ in range(5)]
    assert sorted(k[0] for k in ready) == [f"t{i}" for i in range(5)]


def test_priority_then_downstream_weight_then_definition_order():
    s = Scheduler(
        {
            "low": Node(()),
            "high": Node((), priority=5),
            "leaf": Node(()),
            "heavy": Node(()),
            "h1": Node(("heavy",)),
            "h2": Node(("h1",)),
        }
    )
    assert s.pop_ready()[0] == "high"
    assert s.pop_ready()[0] == "heavy"  # most work behind it
    assert s.pop_ready()[0] == "low"  # then definition order
    assert s.pop_ready()[0] == "leaf"


def test_failure_marks_every_downstream_upstream_failed_but_not_siblings():
    s = Scheduler({"a": Node(()), "b": Node(("a",)), "c": Node(("b",)), "side": Node(())})
    key = s.pop_ready()
    assert key[0] == "a"
    s.fail(key)
    assert s.states[("b", -1)] is State.UPSTREAM_FAILED
    assert s.states[("c", -1)] is State.UPSTREAM_FAILED
    assert s.pop_ready()[0] == "side"
    s.succeed(("side", -1))
    assert s.done


def test_join_with_one_failed_parent_is_upstream_failed_even_if_the_other_succeeds():
    s = Scheduler({"a": Node(()), "b": Node(()), "join": Node(("a", "b"))})
    s.pop_ready(), s.pop_ready()
    s.fail(("a", -1))
    s.succeed(("b", -1))
    assert s.states[("join", -1)] is State.UPSTREAM_FAILED
    assert not s.has_ready() and s.done


def test_mapping_expands_and_closes_the_group():
    s = Scheduler({"src": Node(()), "m": Node(("src",)), "after": Node(("m",))})
    s.succeed(s.pop_ready())
    assert s.pop_ready() == ("m", -1)
    keys = s.expand("m", 3)
    assert keys == [("m", 0), ("m", 1), ("m", 2)]
    for _ in range(3):
        s.succeed(s.pop_ready())
    assert s.states[("m", -1)] is State.SUCCESS
    assert s.pop_ready() == ("after", -1)


def test_failed_mapped_instance_fails_group_after_siblings_finish():
    s = Scheduler({"m": Node(()), "after": Node(("m",))})
    s.pop_ready()
    s.expand("m", 2)
    first, second = s.pop_ready(), s.pop_ready()
    s.fail(first)
    assert ("after", -1) not in s.states  # waits for the sibling
    s.succeed(second)
    assert s.states[("m", -1)] is State.FAILED
    assert s.states[("after", -1)] is State.UPSTREAM_FAILED
    assert s.done


def test_mapping_over_empty_list_succeeds_immediately():
    s = Scheduler({"m": Node(()), "after": Node(("m",))})
    s.pop_ready()
    assert s.expand("m", 0) == []
    assert s.pop_ready() == ("after", -1)
