"""End to end: ``eqi run`` vs a plain odc-stac + xarray + rioxarray script, as whole processes.

Inputs: the synthetic Landsat 8/9 C2 L2 archive of :mod:`bench.archive_fixtures` (USGS scene
folders, indexed by ``eqi archive index`` into stac-geoparquet), 16 and 64 dates within 2021, one
2048 x 2048 px UTM 48N grid at 30 m; the AOI is that grid's square (:func:`aoi_file`), so both
sides compute on exactly the scenes' pixel grid.

* ours — ``python -m eqi run CONFIG --products JOB --out OUT`` (the ``eqi`` console script)
  with the archive as source, season 01-01/12-31, ``crs: EPSG:32648``, ``resolution: 30``.
* baseline — ``python bench/plain_odc_stac.py`` (see there): ``odc.stac.load`` lazily with
  1024 px chunks, QA_PIXEL bit mask and scaling with xarray, ``.median("time")`` computed,
  NDVI, RSEI by NumPy PCA for the full job, ``rio.to_raster(driver="COG")`` per output.

Jobs: ``ndvi`` (row ``e2e_ndvi``) and ``composite,ndvi,rsei`` (row ``e2e_composite_ndvi_rsei``:
six median bands, NDVI and RSEI).  Same scenes, grid and threads (2), in one run.  The outputs of
the first repeat are compared: median bands and NDVI equal within 1e-5 with the same NaN pixels;
RSEI correlates with r >= 0.99 (the plain script fits its PCA on all land pixels, without eqi's
seeded sample, minimum-observation mask and water buffer: eqi's valid pixels are a subset of its).  A side that runs out of memory (the cap of
:func:`bench.proc_harness.default_mem_cap_mib`) is a result, recorded as such.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench import archive_fixtures as af
from bench import fixtures
from bench.harness import BenchMismatch
from bench.proc_harness import ProcCase, ProcSide

__all__ = ["NAME", "JOBS", "prepare", "cases", "checks", "check_outputs", "write_eqi_config"]

NAME = "e2e"
DATES = (16, 64)
SIZE = 2048
THREADS = 2
CHUNK = 1024  # the plain script's Dask chunks (px)
SEASON = "01-01/12-31"
REGION = "bench-area"
PLAIN = Path(__file__).resolve().with_name("plain_odc_stac.py")
JOBS: dict[str, tuple[str, ...]] = {
    "ndvi": ("ndvi",),
    "composite,ndvi,rsei": ("blue", "green", "red", "nir", "swir16", "swir22", "ndvi", "rsei"),
}
_PLAIN_FLAGS = {"ndvi": (), "composite,ndvi,rsei": ("--composite", "--rsei")}
LONG_DATES = 64  # from this many dates a side runs once by default (keeps `make bench` < 20 min)
# acceptance (issue 6): ours at least 1.5x faster, with at most a quarter of the peak memory
MIN_SPEEDUP = 1.5
MAX_PEAK_SHARE = 0.25


def row_name(job: str) -> str:
    return f"{NAME}_{job.replace(',', '_')}"


def write_eqi_config(path: Path, archive: Path, aoi: Path, extra: dict[str, Any] | None = None) -> Path:
    """The run configuration of the eqi side (products and out come from the command line)."""
    import yaml

    config = {
        "title": "eqi benchmark (SIMULATED scenes)",
        "source": str(archive),
        "collections": ["landsat-c2-l2"],
        "aoi": str(aoi),
        "years": [af.YEAR],
        "season": SEASON,
        "crs": af.CRS,
        "resolution": af.RES_M,
        "products": ["ndvi"],
        "out": ".",
        "simulated": True,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def prepare(
    cache: Path = fixtures.CACHE_DIR, size: int = SIZE, dates: tuple[int, ...] = DATES
) -> None:
    """Write the scenes and the archives (once; untimed)."""
    for n in sorted(dates, reverse=True):  # the largest first: the others reuse its scenes
        af.landsat_archive(n, size, cache)


def _read(path: Path) -> tuple[np.ndarray, Any, Any]:
    import rasterio

    if not path.is_file():
        raise BenchMismatch(f"expected output {path} was not written")
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def check_outputs(ours: Path, baseline: Path, *, products: tuple[str, ...]) -> dict[str, Any]:
    """Compare the two sides' COGs; raise :class:`BenchMismatch`, else return the figures."""
    task = ours / REGION / str(af.YEAR)
    diffs: dict[str, float] = {}
    figures: dict[str, Any] = {}
    for name in products:
        a, ta, ca = _read(task / f"{name}.tif")
        b, tb, cb = _read(baseline / f"{name}.tif")
        if a.shape != b.shape or ta != tb or ca != cb:
            raise BenchMismatch(f"{name}: grids differ: {a.shape} {ta} {ca} vs {b.shape} {tb} {cb}")
        both = np.isfinite(a) & np.isfinite(b)
        if not both.any():
            raise BenchMismatch(f"{name}: no pixel is valid on both sides")
        if name == "rsei":
            # eqi masks more (fewer than min_observations clear dates, a buffer around water)
            r = float(np.corrcoef(a[both], b[both])[0, 1])
            extra = float((np.isnan(a) & np.isfinite(b)).mean())
            if r < 0.99 or (np.isfinite(a) & np.isnan(b)).any():
                raise BenchMismatch(
                    f"rsei: r = {r:.4f}; {int((np.isfinite(a) & np.isnan(b)).sum())} pixels "
                    "valid in eqi's output are NaN in the plain script's"
                )
            figures |= {"rsei_r": round(r, 5), "rsei_nan_only_in_ours": round(extra, 4)}
            continue
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise BenchMismatch(f"{name}: NaN pixels differ on {(np.isnan(a) != np.isnan(b)).sum()}")
        diffs[name] = float(np.abs(a[both] - b[both]).max())
        if diffs[name] > 1e-5:
            raise BenchMismatch(f"{name}: values differ by up to {diffs[name]:g}")
    checked = "median bands and NDVI: same grid, same NaN pixels, |diff| <= 1e-5"
    if "rsei" in products:
        checked += "; RSEI: r >= 0.99, every pixel valid in eqi's output valid in the script's"
    return {"checked": checked, "max_abs_diff": diffs, **figures}


