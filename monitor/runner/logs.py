"""Per-try task logs: whatever a task prints or logs lands in its own file.

`sys.stdout`, `sys.stderr` and a root logging handler are routed through a context variable set
by the worker for the duration of one try, so tasks need no special logger and threads running
different tasks do not mix their output. Files are opened on first write, so a silent task costs
nothing.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from pathlib import Path
from typing import TextIO

_sink: contextvars.ContextVar["TrySink | None"] = contextvars.ContextVar("dagwatch_task_log", default=None)
_install_lock = threading.Lock()
_installed = False


class TrySink:
    """The log of one task try; `tee` also echoes lines (for `dagwatch run`)."""

    def __init__(self, path: Path, tee: TextIO | None = None, prefix: str = "") -> None:
        self._path: Path | None = path
        self._path_args: tuple[Path, str, str, str, int, int] | None = None
        self._tee = tee
        self._prefix = prefix
        self._fh: io.TextIOWrapper | None = None
        self._lock = threading.Lock()
        self._line_start = True

    @classmethod
    def for_try(
        cls,
        root: Path,
        pipeline: str,
        run_id: str,
        task: str,
        map_index: int,
        try_number: int,
        tee: TextIO | None = None,
        prefix: str = "",
    ) -> "TrySink":
        """The sink at `log_path(...)`, the path built only when first asked for: most tries
        never write, and building it is a good part of the runner's per-task cost."""
        sink = cls(None, tee=tee, prefix=prefix)  # type: ignore[arg-type]
        sink._path_args = (root, pipeline, run_id, task, map_index, try_number)
        return sink

    @property
    def path(self) -> Path:
        if self._path is None and self._path_args is not None:
            self._path = log_path(*self._path_args)
        return self._path  # type: ignore[return-value]

    @path.setter
    def path(self, value: Path) -> None:
        self._path = value
        self._path_args = None

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(text)
            self._fh.flush()
            if self._tee is not None:
                out = []
                for line in text.splitlines(keepends=True):
                    out.append(self._prefix + line if self._line_start else line)
                    self._line_start = line.endswith("\n")
                self._tee.write("".join(out))
                self._tee.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class _RoutedStream(io.TextIOBase):
    """Stands in for stdout/stderr: writes go to the current task's sink, else to the original."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is None:
            return self.original.write(text)
        sink.write(text)
        return len(text)

    def flush(self) -> None:
        if _sink.get() is None:
            self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class _RoutedHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get()
        if sink is not None:
            try:
                sink.write(self.format(record) + "\n")
            except Exception:
                self.handleError(record)


def install() -> None:
    """Route stdout, stderr and logging through task sinks. Idempotent, and cheap enough to call
    per run: something else (a test harness, a notebook) may have replaced sys.stdout since."""
    global _installed
    with _install_lock:
        if not isinstance(sys.stdout, _RoutedStream):
            sys.stdout = _RoutedStream(sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, _RoutedStream):
            sys.stderr = _RoutedStream(sys.stderr)  # type: ignore[assignment]
        if _installed:
            return
        handler = _RoutedHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        if logging.getLogger().level > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
        _installed = True


def activate(sink: TrySink) -> contextvars.Token["TrySink | None"]:
    return _sink.set(sink)


def deactivate(token: contextvars.Token["TrySink | None"]) -> None:
    _sink.reset(token)


def current() -> TrySink | None:
    return _sink.get()


def log_path(root: Path, pipeline: str, run_id: str, task: str, map_index: int, try_number: int) -> Path:
    name = task if map_index < 0 else f"{task}[{map_index}]"
    return root / pipeline / run_id / name / f"try-{try_number}.log"
