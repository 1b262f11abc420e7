"""Readers for the metric logs training jobs actually write.

- JSON lines, the canonical format: ``{"step", "epoch", "split", "loss", "grad_norm", "lr", ...}``;
- PyTorch Lightning ``CSVLogger``'s ``metrics.csv`` (sparse rows: a blank cell is
  "not logged here", the text ``nan`` is a real NaN);
- Hugging Face ``trainer_state.json`` (``log_history``);
- TensorBoard event files (needs the optional ``tensorboard`` package; imported lazily);
- MLflow, see ``checks.convergence.mlflow``.

``read_metrics(path)`` picks the reader from the path. Every reader raises
``DataReadError`` naming the file and line/row when the input is unusable.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from checks.convergence.series import Metrics, canonical_name
from checks.errors import DataReadError
from checks.present import listing, missing_file

_NOT_METRICS = {"step", "epoch", "split", "timestamp", "time", "wall_time", "global_step", "run_id"}
# Hugging Face's end-of-training summary entry, not a point of the series.
_HF_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos"}
SUFFIXES = (".jsonl", ".ndjson", ".csv", ".json")  # what a missing file's folder listing shows


def _number(value, where: str) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # "nan", "inf", "NaN", "Infinity"
        except ValueError:
            return None
    return None


def _step(record: dict, fallback: int, where: str) -> int:
    for key in ("step", "global_step"):
        if key in record and record[key] is not None:
            try:
                return int(record[key])
            except (TypeError, ValueError) as exc:
                raise DataReadError(f"{where}: step {record[key]!r} is not an integer") from exc
    return fallback


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DataReadError(f"{path}: {missing_file(path, 'metrics file', SUFFIXES)}", path=str(path))


def _no_metrics(path: Path, where: str, seen: set[str]) -> DataReadError:
    """An empty log, or one without a single numeric value: say what it does hold."""
    if path.is_file() and path.stat().st_size == 0:
        held = "the file is empty (0 bytes)"
    else:
        held = f"keys seen: {listing(sorted(seen))}" if seen else "no keys at all"
    return DataReadError(f"{path}: no metric values in {where} ({held})", path=str(path))


def read_jsonl(path: str | Path) -> Metrics:
    """Canonical JSON lines; ``split`` prefixes every metric of its line."""
    p = Path(path)
    _require_file(p)
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    seen: set[str] = set()
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataReadError(f"{where}: not valid JSON: {exc.msg}", path=str(p)) from exc
            if not isinstance(rec, dict):
                raise DataReadError(f"{where}: each line must be a JSON object", path=str(p))
            step = _step(rec, lineno - 1, where)
            split = rec.get("split")
            seen.update(rec)
            for key, value in rec.items():
                if key in _NOT_METRICS:
                    continue
                num = _number(value, where)
                if num is not None:
                    points[canonical_name(key, split if isinstance(split, str) else None)].append((step, num))
    if not points:
        raise _no_metrics(p, "the log", seen)
    return Metrics.from_points(points, str(p))


def read_lightning_csv(path: str | Path) -> Metrics:
    """Lightning ``CSVLogger`` output: columns ``epoch``, ``step`` and one per logged metric."""
    p = Path(path)
    _require_file(p)
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise _no_metrics(p, "the CSV", set())
            if "step" not in reader.fieldnames:
                raise DataReadError(
                    f"{p}: not a Lightning metrics.csv (no 'step' column; it has: {listing(reader.fieldnames)})", path=str(p)
                )
            for rowno, row in enumerate(reader, 2):
                step = _step(row, rowno - 2, f"{p}:{rowno}")
                for key, cell in row.items():
                    if key is None or key in _NOT_METRICS or cell in ("", None):
                        continue
                    num = _number(cell, f"{p}:{rowno}")
                    if num is None:
                        raise DataReadError(f"{p}:{rowno}: column {key!r} value {cell!r} is not a number", path=str(p))
                    points[canonical_name(key)].append((step, num))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataReadError(f"{p}: cannot parse CSV: {exc}", path=str(p)) from exc
    if not points:
        raise _no_metrics(p, "the CSV rows", set(reader.fieldnames))
    return Metrics.from_points(points, str(p))


def read_hf_trainer_state(path: str | Path) -> Metrics:
    """Hugging Face ``trainer_state.json``: ``eval_*`` become ``val_*``, ``loss`` is the train loss."""
    p = Path(path)
    _require_file(p)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataReadError(f"{p}: not valid JSON: {exc}", path=str(p)) from exc
    history = doc.get("log_history") if isinstance(doc, dict) else None
    if not isinstance(history, list):
        raise DataReadError(f"{p}: no 'log_history' list (is this a trainer_state.json?)", path=str(p))
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    seen: set[str] = set()
    for i, rec in enumerate(history):
        if not isinstance(rec, dict) or _HF_SUMMARY_KEYS & rec.keys():
            continue
        seen.update(rec)
        step = _step(rec, i, f"{p}: log_history[{i}]")
        for key, value in rec.items():
            if key in _NOT_METRICS:
                continue
            num = _number(value, f"{p}: log_history[{i}]")
            if num is not None:
                points[canonical_name(key)].append((step, num))
    if not points:
        raise _no_metrics(p, "log_history", seen)
    return Metrics.from_points(points, str(p))


def read_tensorboard(path: str | Path) -> Metrics:
    """Scalars from a TensorBoard event file or a run directory (``tensorboard`` package).

    Reads both classic ``simple_value`` scalars (PyTorch ``SummaryWriter``) and
    TF2-style scalar tensors. ``size_guidance={"scalars": 0}`` keeps every point
    (the default samples down to 10,000).
    """
    p = Path(path)
    _require_file(p)
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util import tensor_util
    except ImportError as exc:
        raise DataReadError(
            f"{p}: reading TensorBoard event files needs the 'tensorboard' package (pip install tensorboard)",
            path=str(p),
        ) from exc
    acc = EventAccumulator(str(p), size_guidance={"scalars": 0, "tensors": 0})
    try:
        acc.Reload()
    except Exception as exc:  # corrupt record, bad CRC, not an event file
        raise DataReadError(f"{p}: cannot read TensorBoard events: {exc}", path=str(p)) from exc
    tags = acc.Tags()
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for tag in tags.get("scalars", []):
        for ev in acc.Scalars(tag):
            points[canonical_name(tag)].append((int(ev.step), float(ev.value)))
    for tag in tags.get("tensors", []):
        for ev in acc.Tensors(tag):
            arr = tensor_util.make_ndarray(ev.tensor_proto)
            if arr.size == 1 and arr.dtype.kind in "fiu":
                points[canonical_name(tag)].append((int(ev.step), float(arr.reshape(()))))
    if not points:
        raise _no_metrics(p, "the TensorBoard events", {t for kind in tags.values() if isinstance(kind, list) for t in kind})
    return Metrics.from_points(points, str(p))


def read_metrics(path: str | Path) -> Metrics:
    """Pick the reader from the path: ``.jsonl``/``.ndjson``, ``.csv``, ``trainer_state.json``
    or any ``.json`` with ``log_history``, a TensorBoard event file or directory."""
    p = Path(path)
    _require_file(p)
    if p.is_dir() or "tfevents" in p.name:
        return read_tensorboard(p)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(p)
    if suffix == ".csv":
        return read_lightning_csv(p)
    if suffix == ".json":
        return read_hf_trainer_state(p)
    raise DataReadError(
        f"{p}: unknown metrics format; use .jsonl, Lightning metrics.csv, trainer_state.json, "
        "a TensorBoard event file or directory, or an mlflow+http(s):// URL",
        path=str(p),
    )