def cases(
    cache: Path = fixtures.CACHE_DIR,
    size: int = SIZE,
    dates: tuple[int, ...] = DATES,
    repeats: int | None = None,
    jobs: tuple[str, ...] = tuple(JOBS),
) -> list[ProcCase]:
    """One case per job and number of dates; ``repeats`` default: 2, 1 from 64 dates on."""
    configs = cache / "e2e-configs"
    aoi = af.aoi_file(size, configs / f"aoi-{size}.geojson", name=REGION)
    out = []
    for job in jobs:
        for n in dates:
            archive = af.landsat_archive(n, size, cache)
            config = write_eqi_config(configs / f"eqi-{size}-{n}.yaml", archive.parquet, aoi)
            ours = ProcSide(
                f"eqi run --products {job} (threads={THREADS})",
                (sys.executable, "-m", "eqi", "run", str(config), "--products", job,
                 "--out", "{out}"),
            )  # fmt: skip
            baseline = ProcSide(
                f"plain odc-stac + xarray + rioxarray script (chunks {CHUNK}, threads={THREADS})",
                (sys.executable, str(PLAIN), "--archive", str(archive.parquet), "--aoi", str(aoi),
                 "--year", str(af.YEAR), "--season", SEASON, "--crs", af.CRS,
                 "--resolution", f"{af.RES_M:g}", "--chunk", str(CHUNK), "--out", "{out}",
                 *_PLAIN_FLAGS[job]),
            )  # fmt: skip
            out.append(
                ProcCase(
                    name=row_name(job),
                    size=f"{n}x{size}x{size}",
                    ours=ours,
                    baseline=baseline,
                    inputs=tuple(archive.files),
                    check=functools.partial(check_outputs, products=JOBS[job]),
                    repeats=repeats or (1 if n >= LONG_DATES else 2),
                    threads=THREADS,
                    extra={"dates": n, "pixels": f"{size}x{size}", "job": job,
                           "products": list(JOBS[job])},
                )  # fmt: skip
            )
    return out


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Acceptance (issue 6): ours >= 1.5x faster with <= 1/4 of the peak, or the baseline OOM."""
    out = []
    mine = [r for r in rows if str(r["name"]).startswith(f"{NAME}_")]
    for r in sorted(mine, key=lambda r: (r["name"], r.get("dates", 0))):
        label = f"{r['name']} {r['size']}"
        if r.get("ours_out_of_memory") and r.get("ours_s") is None:
            out.append((f"{label}: ours completes", False, "ours ran out of memory"))
            continue
        if r.get("baseline_out_of_memory") and r.get("baseline_s") is None:
            out.append(
                (
                    f"{label}: ours >= {MIN_SPEEDUP}x faster, <= {MAX_PEAK_SHARE:.0%} of the peak",
                    True,
                    f"the plain script ran out of memory (cap {r.get('mem_cap_mib')} MiB); ours "
                    f"{r['ours_s']:.1f} s, {r['ours_peak_mib']:.0f} MiB",
                )
            )
            continue
        ok = r["ratio"] >= MIN_SPEEDUP and r["peak_ratio"] <= MAX_PEAK_SHARE
        out.append(
            (
                f"{label}: ours >= {MIN_SPEEDUP}x faster, <= {MAX_PEAK_SHARE:.0%} of the peak",
                ok,
                f"speed x{r['ratio']:.2f}, peak {r['peak_ratio']:.0%} "
                f"({r['ours_peak_mib']:.0f} vs {r['baseline_peak_mib']:.0f} MiB)",
            )
        )
    return out
