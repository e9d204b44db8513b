"""Seasonal median composite of N dates: eqi vs a plain odc-stac load + xarray median.

Inputs: the synthetic Landsat C2 L2 scenes of :mod:`bench.fixtures` (red, nir, QA_PIXEL per date).

* ours — :func:`eqi.io.load.group_items` -> :func:`eqi.io.load.load_group` (chunks 512) ->
  :func:`eqi.pipeline.stack.prepare_inputs` -> :func:`eqi.science.composite.composite`, computed with Dask's
  threaded scheduler on 2 threads.
* baseline — ``odc.stac.load(items, bands, geobox=..., groupby="solar_day", pool=2)`` into memory
  (no chunks), clear mask from the same QA_PIXEL bits with xarray, DN -> reflectance in float32,
  ``.median("time", skipna=True)``.

Both apply the same GDAL settings (:func:`eqi.pipeline.cluster.configure_gdal`), run once untimed on one date
and a 256 px corner (imports, GDAL, thread pools warm), and return the median red and nir
(float32, NaN where no clear observation) and the clear-observation count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import fixtures
from bench.harness import Case, Side

__all__ = ["ours", "baseline", "cases", "prepare", "checks", "NAME", "BANDS"]

NAME = "composite_median"
BANDS = ("red", "nir")
DATES = (4, 16, 64)
SIZE = 2048
THREADS = 2
VALID_DN = (7273, 43636)  # Landsat C2 L2 SR valid range (configs/methods/mask.yaml valid_range)


def _rules() -> Any:
    from eqi.resources import load_profile
    from eqi.science.mask import MaskRules

    return MaskRules.from_profile(load_profile("mask"))


def _qa_bad_bits() -> int:
    from eqi.science.mask import QA_PIXEL_BITS

    bits = 1 << QA_PIXEL_BITS["fill"]
    for name in _rules().qa_pixel_bad:
        bits |= 1 << QA_PIXEL_BITS[name]
    return bits


def _warm(make_work: Callable[..., Callable[[], dict[str, np.ndarray]]], items, geobox) -> None:
    """Run the pipeline once on one date and a 256 px corner: imports, GDAL, thread pools (untimed)."""
    make_work(items[:1], geobox[:256, :256])()


def _ours_work(items: list, geobox: Any) -> Callable[[], dict[str, np.ndarray]]:
    import dask
    import dask.array as da

    from eqi.io.load import group_items, load_group
    from eqi.pipeline.stack import prepare_inputs
    from eqi.science.composite import composite

    rules = _rules()

    def work() -> dict[str, np.ndarray]:
        with dask.config.set(scheduler="threads", num_workers=THREADS):
            groups = group_items(items, list(BANDS))
            loaded = [load_group(g, geobox, chunk=512) for g in groups]
            inputs = prepare_inputs(groups, loaded, list(BANDS), rules=rules)
            comp = composite(inputs)
            # blocks written into preallocated arrays, as a windowed writer would (no final concat)
            out = {k: np.empty(comp[k].shape, comp[k].dtype) for k in ("red", "nir", "count")}
            da.store([comp[k].data for k in out], list(out.values()), lock=False)
        return out

    return work


def _baseline_work(items: list, geobox: Any) -> Callable[[], dict[str, np.ndarray]]:
    import odc.stac

    bad = np.uint16(_qa_bad_bits())
    scale, offset = np.float32(fixtures.SR_SCALE), np.float32(fixtures.SR_OFFSET)

    def work() -> dict[str, np.ndarray]:
        ds = odc.stac.load(
            items,
            bands=["red", "nir08", "qa_pixel"],
            geobox=geobox,
            groupby="solar_day",
            pool=THREADS,
        )
        clear = ((ds["qa_pixel"] & bad) == 0) & (ds["red"] != 0) & (ds["nir08"] != 0)
        for var in ("red", "nir08"):  # USGS valid range of SR DN (reflectance 0-1), as eqi masks
            clear = clear & (ds[var] >= VALID_DN[0]) & (ds[var] <= VALID_DN[1])
        out: dict[str, Any] = {}
        for name, var in (("red", "red"), ("nir", "nir08")):
            reflectance = (ds[var].astype(np.float32) * scale + offset).where(clear)
            out[name] = reflectance.median("time", skipna=True).values
        out["count"] = clear.sum("time").values.astype(np.uint16)
        return out

    return work


def ours(n_dates: int, size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """Set up eqi's composite of ``n_dates`` scenes (warmed up once); return the timed work."""
    from eqi.pipeline.cluster import configure_gdal

    items = fixtures.landsat_items(n_dates, size, Path(cache))
    geobox = fixtures.scene_geobox(size)
    configure_gdal(None)
    _warm(_ours_work, items, geobox)
    return _ours_work(items, geobox)


