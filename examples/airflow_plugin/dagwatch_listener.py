"""Push Airflow task and DAG-run outcomes to dagwatch as they happen (Airflow 3.x and 2.x).

Drop this file into Airflow's plugins folder and set, for every Airflow component:

    DAGWATCH_URL=https://dagwatch.example.com      # dagwatch's base URL
    DAGWATCH_TOKEN=…                                # `dagwatch token create --name airflow --role operator`
    DAGWATCH_SOURCE=airflow-prod                    # the source name in dagwatch.yaml (default: airflow)

Optional tuning (defaults in brackets):

    DAGWATCH_FLUSH_INTERVAL  [0.2]    seconds an event may wait for others to share its POST
    DAGWATCH_BATCH           [500]    POST as soon as this many events wait (at most 1000: the endpoint's limit)
    DAGWATCH_BUFFER          [10000]  events held while dagwatch is slow or away; when full the oldest is dropped
    DAGWATCH_TIMEOUT         [2]      seconds a process's exit waits at most for what it has not delivered yet
    DAGWATCH_POST_TIMEOUT    [10]     seconds one POST may take (in the background; nobody waits for it)
    DAGWATCH_RETRIES         [4]      retries of a POST that got no answer, a 5xx or a 429 (never a 4xx)

Each hook only appends its event to a process-wide buffer and returns: one daemon thread POSTs the
buffer as a list to `{DAGWATCH_URL}/api/v1/events` every DAGWATCH_FLUSH_INTERVAL, or at once when
DAGWATCH_BATCH events wait, and the buffer is flushed when the interpreter exits (bounded by
DAGWATCH_TIMEOUT), so a task process that ends right after its hook still delivers. Nothing here
raises into Airflow, and monitoring never fails or slows a task.

What can be lost, and why that is fine: a full buffer drops its oldest event (with one warning),
a POST refused with a 4xx is not retried, one still failing after its retries is dropped, and
hooks do not fire for killed tasks or every manual state change. dagwatch's polling of the Airflow
API stays on as the safety net and finds those failures at its next poll (same alert fingerprint:
pushed and polled reports of one failure are one alert).

Standard library only, so nothing is added to Airflow's venv. `Sender` does not need Airflow: a
bench or a test can import this file and drive the same batching code.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import deque
from datetime import UTC, datetime

try:
    from airflow.listeners import hookimpl
    from airflow.plugins_manager import AirflowPlugin
except ImportError:  # imported without Airflow (a bench, a test): only Sender is of use

    def hookimpl(function):
        return function

    AirflowPlugin = None

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # what POST /api/v1/events takes in one request
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_CAP = 5.0


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class Stats:
    """What a sender did; read by benches and tests, never needed by Airflow."""

    FIELDS = (
        "queued",  # events handed to submit()
        "accepted",  # items dagwatch answered "accepted" (committed before the answer)
        "rejected",  # items dagwatch answered "rejected" (invalid: retrying cannot help)
        "dropped",  # oldest events dropped because the buffer was full
        "lost",  # events of POSTs refused (4xx) or still failing after their retries
        "posts",  # POST requests made, retries included
        "retries",  # POSTs repeated after no answer, a 5xx or a 429
    )

    def __init__(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return "Stats(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


class Sender:
    """A bounded buffer of events drained by one daemon thread that POSTs them as lists.

    `submit` never blocks on the network and never raises; `flush` waits (bounded) until what was
    submitted is answered. After a fork the child starts with an empty buffer and its own thread
    (a forked task process must not re-send its parent's events, nor wait on its parent's lock).
    """

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        batch: int = 500,
        interval: float = 0.2,
        buffer: int = 10_000,
        timeout: float = 2.0,
        post_timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.2,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v1/events"
        self.token = token
        self.batch = max(1, min(int(batch), MAX_BATCH))
        self.interval = max(0.0, float(interval))
        self.capacity = max(1, int(buffer))
        self.timeout = max(0.0, float(timeout))
        self.post_timeout = max(0.1, float(post_timeout))
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self.stats = Stats()
        self._start_process()

    @classmethod
    def from_env(cls) -> Sender | None:
        url = os.environ.get("DAGWATCH_URL")
        if not url:
            return None
        return cls(
            url,
            os.environ.get("DAGWATCH_TOKEN", ""),
            batch=int(_env_float("DAGWATCH_BATCH", 500)),
            interval=_env_float("DAGWATCH_FLUSH_INTERVAL", 0.2),
            buffer=int(_env_float("DAGWATCH_BUFFER", 10_000)),
            timeout=_env_float("DAGWATCH_TIMEOUT", 2.0),
            post_timeout=_env_float("DAGWATCH_POST_TIMEOUT", 10.0),
            retries=int(_env_float("DAGWATCH_RETRIES", 4)),
        )

    # -- what callers use --
    def submit(self, event: dict) -> None:
        """Queue one event for the next POST; drops the oldest queued event when the buffer is full."""
        try:
            self._own_process()
            with self._cond:
                if self._closed:
                    return
                if len(self._buffer) >= self.capacity:
                    self._buffer.popleft()
                    self.stats.dropped += 1
                    if not self._warned_full:
                        self._warned_full = True
                        log.warning("dagwatch: push buffer full (%d events); dropping the oldest, polling will find them", self.capacity)
                if not self._buffer:
                    self._first_at = time.monotonic()
                self._buffer.append(event)
                self.stats.queued += 1
                self._ensure_thread()
                if len(self._buffer) in (1, self.batch):  # the thread waits for a first event, then for a full batch
                    self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 — a monitoring hook must never break the task
            log.warning("dagwatch: could not queue an event: %s", type(exc).__name__)

    def flush(self, timeout: float | None = None) -> bool:
        """Send what waits now (no lingering) and wait until it is answered, at most `timeout`
        seconds (default: the sender's exit budget). True when nothing is left unanswered."""
        try:
            self._own_process()
            limit = self.timeout if timeout is None else timeout
            deadline = time.monotonic() + limit
            with self._cond:
                if self._thread is None and not self._buffer:
                    return True
                self._flushing += 1
                self._flush_deadline = max(self._flush_deadline, deadline) if self._flushing > 1 else deadline
                self._cond.notify_all()
                try:
                    while self._buffer or self._in_flight:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        self._cond.wait(left)
                    return True
                finally:
                    self._flushing -= 1
        except Exception as exc:  # noqa: BLE001
            log.warning("dagwatch: flush failed: %s", type(exc).__name__)
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread; later submits are ignored."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return done

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer) + self._in_flight

    # -- the process and its thread --
    def _start_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buffer: deque[dict] = deque()
        self._in_flight = 0
        self._first_at = 0.0
        self._flushing = 0
        self._flush_deadline = 0.0
        self._closed = False
        self._warned_full = False
        self._thread: threading.Thread | None = None

    def _own_process(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's lock, buffer and thread are not ours
            self._start_process()
            self.stats = Stats()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dagwatch-push", daemon=True)
            self._thread.start()
            # Registered in the process that sends (after a fork too: Airflow 3's task runner
            # clears the atexit handlers it inherited and runs the ones registered after).
            atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        if self._pid != os.getpid():
            return
        if not self.flush():
            with self._cond:
                left = len(self._buffer) + self._in_flight
            log.warning("dagwatch: %d event(s) not delivered within %.1fs at exit; polling will find them", left, self.timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closed:
                    self._cond.wait()
                if not self._buffer:
                    return
                due = self._first_at + self.interval
                while len(self._buffer) < self.batch and not self._flushing and not self._closed:
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                items = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
                self._in_flight = len(items)
                exit_deadline = self._flush_deadline if self._flushing else None
            try:
                self._deliver(items, exit_deadline)
            except Exception as exc:  # noqa: BLE001 — the thread must outlive any surprise
                self.stats.lost += len(items)
                log.warning("dagwatch: could not push %d event(s): %s", len(items), type(exc).__name__)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    # -- one batch on the wire --
    def _deliver(self, items: list[dict], deadline: float | None) -> None:
        body = json.dumps(items, default=str).encode()
        attempt = 0
        while True:
            timeout = self.post_timeout if deadline is None else max(0.1, min(self.post_timeout, deadline - time.monotonic()))
            status, answer, retry_after = self._post(body, timeout)
            if status is not None and 200 <= status < 300:
                self._count(items, answer)
                return
            if status == 413 and len(items) > 1:  # too big a body: halves, each on its own
                half = len(items) // 2
                self._deliver(items[:half], deadline)
                self._deliver(items[half:], deadline)
                return
            retryable = status is None or status in RETRY_STATUSES
            if retry_after is not None:
                pause = min(BACKOFF_CAP, retry_after)
            else:
                pause = min(BACKOFF_CAP, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            if not retryable or attempt >= self.retries or (deadline is not None and time.monotonic() + pause >= deadline):
                self.stats.lost += len(items)
                what = f"HTTP {status}" if status is not None else "no answer"
                log.warning(
                    "dagwatch: %d event(s) not pushed (%s%s); polling will find them",
                    len(items),
                    what,
                    "" if retryable else ", not retried",
                )
                return
            attempt += 1
            self.stats.retries += 1
            time.sleep(pause)

    def _post(self, body: bytes, timeout: float) -> tuple[int | None, dict | None, float | None]:
        """(status, JSON answer, Retry-After seconds); status None when no answer came."""
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        self.stats.posts += 1
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            retry_after = None
            try:
                retry_after = max(0.0, float(exc.headers.get("Retry-After", "")))
            except (TypeError, ValueError):
                pass
            exc.close()
            return exc.code, None, retry_after
        except Exception:  # noqa: BLE001 — refused, reset, timed out, DNS: all "no answer"
            return None, None, None
        try:
            return status, json.loads(raw), None
        except ValueError:
            return status, None, None

    def _count(self, items: list[dict], answer: dict | None) -> None:
        if not isinstance(answer, dict) or "accepted" not in answer:
            self.stats.accepted += len(items)
            return
        self.stats.accepted += int(answer.get("accepted", 0))
        rejected = int(answer.get("rejected", 0))
        if rejected:
            self.stats.rejected += rejected
            first = next((i for i in answer.get("items", []) if i.get("status") == "rejected"), {})
            log.warning("dagwatch: %d event(s) rejected, e.g. %s", rejected, "; ".join(first.get("errors", []))[:300])


# -- the hooks --

_sender: Sender | None = None
_sender_lock = threading.Lock()


def _the_sender() -> Sender | None:
    global _sender
    if _sender is None:
        with _sender_lock:
            if _sender is None:
                _sender = Sender.from_env()
    return _sender


def _airflow_major() -> int:
    try:
        from airflow import __version__

        return int(__version__.split(".")[0])
    except Exception:  # noqa: BLE001
        return 3


# Airflow 2 ends a forked task process with os._exit(), which skips atexit: there a task's hook
# waits (bounded by DAGWATCH_TIMEOUT) until its event is answered. Airflow 3's task runner runs the
# atexit handlers registered after its fork, so its hooks return at once.
_FLUSH_IN_TASK_HOOKS = AirflowPlugin is not None and _airflow_major() < 3


def _post(event: dict, *, task_hook: bool = False) -> None:
    sender = _the_sender()
    if sender is None:
        return
    sender.submit(event)
    if task_hook and _FLUSH_IN_TASK_HOOKS:
        sender.flush()


def _iso(moment) -> str:
    if moment is None:
        return datetime.now(UTC).isoformat()
    return moment.isoformat() if moment.tzinfo else moment.replace(tzinfo=UTC).isoformat()


def _event(kind: str, dag_id, run_id, summary: str, *, task_id=None, try_number=None, when=None, details=None) -> dict:
    return {
        "kind": kind,
        "source": os.environ.get("DAGWATCH_SOURCE", "airflow"),
        "pipeline": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "occurred_at": _iso(when),
        "summary": summary[:4000],
        "details": details or {},
    }


def _task(kind: str, ti, summary: str, error=None) -> None:
    try:
        details = {"map_index": getattr(ti, "map_index", -1)}
        max_tries = getattr(ti, "max_tries", None)
        if max_tries is not None:
            details["max_tries"] = max_tries + 1
        if error is not None:
            details["error"] = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
            if isinstance(error, BaseException):
                details["traceback"] = "".join(traceback.format_exception(error))[-8000:]
        _post(
            _event(
                kind,
                ti.dag_id,
                ti.run_id,
                summary.format(task=ti.task_id, tries=ti.try_number, error=details.get("error", "")),
                task_id=ti.task_id,
                try_number=ti.try_number,
                when=getattr(ti, "end_date", None),
                details=details,
            ),
            task_hook=True,
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("dagwatch: could not build a task event: %s", type(exc).__name__)


def _will_retry(ti) -> bool:
    """Airflow 3 hands the hook the try that just failed; retries remain while try ≤ max_tries."""
    state = str(getattr(ti, "state", "") or "")
    if "up_for_retry" in state:
        return True
    max_tries = getattr(ti, "max_tries", None)
    return max_tries is not None and ti.try_number <= max_tries


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error=None, *args, **kwargs):
    if _will_retry(task_instance):
        _task("task_retrying", task_instance, "{task} failed on try {tries} and will be retried: {error}", error)
    else:
        _task("task_failed", task_instance, "{task} failed on try {tries}: {error}", error)


@hookimpl
def on_task_instance_success(previous_state, task_instance, *args, **kwargs):
    _task("task_succeeded", task_instance, "{task} succeeded on try {tries}")


def _run(kind: str, dag_run, verb: str, msg) -> None:
    try:
        details = {"message": msg} if msg else {}
        _post(
            _event(
                kind,
                dag_run.dag_id,
                dag_run.run_id,
                f"run {dag_run.run_id} of {dag_run.dag_id} {verb}",
                when=getattr(dag_run, "end_date", None),
                details=details,
            )
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("dagwatch: could not build a run event: %s", type(exc).__name__)


@hookimpl
def on_dag_run_failed(dag_run, msg=None, *args, **kwargs):
    _run("run_failed", dag_run, "failed", msg)


@hookimpl
def on_dag_run_success(dag_run, msg=None, *args, **kwargs):
    _run("run_succeeded", dag_run, "succeeded", msg)


if AirflowPlugin is not None:

    class DagwatchListenerPlugin(AirflowPlugin):
        name = "dagwatch_listener"
        listeners = [sys.modules[__name__]]
