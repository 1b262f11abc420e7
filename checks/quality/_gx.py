"""The one place that imports Great Expectations, quietly.

GX starts a tqdm monitor thread and draws progress bars on stderr on the first
validation, and has usage analytics; a service log or a CLI answer wants neither.
Everything that needs GX calls ``gx()`` (imports once, silenced) and
``new_context()`` (a fresh ephemeral context: GX is not thread-safe and a shared
context gave silently wrong results under concurrency).
"""

from __future__ import annotations

import os
from types import ModuleType

_gx: ModuleType | None = None


def gx() -> ModuleType:
    """Import GX once, with analytics and progress bars off."""
    global _gx
    if _gx is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import tqdm

        tqdm.tqdm.monitor_interval = 0  # no tqdm_monitor thread
        import great_expectations

        _gx = great_expectations
    return _gx


def new_context():
    """A fresh ephemeral GX context: writes nothing to disk, makes no network calls."""
    g = gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = g.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx
