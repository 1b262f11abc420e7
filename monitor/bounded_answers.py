"""Bounds on what a peer's answer may cost dagwatch: its size and the time to read it.

httpx bounds each network wait (`timeout`: connect, each read) but not the whole answer. A peer,
or a proxy in front of it, that streams without end fills memory; one that drips a byte every few
seconds never trips a read timeout and holds a poll, a runbook step or a delivery for ever. Every
httpx client dagwatch makes to a peer (orchestrators, receivers, Prometheus) gets `Bounds.hooks()`:
an answer over `max_bytes`, or still arriving `max_seconds` after its headers, fails as an httpx
error, which each client already reports as the peer's failure (a source down, a retryable
delivery, a runbook finding), with the bound in the message. `peer_client` is how such a client
is made, so none is made without them.

A compressed answer (Content-Encoding gzip or deflate, the ones httpx asks for) is decoded here,
under the same bound, instead of by httpx: a few kilobytes of gzip can expand to gigabytes, and
httpx would expand them whole. So `max_bytes` bounds both what arrives and what it decodes to.
An encoding dagwatch cannot decode under the bound (br, zstd: asked for only when their
libraries are installed, so never by `peer_client`) is refused.
"""

from __future__ import annotations

import time
import zlib
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
        encodings = [e.strip().lower() for e in response.headers.get_list("Content-Encoding", split_commas=True)]
        if encodings:  # decoded (or refused) by _BoundedStream: httpx must not decode it again
            del response.headers["Content-Encoding"]
        decoders = [_decoder(e, response.request) for e in reversed(encodings)]  # the last applied is undone first
        response.stream = _BoundedStream(response.stream, response.request, self, [d for d in decoders if d is not None])  # type: ignore[arg-type]

    def _limit(self) -> str:
        return f"dagwatch's limit of {self.max_bytes / 2**20:g} MiB"


DEFAULT = Bounds()


def peer_client(bounds: Bounds = DEFAULT, **kwargs: Any) -> httpx.Client:
    """An httpx client to a peer: `kwargs` as for `httpx.Client`, the answers bounded. It asks
    only for the encodings the bounds can decode (httpx would add br and zstd when their
    libraries happen to be installed)."""
    client = httpx.Client(event_hooks=bounds.hooks(), **kwargs)
    client.headers["Accept-Encoding"] = "gzip, deflate"
    return client


#: Content-Encodings decoded under the bound: gzip, and deflate with or without its zlib header
#: (servers send both), as httpx decodes them.
_DECODERS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    "x-gzip": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    "deflate": lambda: _Deflate(),
}
#: Compressions httpx decodes when their libraries are installed, and so could expand without
#: bound; never asked for, so a body in one is refused (an empty one, a 304's, is fine).
_REFUSED = frozenset({"br", "zstd"})


def _decoder(encoding: str, request: httpx.Request) -> Any:
    """What undoes `encoding` under the bound; None for one that is no compression (identity) or
    that httpx does not know either (`none`, `UTF-8`: servers send such), which httpx ignores too."""
    if encoding in _DECODERS:
        return _DECODERS[encoding]()
    if encoding in _REFUSED:
        return _Refused(encoding, request)
    return None


class _Refused:
    def __init__(self, encoding: str, request: httpx.Request) -> None:
        self.encoding, self.request = encoding, request
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if data:
            raise httpx.DecodingError(
                f"{_what(self.request)} is encoded as {self.encoding}, which dagwatch did not ask for", request=self.request
            )
        return b""

    def flush(self) -> bytes:
        return b""


class _Deflate:
    """deflate as servers send it: zlib-wrapped, or raw when the first bytes are not (httpx's rule)."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        first, self._first = self._first, self._first and not data  # the first bytes decide, not an empty call
        try:
            return self._inner.decompress(data, max_length)
        except zlib.error:
            if not first:
                raise
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._inner.flush()


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, bounds: Bounds, decoders: list[Any]) -> None:
        self._inner, self._request, self._bounds, self._decoders = inner, request, bounds, decoders
        self._deadline = time.monotonic() + bounds.max_seconds
        self._decoded = 0

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
            if not self._decoders:
                yield chunk
            elif decoded := self._decode(chunk):
                yield decoded
        if self._decoders and (rest := self._decode(b"", final=True)):
            yield rest

    def _decode(self, data: bytes, *, final: bool = False) -> bytes:
        """Undo each encoding in turn, each never asked for more than the bound allows plus one
        byte (`max_length`): a bomb is refused once it has expanded to the bound, not to its size."""
        try:
            for decoder in self._decoders:
                room = self._bounds.max_bytes - self._decoded + 1
                out = decoder.decompress(data, room)
                if final and len(out) < room and not decoder.unconsumed_tail:
                    out += decoder.flush()
                if len(out) >= room or decoder.unconsumed_tail:
                    raise AnswerTooLarge(f"{_what(self._request)} decodes to more than {self._bounds._limit()}", request=self._request)
                data = out
        except zlib.error as exc:
            raise httpx.DecodingError(
                f"{_what(self._request)} is not the compressed data its Content-Encoding says: {exc}", request=self._request
            ) from exc
        self._decoded += len(data)
        return data

    def close(self) -> None:
        self._inner.close()


def _what(request: httpx.Request) -> str:
    """Only the method and host: a receiver's path or query may carry its credential (a hook URL),
    and the caller's message says which request it was."""
    return f"the answer to {request.method} from {request.url.host}"
