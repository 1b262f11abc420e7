"""Where task attempts run: threads by default, a fresh process for CPU-bound tasks, or a Dask
cluster (`dask_executor.py`) for work that outgrows this machine.

A thread cannot be killed, so a timed-out thread attempt gets an exception injected at its next
Python bytecode (`PyThreadState_SetAsyncExc`); code blocked inside C (a long `sleep`, a socket
read) sees it only when it returns, and until then the thread stays busy. Process attempts are
killed outright, which is why CPU-heavy or hang-prone tasks should use `executor="process"`.

Each attempt that returns (ok or not) reports what it used (`Usage`), measured where it ran: a
thread attempt's CPU time with `time.thread_time()` in its own worker thread (other tasks' threads
do not count), a process attempt's CPU time and peak RSS by `getrusage(RUSAGE_SELF)` in the child
just before it reports. Not `RUSAGE_CHILDREN` in dagwatch: the children are forked by the
forkserver, not by dagwatch, so they are not its children at all, and even if they were, that
figure sums every reaped child (concurrent attempts would blur together) and its `ru_maxrss` is
the largest child ever, not this one. A thread attempt shares dagwatch's memory, so the only
honest memory figure is the process's peak, labelled `memory_scope="process"`. Killed attempts
(timeout, crash) report nothing.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import pickle
import queue
import resource
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from monitor.runner import logs


class Interrupted(BaseException):
    """Injected into a thread whose attempt timed out; BaseException so `except Exception` in
    user code does not swallow it."""


@dataclass(frozen=True)
class Usage:
    """What one attempt used. `memory_scope` says whose memory `max_rss_bytes` is: "task" (the
    attempt's own process) or "process" (dagwatch's, which a thread attempt shares)."""

    cpu_seconds: float
    max_rss_bytes: int | None = None
    memory_scope: str | None = None


def peak_rss_bytes() -> int:
    """This process's peak resident set size; `ru_maxrss` is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _own_process_usage() -> Usage:
    """Called in a process attempt's child after the task: its CPU (user + system) and peak RSS."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return Usage(cpu_seconds=ru.ru_utime + ru.ru_stime, max_rss_bytes=peak_rss_bytes(), memory_scope="task")


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error_type: str = ""
    error: str = ""
    traceback: str = ""
    exception: BaseException | None = None
    usage: Usage | None = None

    @classmethod
    def failure(cls, exc: BaseException, skip_frames: int = 0) -> "Outcome":
        """`skip_frames` drops dagwatch's own wrapper frames from the top of the traceback."""
        tb_obj = exc.__traceback__
        for _ in range(skip_frames):
            tb_obj = tb_obj.tb_next if tb_obj and tb_obj.tb_next else tb_obj
        tb = "".join(traceback.format_exception(type(exc), exc, tb_obj))
        return cls(ok=False, error_type=type(exc).__name__, error=str(exc) or type(exc).__name__, traceback=tb, exception=exc)


@dataclass
class Attempt:
    """One try of one task; `cancel()` is how the engine enforces its timeout. `kind` is where
    it runs ("thread", "process" or "dask"); the last two call `target` (function, kwargs), which
    must pickle, a thread calls `call`."""

    call: Callable[[], Any]
    sink: logs.TrySink
    done: Callable[["Attempt", Outcome], None]
    kind: str = "thread"
    target: tuple[Callable[..., Any], dict[str, Any]] | None = None
    timeout_s: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread_id: int | None = None
    process: Any = None
    future: Any = None  # a dask try's distributed.Future
    cancelled: bool = False

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.process is not None:
                self.process.kill()
            elif self.future is not None:
                # Not client.cancel: it waits for the scheduler. Releasing only drops the key; the
                # worker's own watchdog stops a running call at the same timeout.
                self.future.release()
            elif self.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(Interrupted))


