"""The one place that imports Great Expectations, quietly.

GX starts a tqdm monitor thread and draws progress bars on stderr on the first
validation, and has usage analytics; a service log or a CLI answer wants neither.
Everything that needs GX calls ``gx()`` (imports once, silenced; ``MissingDependency`` when
``dagwatch-checks`` was installed without its ``quality`` extra) and
``new_context()`` (a fresh ephemeral context: GX is not thread-safe and a shared
context gave silently wrong results under concurrency).
"""

from __future__ import annotations

import os
from types import ModuleType

from checks.errors import MissingDependency

_gx: ModuleType | None = None


def gx() -> ModuleType:
    """Import GX once, with analytics and progress bars off."""
    global _gx
    if _gx is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        try:
            import tqdm  # GX's own dependency: absent too when GX is

            tqdm.tqdm.monitor_interval = 0  # no tqdm_monitor thread
            import great_expectations
        except ModuleNotFoundError as exc:
            if exc.name not in ("tqdm", "great_expectations"):
                raise  # GX is there but broken: its own error says more than ours would
            raise MissingDependency("Great Expectations", "quality") from exc  # installed without the extra

        _gx = great_expectations
    return _gx


def new_context():
    """A fresh ephemeral GX context: writes nothing to disk, makes no network calls."""
    g = gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = g.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx
