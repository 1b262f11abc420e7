"""Start a real `dagwatch up` for a test, on a free loopback port, and stop it by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

DEMO_CONFIG = """
data_dir: {data_dir}
alerting: {{group_wait: 0s, group_interval: 1s}}
sources:
  - name: embedded
    kind: embedded
    poll_interval: 0.5s
    pipelines:
      - ref: monitor.demo.pipeline:pipeline
        schedule: {{every: 2s}}
        params: {{scenario: cycle, rows: 1000}}
"""


def wait_for(predicate, limit: float = 60.0, step: float = 0.1):
    """Poll until predicate() is truthy and return it; bounded, so a broken build fails, not hangs."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    pytest.fail("condition not reached in time")


def create_token(config: Path, name: str, role: str = "operator") -> str:
    """An API token, made the way an operator makes one: `dagwatch token create`."""
    out = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "token", "create", "--name", name, "--role", role, "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve a dagwatch app (`api.app.create_app`) with uvicorn in a thread of this process, on a
    free loopback port; yields its base URL and stops the server on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    wait_for(lambda: server.started, limit=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class DagwatchProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DAGWATCH_CONFIG", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "up", "--config", str(config), "--port", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_healthy(self, limit: float = 60) -> float:
        """Seconds until /healthz answered (bounded; raises if the process died or never answered)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagwatch exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("dagwatch did not answer /healthz")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
