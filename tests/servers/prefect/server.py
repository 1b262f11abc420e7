"""A real Prefect 3 server for tests: installed once into a cached venv, started on 127.0.0.1 with
its own PREFECT_HOME and SQLite file in a temp folder, stopped by pid.

    python tests/servers/prefect/server.py [--port P] [--home DIR]   # start, print URL, wait for Ctrl-C

Flows and `serve` processes run with the same venv's python (`PrefectServer.run_flow`,
`start_serve`), with PREFECT_API_URL pointing here; without it Prefect would silently start an
ephemeral server of its own and the history would vanish.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DAGWATCH_PREFECT_CACHE", HERE.parent / ".cache"))
VENV = CACHE / "prefect-venv"
PYTHON = VENV / "bin" / "python"
FLOWS = HERE.parents[2] / "examples" / "prefect_flows" / "flows.py"


def install() -> float:
    """Run install.sh (idempotent); returns seconds spent."""
    started = time.monotonic()
    subprocess.run(["bash", str(HERE / "install.sh")], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class PrefectServer:
    def __init__(self, home: Path, port: int | None = None, *, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_API_URL": self.api_url,
            "PREFECT_LOGGING_LEVEL": "INFO",
            "DAGWATCH_MARKER_DIR": str(home),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self._children: list[subprocess.Popen] = []

    def start(self, timeout: float = 90) -> float:
        """Start and wait for /api/health; returns seconds to healthy."""
        started = time.monotonic()
        self._log = (self.home / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.proc.returncode}; see {self.home / 'server.log'}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=1).json() is True:
                    return time.monotonic() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"prefect server did not answer /api/health within {timeout}s")

    def run_flow(self, scenario: str, *args: str, timeout: float = 120, script: Path = FLOWS) -> subprocess.CompletedProcess:
        """Run one scenario of examples/prefect_flows/flows.py (or of another flow `script` that
        takes the scenario as its first argument) to its end."""
        return subprocess.run(
            [str(PYTHON), str(script), scenario, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_flow(self, scenario: str, *args: str, script: Path = FLOWS) -> subprocess.Popen:
        """Start a scenario (of `script`, as for run_flow) without waiting (long runs, many runs
        at once, `serve` processes); stopped with stop_child() or stop()."""
        proc = subprocess.Popen(
            [str(PYTHON), str(script), scenario, *args], env=self.env, cwd=self.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._children.append(proc)
        return proc

    def stop_child(self, proc: subprocess.Popen) -> None:
        _stop(proc, grace=5)

    def stop(self) -> None:
        for child in self._children:
            _stop(child, grace=5)
        if self.proc is not None:
            _stop(self.proc)
            self._log.close()
            self.proc = None


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"install: {install():.1f}s", flush=True)
    # Block the signals before anything else, so sigwait() receives them instead of the default
    # handler killing this wrapper and leaving the server running.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    server = PrefectServer(args.home or Path(tempfile.mkdtemp(prefix="prefect-home-")), args.port)
    print(f"healthy after {server.start():.1f}s: PREFECT_API_URL={server.api_url} (pid {server.proc.pid})", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
