"""Start a real Apache Airflow (3.x with API v2, or 2.x with API v1) for tests, and stop it.

Each component runs in its own session (`setsid`) so stopping one (the scheduler, to see
dagwatch report the outage) or all of them is a signal to a process group we started, never a
search by name. Everything listens on 127.0.0.1 only; logs are served from files, never from the
scheduler's or triggerer's own log servers (`--skip-serve-logs`).

    python -m tests.servers.airflow.server 3 [DAGS_FOLDER]   # start, print URL, wait for Ctrl-C

The venvs come from `install.sh` (the fixture runs it if a venv is missing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DAGWATCH_AIRFLOW_CACHE", HERE.parent / ".cache"))
VENVS = {3: CACHE / "airflow3-venv", 2: CACHE / "airflow2-venv"}
ADMIN = ("admin", "admin-pass-for-tests")
VIEWER = ("monitor", "viewer-pass-for-tests")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed(major: int) -> Path:
    venv = VENVS[major]
    if not (venv / "bin" / "airflow").exists():
        subprocess.run([str(HERE / "install.sh"), str(major)], check=True)
    return venv


@dataclass
class Component:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None


@dataclass
class AirflowServer:
    """One Airflow installation in a temp AIRFLOW_HOME; `url` is what dagwatch is given."""

    major: int
    dags_folder: Path
    plugins_folder: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    home: Path = field(init=False)
    port: int = field(init=False)
    components: dict[str, Component] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.venv = ensure_installed(self.major)
        self.home = Path(tempfile.mkdtemp(prefix=f"dagwatch-airflow{self.major}-"))
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> tuple[str, str]:
        return ADMIN

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
        env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # the CLI re-spawns `airflow` by name
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD="20",
            AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG="16",
        )
        if self.plugins_folder:
            env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(self.plugins_folder)
        if self.major == 3:
            (self.home / "passwords.json").write_text(json.dumps(dict([ADMIN, VIEWER])))
            env.update(
                AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                AIRFLOW__CORE__PARALLELISM="4",
                AIRFLOW__API__HOST="127.0.0.1",
                AIRFLOW__API__PORT=str(self.port),
                AIRFLOW__API__BASE_URL=self.url,
                AIRFLOW__API__WORKERS="1",
                AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
                AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
                AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN[0]}:admin,{VIEWER[0]}:viewer",
                AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            )
        else:
            env.update(
                AIRFLOW__CORE__EXECUTOR="SequentialExecutor",  # the only one SQLite allows in 2.x
                AIRFLOW__API__AUTH_BACKENDS="airflow.api.auth.backend.basic_auth",
                AIRFLOW__WEBSERVER__WEB_SERVER_HOST="127.0.0.1",
                AIRFLOW__WEBSERVER__WEB_SERVER_PORT=str(self.port),
                AIRFLOW__WEBSERVER__BASE_URL=self.url,
                AIRFLOW__WEBSERVER__WORKERS="1",
                AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL="5",
                AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
                AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR="False",
            )
        env.update(self.extra_env)
        return env

    def _airflow(self, *args: str, timeout: float = 180) -> None:
        subprocess.run(
            [str(self.venv / "bin" / "airflow"), *args],
            env=self.env(),
            check=True,
            timeout=timeout,
            stdout=(self.home / "setup.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def start(self, timeout: float = 120) -> float:
        """Migrate, start every component, wait until the API answers and the parts are healthy."""
        started = time.monotonic()
        self._airflow("db", "migrate")
        bin_ = str(self.venv / "bin" / "airflow")
        if self.major == 3:
            specs = {
                "api-server": [bin_, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                "scheduler": [bin_, "scheduler", "--skip-serve-logs"],
                "dag-processor": [bin_, "dag-processor"],
                "triggerer": [bin_, "triggerer", "--skip-serve-logs"],
            }
        else:
            self._airflow(
                "users", "create", "-u", ADMIN[0], "-p", ADMIN[1], "-f", "Ad", "-l", "Min", "-r", "Admin", "-e", "admin@example.invalid"
            )
            # (Viewer and the other FAB roles only exist once the webserver has synced them)
            specs = {
                "webserver": [bin_, "webserver", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1"],
                "scheduler": [bin_, "scheduler", "--skip-serve-logs"],
            }
        for name, argv in specs.items():
            self.components[name] = Component(name, argv)
            self.start_component(name)
        self.wait_healthy(timeout)
        return time.monotonic() - started

    def start_component(self, name: str) -> None:
        comp = self.components[name]
        log = (self.home / f"{name}.log").open("ab")
        comp.proc = subprocess.Popen(comp.argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home)
        log.close()

    def health(self) -> dict:
        path = "/api/v2/monitor/health" if self.major == 3 else "/api/v1/health"
        return httpx.get(self.url + path, timeout=5).json()

    def wait_healthy(self, timeout: float = 120, parts: tuple[str, ...] | None = None) -> None:
        parts = parts or (("metadatabase", "scheduler", "dag_processor", "triggerer") if self.major == 3 else ("metadatabase", "scheduler"))
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for comp in self.components.values():
                if comp.proc and comp.proc.poll() is not None:
                    raise RuntimeError(f"airflow {comp.name} exited with {comp.proc.returncode}; see {self.home}/{comp.name}.log")
            try:
                last = self.health()
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"airflow {self.major} not healthy after {timeout}s: {last}")

    def stop_component(self, name: str, grace: float = 15) -> None:
        """SIGTERM the component's own process group, then SIGKILL what is left (tasks may ignore TERM).

        Task processes run in sessions of their own (the task supervisor calls setsid), so the
        component's descendants are collected first, by parent pid, and killed by pid after."""
        comp = self.components.get(name)
        if not comp or not comp.proc:
            return
        pgid = comp.proc.pid  # start_new_session: the group id is the leader's pid
        family = _descendants(comp.proc.pid)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                comp.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure its children in the group are too
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        comp.proc = None

    def stop(self, keep_home: bool = False) -> None:
        """All components at once: TERM every group, then each one is waited for and killed."""
        families = {n: _descendants(c.proc.pid) for n, c in self.components.items() if c.proc}
        for name in families:
            try:
                os.killpg(self.components[name].proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for name in families:
            self.stop_component(name)
            for pid in families[name]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if not keep_home:
            shutil.rmtree(self.home, ignore_errors=True)


def _descendants(root: int) -> list[int]:
    """Pids below `root` in the process tree (from /proc), deepest last; empty where /proc is absent."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def main(argv: list[str]) -> int:
    major = int(argv[1]) if len(argv) > 1 else 3
    dags = Path(argv[2]) if len(argv) > 2 else HERE.parents[2] / "examples" / "airflow_dags"
    server = AirflowServer(major, dags.resolve())
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        took = server.start()
        print(f"airflow {major} at {server.url} (home {server.home}), healthy after {took:.1f}s; admin {ADMIN[0]}/{ADMIN[1]}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop(keep_home=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
