"""Benchmark of the checks library against its peers, in one run.

Quality gate (the shipped ``demo_values`` suite, 8 expectations) on 10k / 100k / 1M
rows, side by side:

- ``checks pool``: ``QualityPool.validate(suite, parquet_path)`` - what the service
  does: a warm spawn worker reads the Parquet file, runs GX, sends the result back;
- ``GX file``: GX itself in this process, starting from the same Parquet file:
  ``pd.read_parquet`` then GX's own API (fresh ephemeral context, progress bars off,
  as the note measured; no dagwatch translation of the result);
- ``GX mem``: the same GX calls on a DataFrame already in memory;
- ``pandas`` / ``pandas+read``: the same 8 checks written by hand, without and with
  the Parquet read.

Why two GX columns: the pool is given a path, so its time includes reading the file,
which "GX in memory" never pays. ``pool/GX file`` is the like-for-like ratio - what
dagwatch adds to doing the same job with GX directly (IPC, suite, translation,
worker hand-off); ``pool/GX mem`` also charges the file read to dagwatch, an upper
bound for a caller that already holds the frame. The machine is shared, so the
columns are timed in rounds (one call of each, back to back) and each ratio is the
median of the per-round ratios: a load spike then hits both sides of a ratio.

Then drift on 1M rows (``check_drift``: PSI + KS D on 4 numeric features and the
label), next to scipy's ``ks_2samp`` for the KS part. Finally the calling process's
RSS before the pool starts and after validations ran through it: GX lives in the
workers, so the caller must stay light.

Run: ``python bench/checks.py`` (one to two minutes on 2 cores).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frame(n: int, seed: int = 0, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            **{f"feature_{i}": rng.normal(shift if i == 2 else 0.0, size=n) for i in range(4)},
            "label": rng.integers(0, 2, n).astype(np.int64),
        }
    )


def timed(fn, repeat: int) -> float:
    """Median wall time in ms over ``repeat`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def rounds(fns: dict, repeat: int) -> dict[str, list[float]]:
    """Wall times in ms of each function, ``repeat`` rounds of one call each (after a warm-up round).

    Interleaved rather than one function after the other, so that load from other jobs
    on the machine falls on every column alike; and the order rotates from round to
    round, because on a loaded machine the first call of a round measured slower.
    """
    for fn in fns.values():
        fn()
    keys = list(fns)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(repeat):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t = time.perf_counter()
            fns[key]()
            times[key].append((time.perf_counter() - t) * 1000)
    return times


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``a / b`` measured in the same round."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def gx_direct(df, suite):
    """GX's own API, as a user of GX would call it: fresh ephemeral context, nothing of dagwatch's."""
    from checks.quality._gx import new_context
    from checks.quality.validate import RESULT_FORMAT

    batch = new_context().data_sources.add_pandas("frame").read_dataframe(df)
    return batch.validate(suite, result_format=RESULT_FORMAT)


def pandas_gate(df) -> dict[str, bool]:
    """The demo_values suite, by hand."""
    f0, f1 = df["feature_0"], df["feature_1"]
    return {
        "id_unique": not df["id"].duplicated().any(),
        "feature_0_not_null": not f0.isna().any(),
        "feature_1_not_null": not f1.isna().any(),
        "feature_0_range": bool(f0.dropna().between(-10, 10).all()),
        "feature_1_range": bool(f1.dropna().between(-10, 10).all()),
        "feature_2_mean": -0.5 <= df["feature_2"].mean() <= 0.5,
        "feature_3_mean": -0.5 <= df["feature_3"].mean() <= 0.5,
        "label_values": bool(df["label"].isin([0, 1]).all()),
    }


SIZES = ((10_000, 25), (100_000, 15), (1_000_000, 10))


def write_data(folder: Path) -> None:
    """Runs in a child process, so the caller's RSS never holds the generated frames."""
    for n, _ in SIZES:
        frame(n).to_parquet(folder / f"d{n}.parquet", index=False)


def service_like_rss(data: Path) -> None:
    """Runs in a child process that imports only what a web service would: the pool."""
    from checks.quality import QualityPool, shipped_suite

    before = rss_mb()
    with QualityPool(workers=2) as pool:
        pool.warm_up()
        warm = rss_mb()
        pool.validate(shipped_suite("demo_values"), data)
        after = rss_mb()
    heavy = [m for m in ("pandas", "numpy", "great_expectations") if m in sys.modules]
    print(f"{before:.1f} {warm:.1f} {after:.1f} {','.join(heavy) or '-'}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write_data(Path(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--service-rss":
        service_like_rss(Path(sys.argv[2]))
        return
    import subprocess

    import pandas as pd

    from checks.quality import QualityPool, shipped_suite

    suite = shipped_suite("demo_values")
    tmp = Path(tempfile.mkdtemp(prefix="dagwatch-bench-"))
    subprocess.run([sys.executable, __file__, "--write", str(tmp)], check=True)

    # 1. the pool before GX exists in this process: its RSS, and one checked answer per size
    rss_start = rss_mb()
    with QualityPool(workers=2) as pool:
        t = time.perf_counter()
        pids = pool.warm_up()
        warm = time.perf_counter() - t
        rss_warm = rss_mb()
        for n, _ in SIZES:
            result = pool.validate(suite, tmp / f"d{n}.parquet")
            assert result.status.value == "passed", result.summary
        rss_after = rss_mb()
        worker_rss = [rss_mb(p) for p in pids]
        gx_in_caller = any(m.startswith("great_expectations") for m in sys.modules)

        # 2. GX in this process too (after the RSS readings), then every column in rounds
        from checks.quality import load_suite

        t = time.perf_counter()
        gx_suite = load_suite(suite)
        gx_import = time.perf_counter() - t
        rss_gx = rss_mb()
        times = {}
        for n, repeat in SIZES:
            path = tmp / f"d{n}.parquet"
            df = pd.read_parquet(path)
            assert all(pandas_gate(df).values()) and gx_direct(df, gx_suite).success
            times[n] = rounds(
                {
                    "pool": lambda path=path: pool.validate(suite, path),
                    "gx_file": lambda path=path: gx_direct(pd.read_parquet(path), gx_suite),
                    "gx_mem": lambda df=df: gx_direct(df, gx_suite),
                    "pandas": lambda df=df: pandas_gate(df),
                    "pandas_read": lambda path=path: pandas_gate(pd.read_parquet(path)),
                },
                repeat,
            )

    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    print(
        f"\nquality gate, demo_values suite (8 expectations); median ms over {'/'.join(str(r) for _, r in SIZES)}"
        f" interleaved rounds; 2 workers warm in {warm:.1f}s"
    )
    print(
        f"{'rows':>10} | {'checks pool':>11} | {'GX file':>7} | {'GX mem':>7} | {'pandas':>6} | {'pandas+read':>11} |"
        f" {'pool/GX file':>12} | {'pool/GX mem':>11} | {'GX mem/pandas':>13} | {'pool/pandas+read':>16}"
    )
    for n, _ in SIZES:
        m, t = med[n], times[n]
        print(
            f"{n:>10,} | {m['pool']:>11.1f} | {m['gx_file']:>7.1f} | {m['gx_mem']:>7.1f} | {m['pandas']:>6.1f} |"
            f" {m['pandas_read']:>11.1f} | {paired_ratio(t, 'pool', 'gx_file'):>12.2f} |"
            f" {paired_ratio(t, 'pool', 'gx_mem'):>11.2f} | {paired_ratio(t, 'gx_mem', 'pandas'):>13.1f} |"
            f" {paired_ratio(t, 'pool', 'pandas_read'):>16.1f}"
        )
    print(
        "  checks pool = worker reads the Parquet file + GX + result back; GX file = pd.read_parquet + GX here;"
        " GX mem and pandas get the frame in memory; ratios = median of per-round ratios"
    )

    # drift, 1M rows
    from scipy.stats import ks_2samp

    from checks.drift import check_drift, ks_statistic, psi_numeric

    ref, cur = frame(1_000_000, seed=1), frame(1_000_000, seed=2, shift=0.3)
    res = check_drift(ref, cur)
    t_drift = timed(lambda: check_drift(ref, cur), 3)
    a, b = ref["feature_0"].to_numpy(), cur["feature_0"].to_numpy()
    assert abs(ks_statistic(a, b) - ks_2samp(a, b).statistic) < 1e-12
    t_ks = timed(lambda: ks_statistic(a, b), 3)
    t_scipy = timed(lambda: ks_2samp(a, b), 3)
    t_psi = timed(lambda: psi_numeric(a, b), 3)
    print("\ndrift, 1,000,000 rows vs 1,000,000 (4 numeric features + categorical label); median ms")
    print(f"  check_drift, all 5 features  : {t_drift:8.1f}   drifted: {res.details['drifted']}")
    print(f"  PSI over deciles, 1 feature  : {t_psi:8.1f}")
    print(f"  KS D (checks), 1 feature     : {t_ks:8.1f}")
    print(f"  scipy ks_2samp, 1 feature    : {t_scipy:8.1f}   ratio checks/scipy {t_ks / t_scipy:.2f}")

    out = subprocess.run(
        [sys.executable, __file__, "--service-rss", str(tmp / "d1000000.parquet")], check=True, capture_output=True, text=True
    ).stdout.split()
    shutil.rmtree(tmp, ignore_errors=True)
    print("\nresident memory of a service-like caller that imports only checks.quality (MB)")
    print(
        f"  before the pool starts: {out[0]}   pool warm: {out[1]}   after a 1M-row validation: {out[2]}   heavy modules loaded: {out[3]}"
    )
    print("\nresident memory of this bench process (pandas + pyarrow loaded for the peers) (MB)")
    print(f"  before the pool starts              : {rss_start:7.1f}")
    print(f"  pool warm (2 workers, GX in each)   : {rss_warm:7.1f}")
    print(f"  after validations up to 1M rows     : {rss_after:7.1f}   GX imported in caller: {gx_in_caller}")
    print(f"  each GX worker                      : {', '.join(f'{r:.0f}' for r in worker_rss)}")
    print(f"  after importing GX in the caller    : {rss_gx:7.1f}   (import + suite build {gx_import:.1f}s; for contrast)")


if __name__ == "__main__":
    main()
