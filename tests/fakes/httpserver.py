"""A threaded HTTP server on loopback that records requests and can fail or stall on demand.

Subclasses answer with `respond(request) -> Reply`; the queue of planned failures and the delay
are checked first, so every fake gets the same failure switches.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass
class Recorded:
    """One request as it arrived: method, path (with query), headers, raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def text(self, *, without_headers: tuple[str, ...] = ()) -> str:
        """Everything received as one string, for 'this never appears' assertions."""
        skip = {h.lower() for h in without_headers}
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in skip)
        return f"{self.method} {self.path}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


@dataclass
class Reply:
    """`body` is sent whole with its Content-Length, unless `headers` declare their own length
    (a lying one, for size tests) or it is an iterator of chunks, sent chunked as they come (an
    answer that streams or drips)."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | Iterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes | Iterator[bytes], str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json; charset=utf-8"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class FakeHTTPServer:
    """Start with `start()` (or as a context manager); `url` is http://127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.delay: float = 0.0
        self._failures: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses write --
    def respond(self, request: Recorded) -> Reply:
        return Reply(200, b"ok")

    # -- switches for tests --
    def fail_next(self, count: int, status: int = 500, body: Any = "error", headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` requests with this error instead of the normal answer."""
        with self._lock:
            self._failures.extend(Reply(status, body, dict(headers or {})) for _ in range(count))

    def heal(self) -> None:
        """Forget the failures `fail_next` queued and not yet answered: the server is back."""
        with self._lock:
            self._failures.clear()

    def refuse_connections(self) -> str:
        """A URL on a port where nothing listens (connection refused)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return f"http://127.0.0.1:{s.getsockname()[1]}"

    # -- lifecycle --
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:  # the sender died mid-request (a killed replica): no server acts on half a body
                    self.close_connection = True
                    return
                request = Recorded(self.command, self.path, dict(self.headers.items()), raw)
                reply = fake._dispatch(request)
                payload, content_type = reply.encoded()
                headers = {"Content-Type": content_type, **reply.headers}
                if isinstance(payload, bytes):
                    if not any(name.lower() == "content-length" for name in headers):
                        headers["Content-Length"] = str(len(payload))
                else:
                    headers["Transfer-Encoding"] = "chunked"
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if isinstance(payload, bytes):
                        self.wfile.write(payload)
                        return
                    for chunk in filter(None, payload):  # an empty chunk would end the body
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout and size tests)
                    pass

            do_GET = do_POST = do_PUT = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            failure = self._failures.pop(0) if self._failures else None
        if self.delay:
            self._stopping.wait(self.delay)
        if failure is not None:
            return failure
        return self.respond(request)

    @staticmethod
    def route(request: Recorded) -> str:
        return urlsplit(request.path).path


class RecordingServer(FakeHTTPServer):
    """A generic webhook receiver: answers `status` (200) to everything and keeps what it got."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status

    def respond(self, request: Recorded) -> Reply:
        return Reply(self.status, {"received": True})
