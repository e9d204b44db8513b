"""Project impact assessment of a 500 km railway line at 30 m (``eqi assess``, issue 9).

Input (:func:`rasters`, written once into the cache): SIMULATED NDVI and FVC rasters for a
before and an after year in eqi's Albers equal-area CRS at ``res`` m, covering a gently
meandering 500 km line (±5 km sine, one period per 125 km) across southern Sichuan plus its 10 km
control band; the after year has a 120 m construction strip along the whole line (NDVI 0.1).
Zones: footprint 50 m half-width, rings 0-300 m, 0.3-1 km, 1-5 km, control 5-10 km, chainage
every 10 km (50 segments).

* ``assess_line_500km`` — ours: the whole assessment of the prepared project
  (:func:`eqi.pipeline.assess.run.assess_project` + writing: one window read per raster, one label
  raster for the zones and one for the chainage segments, matching, block bootstrap, disturbance
  polygons, chainage table, GeoPackages) vs the baseline: the same zone statistics (mean NDVI/FVC
  per zone and year, mean ΔNDVI per chainage segment inside the impact zone) computed by
  rasterising each zone and each segment separately (``rasterio.features.geometry_mask`` per
  geometry over the window).  The compared arrays are those statistics (rtol 1e-4: float32 vs
  float64 sums; atol 2e-5: a pixel centre exactly on a segment's cut line may go to either segment).  Ours does more work than the baseline (bootstrap, matching, polygons, writing),
  so the ratio understates the gain of the single label pass.

* ``assess_line_500km_zonal`` — the zone statistics alone, eqi's way (one label raster for the
  zones and one for the segments, one stable sort, bincounts; the reads included) vs the same
  per-zone baseline: the ratio the issue asks for.

``EQI_BENCH_ASSESS_RES=90`` runs the same case on a 90 m grid (9x fewer pixels).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import fixtures
from bench.harness import Case, Side

__all__ = ["rasters", "ours", "labels_once", "per_zone", "prepare", "cases", "checks", "notes", "NAME"]

NAME = "assess_line_500km"
RES_M = float(os.environ.get("EQI_BENCH_ASSESS_RES", "30"))
FIXTURE_VERSION = 1
LENGTH_M = 500_000.0
AMPLITUDE_M = 5_000.0
PERIOD_M = 125_000.0
ORIGIN = (-300_000.0, 3_200_000.0)  # albers-china metres, southern Sichuan
MARGIN_M = 12_000.0
SEED = 9
STRIP = 256
YEARS = (2018, 2021)


def _line_xy() -> np.ndarray:
    s = np.linspace(0.0, LENGTH_M, 2001)
    return np.column_stack([ORIGIN[0] + s, ORIGIN[1] + AMPLITUDE_M * np.sin(2 * np.pi * s / PERIOD_M)])


def _grid(res: float) -> tuple[Any, int, int]:
    from affine import Affine

    x0, y1 = ORIGIN[0] - MARGIN_M, ORIGIN[1] + AMPLITUDE_M + MARGIN_M
    width = int(np.ceil((LENGTH_M + 2 * MARGIN_M) / res))
    height = int(np.ceil((2 * AMPLITUDE_M + 2 * MARGIN_M) / res))
    return Affine(res, 0.0, x0, 0.0, -res, y1), width, height


def rasters(cache: Path | str = fixtures.CACHE_DIR, res: float = RES_M) -> Path:
    """Folder with ndvi_<year>.tif and fvc_<year>.tif (written once, strip by strip)."""
    import rasterio
    from rasterio.windows import Window

    from eqi.geo.crs import ALBERS_CHINA
    from eqi.io.atomic import atomic_path

    folder = Path(cache) / f"assess-v{FIXTURE_VERSION}" / f"{res:g}m"
    names = [f"{p}_{y}.tif" for p in ("ndvi", "fvc") for y in YEARS]
    if all((folder / n).is_file() for n in names):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    transform, width, height = _grid(res)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "float32",
        "crs": ALBERS_CHINA, "transform": transform, "nodata": float("nan"), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "zstd", "zstd_level": 1, "predictor": 3,
    }  # fmt: skip
    xs = transform.c + res * (np.arange(width) + 0.5)
    line_y = ORIGIN[1] + AMPLITUDE_M * np.sin(2 * np.pi * (xs - ORIGIN[0]) / PERIOD_M)
    on_line = (xs >= ORIGIN[0]) & (xs <= ORIGIN[0] + LENGTH_M)
    for year in YEARS:
        with atomic_path(folder / f"ndvi_{year}.tif") as tn, atomic_path(folder / f"fvc_{year}.tif") as tf:
            with rasterio.open(tn, "w", **profile) as dn, rasterio.open(tf, "w", **profile) as df:
                for i, row in enumerate(range(0, height, STRIP)):
                    n = min(STRIP, height - row)
                    ys = transform.f - res * (row + np.arange(n) + 0.5)
                    x, y = xs[None, :] / 1000.0, ys[:, None] / 1000.0
                    base = 0.6 + 0.15 * np.sin(x / 9.0) * np.cos(y / 7.0)
                    noise = np.random.default_rng([SEED, year, i]).normal(0.0, 0.03, (n, width))
                    v = (base + noise).astype(np.float32)
                    if year == YEARS[1]:
                        strip = (np.abs(ys[:, None] - line_y[None, :]) < 60.0) & on_line[None, :]
                        v[strip] = 0.1
                    fvc = np.clip((v - 0.15) / (0.9 - 0.15), 0, 1).astype(np.float32)
                    dn.write(v, 1, window=Window(0, row, width, n))
                    df.write(fvc, 1, window=Window(0, row, width, n))
    return folder


def _prepared(res: float, cache: str) -> tuple[Any, Any, Any]:
    from pyproj import Transformer

    from eqi.pipeline.assess.config import build_assess_config
    from eqi.pipeline.assess.run import prepare as prepare_project
    from eqi.resources import load_profile

    folder = rasters(cache, res)
    from eqi.geo.crs import ALBERS_CHINA

    to_ll = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(*_line_xy().T)
    out = tempfile.mkdtemp(prefix="eqi-bench-assess-")
    cfg = build_assess_config({
        "out": out, "inputs": {"files": {p: str(folder / f"{p}_{{year}}.tif") for p in ("ndvi", "fvc")}},
        "projects": [{"name": "line500", "type": "linear", "geometry": {"coordinates": np.column_stack([lon, lat]).tolist()},
                      "footprint_m": 50, "rings_m": [300, 1000, 5000], "control": {"distance_m": [5000, 10000]},
                      "before": YEARS[0], "after": YEARS[1], "chainage_km": 10, "approximate": False,
                      "provenance": "SIMULATED benchmark line"}],
    })  # fmt: skip
    profile = load_profile(cfg.method)
    return cfg, prepare_project(cfg, cfg.projects[0], profile), profile


def _zone_means(ind: Any, zones: list[str]) -> np.ndarray:
    out = []
    for z in zones:
        for product in ("ndvi", "fvc"):
            for year in YEARS:
                sel = ind[(ind["zone"] == z) & (ind["indicator"] == f"{product}_mean") & (ind["year"] == year)]
                out.append(float(sel["value"].iloc[0]))
    return np.array(out)


def ours(res: float, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """The whole assessment of the prepared 500 km project, outputs written."""
    from pathlib import Path as _P

    from eqi.pipeline.assess.run import _write, assess_project

    cfg, p, profile = _prepared(res, cache)
    names = [z.name for z in p.zones]

    def work() -> dict[str, np.ndarray]:
        result = assess_project(p, profile)
        _write(p, result, _P(cfg.out) / "projects" / p.spec.name, profile, simulated=True, title="bench")
        chain = result["chainage"]
        return {"zone_means": _zone_means(result["indicators"], names), "segment_dndvi": chain["ndvi_delta_mean"].to_numpy(dtype=np.float64)}

    return work


def _read_all(p: Any) -> dict[tuple[str, int], np.ndarray]:
    from eqi.pipeline.assess.run import _read

    return {(prod, y): _read(path, p, categorical=False) for prod, per_year in p.paths.items() for y, path in per_year.items()}


def _segments(p: Any) -> list[Any]:
    import shapely

    from eqi.geo.zones import chainage_segments
    from eqi.pipeline.assess.run import _densify, _transformer

    line = _transformer("EPSG:4326", p.local)(p.geometry_ll)
    half = 50.0 + p.zones[-2].outer_m
    to_grid = _transformer(p.local, p.grid_crs)
    return [shapely.make_valid(to_grid(_densify(g, 100.0))) for *_, g in chainage_segments(line, 10_000.0, half)]


def labels_once(res: float, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """The zone statistics alone, eqi's way: one label raster for the zones, one for the segments,
    one stable sort (``zone_pixels``) and bincounts."""
    from eqi.pipeline.assess.run import _label_sums, _labels, zone_pixels

    _, p, _ = _prepared(res, cache)

    def work() -> dict[str, np.ndarray]:
        data = _read_all(p)
        labels = _labels(p.zones_grid, p)
        px = zone_pixels(labels, len(p.zones))
        means = [float(np.nanmean(data[(prod, y)].ravel()[idx])) for idx in px for prod in ("ndvi", "fvc") for y in YEARS]
        seg = _labels(_segments(p), p).ravel()
        impact = np.isin(labels.ravel(), [i + 1 for i, z in enumerate(p.zones) if z.role != "control"])
        sel = np.flatnonzero(impact & (seg > 0))
        d = data[("ndvi", YEARS[1])].ravel()[sel] - data[("ndvi", YEARS[0])].ravel()[sel]
        ok = np.isfinite(d)
        n = int(seg.max())
        dm = _label_sums(np.where(ok, d, 0.0), seg[sel], n) / _label_sums(ok, seg[sel], n)
        return {"zone_means": np.array(means), "segment_dndvi": dm}

    return work


def per_zone(res: float, cache: str) -> Callable[[], dict[str, np.ndarray]]:
    """The same zone statistics, one rasterisation (geometry_mask) per zone and per segment."""
    import rasterio
    import shapely
    from rasterio.features import geometry_mask
    from rasterio.vrt import WarpedVRT

    from eqi.geo.zones import chainage_segments
    from eqi.pipeline.assess.run import _densify, _transformer

    _, p, _ = _prepared(res, cache)

    def work() -> dict[str, np.ndarray]:
        data = {}
        for product, per_year in p.paths.items():
            for y, path in per_year.items():
                with rasterio.open(path) as src, WarpedVRT(src, crs=p.grid_crs, transform=p.transform, width=p.shape[1], height=p.shape[0]) as vrt:
                    data[(product, y)] = vrt.read(1, masked=True).filled(np.nan).astype(np.float64)
        means = []
        impact = np.zeros(p.shape, dtype=bool)
        for z, g in zip(p.zones, p.zones_grid, strict=True):
            m = geometry_mask([g], out_shape=p.shape, transform=p.transform, invert=True)
            if z.role != "control":
                impact |= m
            for product in ("ndvi", "fvc"):
                for y in YEARS:
                    means.append(float(np.nanmean(data[(product, y)][m])))
        line = _transformer("EPSG:4326", p.local)(p.geometry_ll)
        half = 50.0 + p.zones[-2].outer_m
        to_grid = _transformer(p.local, p.grid_crs)
        d = data[("ndvi", YEARS[1])] - data[("ndvi", YEARS[0])]
        seg = []
        for *_, g in chainage_segments(line, 10_000.0, half):
            m = geometry_mask([shapely.make_valid(to_grid(_densify(g, 100.0)))], out_shape=p.shape, transform=p.transform, invert=True)
            seg.append(float(np.nanmean(d[m & impact])))
        return {"zone_means": np.array(means), "segment_dndvi": np.array(seg)}

    return work


def prepare(cache: Path = fixtures.CACHE_DIR, res: float = RES_M) -> None:
    """Write the rasters (once; untimed)."""
    rasters(cache, res)


def cases(cache: Path = fixtures.CACHE_DIR, res: float = RES_M, repeats: int = 2) -> list[Case]:
    _, width, height = _grid(res)
    kwargs = {"res": res, "cache": str(cache)}
    return [
        Case(
            name=f"{NAME}_zonal",
            size=f"{width}x{height}@{res:g}m",
            ours=Side("zone statistics from one label raster (zones) + one (segments), one sort", "bench.bench_assess:labels_once", kwargs),
            baseline=Side("the same zone statistics, each zone/segment rasterised separately", "bench.bench_assess:per_zone", kwargs),
            rtol=1e-4,
            atol=2e-5,
            repeats=repeats,
            extra={"pixels": width * height, "res_m": res, "line_km": LENGTH_M / 1000, "zones": 5, "segments": 50, "simulated": True},
        ),
        Case(
            name=NAME,
            size=f"{width}x{height}@{res:g}m",
            ours=Side("eqi assess: one label raster per zone set, whole assessment written", "bench.bench_assess:ours", kwargs),
            baseline=Side("the same zone statistics, each zone/segment rasterised separately", "bench.bench_assess:per_zone", kwargs),
            rtol=1e-4,
            atol=2e-5,  # a pixel centre on a segment's cut line may go to either neighbour
            repeats=repeats,
            extra={"pixels": width * height, "res_m": res, "line_km": LENGTH_M / 1000, "zones": 5, "segments": 50, "simulated": True},
        )
    ]


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    out = []
    for r in rows:
        if r["name"] == f"{NAME}_zonal":
            out.append((f"assess: zone statistics faster than rasterising each zone at {r['size']}", r["ratio"] >= 1.0, f"ratio {r['ratio']:.2f}"))
        if r["name"] == NAME:
            out.append((f"assess: peak memory below 4 GiB at {r['size']}", r["ours_peak_mib"] < 4096, f"{r['ours_peak_mib']:.0f} MiB"))
    return out


def notes(rows: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['name']} {r['size']}: ours {r['ours_s']:.1f} s peak {r['ours_peak_mib']:.0f} MiB; per-zone baseline "
        f"{r['baseline_s']:.1f} s peak {r['baseline_peak_mib']:.0f} MiB"
        for r in rows
        if r["name"].startswith(NAME)
    ]
