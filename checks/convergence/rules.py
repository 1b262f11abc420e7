"""Convergence rules configuration: one strict pydantic model, loadable from YAML or JSON.

Unknown keys are errors (a misspelt ``patiense`` must not silently fall back to a
default). Each section has defaults that suit a loss minimised by training; a
section written in the file whose metric is missing from the log is an error,
while a default section whose metric is absent is simply not evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from checks.errors import ConfigError
from checks.present import missing_file


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class EarlyStoppingRule(_Rule):
    """Lightning ``EarlyStopping``'s parameters, same names, same meaning."""

    monitor: str = Field("val_loss", description="metric to watch")
    mode: Literal["min", "max"] = "min"
    min_delta: float = Field(0.0, description="smallest change that counts as improvement")
    patience: int = Field(3, ge=0, description="validations without improvement before stopping")
    check_finite: bool = True
    stopping_threshold: float | None = Field(None, description="stop (success) once the metric passes this")
    divergence_threshold: float | None = Field(None, description="stop (failure) once the metric is worse than this")
    patience_status: Literal["warning", "failed"] = Field(
        "warning", description="what running out of patience means: usually a plateau, not a broken run"
    )


class RelativeDivergenceRule(_Rule):
    """Fail when the last value is worse than ``factor`` x the best so far (min mode: last > k * best)."""

    metric: str = "train_loss"
    mode: Literal["min", "max"] = "min"
    factor: float = Field(3.0, gt=1.0)
    warmup: int = Field(0, ge=0, description="leading points ignored (noisy start)")


class GradNormRule(_Rule):
    """Every gradient norm finite and at most ``max_value``."""

    metric: str = "train_grad_norm"
    max_value: float | None = Field(1000.0, gt=0)


class LossSpikeRule(_Rule):
    """A point above ``factor`` x the median of the ``window`` points before it is a spike."""

    metric: str = "train_loss"
    window: int = Field(10, ge=2)
    factor: float = Field(3.0, gt=1.0)
    max_spikes: int = Field(0, ge=0, description="spikes tolerated before the rule fires")
    status: Literal["failed", "warning"] = "failed"


class PlateauRule(_Rule):
    """Warn when the last ``window`` points improve the best before them by less than ``min_rel_improvement``."""

    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    window: int = Field(5, ge=1)
    min_rel_improvement: float = Field(1e-3, ge=0)


class ConvergenceRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    early_stopping: EarlyStoppingRule = Field(default_factory=EarlyStoppingRule)
    relative_divergence: RelativeDivergenceRule = Field(default_factory=RelativeDivergenceRule)
    grad_norm: GradNormRule = Field(default_factory=GradNormRule)
    loss_spike: LossSpikeRule = Field(default_factory=LossSpikeRule)
    plateau: PlateauRule = Field(default_factory=PlateauRule)


def load_rules(path: str | Path | None) -> ConvergenceRules:
    """Rules from a ``.yaml``/``.yml``/``.json`` file; ``None`` gives the defaults."""
    if path is None:
        return ConvergenceRules()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {missing_file(p, 'rules file', ('.yaml', '.yml', '.json'))}", path=str(p))
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"{p}: cannot parse rules: {exc}", path=str(p)) from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: rules must be a mapping of sections", path=str(p))
    try:
        return ConvergenceRules.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{p}: invalid rules: {problems}", path=str(p)) from exc
