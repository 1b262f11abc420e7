"""A throwaway PostgreSQL cluster for tests: Debian's binaries, `initdb` in a temp folder, started
with `pg_ctl` listening only on 127.0.0.1 on a free port (its unix socket in the same folder),
stopped by `pg_ctl stop` and, failing that, by the postmaster's pid. Installs nothing: CI runs
`apt-get install -y postgresql` first (.ci/run).

    python tests/servers/postgres/server.py [--port P]   # start, print the URL, wait for Ctrl-C

As root (CI), `initdb` refuses to run, so every server command runs as the `postgres` user the
Debian package creates (`runuser -u postgres --`), in a temp folder owned by that user. As any
other user, they run as that user.

Two roles: the superuser `postgres` (used only to create and drop databases) and `dagwatch`, a
plain role that owns the test databases, as in production. Both authenticate with a random
password over TCP (scram-sha-256), never `trust`. Durability is switched off (fsync,
synchronous_commit, full_page_writes): a test cluster has nothing to keep, and it makes
CREATE DATABASE and commits fast.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUIRED = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no non-root user to run them as) on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.split("/postgresql/")[-1].split("/")[0]) or [0])


def find_bindir() -> Path:
    """DAGWATCH_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else where `initdb` is on PATH."""
    candidates: list[str] = []
    if os.environ.get("DAGWATCH_PG_BINDIR"):
        candidates.append(os.environ["DAGWATCH_PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in REQUIRED):
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in /usr/lib/postgresql/*/bin "
        "or on PATH; install them with `apt-get install -y postgresql` (or set DAGWATCH_PG_BINDIR)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster. `start()` returns seconds to ready; `stop()` is idempotent and safe on failure."""

    def __init__(self, port: int | None = None, *, bindir: Path | None = None, database: str = "dagwatch") -> None:
        self.bindir = bindir or find_bindir()
        self.port = port
        self.database = database
        self.admin_password = secrets.token_hex(16)
        self.password = secrets.token_hex(16)
        self.user = "dagwatch"
        self.root: Path | None = None
        self.pid: int | None = None
        self._as: list[str] = []
        self._run_as_uid: int | None = None
        self._watchdog: subprocess.Popen | None = None

    # -- where and as whom ------------------------------------------------------------------
    def _prepare(self) -> None:
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` user to run initdb as (the Debian postgresql package creates it)"
                ) from exc
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._as = [runuser, "-u", "postgres", "--"] if os.access(runuser, os.X_OK) else []
            self._run_as_uid = account.pw_uid
            self._gid = account.pw_gid
        self.root = Path(tempfile.mkdtemp(prefix="dagwatch-pg-"))
        os.chmod(self.root, 0o700)
        if self._run_as_uid is not None:
            os.chown(self.root, self._run_as_uid, self._gid)
        atexit.register(self.stop)  # belt and braces: pytest's finalizer is the usual path

    def _cmd(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        if self._run_as_uid is None:
            return argv
        if self._as:
            return [*self._as, *argv]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in argv)]

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        assert self.root is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
        return subprocess.run(
            self._cmd(tool, *args),
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> float:
        began = time.monotonic()
        self._prepare()
        assert self.root is not None
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        os.chmod(pwfile, 0o600)
        if self._run_as_uid is not None:
            os.chown(pwfile, self._run_as_uid, self._gid)
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            timeout=timeout,
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        last = ""
        for _attempt in range(3):  # a free port can be taken between our probe and the bind: retry on another
            port = self.port or free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {port}",
                    f"-c unix_socket_directories={self.root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=100",
                    "-c log_min_messages=warning",
                ]
            )
            done = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
                timeout=timeout + 10,
            )
            if done.returncode == 0:
                self.port = port
                self.pid = self._read_pid()
                break
            last = f"{done.stdout}\n{done.stderr}\n{self.log_tail()}"
            self._kill_postmaster()
            if self.port is not None or "could not bind" not in last.lower():
                break  # only a lost race for a port we picked is worth another try
        else:
            self.stop()
            raise RuntimeError(f"pg_ctl start failed three times:\n{last}")
        if self.pid is None:
            self.stop()
            raise RuntimeError(f"pg_ctl start failed:\n{last}")
        self._start_watchdog()
        self._sql(
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {self.database} OWNER {self.user} TEMPLATE template0",
        )
        return time.monotonic() - began

    def _start_watchdog(self) -> None:
        """A tiny process in its own session that stops the postmaster (by pid) and removes the
        folder if this process dies without calling stop() (SIGKILL, os._exit, a killed pytest).
        It exits by itself as soon as the postmaster is gone."""
        self._watchdog = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "watchdog", str(os.getpid()), str(self.pid), str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _read_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])  # type: ignore[operator]
        except OSError:
            return ""

    def _sql(self, *statements: str) -> None:
        """Run statements as the superuser through psql over TCP (no psycopg needed here)."""
        psql = self.bindir / "psql"
        if not os.access(psql, os.X_OK):
            psql = Path(shutil.which("psql") or "psql")
        env = {**os.environ, "PGPASSWORD": self.admin_password, "PGCONNECT_TIMEOUT": "10"}
        for statement in statements:
            subprocess.run(
                [
                    str(psql),
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    statement,
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        """`pg_ctl stop -m fast`; if the postmaster is still there, SIGQUIT then SIGKILL by pid; remove the folder."""
        if self.root is None:
            return
        if self.pid is not None and _alive(self.pid):
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop", timeout=30)
            except (subprocess.TimeoutExpired, OSError):
                pass
        self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        if self._watchdog is not None:  # it sees the postmaster gone within half a second
            try:
                self._watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        atexit.unregister(self.stop)

    def _kill_postmaster(self) -> None:
        pid = self.pid or (self._read_pid() if self.root is not None else None)
        if pid is not None:
            _stop_pid(pid)
        self.pid = None

    # -- URLs --------------------------------------------------------------------------------
    def url(self, database: str | None = None, *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database or self.database}"

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres password={self.admin_password} dbname={database} connect_timeout=10"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _stop_pid(pid: int, grace: float = 5.0) -> None:
    """SIGQUIT (PostgreSQL's immediate shutdown), then SIGKILL, each given `grace` seconds."""
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        if not _alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def watchdog(parent: int, postmaster: int, root: str) -> int:
    """Run as `python server.py watchdog PARENT POSTMASTER ROOT` in its own session: it must
    outlive the test process it watches. Bounded to 6 h whatever happens."""
    deadline = time.monotonic() + 6 * 3600
    while _alive(postmaster) and time.monotonic() < deadline:
        if not _alive(parent):
            _stop_pid(postmaster)
            shutil.rmtree(root, ignore_errors=True)
            break
        time.sleep(0.5)
    return 0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    server = PostgresServer(port=args.port)
    try:
        seconds = server.start()
        print(f"PostgreSQL ready in {seconds:.1f}s (postmaster pid {server.pid})", flush=True)
        print(f"DAGWATCH_STORE_URL={server.url()}", flush=True)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        try:
            while not stop["now"] and server.pid is not None and _alive(server.pid):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    finally:
        server.stop()
        print("PostgreSQL stopped", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["watchdog"]:
        sys.exit(watchdog(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    sys.exit(main(sys.argv[1:]))
