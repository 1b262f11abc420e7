"""The dispatcher's send scheduling (`dispatch._side_by_side`): one chain in order, chains at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from monitor.alerting.dispatch import _side_by_side


def test_chains_run_at_once_and_each_in_order():
    together = threading.Barrier(2, timeout=20)  # the first sends of both chains meet here
    log: list[tuple[str, int]] = []

    def send(key: str, i: int):
        def run() -> int:
            if i == 0:
                together.wait()
            log.append((key, i))
            return 1

        return run

    sends = [(key, send(key, i)) for i in range(3) for key in ("a", "b")]
    with ThreadPoolExecutor(4) as pool:
        assert _side_by_side(sends, pool) == 6
    assert [i for key, i in log if key == "a"] == [0, 1, 2]
    assert [i for key, i in log if key == "b"] == [0, 1, 2]


def test_without_a_pool_they_run_one_after_another_in_the_order_given():
    log: list[str] = []
    sends = [(k, lambda k=k: log.append(k) or 1) for k in ("x", "y", "x", "z")]
    assert _side_by_side(sends, None) == 4
    assert log == ["x", "x", "y", "z"]


def test_a_send_that_raises_stops_its_chain_only_and_is_raised_after_the_others_ran():
    ran: list[str] = []
    held = threading.Event()

    def broken() -> int:
        raise RuntimeError("store gone")

    def slow() -> int:
        held.wait(20)
        ran.append("slow")
        return 1

    def later_in_broken_chain() -> int:
        ran.append("after broken")
        return 1

    sends = [("a", broken), ("a", later_in_broken_chain), ("b", slow)]
    with ThreadPoolExecutor(2) as pool:
        threading.Timer(0.2, held.set).start()
        with pytest.raises(RuntimeError, match="store gone"):
            _side_by_side(sends, pool)
        assert ran == ["slow"]
