"""A pool of spawn-started worker processes that run GX validations.

Why a process pool: GX is not thread-safe (a shared context gave silently wrong
results), its validations hold the GIL (threads give no speed-up), and importing
it costs ~200 MB and 2-4 s. So the service never imports GX; each worker imports
it once at start (``_init_worker``), builds a fresh ephemeral context per
validation, and reads the data itself from a path (pickling large frames across
processes costs more than reading Parquet). To add little to GX's own time, a
worker builds a suite file once per version and keeps it, and reads only the
columns the suite looks at (``suite_columns``; all of them when any expectation
is table-level). ``spawn`` rather than ``fork``: a
forked copy of a threaded web server can deadlock on locks held at fork time.

Results come back as ``CheckResult``; errors as the library's own exceptions
(they pickle with their attributes). A dead worker becomes ``WorkerError`` and the
pool is rebuilt for the next call.

For asyncio callers: ``await asyncio.wrap_future(pool.submit(suite, data))``.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from checks.errors import CheckError, WorkerError
from checks.result import CheckResult


def _init_worker() -> None:
    """Runs once in each worker: import GX (the expensive part) before any request."""
    from checks.quality._gx import gx

    gx()


def _ping() -> int:
    time.sleep(0.1)  # keep a worker busy so the next ping goes to another one
    return os.getpid()


def _build(suite: str | dict[str, Any]) -> tuple[Any, list[str] | None]:
    """Build a suite (file or inline document) now, with the columns it reads."""
    from checks.quality.suite import build_suite, load_suite, suite_columns

    built = load_suite(suite) if isinstance(suite, str) else build_suite(suite, suite.get("name") or "<suite>")
    return built, suite_columns(built)


@functools.lru_cache(maxsize=32)
def _built_from_file(path: str, identity: tuple[int, int, int]) -> tuple[Any, list[str] | None]:
    """Build a suite file once per worker and version (``identity``: inode, size, mtime).

    Re-reading and re-building the suite on every call is dagwatch's cost, not GX's.
    A built suite is safe to reuse: validation leaves it unchanged and a worker runs
    one task at a time. An edited or replaced file has another identity, so the next
    call builds it afresh. Errors are not cached (lru_cache does not keep exceptions).
    """
    return _build(path)


def _suite_for(suite: str | dict[str, Any]) -> tuple[Any, list[str] | None]:
    """The built GX suite and the columns it reads (None: all); suite files come from the cache.

    Inline documents are built on every call: they are the ad-hoc case, and keying a
    cache on a dict's contents would need a canonical form that does not change it.
    """
    if isinstance(suite, dict):
        return _build(suite)
    try:
        st = os.stat(suite)
    except OSError:  # load_suite reports a missing or unreadable file in its own words
        return _build(suite)
    return _built_from_file(suite, (st.st_ino, st.st_size, st.st_mtime_ns))


def _run(suite: str | dict[str, Any], data_path: str, name: str | None) -> CheckResult:
    from checks.data_io import read_needed
    from checks.quality.validate import validate_frame

    built, columns = _suite_for(suite)
    df, present = read_needed(data_path, columns)  # only what the suite looks at; a missing column stays missing
    result = validate_frame(df, built, name=name, columns=present)
    result.details["data"] = data_path
    if isinstance(suite, str):
        result.details["suite_file"] = suite
    return result


class QualityPool:
    """Validate data files against suites in ``workers`` GX worker processes."""

    def __init__(self, workers: int = 2, *, timeout: float = 300.0, max_tasks_per_child: int | None = 200) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.timeout = timeout
        self.max_tasks_per_child = max_tasks_per_child  # bounds memory GX may leak over time
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def _get_executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise WorkerError("quality pool is closed")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    max_tasks_per_child=self.max_tasks_per_child,
                )
            return self._executor

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    def warm_up(self, timeout: float = 60.0) -> list[int]:
        """Start every worker and import GX in it now rather than on the first request.

        Returns the worker pids. Pings go out in rounds until each worker has answered
        one (a worker that finished importing first could otherwise take them all).
        """
        ex = self._get_executor()
        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        while len(pids) < self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"only {len(pids)} of {self.workers} quality workers started in {timeout}s")
            futures = [ex.submit(_ping) for _ in range(self.workers)]
            try:
                pids.update(f.result(timeout=left) for f in futures)
            except FutureTimeout as exc:
                raise WorkerError(f"quality workers did not start in {timeout}s") from exc
            except BrokenProcessPool as exc:
                self._reset(ex)
                raise WorkerError(f"quality worker died while starting: {exc}") from exc
        return sorted(pids)

    def submit(self, suite: str | Path | dict[str, Any], data_path: str | Path, *, name: str | None = None) -> Future:
        """Queue a validation; the future yields a ``CheckResult`` or raises a ``CheckError``."""
        suite_arg: str | dict[str, Any] = str(suite) if isinstance(suite, (str, Path)) else dict(suite)
        ex = self._get_executor()
        try:
            inner = ex.submit(_run, suite_arg, str(data_path), name)
        except BrokenProcessPool as exc:
            self._reset(ex)
            raise WorkerError(f"quality worker pool broke: {exc}") from exc
        outer: Future = Future()

        def _done(f: Future) -> None:
            try:
                outer.set_result(f.result())
            except CheckError as exc:
                outer.set_exception(exc)
            except BrokenProcessPool as exc:
                self._reset(ex)
                outer.set_exception(WorkerError(f"quality worker died during validation: {exc}"))
            except Exception as exc:  # an unexpected GX failure: typed, with the cause kept
                err = WorkerError(f"validation failed in worker: {type(exc).__name__}: {exc}")
                err.__cause__ = exc
                outer.set_exception(err)

        inner.add_done_callback(_done)
        return outer

    def validate(
        self, suite: str | Path | dict[str, Any], data_path: str | Path, *, name: str | None = None, timeout: float | None = None
    ) -> CheckResult:
        """Validate and wait for the result."""
        try:
            return self.submit(suite, data_path, name=name).result(timeout=timeout or self.timeout)
        except FutureTimeout as exc:
            raise WorkerError(f"validation of {data_path} timed out after {timeout or self.timeout}s") from exc

    def validate_frame(self, suite: str | Path | dict[str, Any], df, *, name: str | None = None) -> CheckResult:
        """Validate a DataFrame by writing it to a temporary Parquet file the worker reads."""
        fd, tmp = tempfile.mkstemp(suffix=".parquet", prefix="dagwatch-check-")
        os.close(fd)
        try:
            df.to_parquet(tmp, index=False)
            return self.validate(suite, tmp, name=name)
        finally:
            os.unlink(tmp)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> QualityPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
