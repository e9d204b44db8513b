"""Index + RSEI stage: eqi (Dask, blockwise) vs the same math in plain NumPy on in-memory arrays.

Inputs: float32 composite-like bands of :mod:`bench.fixtures` (``blue .. swir22``, ``lwir``).

* ours — the calls the pipeline makes for one tile and year (see :func:`pipeline_rsei`):
  :func:`eqi.science.indices.compute_index` for each component (NDVI, WET, LST, NDBSI) and for
  MNDWI, :func:`eqi.science.rsei.components_from_indices` (water mask, minimum-observation mask
  from the composite's ``count``), :func:`eqi.science.rsei.fit_rsei_model` (seeded PCA sample,
  robust bounds, PC1, final bounds) and :func:`eqi.science.rsei.apply_rsei_model` (RSEI and
  grades), on a Dataset whose bands are read lazily, 512 x 512 blocks, computed on Dask's
  threaded scheduler with 2 threads.  Nothing is materialised but the outputs.
  Row ``rsei_stage``.  Row ``rsei_stage_in_memory``: the same eqi calls on a NumPy-backed
  Dataset (bands loaded in set-up), as ``eqi/pipeline/tile_stage.py`` holds a tile after computing its
  composite into memory.
* baseline — the same formulas, sample, PCA and rescaling written in NumPy (plus
  ``scipy.ndimage.binary_dilation`` for the water buffer) on the bands loaded into memory during
  set-up (untimed).

Both read the method parameters from ``configs/methods/rsei.yaml`` / ``indices.yaml``, run once
untimed on a 256 px corner (imports, thread pool), and return RSEI (float32, NaN outside valid
pixels) and its grade (uint8, 0 = nodata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench import fixtures
from bench.harness import Case, Side

__all__ = [
    "ours", "ours_in_memory", "baseline", "pipeline_rsei", "rsei_numpy", "cases", "prepare", "checks",
    "NAME",
]  # fmt: skip

NAME = "rsei_stage"
SIZES = (2048, 4096)
THREADS = 2
SENSOR = "landsat8"


# clear observations per pixel of the simulated composite (above min_observations everywhere)
COUNT = 8


def pipeline_rsei(ds: Any, rsei_profile: Any, index_profile: Any, variant: str = "rsei") -> tuple:
    """RSEI of a composite Dataset through the calls the pipeline makes, for one tile and year.

    Tile stage (``eqi/pipeline/tile_stage.py``): ``indices.compute_index`` of each component and
    of MNDWI; fit stage (``eqi/pipeline/fit.py``): ``rsei.components_from_indices(...,
    obs_count=count)`` and ``rsei.fit_rsei_model`` over the tiles of the area (here one);
    products (``eqi/products.py``, ``_rsei``): ``rsei.apply_rsei_model`` on the tile's
    components.  Returns ``(rsei, grade, model)``.
    """
    from eqi.science import indices, rsei

    if variant == "rsei":
        rsei.require_thermal(ds)
    layers = {name: indices.compute_index(name, ds, index_profile) for name in rsei.VARIANTS[variant]}

    def components() -> Any:
        return rsei.components_from_indices(
            layers, indices.compute_index("mndwi", ds, index_profile), variant=variant,
            obs_count=ds["count"], label="bench", params=rsei_profile,
        )  # fmt: skip

    model = rsei.fit_rsei_model([[components()]], params=rsei_profile)
    value, grade = rsei.apply_rsei_model(model, components())
    return value, grade, model


def _dataset(size: int, cache: str, lazy: bool) -> Any:
    """The composite-like bands (lazy: read block by block; else in memory) plus ``count``."""
    import dask.array as da
    import xarray as xr

    paths = fixtures.reflectance_bands(size, Path(cache))
    if lazy:
        bands = {b: fixtures.lazy_band(p, 512) for b, p in paths.items()}
        count = da.full((size, size), COUNT, dtype=np.uint16, chunks=512)
    else:
        bands = {b: fixtures.load_band(p) for b, p in paths.items()}
        count = np.full((size, size), COUNT, dtype=np.uint16)
    variables = {b: (("y", "x"), a) for b, a in bands.items()}
    variables["count"] = (("y", "x"), count)
    # as eqi's composites carry it (valid range applied, medians in [0, 1]; the fixture's
    # reflectance is 0.01-0.48): the indices then skip their input-range pass
    return xr.Dataset(variables, attrs={"sensor": SENSOR, "reflectance_in_range": True})


def _ours_work(ds: Any) -> Callable[[], dict[str, np.ndarray]]:
    import dask
    import dask.array as da

    from eqi.resources import load_profile

    def work() -> dict[str, np.ndarray]:
        with dask.config.set(scheduler="threads", num_workers=THREADS):
            rsei, grade, _model = pipeline_rsei(
                ds, load_profile("rsei"), load_profile("indices")
            )
            # blocks written into preallocated arrays, as a windowed writer would (no final concat)
            value = np.empty(rsei.shape, rsei.dtype)
            klass = np.empty(grade.shape, grade.dtype)
            da.store([rsei.data, grade.data], [value, klass], lock=False)
        return {"rsei": value, "grade": klass}

    return work


def ours(size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """Set up eqi's index + RSEI stage on lazily read bands (warmed up once); return the timed work."""
    ds = _dataset(size, cache, lazy=True)
    _ours_work(ds.isel(y=slice(0, 256), x=slice(0, 256)))()  # imports, thread pool (untimed)
    return _ours_work(ds)


