"""Bounds on what a peer's answer may cost dagwatch: its size and the time to read it.

httpx bounds each network wait (`timeout`: connect, each read) but not the whole answer. A peer,
or a proxy in front of it, that streams without end fills memory; one that drips a byte every few
seconds never trips a read timeout and holds a poll, a runbook step or a delivery for ever. Every
httpx client dagwatch makes to a peer (orchestrators, receivers, Prometheus) gets `Bounds.hooks()`:
an answer over `max_bytes`, or still arriving `max_seconds` after its headers, fails as an httpx
error, which each client already reports as the peer's failure (a source down, a retryable
delivery, a runbook finding), with the bound in the message. `peer_client` is how such a client
is made, so none is made without them.

The bound is on the bytes as they arrive (before any Content-Encoding is undone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


class AnswerTooLarge(httpx.TransportError):
    """The answer is bigger than any answer dagwatch asks for."""


class AnswerTooSlow(httpx.ReadTimeout):
    """The answer was still arriving when its time was up."""


@dataclass(frozen=True)
class Bounds:
    """64 MiB holds a 100-item page of any API dagwatch reads, and the task logs it reads, many
    times over; two minutes is longer than any configured timeout allows a healthy peer."""

    max_bytes: int = 64 * 2**20
    max_seconds: float = 120.0

    def hooks(self) -> dict[str, list[Callable[[httpx.Response], None]]]:
        """httpx `event_hooks`: they run when the headers have arrived, before the body is read."""
        return {"response": [self._bound]}

    def _bound(self, response: httpx.Response) -> None:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise AnswerTooLarge(
                f"{_what(response.request)} declares {int(declared):,} bytes, over {self._limit()}", request=response.request
            )
        response.stream = _BoundedStream(response.stream, response.request, self)  # type: ignore[arg-type]

    def _limit(self) -> str:
        return f"dagwatch's limit of {self.max_bytes / 2**20:g} MiB"


DEFAULT = Bounds()


def peer_client(bounds: Bounds = DEFAULT, **kwargs: Any) -> httpx.Client:
    """An httpx client to a peer: `kwargs` as for `httpx.Client`, the answers bounded."""
    return httpx.Client(event_hooks=bounds.hooks(), **kwargs)


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, bounds: Bounds) -> None:
        self._inner, self._request, self._bounds = inner, request, bounds
        self._deadline = time.monotonic() + bounds.max_seconds

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            seen += len(chunk)
            if seen > self._bounds.max_bytes:
                raise AnswerTooLarge(f"{_what(self._request)} is over {self._bounds._limit()}", request=self._request)
            if time.monotonic() > self._deadline:
                raise AnswerTooSlow(
                    f"{_what(self._request)} was still arriving after {self._bounds.max_seconds:g} s ({seen:,} bytes so far)",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        self._inner.close()


def _what(request: httpx.Request) -> str:
    """Only the method and host: a receiver's path or query may carry its credential (a hook URL),
    and the caller's message says which request it was."""
    return f"the answer to {request.method} from {request.url.host}"
