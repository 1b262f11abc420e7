"""What an input does have, for every message about what it lacks.

"column x not found" sends a user off to inspect the file; "x not in the data (it has: a, b,
x_1)" shows the typo at once. So every check that finds something absent (a file, a column, a
metric) names what is there, the same way, bounded so that a wide table or a crowded folder
cannot flood a terminal, a task log or an alert.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

LIMIT = 20  # names shown before "(+N more)"
SCAN = 1000  # folder entries looked at when a file is missing


def listing(names: Iterable[object], limit: int = LIMIT) -> str:
    """``a, b, c (+5 more)``, or ``none``."""
    shown = [str(n) for n in names]
    if not shown:
        return "none"
    text = ", ".join(shown[:limit])
    return text + (f" (+{len(shown) - limit} more)" if len(shown) > limit else "")


def missing_file(path: str | Path, what: str, suffixes: Iterable[str]) -> str:
    """``<what> not found; <folder> has a.csv, b.parquet`` (only files of the kinds the check reads).

    Without the path itself: callers put it first, in their own message format.
    """
    p = Path(path)
    folder = p.parent
    kinds = tuple(s.lower() for s in suffixes)
    if not folder.is_dir():
        return f"{what} not found; folder {folder} does not exist"
    names: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for n, entry in enumerate(entries):
                if n >= SCAN:
                    break
                if Path(entry.name).suffix.lower() in kinds:
                    names.append(entry.name)
    except OSError as exc:
        return f"{what} not found; folder {folder} cannot be listed ({exc.strerror})"
    if not names:
        return f"{what} not found; {folder} has no {'/'.join(kinds)} files"
    return f"{what} not found; {folder} has {listing(sorted(names))}"