def baseline(n_dates: int, size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """Set up the plain odc-stac + xarray median (warmed up once); return the timed work."""
    from eqi.pipeline.cluster import configure_gdal

    items = fixtures.landsat_items(n_dates, size, Path(cache))
    geobox = fixtures.scene_geobox(size)
    configure_gdal(None)
    _warm(_baseline_work, items, geobox)
    return _baseline_work(items, geobox)


def prepare(
    cache: Path = fixtures.CACHE_DIR, size: int = SIZE, dates: tuple[int, ...] = DATES
) -> None:
    """Write the input scenes (once; untimed)."""
    fixtures.landsat_scenes(max(dates), size, cache)


def cases(
    cache: Path = fixtures.CACHE_DIR,
    size: int = SIZE,
    dates: tuple[int, ...] = DATES,
    repeats: int = 3,
) -> list[Case]:
    """One case per number of dates."""
    out = []
    for n in dates:
        kwargs = {"n_dates": n, "size": size, "cache": str(cache)}
        out.append(
            Case(
                name=NAME,
                size=f"{n}x{size}x{size}",
                ours=Side("eqi load_group+composite (dask threads=2, chunks 512)",
                          "bench.bench_composite:ours", kwargs),
                baseline=Side("odc.stac.load in memory (pool=2) + xarray where + median",
                              "bench.bench_composite:baseline", kwargs),
                rtol=1e-6,
                atol=1e-6,
                repeats=repeats,
                extra={"dates": n, "pixels": f"{size}x{size}", "bands": list(BANDS)},
            )
        )  # fmt: skip
    return out


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Acceptance criteria (issue "Foundation" item 10) on this benchmark's rows."""
    mine = sorted((r for r in rows if r["name"] == NAME), key=lambda r: r.get("dates", 0))
    if len(mine) < 2:
        return []
    out = []
    slow = [r["size"] for r in mine if r["ratio"] < 1.0]
    out.append(
        (
            "composite: ours not slower than the baseline at any N",
            not slow,
            "ratios " + ", ".join(f"{r['dates']}d {r['ratio']:.2f}" for r in mine),
        )
    )
    first, last = mine[0], mine[-1]
    ours_growth = last["ours_peak_mib"] / first["ours_peak_mib"]
    base_growth = last["baseline_peak_mib"] / first["baseline_peak_mib"]
    out.append(
        (
            f"composite: ours peak memory flat (<= 1.5x) from {first['dates']} to {last['dates']} dates",
            ours_growth <= 1.5,
            f"ours x{ours_growth:.2f} ({first['ours_peak_mib']:.0f} -> {last['ours_peak_mib']:.0f} MiB)",
        )
    )
    out.append(
        (
            "composite: baseline peak memory grows with N",
            base_growth > 1.5,
            f"baseline x{base_growth:.2f} ({first['baseline_peak_mib']:.0f} -> "
            f"{last['baseline_peak_mib']:.0f} MiB)",
        )
    )
    return out