def ours_in_memory(size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """eqi's stage on a NumPy-backed Dataset (bands loaded in set-up), as the pipeline runs it
    after computing the composite into memory: eager, no Dask."""
    from eqi.resources import load_profile

    ds = _dataset(size, cache, lazy=False)

    def run(data: Any) -> dict[str, np.ndarray]:
        rsei, grade, _model = pipeline_rsei(data, load_profile("rsei"), load_profile("indices"))
        return {"rsei": np.asarray(rsei.values), "grade": np.asarray(grade.values)}

    run(ds.isel(y=slice(0, 256), x=slice(0, 256)))  # imports (untimed)
    return lambda: run(ds)


def _finite(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    x[~np.isfinite(x)] = np.nan
    return x


def _value(entry: Any) -> Any:
    return entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry


def rsei_numpy(
    bands: Mapping[str, np.ndarray],
    wet_coefficients: Mapping[str, float],
    params: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """4-component RSEI (robust normalisation) of in-memory float32 bands, in plain NumPy."""
    from scipy import ndimage

    b, g, r, n, s1 = (bands[k] for k in ("blue", "green", "red", "nir", "swir16"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = _finite((n - r) / (n + r))
        wet = None
        for alias, c in wet_coefficients.items():
            term = bands[alias] * np.float32(c)
            wet = term if wet is None else wet + term
        wet = _finite(wet)
        si = _finite(((s1 + r) - (n + b)) / ((s1 + r) + (n + b)))
        built = 2.0 * s1 / (s1 + n)
        veg_water = n / (n + r) + g / (g + s1)
        ibi = _finite((built - veg_water) / (built + veg_water))
        ndbsi = _finite((si + ibi) / 2.0)
        lst = _finite(bands["lwir"])
        mndwi = _finite((g - s1) / (g + s1))
    water = mndwi > float(_value(params["water"]["mndwi_threshold"]))
    buffer = int(_value(params["water"]["buffer_pixels"]))
    if buffer > 0:
        water = ndimage.binary_dilation(water, np.ones((3, 3), bool), iterations=buffer)
    layers = [ndvi, wet, lst, ndbsi]
    valid = ~water
    for layer in layers:
        valid &= np.isfinite(layer)

    # seeded sample of valid pixels (k-th valid pixel in row-major order), robust bounds, PCA
    pca = params["pca"]
    size, seed = int(_value(pca["sample_size"])), int(_value(pca["seed"]))
    flat = np.flatnonzero(valid)
    if flat.size > size:
        rng = np.random.default_rng([seed, 0])
        flat = flat[np.sort(rng.choice(flat.size, size=size, replace=False))]
    sample = np.stack([layer.ravel()[flat].astype(np.float64) for layer in layers], axis=1)
    p_low, p_high = (
        float(params["normalisation"]["p_low"]),
        float(params["normalisation"]["p_high"]),
    )
    lo, hi = np.percentile(sample, p_low, axis=0), np.percentile(sample, p_high, axis=0)
    norm = np.clip((sample - lo) / (hi - lo), 0.0, 1.0)
    mean = norm.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(norm, rowvar=False))
    vec = eigvec[:, np.argmax(eigval)]
    if vec[0] + vec[1] < 0:  # NDVI and WET load positively
        vec = -vec

    rsei0 = np.zeros(valid.shape, dtype=np.float64)
    for j, layer in enumerate(layers):
        x = layer.astype(np.float64)
        rsei0 += vec[j] * (np.clip((x - lo[j]) / (hi[j] - lo[j]), 0.0, 1.0) - mean[j])
    rsei0[~valid] = np.nan
    rmin, rmax = np.nanmin(rsei0), np.nanmax(rsei0)
    rsei = np.clip((rsei0 - rmin) / (rmax - rmin), 0.0, 1.0).astype(np.float32)
    grade = np.ones(rsei.shape, dtype=np.uint8)
    for edge in np.asarray(params["grading"]["edges"], dtype=np.float32):
        grade += (rsei >= edge).astype(np.uint8)
    grade[~np.isfinite(rsei)] = 0
    return {"rsei": rsei, "grade": grade}


def baseline(size: int, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """Set up the NumPy baseline (bands loaded into memory, untimed); return the timed work."""
    from eqi.resources import load_profile
    from eqi.science.indices import wetness_coefficients

    params = load_profile("rsei")
    if params["variant"] != "rsei" or params["normalisation"]["method"] != "robust":
        raise NotImplementedError("the NumPy baseline implements the 4-component robust RSEI only")
    _set, coefficients = wetness_coefficients(SENSOR, load_profile("indices"))
    paths = fixtures.reflectance_bands(size, Path(cache))
    bands = {b: fixtures.load_band(p) for b, p in paths.items()}

    corner = {b: a[:256, :256] for b, a in bands.items()}
    rsei_numpy(corner, coefficients, params)  # imports (untimed)

    def work() -> dict[str, np.ndarray]:
        return rsei_numpy(bands, coefficients, params)

    return work


def prepare(cache: Path = fixtures.CACHE_DIR, sizes: tuple[int, ...] = SIZES) -> None:
    """Write the input bands (once; untimed)."""
    for size in sizes:
        fixtures.reflectance_bands(size, cache)


def cases(
    cache: Path = fixtures.CACHE_DIR, sizes: tuple[int, ...] = SIZES, repeats: int = 3
) -> list[Case]:
    """Per grid size: the Dask stage (``rsei_stage``) and the eager one (``rsei_stage_in_memory``)."""
    out = []
    for size in sizes:
        kwargs = {"size": size, "cache": str(cache)}
        baseline_side = Side(
            "same math in plain NumPy on in-memory arrays", "bench.bench_rsei:baseline", kwargs
        )
        common = {"baseline": baseline_side, "rtol": 0.0, "atol": 1e-5, "repeats": repeats}
        out.append(
            Case(
                name=NAME,
                size=f"{size}x{size}",
                ours=Side(
                    "eqi compute_index + components_from_indices + fit_rsei_model + apply_rsei_model (the pipeline's calls) (dask threads=2, chunks 512)",
                    "bench.bench_rsei:ours",
                    kwargs,
                ),
                extra={"pixels": size * size},
                **common,
            )
        )
        out.append(
            Case(
                name=f"{NAME}_in_memory",
                size=f"{size}x{size}",
                ours=Side(
                    "eqi compute_index + components_from_indices + fit_rsei_model + apply_rsei_model (the pipeline's calls), on a NumPy-backed Dataset",
                    "bench.bench_rsei:ours_in_memory",
                    kwargs,
                ),
                extra={"pixels": size * size},
                **common,
            )
        )
    return out


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Acceptance criteria (issue "Science core") on this benchmark's rows.

    Speed is compared "on the same in-memory arrays" as the issue words it: the
    ``rsei_stage_in_memory`` rows (a tile composite in memory, as in ``eqi/pipeline/tile_stage.py``).  Scaling with area is
    checked on the bounded-memory Dask path (``rsei_stage``), whose memory must not follow the
    area; in-memory inputs grow 4x with the area by construction.  The Dask path's speed ratio is
    reported too (it recomputes the indices in each of its passes instead of holding them).
    """
    out = []
    in_memory = sorted((r for r in rows if r["name"] == f"{NAME}_in_memory"), key=lambda r: r.get("pixels", 0))
    lazy = sorted((r for r in rows if r["name"] == NAME), key=lambda r: r.get("pixels", 0))
    for r in in_memory:
        out.append(
            (
                f"rsei: ours >= 0.8x the NumPy baseline's speed on the same in-memory arrays at {r['size']}",
                r["ratio"] >= 0.8,
                f"ratio {r['ratio']:.2f}",
            )
        )
    if len(lazy) >= 2:
        small, big = lazy[0], lazy[-1]
        area = big["pixels"] / small["pixels"]
        t = big["ours_s"] / small["ours_s"]
        m = big["ours_peak_mib"] / small["ours_peak_mib"]
        out.append(
            (
                f"rsei (Dask path): ours time grows <= 4.4x at {area:g}x the area",
                t <= 4.4 * area / 4,
                f"x{t:.2f}",
            )
        )
        out.append(
            (
                f"rsei (Dask path): ours peak memory <= 1.5x at {area:g}x the area",
                m <= 1.5,
                f"x{m:.2f} ({small['ours_peak_mib']:.0f} -> {big['ours_peak_mib']:.0f} MiB)",
            )
        )
    return out


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Figures to report that are not acceptance criteria: the Dask path's own speed ratio."""
    return [
        f"rsei (Dask path) speed ratio at {r['size']}: {r['ratio']:.2f}"
        for r in sorted((r for r in rows if r["name"] == NAME), key=lambda r: r.get("pixels", 0))
    ]
