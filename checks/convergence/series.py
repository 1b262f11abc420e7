"""Metric series: the one shape every metrics reader produces.

Names follow one convention so rules can be written once: ``<split>_<metric>``
(``train_loss``, ``val_loss``, ``val_acc``); a metric logged without a split is a
training metric, so ``Metrics.get("train_grad_norm")`` also finds ``grad_norm``.
NaN and inf are kept: they are exactly what convergence rules look for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Series:
    """One metric: values in step order (steps may repeat across epochs in some loggers)."""

    name: str
    steps: np.ndarray  # int64
    values: np.ndarray  # float64, NaN/inf kept

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def from_points(cls, name: str, points: list[tuple[int, float]]) -> Series:
        points = sorted(points, key=lambda p: p[0])  # stable: equal steps keep log order
        steps = np.fromiter((p[0] for p in points), dtype=np.int64, count=len(points))
        values = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
        return cls(name, steps, values)


@dataclass
class Metrics:
    """A named set of series read from one source."""

    series: dict[str, Series] = field(default_factory=dict)
    source: str = ""

    def get(self, name: str) -> Series | None:
        """Exact name, else the unprefixed name for a ``train_`` metric."""
        if name in self.series:
            return self.series[name]
        if name.startswith("train_"):
            return self.series.get(name[len("train_") :])
        return None

    def names(self) -> list[str]:
        return sorted(self.series)

    @classmethod
    def from_points(cls, points: dict[str, list[tuple[int, float]]], source: str = "") -> Metrics:
        return cls({k: Series.from_points(k, v) for k, v in points.items() if v}, source)


def canonical_name(key: str, split: str | None = None) -> str:
    """``("loss", "val") -> "val_loss"``; ``"eval_loss" -> "val_loss"``; ``"train/loss" -> "train_loss"``."""
    key = key.strip().replace("/", "_").replace(" ", "_")
    if key.startswith("eval_"):
        key = "val_" + key[len("eval_") :]
    if key.startswith("valid_"):
        key = "val_" + key[len("valid_") :]
    if key.startswith("validation_"):
        key = "val_" + key[len("validation_") :]
    if split:
        split = {"eval": "val", "valid": "val", "validation": "val"}.get(split, split)
        if not key.startswith(split + "_"):
            key = f"{split}_{key}"
    return key
