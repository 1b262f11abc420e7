"""The `dask` executor: each try of a task runs on a `dask.distributed` cluster.

The runner keeps everything that makes a try a try — retries with backoff, timeouts, the result
cache, checkpoints, recorded states — exactly as for threads and processes; Dask only runs the
call. So every Dask task is submitted with `retries=0` and a key of its own per try: when Dask
would re-run a call by itself, dagwatch would record one try where the code ran twice.

Which cluster: `scheduler_address` when configured (an existing cluster; dagwatch and the task
code must be importable on its workers, and `checkpoint_dir` must be on storage they share), else
a `LocalCluster` of real worker processes on 127.0.0.1, started on first use and closed with the
runner. The local cluster is made to surface a lost worker at once: `allowed_failures=0`, so a
worker that dies mid-task turns the task into `KilledWorker` instead of a silent re-run, and
`worker-saturation=1.0` with every try in one task group ("dagwatch-try"), so the scheduler queues
tries instead of parking them on a worker — when a worker dies, only the try it was running fails
(Dask fails every task assigned to a dead worker, started or not).

A try's output is captured on the worker (`logs` routing, as for a thread try) and shipped back
with its result or error; the runner writes it into the try's log file. A try's timeout is
enforced twice: by the runner's own timer (which fails the try, whatever the worker does) and by a
watchdog on the worker that injects `Interrupted` into the task's thread so the worker is freed —
like a thread try, code blocked inside C sees it only when it returns.

`distributed` is an optional dependency (`pip install 'dagwatch[dask]'`): it is imported only when
a dask try runs or the cluster's health is asked for.
"""

from __future__ import annotations

import ctypes
import hashlib
import pickle
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from monitor.errors import DagwatchError
from monitor.runner import logs
from monitor.runner.executors import Attempt, Interrupted, Outcome, Usage, peak_rss_bytes

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

#: Every try's key starts with this, so they form one Dask task group (see the module docstring).
KEY_PREFIX = "dagwatch-try-"
#: How often a thread waiting for a try checks whether it was cancelled or the client lost.
WAIT_POLL_S = 1.0
#: Task functions a worker keeps unpickled (see `_Shipped`).
WORKER_FUNCTIONS = 512


class DaskUnavailable(DagwatchError):
    """The Dask cluster cannot be reached or started; the message says which and what to check."""


@dataclass(frozen=True)
class DaskOptions:
    """Where dask tries run. Without `scheduler_address`, a local cluster of `workers` processes
    with `threads_per_worker` threads each. `connect_timeout` bounds every wait for the
    scheduler (connecting, asking its health), so an unreachable cluster fails tries and health
    checks instead of hanging them."""

    scheduler_address: str | None = None
    workers: int = 2
    threads_per_worker: int = 1
    connect_timeout: float = 10.0
    dashboard: bool = True


def _missing_extra(exc: ImportError) -> DaskUnavailable:
    return DaskUnavailable(f"the dask executor needs dask.distributed ({exc}); install it with `pip install 'dagwatch[dask]'`")


