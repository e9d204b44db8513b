"""Per-pixel trends on a 10-year stack: eqi (Dask block-wise) vs a per-pixel loop with the oracles.

Input (:func:`stack`, written once into the cache as ``.npy``, memory-mapped): a float32 stack
``(10, size, size)`` (default 4096²) of NDVI-like values with a per-pixel linear trend, noise
rounded to 0.001 (ties) and NaN gaps (some pixels with fewer than ``min_years`` valid years).

* ours — :func:`eqi.science.trend.theil_sen_mk_dask` over the stack read as 512 x 512 blocks,
  slope and p computed in one pass on Dask's threaded scheduler (2 threads), every pixel;
* baseline — a Python loop over a seeded sample of ``SAMPLE`` pixels calling
  :func:`scipy.stats.theilslopes` and :func:`pymannkendall.original_test` per pixel (the tests'
  oracles), on the same memory-mapped stack.

The two sides are compared on the sample pixels (1e-6).  The baseline's time is scaled to every
pixel (x size² / SAMPLE) by :func:`annotate`: row ``trend_pixels`` has ``baseline_s`` =
the scaled time, ``baseline_sample_s`` = the time actually measured on the sample.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import fixtures
from bench.harness import Case, Side

__all__ = ["stack", "ours", "oracle_loop", "prepare", "cases", "annotate", "checks", "notes", "NAME"]

NAME = "trend_pixels"
YEARS = tuple(range(2014, 2024))
SEED = 20240808
SAMPLE = 2000
SIZE = 4096


def stack(cache: Path | str = fixtures.CACHE_DIR, size: int = SIZE) -> Path:
    """The simulated 10-year stack (written once, row strips; atomic rename)."""
    from numpy.lib.format import open_memmap

    path = Path(cache) / "trend-v1" / f"stack_{len(YEARS)}x{size}.npy"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    arr = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(YEARS), size, size))
    t = np.asarray(YEARS, dtype=np.float64)[:, None, None] - YEARS[0]
    for row in range(0, size, 512):
        n = min(512, size - row)
        rng = np.random.default_rng([SEED, row])
        slope = rng.normal(0.0, 0.01, (n, size))
        x = 0.5 + slope[None] * t + rng.normal(0.0, 0.03, (len(YEARS), n, size))
        x = np.round(x, 3)
        x[rng.random(x.shape) < 0.08] = np.nan  # cloudy / missing years
        x[:, rng.random((n, size)) < 0.01] = np.nan  # never valid
        arr[:, row : row + n] = x.astype(np.float32)
    arr.flush()
    del arr
    tmp.rename(path)
    return path


def _sample(size: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SEED).choice(size * size, SAMPLE, replace=False))


def ours(size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """theil_sen_mk_dask over every pixel (512² blocks, threaded, 2 threads); sample returned."""
    import dask
    import dask.array as da

    from eqi.resources import load_profile
    from eqi.science.trend import TREND_FIELDS, theil_sen_mk_dask

    x = np.load(stack(cache, size), mmap_mode="r")
    min_years = int(load_profile("trend").value("min_years"))
    idx = _sample(size)
    warm = theil_sen_mk_dask(da.from_array(np.asarray(x[:, :64, :64]), chunks=(-1, 64, 64)), YEARS, min_years=min_years)
    warm.compute(scheduler="threads", num_workers=2)

    def work() -> dict[str, np.ndarray]:
        res = theil_sen_mk_dask(da.from_array(x, chunks=(-1, 512, 512)), YEARS, min_years=min_years)
        with dask.config.set(scheduler="threads", num_workers=2):
            slope, p = da.compute(res[TREND_FIELDS.index("slope")], res[TREND_FIELDS.index("p")])
        return {"slope": slope.ravel()[idx], "p": p.ravel()[idx]}

    return work


def oracle_loop(size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """scipy.stats.theilslopes + pymannkendall.original_test pixel by pixel on the sample."""
    import pymannkendall as mk
    from scipy import stats

    from eqi.resources import load_profile

    x = np.load(stack(cache, size), mmap_mode="r")
    min_years = int(load_profile("trend").value("min_years"))
    idx = _sample(size)
    ty = np.asarray(YEARS, dtype=np.float64)

    def work() -> dict[str, np.ndarray]:
        slope = np.full(idx.size, np.nan)
        p = np.full(idx.size, np.nan)
        rows, cols = np.divmod(idx, size)
        for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
            v = np.asarray(x[:, r, c], dtype=np.float64)
            ok = np.isfinite(v)
            if ok.sum() < min_years:
                continue
            slope[k] = stats.theilslopes(v[ok], ty[ok]).slope
            p[k] = mk.original_test(v[ok]).p
        return {"slope": slope, "p": p}

    return work


def prepare(cache: Path = fixtures.CACHE_DIR, size: int = SIZE) -> None:
    """Write the stack (once; untimed)."""
    stack(cache, size)


def cases(cache: Path = fixtures.CACHE_DIR, size: int = SIZE, repeats: int = 2) -> list[Case]:
    """``trend_pixels``: ours over every pixel vs the oracle loop on a sample (scaled)."""
    kwargs = {"size": size, "cache": str(cache)}
    return [
        Case(
            name=NAME,
            size=f"{len(YEARS)}x{size}x{size}",
            ours=Side("eqi.science.trend.theil_sen_mk_dask, every pixel (512² blocks, 2 threads)", "bench.bench_trend:ours", kwargs),
            baseline=Side(f"per-pixel loop scipy.stats.theilslopes + pymannkendall.original_test on {SAMPLE} pixels, scaled to all", "bench.bench_trend:oracle_loop", kwargs),
            rtol=0.0,
            atol=1e-6,
            repeats=max(1, min(repeats, 2)),
            extra={"pixels": size * size, "years": len(YEARS), "sample": SAMPLE, "simulated": True},
        )
    ]  # fmt: skip


def annotate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scale the oracle loop's sample time to every pixel."""
    for r in rows:
        if r["name"] == NAME and "baseline_sample_s" not in r:
            r["baseline_sample_s"] = r["baseline_s"]
            r["baseline_s"] = round(r["baseline_s"] * r["pixels"] / r["sample"], 1)
            r["ratio"] = round(r["baseline_s"] / r["ours_s"], 1)
            r["scaled"] = f"baseline_s = baseline_sample_s x {r['pixels']} / {r['sample']} pixels"
        if r["name"] == NAME and r.get("baseline_cpu_s") is not None and "baseline_sample_cpu_s" not in r:
            r["baseline_sample_cpu_s"] = r["baseline_cpu_s"]
            r["baseline_cpu_s"] = round(r["baseline_cpu_s"] * r["pixels"] / r["sample"], 1)
            r["cpu_ratio"] = round(r["baseline_cpu_s"] / r["ours_cpu_s"], 1)
    return rows


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """No floor is set by the issue: the ratio is reported (a check that it is > 1)."""
    return [(f"trends: faster than the per-pixel oracle loop at {r['size']}", r["ratio"] > 1.0, f"ratio {r['ratio']:.0f}")
            for r in rows if r["name"] == NAME]  # fmt: skip


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Peak memory and the measured sample time."""
    return [f"{r['name']} {r['size']}: ours peak {r['ours_peak_mib']:.0f} MiB; oracle loop {r.get('baseline_sample_s')} s "
            f"on {r.get('sample')} pixels" for r in rows if r["name"] == NAME]  # fmt: skip
