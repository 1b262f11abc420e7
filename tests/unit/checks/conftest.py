"""Shared fixtures for the checks tests: real data files written to tmp_path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def demo_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Data shaped like the demo ML pipeline's: id, feature_0..3 ~ N(0, 1), binary label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            **{f"feature_{i}": rng.normal(size=n) for i in range(4)},
            "label": rng.integers(0, 2, n).astype(np.int64),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return demo_frame()


@pytest.fixture
def make_frame():
    return demo_frame
