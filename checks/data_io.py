"""Reading tabular data files (CSV, Parquet) with errors a user can act on.

Every check that takes a path goes through here, so "file missing", "empty", "not CSV
or Parquet" and "cannot be parsed" are reported the same way everywhere, as a
``DataReadError`` naming the file and, when it is missing, the data files next to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from checks.errors import DataReadError
from checks.present import missing_file

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file suffix; anything else is bad input."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataReadError(f"{path}: unsupported data format {suffix or '(no suffix)'!r}; use .csv or .parquet", path=str(path))
    return FORMATS[suffix]


def require_table(path: str | Path) -> tuple[Path, str]:
    """The path and its format, once both are known good (format first: it needs no disk)."""
    p = Path(path)
    fmt = table_format(p)
    if not p.is_file():
        raise DataReadError(f"{p}: {missing_file(p, 'data file', FORMATS)}", path=str(p))
    if p.stat().st_size == 0:
        raise DataReadError(f"{p}: cannot read {fmt} data: the file is empty (0 bytes)", path=str(p))
    return p, fmt


@contextmanager
def _read_errors(p: Path, fmt: str) -> Iterator[None]:
    """Turn pandas' and pyarrow's parse errors into ``DataReadError``; let anything else through."""
    try:
        yield
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataReadError(f"{p}: cannot read {fmt} data: {exc}", path=str(p)) from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc.
        if type(exc).__module__.startswith("pyarrow"):
            raise DataReadError(f"{p}: cannot read {fmt} data: {exc}", path=str(p)) from exc
        raise


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a CSV or Parquet file into a DataFrame, or raise ``DataReadError``."""
    p, fmt = require_table(path)
    with _read_errors(p, fmt):
        if fmt == "csv":
            return pd.read_csv(p, usecols=columns)
        return pd.read_parquet(p, columns=columns)


def table_columns(path: str | Path) -> list[str]:
    """The file's column names, from the Parquet footer or the CSV header (no data read)."""
    p, fmt = require_table(path)
    with _read_errors(p, fmt):
        if fmt == "csv":
            return [str(c) for c in pd.read_csv(p, nrows=0).columns]
        import pyarrow.parquet as pq

        return list(pq.read_schema(p).names)


def read_needed(path: str | Path, needed: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """Read only the ``needed`` columns the file has (everything when ``needed`` is None),
    and return them with every column the file has, for messages about a missing one.

    Why: a suite often checks a few columns of a wide file, and every column read costs
    twice, once to decode and once more in GX, which fingerprints the whole frame it is
    given. A needed column the file lacks is left out instead of asked for (pandas would
    raise): the expectation that wanted it then reports it missing exactly as on a full
    read. If none of them is there, the whole file is read, so the row count stays right.
    """
    columns = table_columns(path)
    if needed is None:
        return read_table(path), columns
    wanted = set(needed)
    present = [c for c in columns if c in wanted]
    return read_table(path, columns=present or None), columns
