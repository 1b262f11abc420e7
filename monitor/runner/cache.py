"""Task results on disk: the cache that lets a re-run skip finished work, and the last result of
each task that `dagwatch run --task` feeds to a task run in isolation.

Files, not the database: results can be large arrays, and a pickle per key written atomically
(temp file + rename) survives restarts and crashes without a schema.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

_MISS = object()


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


class ResultStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        (self.folder / "keys").mkdir(parents=True, exist_ok=True)
        (self.folder / "latest").mkdir(parents=True, exist_ok=True)

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
        skipped = []
        for task, value in results.items():
            try:
                pickle.dumps(value, protocol=5)
            except Exception:
                skipped.append(task)
                continue
            merged[task] = value
        self._dump(self.folder / "latest" / f"{pipeline}.pkl", merged)
        return skipped

    def latest(self, pipeline: str) -> Any:
        """{task: last successful result} for the pipeline, or `MISS`."""
        return self._load(self.folder / "latest" / f"{pipeline}.pkl")

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


MISS = _MISS
