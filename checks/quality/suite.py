"""Suite files: JSON documents of ``{"name", "expectations": [{"type", "kwargs", "meta"}]}``.

Loading is strict because GX is not: an expectation with an unknown ``type`` is
dropped with only a log line, and a suite with a silently dropped check passes
on something that never ran. So ``load_suite`` compares the number of
expectations GX built with the number in the file and raises ``SuiteLoadError``
naming the file and the missing types. Bad kwargs raise in GX; they are
translated to the same error.

Every expectation gets ``meta.check_id`` (kept if the file sets one), because GX
returns results in another order than the suite.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checks.errors import SuiteLoadError

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
SHIPPED_SUITES = ("demo_schema", "demo_values")


def shipped_suite(name: str) -> Path:
    """Path of a suite shipped in ``checks/suites/`` (e.g. ``demo_features``)."""
    path = SUITES_DIR / f"{name}.json"
    if not path.is_file():
        raise SuiteLoadError(str(path), f"no shipped suite named {name!r}; have {', '.join(SHIPPED_SUITES)}")
    return path


def find_suite(suite: str, folder: Path | None = None) -> Path:
    """A suite as a config names it: a path (it has a ``/`` or ends in ``.json``) as written; a
    bare name is ``NAME.json`` in ``folder`` (your suites, where one named like a shipped suite
    replaces it), else the shipped suite of that name."""
    if "/" in suite or suite.endswith(".json"):
        return Path(suite)
    if folder is not None and (mine := folder / f"{suite}.json").is_file():
        return mine
    if (SUITES_DIR / f"{suite}.json").is_file():
        return SUITES_DIR / f"{suite}.json"
    known = sorted({*SHIPPED_SUITES, *(folder_suites(folder) if folder is not None else ())})
    where = f"in {folder} or shipped" if folder is not None else "shipped"
    raise SuiteLoadError(suite, f"no suite named {suite!r} {where}; have {', '.join(known)}")


def folder_suites(folder: Path) -> list[str]:
    """The names of the suites in ``folder`` (its ``*.json`` files)."""
    return sorted(p.stem for p in folder.glob("*.json"))


def _check_id(exp: dict[str, Any], index: int) -> str:
    column = exp["kwargs"].get("column")
    base = exp["type"] + (f"[{column}]" if column else "")
    return f"{base}#{index}"


def parse_suite_document(doc: Any, source: str) -> dict[str, Any]:
    """Check the document's structure (no GX needed) and give each expectation a check_id."""
    if not isinstance(doc, dict):
        raise SuiteLoadError(source, "top level must be a JSON object with 'expectations'")
    exps = doc.get("expectations")
    if not isinstance(exps, list) or not exps:
        raise SuiteLoadError(source, "'expectations' must be a non-empty list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, exp in enumerate(exps):
        if not isinstance(exp, dict):
            raise SuiteLoadError(source, f"expectation #{i} is not an object")
        if not isinstance(exp.get("type"), str) or not exp["type"]:
            raise SuiteLoadError(source, f"expectation #{i} has no 'type'")
        kwargs = exp.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SuiteLoadError(source, f"expectation #{i} ({exp['type']}): 'kwargs' must be an object")
        if not isinstance(exp.get("meta") or {}, dict):
            raise SuiteLoadError(source, f"expectation #{i} ({exp['type']}): 'meta' must be an object")
        meta = dict(exp.get("meta") or {})
        meta.setdefault("check_id", _check_id({"type": exp["type"], "kwargs": kwargs}, i))
        if not isinstance(meta["check_id"], str) or not meta["check_id"]:
            raise SuiteLoadError(source, f"expectation #{i} ({exp['type']}): 'meta.check_id' must be a non-empty string")
        if meta["check_id"] in seen:
            raise SuiteLoadError(source, f"expectation #{i}: duplicate check_id {meta['check_id']!r}")
        seen.add(meta["check_id"])
        out.append({**exp, "kwargs": kwargs, "meta": meta})
    name = doc.get("name") or Path(source).stem
    return {**doc, "name": str(name), "expectations": out}


def load_suite_document(path: str | Path) -> dict[str, Any]:
    """Read and structurally check a suite file, without importing GX."""
    p = Path(path)
    if not p.is_file():
        raise SuiteLoadError(str(p), "suite file not found")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SuiteLoadError(str(p), f"not valid JSON: {exc}") from exc
    return parse_suite_document(doc, str(p))


@contextmanager
def _quiet_gx_suite_log():
    """GX logs a full traceback for every unknown type; we report it ourselves."""
    logger = logging.getLogger("great_expectations.core.expectation_suite")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_suite(doc: dict[str, Any], source: str = "<suite>"):
    """Build a GX ``ExpectationSuite`` from a parsed document, refusing partial loads."""
    from checks.quality._gx import gx

    g = gx()
    doc = parse_suite_document(doc, source)
    wanted = doc["expectations"]
    try:
        with _quiet_gx_suite_log():
            suite = g.ExpectationSuite(
                name=doc["name"],
                expectations=[{"type": e["type"], "kwargs": e["kwargs"], "meta": e["meta"]} for e in wanted],
            )
    except Exception as exc:  # GX raises pydantic.v1 ValidationError / its own config errors
        raise SuiteLoadError(source, f"invalid expectation arguments: {_one_line(exc)}") from exc
    if len(suite.expectations) != len(wanted):
        got = Counter(e.expectation_type for e in suite.expectations)
        missing = Counter(e["type"] for e in wanted) - got
        raise SuiteLoadError(
            source,
            f"{len(wanted) - len(suite.expectations)} of {len(wanted)} expectations did not load "
            f"(unknown type: {', '.join(sorted(missing))})",
        )
    return suite


def load_suite(path: str | Path):
    """Read a suite file and build it in GX; raises ``SuiteLoadError`` unless it loads whole."""
    return build_suite(load_suite_document(path), str(path))


_COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


def _column_domain_classes() -> tuple[type, ...]:
    """GX's base classes for expectations that look at named columns and nothing else."""
    from great_expectations.expectations.expectation import (
        ColumnAggregateExpectation,
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return ColumnAggregateExpectation, ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation


def _expectation_columns(exp: Any, column_domain: tuple[type, ...]) -> list[str] | None:
    """The columns one expectation reads, or None if its answer may depend on the whole table."""
    if not isinstance(exp, column_domain) or getattr(exp, "row_condition", None):
        return None  # table-level (row count, column order...), or a condition naming other columns
    names: list[str] = []
    for key in _COLUMN_KWARGS:
        value = getattr(exp, key, None)
        values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        if not all(isinstance(v, str) for v in values):
            return None  # e.g. a suite parameter instead of a name: cannot tell which column
        names.extend(values)
    return names or None


def suite_columns(suite: Any) -> list[str] | None:
    """The columns a built GX suite reads, in suite order, or None when it needs the whole table.

    Lets a caller read only those columns from a wide file (``data_io.read_needed``).
    Only expectations whose GX domain is a column, a column pair or a column list
    qualify; one table-level expectation (row count, column set or order,
    ``expect_column_to_exist`` with its index), a ``row_condition`` (it may name any
    column) or an unknown kind makes the answer None: read everything, as before.
    """
    column_domain = _column_domain_classes()
    columns: dict[str, None] = {}
    for exp in suite.expectations:
        names = _expectation_columns(exp, column_domain)
        if names is None:
            return None
        columns.update(dict.fromkeys(names))
    return list(columns) or None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