class DaskCluster:
    """The runner's one connection to its Dask cluster, shared by every run; nothing starts
    until a dask try or a health check needs it. Thread-safe."""

    def __init__(self, options: DaskOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._dashboard: str | None = None
        # A failed connect is remembered for `connect_timeout`: the tries submitted meanwhile
        # fail at once with the same error instead of each waiting out its own timeout.
        self._failed: tuple[float, DaskUnavailable] | None = None
        self._closed = False
        self._shipped: weakref.WeakKeyDictionary[Callable[..., Any], _Shipped] = weakref.WeakKeyDictionary()

    def shipped(self, fn: Callable[..., Any]) -> "_Shipped":
        """`fn` pickled once for every try of it (see `_Shipped`)."""
        with self._lock:
            found = self._shipped.get(fn)
            if found is None:
                found = self._shipped[fn] = _Shipped.of(fn)
            return found

    @property
    def started(self) -> bool:
        return self._client is not None

    @property
    def dashboard_link(self) -> str | None:
        """The scheduler's dashboard (http), when it serves one; None before connecting."""
        return self._dashboard

    def client(self) -> "Client":
        """The connected client, connecting (or starting the local cluster) on first use."""
        with self._lock:
            if self._closed:
                raise DaskUnavailable("the runner was closed, and its Dask cluster with it")
            if self._client is not None and self._client.status == "running":
                return self._client
            if self._failed is not None and time.monotonic() - self._failed[0] < self.options.connect_timeout:
                raise self._failed[1]
            self._drop()
            try:
                self._client = self._connect()
            except DaskUnavailable as exc:
                self._failed = (time.monotonic(), exc)
                raise
            self._failed = None
            self._dashboard = _dashboard_link(self._client, self.options.connect_timeout)
            return self._client

    def _connect(self) -> "Client":
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise _missing_extra(exc) from exc
        timeout = self.options.connect_timeout
        address = self.options.scheduler_address
        if address is not None:
            try:
                return Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise DaskUnavailable(
                    f"cannot reach the Dask scheduler at {address} within {timeout:g}s ({type(exc).__name__}: {exc}); "
                    "check that it runs and that this host can reach it, or remove `dask.scheduler_address` to use a local cluster"
                ) from exc
        try:
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                cluster = LocalCluster(
                    n_workers=self.options.workers,
                    threads_per_worker=self.options.threads_per_worker,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0" if self.options.dashboard else None,
                    scheduler_kwargs={"allowed_failures": 0},
                    timeout=timeout,
                )
        except Exception as exc:  # the cluster's own start-up errors are many kinds; all mean the same here
            raise DaskUnavailable(f"could not start a local Dask cluster ({type(exc).__name__}: {exc})") from exc
        try:
            client = Client(cluster, timeout=timeout, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        self._cluster = cluster
        return client

    def health(self) -> tuple[bool, str, dict[str, Any]]:
        """(healthy, the problem if not, details) of the cluster, each wait bounded by
        `connect_timeout`. A local cluster not started yet is healthy: it starts with the first
        dask try. A cluster whose scheduler answers but has no worker is not: tries would wait."""
        if self.options.scheduler_address is None and not self.started:
            return True, "", {"dask": "local cluster, starts with the first dask try"}
        try:
            client = self.client()
            info = client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=self.options.connect_timeout)
        except DaskUnavailable as exc:
            return False, str(exc), {}
        except (OSError, TimeoutError) as exc:
            return (
                False,
                f"the Dask scheduler at {self._address()} did not answer within {self.options.connect_timeout:g}s ({type(exc).__name__})",
                {},
            )
        workers = info.get("workers", {})
        details: dict[str, Any] = {
            "dask_scheduler": self._address(),
            "dask_workers": len(workers),
            "dask_threads": sum(w.get("nthreads", 0) for w in workers.values()),
        }
        if self._dashboard:
            details["dask_dashboard"] = self._dashboard
        if not workers:
            return False, f"the Dask scheduler at {self._address()} has no workers: dask tries would wait for one", details
        return True, "", details

    def _address(self) -> str:
        if self.options.scheduler_address:
            return self.options.scheduler_address
        client = self._client
        return client.scheduler.address if client is not None else "(local cluster)"

    def close(self) -> None:
        """Close the client and the local cluster (its worker processes stop with it)."""
        with self._lock:
            self._closed = True
            self._drop()

    def _drop(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        self._dashboard = None
        if client is not None:
            client.close(timeout=self.options.connect_timeout)
        if cluster is not None:
            cluster.close(timeout=self.options.connect_timeout)


@dataclass(frozen=True)
class _Shipped:
    """A task function as it travels: pickled once by the runner (cloudpickle: a function defined
    in a notebook, a test or `__main__` goes by value, and that costs ~1 ms a time) and unpickled
    once per worker, which keeps it by digest. A module's function goes by reference (its name),
    as with any Dask task; one sent by value is the function as it was when first sent — define it
    again (a new function object) to send a new one."""

    digest: str
    data: bytes

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> "_Shipped":
        import cloudpickle

        data = cloudpickle.dumps(fn, protocol=5)
        return cls(hashlib.sha256(data).hexdigest(), data)

    def load(self) -> Callable[..., Any]:
        with _functions_lock:
            fn = _functions.get(self.digest)
            if fn is not None:
                _functions.move_to_end(self.digest)
                return fn
        fn = pickle.loads(self.data)
        with _functions_lock:
            _functions[self.digest] = fn
            while len(_functions) > WORKER_FUNCTIONS:
                _functions.popitem(last=False)
        return fn


_functions: "OrderedDict[str, Callable[..., Any]]" = OrderedDict()  # on a worker: digest → task function
_functions_lock = threading.Lock()


def _dashboard_link(client: "Client", timeout: float) -> str | None:
    """http://host:port/status of the scheduler's dashboard, or None when it serves none (no
    bokeh, or switched off). Built from the scheduler's own address, not dask's link template
    (which formats environment variables into the URL)."""
    try:
        info = client.sync(client.scheduler.identity, n_workers=0, callback_timeout=timeout)
    except (OSError, TimeoutError):
        return None
    port = info.get("services", {}).get("dashboard")
    address = client.scheduler.address or ""
    if not port or "://" not in address:
        return None
    host = address.split("://", 1)[1].rsplit(":", 1)[0]
    return f"http://{host}:{port}/status"


# -- running one try ------------------------------------------------------------------------------


def run(cluster: DaskCluster, attempt: Attempt) -> None:
    """Submit one try and wait for it (on a runner pool thread); reports through `attempt.done`."""
    assert attempt.target is not None
    fn, kwargs = attempt.target
    with attempt.lock:
        if attempt.cancelled:
            return
    try:
        client = cluster.client()
        future = client.submit(
            run_on_worker,
            cluster.shipped(fn),
            kwargs,
            attempt.timeout_s,
            key=f"{KEY_PREFIX}{uuid.uuid4().hex}",
            pure=False,
            retries=0,
        )
    except DaskUnavailable as exc:
        _report(attempt, Outcome(ok=False, error_type="DaskUnavailable", error=str(exc)), note=str(exc))
        return
    with attempt.lock:
        attempt.future = future
        cancelled = attempt.cancelled
    if cancelled:
        future.release()
        return
    _report(attempt, *_wait(client, future, attempt))


def _wait(client: "Client", future: "Future", attempt: Attempt) -> tuple[Outcome, str]:
    """The try's outcome and a line for its log (empty when the worker's own log says it all)."""
    from distributed import CancelledError

    while True:
        settled = future.done()
        try:
            kind, payload, text, usage = future.result(timeout=WAIT_POLL_S)
        except (Exception, CancelledError) as exc:  # noqa: BLE001 - sorted out by _lost
            if attempt.cancelled:  # timed out and released: the runner recorded that already
                return Outcome(ok=False, error_type="Interrupted", error="cancelled"), ""
            lost = _lost(exc, future, client, settled)
            if lost is None:
                continue
            return lost
        attempt.sink.write(text)
        if kind == "ok":
            return Outcome(ok=True, value=payload, usage=usage), ""
        return Outcome(ok=False, usage=usage, **payload), ""


def _lost(exc: BaseException, future: "Future", client: "Client", settled: bool) -> tuple[Outcome, str] | None:
    """What a raising `future.result` means: a failed try (retried like any failure) with the
    reason, or None when it only timed out waiting and the client is still connected. The task's
    own errors never raise here (`run_on_worker` returns them). `settled`: the future was done
    before the wait began, so an OSError or TimeoutError is its own error, not the wait's — a
    future that finishes as the wait times out is done by now, yet its outcome is still unread."""
    from distributed import CancelledError
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        message = f"the Dask worker running this try died ({type(exc).__name__}: {exc})"
        return Outcome(ok=False, error_type="WorkerLost", error=message), message
    if isinstance(exc, CancelledError):
        message = f"the Dask scheduler lost this try ({type(exc).__name__}: {exc})"
        return Outcome(ok=False, error_type="WorkerLost", error=message), message
    if isinstance(exc, (OSError, TimeoutError)):
        if settled:  # a communication error, not a wait that timed out
            message = f"the Dask cluster failed this try ({type(exc).__name__}: {exc})"
            return Outcome(ok=False, error_type="DaskUnavailable", error=message), message
        if client.status not in ("running", "connecting"):
            message = f"lost the Dask scheduler while waiting for this try (client {client.status})"
            return Outcome(ok=False, error_type="DaskUnavailable", error=message), message
        return None
    outcome = Outcome.failure(exc)  # the worker could not even start the call (e.g. unpickling it)
    return outcome, outcome.traceback


def _report(attempt: Attempt, outcome: Outcome, note: str = "") -> None:
    if note:
        attempt.sink.write(f"dagwatch: {note.rstrip()}\n")
    attempt.sink.close()
    attempt.done(attempt, outcome)


class _Captured:
    """What a try prints or logs on the worker, kept to be shipped back with its outcome."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)

    def close(self) -> None:
        pass

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


def run_on_worker(shipped: _Shipped, kwargs: dict[str, Any], timeout_s: float | None) -> tuple[str, Any, str, Usage]:
    """Runs on a Dask worker thread: the task's call with its output captured, its own timeout
    watchdog, and what it used; returns (kind, value or error fields, log text, usage). Task
    errors are returned, not raised, so a raised exception always means Dask itself failed."""
    logs.install()
    captured = _Captured()
    token = logs.activate(captured)  # type: ignore[arg-type]  # a sink is anything with write/close
    ident = threading.get_ident()
    guard = threading.Lock()
    state = {"running": True, "interrupted": False}

    def interrupt() -> None:
        with guard:
            if state["running"]:
                state["interrupted"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(Interrupted))

    watchdog = threading.Timer(timeout_s, interrupt) if timeout_s else None
    cpu_started = time.thread_time()
    try:
        try:
            fn = shipped.load()
            if watchdog is not None:
                watchdog.start()
            value = fn(**kwargs)
        finally:
            with guard:
                state["running"] = False
                if state["interrupted"]:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
            if watchdog is not None:
                watchdog.cancel()
        pickle.dumps(value, protocol=5)
        kind, payload = "ok", value
    except Interrupted:
        kind, payload = "err", {"error_type": "Interrupted", "error": "interrupted after its timeout", "traceback": ""}
    except BaseException as exc:  # noqa: BLE001 - the task's own failure is data here
        failure = Outcome.failure(exc, skip_frames=1)
        captured.write(failure.traceback)
        kind, payload = "err", {"error_type": failure.error_type, "error": failure.error, "traceback": failure.traceback}
    finally:
        logs.deactivate(token)
    return kind, payload, captured.text(), Usage(time.thread_time() - cpu_started, peak_rss_bytes(), "process")