def _clear_async_exception(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


_live_pools: "weakref.WeakSet[_ThreadPool]" = weakref.WeakSet()


def _wake_idle_workers_at_exit() -> None:
    """Like `concurrent.futures.thread`'s exit hook: idle workers of a pool nobody shut down
    exit, so the interpreter only waits for calls still running."""
    for pool in list(_live_pools):
        pool._shutdown = True
        pool._work.put(None)


threading._register_atexit(_wake_idle_workers_at_exit)  # type: ignore[attr-defined]


class _ThreadPool:
    """What `TaskExecutor` used of `ThreadPoolExecutor`, without a Future (and its Condition)
    per call: attempts report through `Attempt.done`, so nobody ever read those futures.

    Same behaviour otherwise: threads named `<prefix>_<n>` started on demand up to
    `max_workers` (none while one is idle), exceptions escaping a call are swallowed like an
    unread future's, `shutdown()` drops calls not started yet and lets running ones finish, and
    the threads are not daemons, so the interpreter waits for a running call at exit.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[tuple[Callable[[Attempt], None], Attempt] | None] = queue.SimpleQueue()
        self._idle = 0  # threads waiting for work; guarded by _lock (a Semaphore costs ~10 µs a call)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False
        _live_pools.add(self)

    def submit(self, fn: Callable[[Attempt], None], attempt: Attempt) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new attempts after shutdown")
            self._work.put((fn, attempt))
            if self._idle:
                self._idle -= 1
                return
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._worker, name=f"{self._prefix}_{len(self._threads)}")
                thread.start()
                self._threads.append(thread)

    def _worker(self) -> None:
        work, lock = self._work, self._lock
        while True:
            item = work.get()
            if item is None:
                work.put(None)  # wake the next thread too
                return
            fn, attempt = item
            try:
                fn(attempt)
            except BaseException:  # noqa: BLE001 - what an unread Future would have kept
                pass
            del item, fn, attempt
            if self._shutdown:
                return
            with lock:
                self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            while True:  # cancel what has not started
                try:
                    self._work.get_nowait()
                except queue.Empty:
                    break
            self._work.put(None)


class TaskExecutor:
    """Runs attempts on a thread pool; process and dask attempts are driven from a pool thread
    too (`dask`: the runner's `DaskCluster`, needed only by dask attempts)."""

    def __init__(self, max_workers: int, dask: Any = None) -> None:
        self._pool = _ThreadPool(max_workers, thread_name_prefix="dagwatch-task")
        self._mp = multiprocessing.get_context("forkserver")
        self._dask = dask

    def submit(self, attempt: Attempt) -> None:
        run = {"thread": self._run_thread, "process": self._run_process, "dask": self._run_dask}[attempt.kind]
        self._pool.submit(run, attempt)

    def shutdown(self) -> None:
        self._pool.shutdown()

    @staticmethod
    def _run_thread(attempt: Attempt) -> None:
        ident = threading.get_ident()
        outcome: Outcome
        token = logs.activate(attempt.sink)
        cpu_started = time.thread_time()
        try:
            try:
                with attempt.lock:
                    if attempt.cancelled:
                        return
                    attempt.thread_id = ident
                value = attempt.call()
                outcome = Outcome(ok=True, value=value)
            finally:
                with attempt.lock:
                    attempt.thread_id = None
                    if attempt.cancelled:  # only cancel() (under this lock) injects one
                        _clear_async_exception(ident)
        except Interrupted:
            outcome = Outcome(ok=False, error_type="Interrupted", error="interrupted after its timeout")
        except BaseException as exc:  # the task's own failure, whatever it is, is data here
            outcome = Outcome.failure(exc, skip_frames=1)
            attempt.sink.write(outcome.traceback)
        finally:
            logs.deactivate(token)
            attempt.sink.close()
        outcome.usage = Usage(time.thread_time() - cpu_started, peak_rss_bytes(), "process")
        attempt.done(attempt, outcome)

    def _run_dask(self, attempt: Attempt) -> None:
        from monitor.runner import dask_executor

        dask_executor.run(self._dask, attempt)

    def _run_process(self, attempt: Attempt) -> None:
        assert attempt.target is not None
        fn, kwargs = attempt.target
        receiver, sender = self._mp.Pipe(duplex=False)
        process = self._mp.Process(target=_process_main, args=(fn, kwargs, str(attempt.sink.path), sender), daemon=True)
        with attempt.lock:
            if attempt.cancelled:
                return
            process.start()
            attempt.process = process
        sender.close()
        try:
            kind, payload, usage = receiver.recv()
            outcome = Outcome(ok=True, value=payload, usage=usage) if kind == "ok" else Outcome(ok=False, usage=usage, **payload)
        except EOFError:
            process.join()
            outcome = Outcome(ok=False, error_type="ProcessDied", error=f"task process exited with code {process.exitcode}")
        finally:
            receiver.close()
            process.join(timeout=5)
        attempt.done(attempt, outcome)


def _process_main(fn: Callable[..., Any], kwargs: dict[str, Any], log_file: str, conn: Any) -> None:
    """Entry point of a process attempt: logs to the try's file, sends back the result or error
    with the child's own `Usage` (read last, so it covers pickling the result too)."""
    import logging
    import sys

    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as fh:
        sys.stdout = sys.stderr = fh
        logging.basicConfig(stream=fh, level=logging.INFO, force=True)
        try:
            message: tuple[str, Any] = ("ok", fn(**kwargs))
            pickle.dumps(message[1])
        except BaseException as exc:
            failure = Outcome.failure(exc, skip_frames=1)
            fh.write(failure.traceback)
            message = (
                "err",
                {"error_type": failure.error_type, "error": failure.error, "traceback": failure.traceback},
            )
        conn.send((*message, _own_process_usage()))
        conn.close()
