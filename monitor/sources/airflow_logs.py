"""A failed try's error and traceback, read from its Airflow log.

Airflow 3 (API v2) returns a log as structured events; the one that matters carries
`error_detail`: a list of exceptions (the chain, causes included), each with `exc_type`,
`exc_value` and `frames`. Airflow 2 (API v1) returns one string in which the traceback follows
an "ERROR - Task failed with exception" line. Both become (error, traceback) for alerts, and
readable text for `task_log()`.
"""

from __future__ import annotations

import re
from typing import Any

MAX_TRACEBACK = 8000
MAX_ERROR = 1000


def events_text(events: list[Any]) -> str:
    """v2 events as lines: `timestamp [level] event`, followed by any traceback."""
    lines = []
    for item in events:
        if not isinstance(item, dict):
            lines.append(str(item))
            continue
        head = " ".join(str(p) for p in (item.get("timestamp"), f"[{item['level']}]" if item.get("level") else None) if p)
        lines.append(f"{head} {item.get('event', '')}".strip())
        if item.get("error_detail"):
            lines.append(format_error_detail(item["error_detail"]))
    return "\n".join(lines)


def format_error_detail(detail: list[Any]) -> str:
    """Render `error_detail` the way Python prints a chained traceback (frames have no source lines)."""
    blocks = []
    for exc in detail if isinstance(detail, list) else []:
        if not isinstance(exc, dict):
            continue
        frames = "".join(
            f'  File "{f.get("filename")}", line {f.get("lineno")}, in {f.get("name")}\n'
            for f in exc.get("frames") or []
            if isinstance(f, dict)
        )
        blocks.append(f"Traceback (most recent call last):\n{frames}{_exc_line(exc)}")
    # Airflow lists the raised exception first and its causes after; Python prints causes first.
    joiner = "\n\nThe above exception was the direct cause of the following exception:\n\n"
    return joiner.join(reversed(blocks))


def _exc_line(exc: dict) -> str:
    kind, value = exc.get("exc_type") or "Exception", exc.get("exc_value")
    return f"{kind}: {value}" if value not in (None, "") else str(kind)


def error_from_events(events: list[Any]) -> tuple[str | None, str | None]:
    """The last error event's exception (`Type: message`) and its formatted traceback."""
    for item in reversed(events):
        if isinstance(item, dict) and item.get("error_detail"):
            detail = item["error_detail"]
            first = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
            return clip(_exc_line(first), MAX_ERROR), _tail(format_error_detail(detail), MAX_TRACEBACK)
    for item in reversed(events):  # no structured error: the last error-level message, if any
        if isinstance(item, dict) and str(item.get("level", "")).lower() in ("error", "critical") and item.get("event"):
            return clip(str(item["event"]), MAX_ERROR), None
    return None, None


_TRACEBACK_START = "Traceback (most recent call last):"
# A log record's first line ends a traceback: Airflow 2's "[2026-11-26T10:00:00.000+0000] {file.py:1} INFO - …",
# Airflow 3's events as `events_text` writes them, "2026-11-26T10:00:00.000000Z [info] …", or Prefect's
# lines as its source writes them, "2026-11-26T10:00:00.000000+00:00 ERROR …".
_LOG_RECORD = re.compile(r"^(?:\[\d{4}-\d\d-\d\d[ T]|\d{4}-\d\d-\d\dT\S+ (?:\[\w+\]|[A-Z]+) )")


def error_from_text(text: str) -> tuple[str | None, str | None]:
    """The last traceback in a log's text and its final `Type: message` line: Airflow 2's log,
    Airflow 3's events rendered by `events_text`, Prefect's log lines (what `task_log()` returns)."""
    start = text.rfind(_TRACEBACK_START)
    if start < 0:
        for line in reversed(text.splitlines()):
            if " ERROR - " in line:
                return clip(line.split(" ERROR - ", 1)[1].strip(), MAX_ERROR), None
        return None, None
    block: list[str] = []
    for line in text[start:].splitlines():
        if block and _LOG_RECORD.match(line):
            break
        block.append(line)
    while block and not block[-1].strip():
        block.pop()
    error = next((line.strip() for line in reversed(block) if line.strip() and not line.startswith((" ", "\t"))), None)
    return clip(error, MAX_ERROR), _tail("\n".join(block), MAX_TRACEBACK)


def clip(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _tail(value: str | None, limit: int) -> str | None:
    """Keep a traceback's end: the raising frame and the exception line matter most."""
    if value is None or len(value) <= limit:
        return value
    return "…" + value[-(limit - 1) :]
