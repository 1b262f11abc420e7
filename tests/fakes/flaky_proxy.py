"""A fault-injecting HTTP proxy on loopback: forwards to a real server and, on one request in
`every`, answers 500 or stalls `stall` seconds first — the blips a busy Airflow shows (one 5 s
database wait, one 500), on a schedule that is deterministic for a seed, so a failing run replays.

    with FlakyProxy(airflow.url, seed=8) as proxy:
        source = AirflowSource(settings(url=proxy.url))   # dagwatch talks to the proxy

Built on `FakeHTTPServer` (threaded, records every request): each block of `every` consecutive
requests holds exactly one fault, at a position and of a kind drawn from `random.Random(seed)`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import httpx

from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

#: Not forwarded either way: they describe one hop's connection, or a body httpx has already decoded.
HOP_HEADERS = {"host", "connection", "keep-alive", "content-length", "transfer-encoding", "accept-encoding", "content-encoding"}


@dataclass(frozen=True)
class Fault:
    """The `number`-th request (from 0) was answered 500 (`kind` "500") or stalled ("stall")."""

    number: int
    kind: str
    method: str
    path: str


class FlakyProxy(FakeHTTPServer):
    def __init__(self, upstream: str, *, seed: int, every: int = 10, stall: float = 5.0) -> None:
        super().__init__()
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.every, self.stall = every, stall
        self.faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._plan: dict[int, str] = {}  # request number → fault kind, one per block of `every`
        self._planned: set[int] = set()  # blocks already drawn
        self._count = 0
        self._plan_lock = threading.Lock()

    def respond(self, request: Recorded) -> Reply:
        kind = self._next_fault()
        if kind is not None:
            with self._plan_lock:
                self.faults.append(Fault(self._count - 1, kind, request.method, self.route(request)))
        if kind == "500":
            return Reply(500, {"detail": "injected by FlakyProxy"})
        if kind == "stall":
            self._stopping.wait(self.stall)  # then answer normally: a slow server, not a dead one
        return self._forward(request)

    def _next_fault(self) -> str | None:
        with self._plan_lock:
            number, self._count = self._count, self._count + 1
            block = number // self.every
            if block not in self._planned:  # drawn once per block, in request order: same seed, same faults
                self._planned.add(block)
                self._plan[block * self.every + self._rng.randrange(self.every)] = self._rng.choice(("500", "stall"))
            return self._plan.get(number)

    def _forward(self, request: Recorded) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        answer = self.upstream.request(request.method, request.path, headers=headers, content=request.body or None)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        return Reply(answer.status_code, answer.content, kept)

    def stop(self) -> None:
        super().stop()
        self.upstream.close()

    def count(self, kind: str) -> int:
        return sum(1 for f in self.faults if f.kind == kind)
