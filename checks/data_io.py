"""Reading tabular data files (CSV, Parquet) with errors a user can act on.

Every check that takes a path goes through here, so "file missing", "not CSV or
Parquet" and "cannot be parsed" are reported the same way everywhere, as a
``DataReadError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from checks.errors import DataReadError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file suffix; anything else is bad input."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataReadError(
            f"{path}: unsupported data format {suffix or '(no suffix)'!r}; use .csv or .parquet", path=str(path)
        )
    return FORMATS[suffix]


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a CSV or Parquet file into a DataFrame, or raise ``DataReadError``."""
    p = Path(path)
    fmt = table_format(p)
    if not p.is_file():
        raise DataReadError(f"{p}: data file not found", path=str(p))
    try:
        if fmt == "csv":
            return pd.read_csv(p, usecols=columns)
        return pd.read_parquet(p, columns=columns)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataReadError(f"{p}: cannot read {fmt} data: {exc}", path=str(p)) from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc.
        if type(exc).__module__.startswith("pyarrow"):
            raise DataReadError(f"{p}: cannot read {fmt} data: {exc}", path=str(p)) from exc
        raise
