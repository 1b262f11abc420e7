"""A throwaway Prometheus for tests: Debian's `prometheus` binary, its TSDB in a temp folder,
listening only on 127.0.0.1 on a free port, started with a scrape config the test writes and
stopped by its pid (SIGTERM, then SIGKILL). Installs nothing: CI runs `apt-get install -y
prometheus` first (.ci/run).

    python tests/servers/prometheus/server.py TARGET [TARGET…]   # scrape them every second, print the URL
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml

from tests.servers.postgres.server import _alive, free_port


class PrometheusUnavailable(RuntimeError):
    """No `prometheus` binary on this machine."""


def find_binary(name: str = "prometheus") -> str:
    """DAGWATCH_PROMETHEUS (DAGWATCH_PROMTOOL for `promtool`), else the binary on PATH (Debian's
    `prometheus` package installs both in /usr/bin)."""
    found = os.environ.get(f"DAGWATCH_{name.upper()}") or shutil.which(name)
    if not found:
        raise PrometheusUnavailable(f"the `{name}` binary is not installed; `apt-get install -y prometheus` (CI does)")
    return found


def scrape_config(targets: dict[str, dict[str, str]], interval: str = "1s") -> dict:
    """One job per target (`host:port` → extra target labels), scraped every `interval`."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": f"target{i}", "static_configs": [{"targets": [target], "labels": labels}]}
            for i, (target, labels) in enumerate(targets.items())
        ],
    }


class PrometheusServer:
    def __init__(self, config: dict, *, binary: str | None = None, files: Mapping[str, Path] | None = None) -> None:
        """`files`: what to copy next to the config before starting (path relative to it → a file
        or folder), so a config that names its rule files by relative path works unchanged."""
        self.binary = binary or find_binary()
        self.config = config
        self.files = dict(files or {})
        self.root: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dagwatch-prom-"))
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(self.config))
        for relative, source in self.files.items():
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
        atexit.register(self.stop)
        last = ""
        for _ in range(3):  # a free port can be taken between our probe and the bind: retry on another
            self.port = free_port()
            with open(self.root / "prometheus.log", "wb") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.root / 'prometheus.yml'}",
                        f"--storage.tsdb.path={self.root / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                        "--storage.tsdb.retention.time=1h",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            last = self.log_tail()
            self._kill()
            if "address already in use" not in last:
                break
        self.stop()
        raise RuntimeError(f"prometheus did not become ready:\n{last}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "prometheus.log").read_text(errors="replace").splitlines()[-lines:])  # type: ignore[operator]
        except OSError:
            return ""

    def _kill(self) -> None:
        if self.process is None:
            return
        pid = self.process.pid
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None or not _alive(pid):
                break
            os.kill(pid, sig)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def stop(self) -> None:
        """Stop the server by pid and remove its folder; idempotent."""
        self._kill()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        atexit.unregister(self.stop)


def main(argv: list[str]) -> int:
    server = PrometheusServer(scrape_config({target: {} for target in argv}))
    server.start()
    print(f"Prometheus ready at {server.url} (pid {server.process.pid if server.process else '?'})", flush=True)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
