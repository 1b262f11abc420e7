"""Input integrity: are these the files, rows and columns the pipeline expects?

Used by the pipeline-failure runbook's step "verify the input data". Three
independent checks against what a *last good run* recorded:

- checksums: sha256 of each file against a manifest JSON ``{"files": {relpath: sha256}}``;
- row counts: a drop beyond ``max_drop`` (fraction) from the last good count fails;
- schema drift: columns added, removed or retyped against the last good schema
  (``{column: dtype}``; ``schema_of(df)`` makes one).

``record_manifest`` / ``schema_of`` produce the baselines a good run stores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from checks.errors import ConfigError, DataReadError
from checks.result import CheckItem, CheckResult, Kind, Status


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (constant memory for large data)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except FileNotFoundError as exc:
        raise DataReadError(f"{path}: file not found", path=str(path)) from exc
    return h.hexdigest()


def record_manifest(root: str | Path, files: list[str | Path], out: str | Path | None = None) -> dict:
    """Manifest of ``files`` (paths relative to ``root``); written to ``out`` when given."""
    root = Path(root)
    manifest = {"files": {str(Path(f)): sha256_file(root / f) for f in files}}
    if out is not None:
        Path(out).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return manifest


def load_manifest(path: str | Path) -> dict[str, str]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: manifest not found", path=str(p)) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: manifest is not valid JSON: {exc}", path=str(p)) from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ConfigError(f"{p}: manifest needs 'files': {{relative path: sha256 hex}}", path=str(p))
    return files


def check_checksums(root: str | Path, manifest: str | Path | Mapping[str, str], *, name: str = "checksums") -> CheckResult:
    """Each file of the manifest must exist under ``root`` with the recorded sha256."""
    expected = load_manifest(manifest) if isinstance(manifest, (str, Path)) else dict(manifest)
    items = []
    for rel, digest in sorted(expected.items()):
        path = Path(root) / rel
        if not path.is_file():
            items.append(CheckItem(name=rel, status=Status.failed, message="file missing", threshold=digest))
            continue
        actual = sha256_file(path)
        ok = actual == digest.lower()
        items.append(
            CheckItem(
                name=rel,
                status=Status.passed if ok else Status.failed,
                message="checksum matches" if ok else "checksum differs from the manifest",
                observed=actual,
                threshold=digest,
            )
        )
    return CheckResult.from_items(Kind.integrity, name, items, {"root": str(root)})


def check_row_count(current: int, last_good: int | None, *, max_drop: float = 0.2, name: str = "row_count") -> CheckResult:
    """Fail when rows dropped by more than ``max_drop`` (a fraction) from the last good run.

    Growth is never a failure here; with no last good run there is nothing to compare
    (a warning, so a first run is not blocked).
    """
    if not 0 <= max_drop <= 1:
        raise ConfigError(f"max_drop must be a fraction in [0, 1], got {max_drop}")
    if last_good is None:
        item = CheckItem(name="rows", status=Status.warning, observed=current, message="no last good run to compare with")
    elif last_good == 0:
        item = CheckItem(name="rows", status=Status.passed, observed=current, threshold=0, message="last good run had 0 rows")
    else:
        drop = (last_good - current) / last_good
        floor = last_good * (1 - max_drop)
        failed = drop > max_drop
        item = CheckItem(
            name="rows",
            status=Status.failed if failed else Status.passed,
            observed=current,
            threshold=floor,
            message=f"{current} rows vs {last_good} last good ({-drop:+.1%}); allowed drop {max_drop:.0%}",
            details={"last_good": last_good, "drop": drop},
        )
    return CheckResult.from_items(Kind.integrity, name, [item])


def schema_of(df: pd.DataFrame) -> dict[str, str]:
    """The schema a good run records: column name -> pandas dtype string, in column order."""
    return {str(c): str(t) for c, t in df.dtypes.items()}


def check_schema(current: pd.DataFrame | Mapping[str, str], last_good: Mapping[str, str], *, name: str = "schema") -> CheckResult:
    """Columns added, removed or retyped since the last good run; each is a failed item."""
    cur = schema_of(current) if isinstance(current, pd.DataFrame) else dict(current)
    old = dict(last_good)
    items = []
    for col in old:
        if col not in cur:
            items.append(CheckItem(name=col, status=Status.failed, message="column removed", threshold=old[col]))
        elif cur[col] != old[col]:
            items.append(
                CheckItem(
                    name=col,
                    status=Status.failed,
                    observed=cur[col],
                    threshold=old[col],
                    message=f"column retyped {old[col]} -> {cur[col]}",
                )
            )
        else:
            items.append(CheckItem(name=col, status=Status.passed, observed=cur[col], message="unchanged"))
    for col in cur:
        if col not in old:
            items.append(CheckItem(name=col, status=Status.failed, observed=cur[col], message="column added"))
    details = {
        "added": [c for c in cur if c not in old],
        "removed": [c for c in old if c not in cur],
        "retyped": [c for c in old if c in cur and cur[c] != old[c]],
    }
    return CheckResult.from_items(Kind.integrity, name, items, details)
