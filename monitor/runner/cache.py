"""Task results on disk: the cache that lets a re-run skip finished work, the last result of
each task that `dagwatch run --task` feeds to a task run in isolation, and each recent run's own
results, which a retry of that run in place (`Runner.plan_retry`) hands to the tasks it re-runs.

Files, not the database: results can be large arrays, and a pickle per key written atomically
(temp file + rename) survives restarts and crashes without a schema.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MISS = object()
#: Runs per pipeline whose results are kept for a retry in place. Results can be large (arrays,
#: models), so only recent runs are kept: a failure is retried within hours, not weeks.
KEEP_RUNS = 20


class Uncacheable(Exception):
    """The task's inputs cannot be hashed (not picklable); the task simply runs."""


def cache_key(pipeline: str, task: str, code_hash: str, inputs: dict[str, Any], custom: str | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{pipeline}\0{task}\0{code_hash}\0".encode())
    if custom is not None:
        digest.update(b"custom\0" + custom.encode())
    else:
        try:
            digest.update(pickle.dumps(sorted(inputs.items()), protocol=5))
        except Exception as exc:
            raise Uncacheable(f"inputs of {task!r} cannot be pickled: {exc}") from exc
    return digest.hexdigest()


@dataclass(frozen=True)
class RunRecord:
    """What a retry of one run in place needs from it: the parameters and run number it ran with
    (the store keeps only a JSON view of the parameters) and its tasks' results by task name."""

    params: dict[str, Any]
    run_number: int
    results: dict[str, Any]


class ResultStore:
    def __init__(self, folder: Path, *, keep_runs: int = KEEP_RUNS) -> None:
        if keep_runs < 1:
            raise ValueError(f"keep_runs must be at least 1, not {keep_runs}")
        self.folder = Path(folder)
        self.keep_runs = keep_runs
        (self.folder / "keys").mkdir(parents=True, exist_ok=True)
        (self.folder / "latest").mkdir(parents=True, exist_ok=True)
        (self.folder / "runs").mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any:
        """The cached value, or `MISS`."""
        return self._load(self.folder / "keys" / f"{key}.pkl")

    def put(self, key: str, value: Any) -> None:
        self._dump(self.folder / "keys" / f"{key}.pkl", value)

    def put_latest(self, pipeline: str, results: dict[str, Any]) -> list[str]:
        """Merge a run's task results into the pipeline's latest ones; returns the tasks whose
        result could not be pickled (they are left out)."""
        latest = self.latest(pipeline)
        merged = {} if latest is MISS else dict(latest)
        kept, skipped = _picklable(results)
        merged.update(kept)
        self._dump(self.folder / "latest" / f"{pipeline}.pkl", merged)
        return skipped

    def latest(self, pipeline: str) -> Any:
        """{task: last successful result} for the pipeline, or `MISS`."""
        return self._load(self.folder / "latest" / f"{pipeline}.pkl")

    def put_run(self, pipeline: str, run_id: str, record: RunRecord) -> list[str]:
        """Keep one run's record (replacing an earlier one of the same run, as a retry does) and
        drop the oldest records beyond `keep_runs` for the pipeline; returns the tasks whose
        result could not be pickled (left out: a retry that needs one says so)."""
        kept, skipped = _picklable(record.results)
        folder = self.folder / "runs" / pipeline
        self._dump(folder / _run_file(run_id), RunRecord(dict(record.params), record.run_number, kept))
        self._prune(folder)
        return skipped

    def run(self, pipeline: str, run_id: str) -> RunRecord | None:
        """The kept record of one run, or None (never recorded, pruned, or unreadable)."""
        record = self._load(self.folder / "runs" / pipeline / _run_file(run_id))
        return record if isinstance(record, RunRecord) else None

    def _prune(self, folder: Path) -> None:
        entries = []
        for path in folder.glob("*.pkl"):
            try:
                entries.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:  # pruned by a concurrent run of the same pipeline
                continue
        entries.sort()
        for _mtime, _name, path in entries[: max(0, len(entries) - self.keep_runs)]:
            path.unlink(missing_ok=True)

    @staticmethod
    def _load(path: Path) -> Any:
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except FileNotFoundError:
            return MISS
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return MISS  # a result from an older version of the code: recompute it

    @staticmethod
    def _dump(path: Path, value: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=5)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _picklable(results: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split results into those that pickle and the names of those that do not."""
    kept: dict[str, Any] = {}
    skipped: list[str] = []
    for task, value in results.items():
        try:
            pickle.dumps(value, protocol=5)
        except Exception:
            skipped.append(task)
            continue
        kept[task] = value
    return kept, skipped


def _run_file(run_id: str) -> str:
    """Run ids may hold any character (a user's `run_id=`); the file is named by their hash."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:32] + ".pkl"


MISS = _MISS
