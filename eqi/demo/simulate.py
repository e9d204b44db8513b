"""Write the SIMULATED scene archive of the offline demo (``eqi demo``).

:func:`simulate_archive` builds, for a region, a small archive that looks exactly like delivered
scenes, so that ``eqi archive index`` and the main job read it through the same code as real
data: USGS Landsat 8/9 Collection 2 Level-2 folders and Earth Search-style Sentinel-2 L2A items,
plus the simulated "true" land-cover maps (ESA WorldCover codes) they were made from.  Every file
says that it is simulated.  Same arguments and seed -> byte-identical files.

Layout of ``out_dir``::

    README.txt                       what this is (simulated!)
    simulation.json                  the summary below (no timings), written last
    reference/truth_landcover_<year>.tif, region.geojson
    scenes/landsat/LC0?_L2SP_PPPRRR_<acq>_<proc>_02_T1/...
    scenes/sentinel2/S2?_<tile>_<yyyymmdd>_0_L2A/...

Guarantees (for every pixel of the region): at least two clear (unflagged) growing-season
observations per sensor and year, except the deliberate "always cloudy" patch, which is cloud on
every growing-season date (June-September) of the first year, of both sensors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import shapely
import shapely.geometry
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from eqi.demo import calendar, clouds, encoding, landscape, spectra
from eqi.demo.landsat import LandsatScene, write_landsat_scene
from eqi.demo.rasterio_io import write_demo_cog
from eqi.demo.sentinel2 import S2Scene, mgrs_tile, write_s2_scene
from eqi.errors import AOIError, ConfigError, InputError
from eqi.geo.footprint import footprint as wgs84_footprint

__all__ = ["SimulatedArchive", "simulate_archive", "MANIFEST_NAME"]

MANIFEST_NAME = "simulation.json"
_NOTE = "SIMULATED by the eqi offline demo - not real satellite data"
_MAX_EXTENT_KM2 = 6000.0
_MIN_REGION_PX = 64
_LANDSAT_MAX_OBSCURED = 3  # of 5 growing-season dates -> >= 2 clear
_S2_MAX_OBSCURED = 2  # of 4 growing-season dates -> >= 2 clear
_COVER_RANGE = (0.05, 0.35)  # + the dilated ring and shadows: 5-40 % flagged
_WORLDCOVER_COLOURS = {
    10: "#006400", 20: "#ffbb22", 30: "#ffff4c", 40: "#f096ff",
    50: "#fa0000", 60: "#b4b4b4", 80: "#0064c8",
}  # fmt: skip
_S2_BASELINES = ("02.14", "05.09")  # first year: no BOA offset; later years: +1000 DN


@dataclass(frozen=True)
class SimulatedArchive:
    """What :func:`simulate_archive` wrote.

    ``bbox`` is (minx, miny, maxx, maxy) in ``crs`` (metres); ``truth_landcover_path`` is the map of
    the first year, ``truth_landcover_paths`` has every year.
    """

    root: Path
    scenes_dir: Path
    scene_dirs: list[Path]
    truth_landcover_path: Path
    truth_landcover_paths: dict[int, Path]
    region_path: Path
    bbox: tuple[float, float, float, float]
    crs: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Grid:
    shape: tuple[int, int]
    transform: Affine
    resolution: float
    region: np.ndarray  # bool


def _check_region(geom: Any) -> BaseGeometry:
    if not isinstance(geom, BaseGeometry):
        raise AOIError(
            f"the demo region must be a shapely Polygon/MultiPolygon, not {type(geom).__name__}"
        )
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise AOIError(
            f"the demo region must be a non-empty Polygon or MultiPolygon (got {geom.geom_type})"
        )
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -80 <= miny <= maxy <= 84):
        raise AOIError(
            f"the demo region bounds {geom.bounds} are not WGS 84 longitude/latitude inside the UTM "
            "zones; pass the region in EPSG:4326 (lon, lat)"
        )
    if not geom.is_valid:
        parts = [
            g
            for g in shapely.get_parts(shapely.make_valid(geom))
            if g.geom_type in ("Polygon", "MultiPolygon")
        ]
        geom = shapely.union_all(parts)
        if geom.is_empty:
            raise AOIError("the demo region polygon is invalid and has no area once repaired")
    return geom


def _check_args(years: tuple[int, ...], resolution_m: float, seed: int) -> tuple[int, ...]:
    if int(seed) < 0:
        raise ConfigError(f"demo seed must be a non-negative integer, got {seed}")
    years = tuple(int(y) for y in years)
    if not years or len(set(years)) != len(years) or list(years) != sorted(years):
        raise ConfigError(f"demo years must be distinct and increasing, got {years}")
    if years[0] < 2017 or years[-1] > 2100:
        raise ConfigError(
            f"demo years must lie in 2017-2100 (Sentinel-2A/B and Landsat 8 era), got {years}"
        )
    if not (10.0 <= resolution_m <= 120.0):
        raise ConfigError(
            f"demo resolution_m must be between 10 and 120 m (default 30), got {resolution_m}"
        )
    return years


def _utm_epsg(geom: BaseGeometry) -> int:
    c = geom.centroid
    zone = int((c.x + 180.0) // 6.0) + 1
    return (32600 if c.y >= 0 else 32700) + zone


def _make_grid(
    region_utm: BaseGeometry, bounds: tuple[float, float, float, float], res: float
) -> _Grid:
    h = int(round((bounds[3] - bounds[1]) / res))
    w = int(round((bounds[2] - bounds[0]) / res))
    transform = landscape.transform_for(bounds, res)
    mask = geometry_mask([region_utm], out_shape=(h, w), transform=transform, invert=True)
    if mask.sum() < _MIN_REGION_PX:
        mask = geometry_mask(
            [region_utm], out_shape=(h, w), transform=transform, invert=True, all_touched=True
        )
    return _Grid(shape=(h, w), transform=transform, resolution=res, region=mask)


def _disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    rows = np.arange(shape[0])[:, None] + 0.5
    cols = np.arange(shape[1])[None, :] + 0.5
    return np.hypot(rows - center[0], cols - center[1]) <= radius


def _illumination_ramp(shape: tuple[int, int]) -> np.ndarray:
    rows = np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)[None, :]
    return (np.float32(0.01) * (rows + cols) / 2).astype(np.float32)


# The demo plants ONLY land-cover changes (the landscape's year-2 changes, the corridor) between
# its years; everything else about a sensor's season repeats every year: the calendar, the cloud
# amount per date, the cloud fields and each date's illumination factor (only the per-pixel
# surface noise is drawn per year).  Why: the composites are per-pixel, per-band medians of the
# clear dates of a peaked phenology (spectra.phenology), so a pixel's value depends on WHICH dates
# are clear, and on the per-date factors that decide which date is the red and which the NIR
# median.  Each of these is common to the whole scene, so a per-year draw moved every unchanged
# pixel's composite the same way: a scene-wide year effect that put the matched control's BACI
# interval away from 0 (issue-9 corridor box, Landsat, median ΔNDVI of unchanged vegetation
# 2022->2023: -0.018 with per-year draws, one year's nearly clear date (_covers) an early-June one
# and the other's a July one; -0.009 with the same calendar and cloud amounts but new cloud
# positions (~1 km blobs over a few km); -0.002 with the same clouds but new illumination factors
# (+-1.5 %, which cancel in one date's NDVI but not in the band-wise medians); ~0 with all three).


def _season_rng(st: _Setup, stream: int) -> np.random.Generator:
    """The generator of a sensor's calendar offset and per-date cloud cover: the first year's, in
    every year (see the comment above)."""
    return np.random.default_rng([st.seed, st.years[0], stream])


def _date_rngs(
    st: _Setup, year: int, stream: int, di: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """(sky, surface) generators of date ``di``.  The sky draws the cloud fields, then the date's
    illumination factor; it is the first year's in every year (same seed, same draws).  The surface
    noise is drawn per year; in the first year from the same generator (after the sky), as before.
    """
    sky = np.random.default_rng([st.seed, st.years[0], stream, di])
    return sky, (sky if year == st.years[0] else np.random.default_rng([st.seed, year, stream, di]))


def _covers(rng: np.random.Generator, acqs: list[calendar.Acquisition]) -> list[float]:
    """Cloud cover per date: one growing-season date nearly clear, the others 5-40 %."""
    season = [i for i, a in enumerate(acqs) if a.in_season]
    clear_one = season[int(rng.integers(0, len(season)))] if season else -1
    return [
        float(rng.uniform(0.0, 0.03)) if i == clear_one else float(rng.uniform(*_COVER_RANGE))
        for i in range(len(acqs))
    ]


def _scene_masks(
    rng: np.random.Generator,
    grid: _Grid,
    cover: float,
    acq: calendar.Acquisition,
    sun: tuple[float, float],
    forced: np.ndarray | None,
    count: np.ndarray,
    limit: int,
    exempt: np.ndarray,
) -> clouds.CloudMasks:
    shift = clouds.shadow_shift_px(sun[0], sun[1], grid.resolution)
    masks = clouds.simulate_clouds(
        rng, grid.shape, cover, grid.resolution, shift, forced_cloud=forced
    )
    if acq.in_season:
        clouds.limit_obscured(masks, count, limit, exempt)
    return masks


def _ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nir + red > 0, (nir - red) / (nir + red), np.float32(0.0)).astype(
            np.float32
        )


def _scl_percentages(scl: np.ndarray) -> tuple[dict[str, float], float]:
    total = scl.size
    valid = max(int((scl > 0).sum()), 1)
    pct = {int(c): 100.0 * float((scl == c).sum()) / valid for c in range(1, 12)}
    out = {
        "nodata_pixel_percentage": 100.0 * float((scl == 0).sum()) / total,
        "saturated_defective_pixel_percentage": pct[1],
        "dark_features_percentage": pct[2],
        "cloud_shadow_percentage": pct[3],
        "vegetation_percentage": pct[4],
        "not_vegetated_percentage": pct[5],
        "water_percentage": pct[6],
        "unclassified_percentage": pct[7],
        "medium_proba_clouds_percentage": pct[8],
        "high_proba_clouds_percentage": pct[9],
        "thin_cirrus_percentage": pct[10],
        "snow_ice_percentage": pct[11],
    }
    return out, pct[8] + pct[9] + pct[10]


def _footprint(
    bounds: tuple[float, float, float, float], crs: str
) -> tuple[dict[str, Any], tuple[float, ...]]:
    ll = orient(shapely.set_precision(wgs84_footprint(bounds, crs), 1e-9), sign=1.0)  # CCW (RFC 7946)
    return mapping(ll), tuple(round(v, 9) for v in ll.bounds)


def _colormap() -> dict[int, tuple[int, int, int, int]]:
    return {
        c: (int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16), 255)
        for c, h in _WORLDCOVER_COLOURS.items()
    }


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty folder unless it is an earlier archive and ``overwrite``."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(f"demo output {out_dir} exists and is not a folder; choose another --out")
    if not any(out_dir.iterdir()):
        return
    ours = (out_dir / MANIFEST_NAME).is_file()
    if ours and overwrite:
        return
    raise InputError(
        f"demo output folder {out_dir} is not empty; choose an empty or new folder"
        + (", or pass overwrite=True to replace the earlier simulated archive" if ours else "")
    )


def _move_into_place(work: Path, out_dir: Path) -> None:
    """Rename the finished archive into place; an earlier one is removed only afterwards."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.replaced-{work.name}")
        out_dir.rename(old)
    work.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _BackgroundWriter:
    """Writes scenes on two threads while the next date is computed (bounded queue).

    Every scene writes its own files, so the bytes do not depend on the timing.
    """

    def __init__(self, workers: int = 2, max_pending: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._pending: list[Future[Any]] = []
        self._max = max_pending

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pending.append(self._pool.submit(fn, *args, threads=1))
        while len(self._pending) > self._max:
            self._pending.pop(0).result()

    def finish(self) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


def _tree_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


@dataclass(frozen=True)
class _Setup:
    """Everything the per-sensor loops share (computed once, read-only)."""

    region: BaseGeometry
    region_name: str
    years: tuple[int, ...]
    seed: int
    epsg: int
    crs: str
    bounds: tuple[float, float, float, float]
    grid: _Grid  # Landsat / land-cover grid
    grid_s2: _Grid  # Sentinel-2-like grid (2/3 of the pixel size, same bounds)
    rows_s2: np.ndarray  # nearest Landsat-grid row of each S2 row
    cols_s2: np.ndarray
    lon: float
    lat: float
    tile: str
    wrs_path_row: tuple[int, int]
    footprint: dict[str, Any]
    bbox_wgs84: tuple[float, ...]
    land: landscape.Landscape
    tables: spectra.ClassTables
    patch_center: tuple[float, float]  # (row, col) on the Landsat grid, pixel units
    patch_core: np.ndarray  # forced cloud (Landsat grid)
    patch_full: np.ndarray  # + its dilated ring
    patch_core_s2: np.ndarray
    patch_full_s2: np.ndarray
    fill_landsat: np.ndarray  # fill wedge of every Landsat scene
    nodata_s2: np.ndarray  # no-data wedge of every second Sentinel-2 scene
    ramp: np.ndarray
    ramp_s2: np.ndarray


def _setup(
    region: BaseGeometry,
    region_name: str,
    years: tuple[int, ...],
    seed: int,
    res: float,
    wrs_path_row: tuple[int, int],
    margin_m: float,
    quiet_lines: Sequence[BaseGeometry] = (),
    quiet_m: float = 0.0,
) -> _Setup:
    res_s2 = res * 2.0 / 3.0
    epsg = _utm_epsg(region)
    crs = f"EPSG:{epsg}"
    to_utm = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(epsg), always_xy=True)
    region_utm = shapely.transform(region, to_utm.transform, interleaved=False)
    step = 2.0 * res  # common multiple of the Landsat and S2 pixel sizes
    minx, miny, maxx, maxy = region_utm.bounds
    bounds = (
        math.floor((minx - margin_m) / step) * step,
        math.floor((miny - margin_m) / step) * step,
        math.ceil((maxx + margin_m) / step) * step,
        math.ceil((maxy + margin_m) / step) * step,
    )
    extent_km2 = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / 1e6
    if extent_km2 > _MAX_EXTENT_KM2:
        raise AOIError(
            f"region '{region_name}' spans {extent_km2:.0f} km² with its margin; the offline demo "
            f"simulates at most {_MAX_EXTENT_KM2:.0f} km² - pick a county-sized region"
        )
    grid = _make_grid(region_utm, bounds, res)
    if grid.region.sum() < _MIN_REGION_PX:
        raise AOIError(
            f"region '{region_name}' covers fewer than {_MIN_REGION_PX} pixels of {res:g} m; "
            "use a larger region or a finer resolution"
        )
    grid_s2 = _make_grid(region_utm, bounds, res_s2)
    quiet = None
    if quiet_lines and quiet_m > 0:
        lines = [shapely.transform(g, to_utm.transform, interleaved=False) for g in quiet_lines]
        quiet = geometry_mask(
            [shapely.buffer(g, quiet_m) for g in lines], out_shape=grid.shape,
            transform=grid.transform, invert=True,
        )  # fmt: skip
    land = landscape.simulate_landscape(grid.region, years, seed, res, quiet=quiet)
    ratio = res / res_s2
    pc = (land.patch_center_rc[0] + 0.5, land.patch_center_rc[1] + 0.5)
    pc2 = (pc[0] * ratio, pc[1] * ratio)
    radius2 = land.patch_radius_px * ratio
    footprint, bbox_ll = _footprint(bounds, crs)
    centroid = region.centroid
    return _Setup(
        region=region,
        region_name=region_name,
        years=years,
        seed=seed,
        epsg=epsg,
        crs=crs,
        bounds=bounds,
        grid=grid,
        grid_s2=grid_s2,
        rows_s2=landscape.resample_index(grid_s2.shape[0], res_s2, res),
        cols_s2=landscape.resample_index(grid_s2.shape[1], res_s2, res),
        lon=centroid.x,
        lat=centroid.y,
        tile=mgrs_tile(centroid.x, centroid.y),
        wrs_path_row=wrs_path_row,
        footprint=footprint,
        bbox_wgs84=bbox_ll,
        land=land,
        tables=spectra.build_class_tables(spectra.load_reference_spectra()),
        patch_center=pc,
        patch_core=_disc(grid.shape, pc, land.patch_radius_px),
        patch_full=land.patch_mask | _disc(grid.shape, pc, land.patch_radius_px),
        patch_core_s2=_disc(grid_s2.shape, pc2, radius2),
        patch_full_s2=_disc(grid_s2.shape, pc2, radius2 + clouds.DILATION_PX + 1),
        fill_landsat=clouds.corner_wedge(grid.region, "nw"),
        nodata_s2=clouds.corner_wedge(grid_s2.region, "se"),
        ramp=_illumination_ramp(grid.shape),
        ramp_s2=_illumination_ramp(grid_s2.shape),
    )


def _illumination(rng: np.random.Generator, ramp: np.ndarray) -> np.ndarray:
    """Per-date illumination factor (about 1 +- 1.5 %) times a gentle cross-scene gradient."""
    return np.float32(1.0 + float(np.clip(rng.normal(0, 0.015), -0.03, 0.03))) + ramp


def _record(
    scene_id: str, sensor: str, acq: calendar.Acquisition, cloud: float, forced: bool
) -> dict[str, Any]:
    return {
        "id": scene_id,
        "sensor": sensor,
        "platform": acq.platform,
        "datetime": acq.when.isoformat().replace("+00:00", "Z"),
        "in_season": acq.in_season,
        "cloud_cover": round(cloud, 2),
        "always_cloudy_patch": forced,
    }


def _landsat_year(
    st: _Setup,
    year: int,
    pix: spectra.PixelEndmembers,
    water: np.ndarray,
    out: Path,
    writer: _BackgroundWriter,
) -> tuple[list[dict[str, Any]], int]:
    """Simulate and queue the Landsat scenes of one year; returns records and min clear count."""
    first = year == st.years[0]
    grid = st.grid
    rng_cal = _season_rng(st, 100)
    acqs = calendar.landsat_dates(year, st.lon, int(rng_cal.integers(0, 16)))
    covers = _covers(rng_cal, acqs)
    count = np.zeros(grid.shape, dtype=np.int16)
    exempt = st.patch_full if first else np.zeros(grid.shape, dtype=bool)
    valid = ~st.fill_landsat
    records = []
    for di, acq in enumerate(acqs):
        sky, rng = _date_rngs(st, year, 1, di)
        sun = calendar.sun_angles(st.lon, st.lat, acq.when)
        forced = st.patch_core if (first and acq.in_season) else None
        masks = _scene_masks(
            sky, grid, covers[di], acq, sun, forced, count, _LANDSAT_MAX_OBSCURED, exempt
        )
        spec = spectra.surface_spectra(st.tables, pix, _doy(acq), rng, _illumination(sky, st.ramp))
        clouds.apply_atmosphere(spec, masks)
        cloud_pct = 100.0 * float((masks.cloud & valid).sum()) / max(int(valid.sum()), 1)
        scene = LandsatScene(
            platform=acq.platform,
            wrs_path=st.wrs_path_row[0],
            wrs_row=st.wrs_path_row[1],
            acquired=acq.when,
            processed=acq.day + timedelta(days=9),
            cloud_cover=cloud_pct,
            sun_azimuth=sun[0],
            sun_elevation=sun[1],
            earth_sun_distance=calendar.earth_sun_distance_au(acq.day),
            utm_zone=st.epsg % 100,
            transform=grid.transform,
            shape=grid.shape,
            crs=st.crs,
        )
        writer.submit(
            write_landsat_scene,
            out,
            scene,
            encoding.landsat_sr_dn(spec[:7], st.fill_landsat),
            encoding.landsat_st_dn(spec[7], st.fill_landsat),
            clouds.qa_pixel(masks, water, st.fill_landsat),
        )
        records.append(_record(scene.product_id, "landsat", acq, cloud_pct, forced is not None))
    clear = sum(a.in_season for a in acqs) - count
    return records, int(clear[grid.region & ~exempt].min())


def _s2_year(
    st: _Setup,
    year: int,
    pix: spectra.PixelEndmembers,
    water: np.ndarray,
    out: Path,
    writer: _BackgroundWriter,
) -> tuple[list[dict[str, Any]], int]:
    """Simulate and queue the Sentinel-2 items of one year; returns records and min clear count."""
    first = year == st.years[0]
    grid = st.grid_s2
    rng_cal = _season_rng(st, 200)
    acqs = calendar.sentinel2_dates(year, st.lon, int(rng_cal.integers(0, 5)))
    covers = _covers(rng_cal, acqs)
    count = np.zeros(grid.shape, dtype=np.int16)
    exempt = st.patch_full_s2 if first else np.zeros(grid.shape, dtype=bool)
    baseline = _S2_BASELINES[0] if first else _S2_BASELINES[1]
    no_gap = np.zeros(grid.shape, dtype=bool)
    records = []
    for di, acq in enumerate(acqs):
        sky, rng = _date_rngs(st, year, 2, di)
        sun = calendar.sun_angles(st.lon, st.lat, acq.when)
        forced = st.patch_core_s2 if (first and acq.in_season) else None
        masks = _scene_masks(
            sky, grid, covers[di], acq, sun, forced, count, _S2_MAX_OBSCURED, exempt
        )
        spec = spectra.surface_spectra(
            st.tables, pix, _doy(acq), rng, _illumination(sky, st.ramp_s2)
        )
        clouds.apply_atmosphere(spec, masks)
        nodata = st.nodata_s2 if di % 2 == 1 else no_gap
        refl = spectra.landsat_to_s2(spec[:7])
        scl = clouds.scene_classification(masks, water, _ndvi(refl["B04"], refl["B08"]), nodata)
        pct, cloud_pct = _scl_percentages(scl)
        scene = S2Scene(
            platform=acq.platform,
            tile=st.tile,
            sensed=acq.when,
            baseline=baseline,
            sun_azimuth=sun[0],
            sun_elevation=sun[1],
            transform=grid.transform,
            shape=grid.shape,
            epsg=st.epsg,
            footprint=st.footprint,
            bbox=st.bbox_wgs84,
            scl_percentages=pct,
            cloud_cover=cloud_pct,
        )
        dn = {b: encoding.s2_dn(r, scene.offset_dn, nodata) for b, r in refl.items()}
        writer.submit(write_s2_scene, out, scene, dn, scl)
        record = _record(scene.item_id, "sentinel2", acq, cloud_pct, forced is not None)
        records.append(
            {**record, "processing_baseline": baseline, "boa_offset_dn": scene.offset_dn}
        )
    clear = sum(a.in_season for a in acqs) - count
    return records, int(clear[grid.region & ~exempt].min())


def _doy(acq: calendar.Acquisition) -> int:
    return acq.when.timetuple().tm_yday


def _write_truth(st: _Setup, year: int, lc: np.ndarray, folder: Path) -> Path:
    path = folder / f"truth_landcover_{year}.tif"
    tags = {
        "EQI_DATASET": "simulated reference land cover (ESA WorldCover class codes)",
        "EQI_REGION": st.region_name,
        "EQI_YEAR": str(year),
        "EQI_SEED": str(st.seed),
        **{f"CLASS_{c}": n for c, n in landscape.CLASS_NAMES.items()},
    }
    write_demo_cog(
        path, lc, st.grid.transform, st.crs, 0, categorical=True,
        description=f"SIMULATED land cover {year} (WorldCover codes)", tags=tags, colormap=_colormap(),
    )  # fmt: skip
    return path


def _summary(
    st: _Setup,
    shares: dict[str, dict[str, float]],
    records: list[dict[str, Any]],
    min_clear: dict[str, dict[str, int]],
) -> dict[str, Any]:
    grid, land, res = st.grid, st.land, st.grid.resolution
    base = land.landcover[st.years[0]]
    changed = sum(int(((land.landcover[y] != base) & grid.region).sum()) for y in st.years[1:])
    pc = st.patch_center
    patch_xy = (grid.transform.c + pc[1] * res, grid.transform.f - pc[0] * res)
    patch_ll = Transformer.from_crs(st.crs, "EPSG:4326", always_xy=True).transform(*patch_xy)
    return {
        "simulated": True,
        "note": _NOTE,
        "region_name": st.region_name,
        "seed": st.seed,
        "years": list(st.years),
        "crs": st.crs,
        "bbox": list(st.bounds),
        "bbox_wgs84": list(st.bbox_wgs84),
        "resolution_m": res,
        "shape": list(grid.shape),
        "sentinel2_resolution_m": st.grid_s2.resolution,
        "sentinel2_shape": list(st.grid_s2.shape),
        "mgrs_tile": st.tile,
        "wrs_path_row": list(st.wrs_path_row),
        "growing_season": "06-01/09-30",
        "region_pixels": int(grid.region.sum()),
        "class_names": {str(c): n for c, n in landscape.CLASS_NAMES.items()},
        "class_shares": shares,
        "changed_pixels_after_first_year": changed,
        "always_cloudy_patch": {
            "year": st.years[0],
            "center_xy": [round(v, 3) for v in patch_xy],
            "center_lonlat": [round(v, 7) for v in patch_ll],
            "radius_m": round(land.patch_radius_px * res, 1),
            "cloud_ring_m": clouds.DILATION_PX * res,
        },
        "min_clear_growing_season_obs": min_clear,
        "spectra_source": (
            "spyndex/data/spectral.json (real Landsat 8 C2 L2 pixel samples: vegetation, urban, "
            "water); the other classes are mixtures of them (see eqi/demo/spectra.py)"
        ),
        "scenes": records,
    }


def _write_docs(st: _Setup, work: Path, summary: dict[str, Any]) -> Path:
    region_path = work / "reference" / "region.geojson"
    region_doc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"name": st.region_name, "simulated_demo": True},
                      "geometry": mapping(st.region)}],
    }  # fmt: skip
    region_path.write_text(json.dumps(region_doc), encoding="utf-8")
    (work / "README.txt").write_text(
        f"{_NOTE}.\n\nSimulated archive for the eqi offline demo (region: {st.region_name}, seed "
        f"{st.seed}).\nscenes/ looks like delivered USGS Landsat C2 L2 folders and Earth Search "
        "Sentinel-2 L2A\nitems so that eqi reads it through the same code as real data; reference/ "
        "holds the\nsimulated land-cover truth. See simulation.json for what was simulated.\n",
        encoding="utf-8",
    )
    (work / MANIFEST_NAME).write_text(
        json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    return region_path


def _plant_corridors(
    st: _Setup, corridors: Sequence[BaseGeometry], width_m: float, quiet_m: float = 0.0
) -> tuple[_Setup, dict[str, Any]]:
    """Plant construction corridors (bare land) in the years after the first; returns the new
    setup and the planted footprint as a GeoJSON FeatureCollection (lon/lat)."""
    to_utm = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(st.epsg), always_xy=True)
    to_ll = Transformer.from_crs(CRS.from_epsg(st.epsg), CRS.from_epsg(4326), always_xy=True)
    lines = [shapely.transform(g, to_utm.transform, interleaved=False) for g in corridors]
    strips = [shapely.buffer(g, width_m / 2.0, cap_style="flat") for g in lines]
    inside = geometry_mask(strips, out_shape=st.grid.shape, transform=st.grid.transform, invert=True)
    first = st.land.landcover[st.years[0]]
    planted = inside & np.isin(first, (10, 20, 30, 40))
    landcover = dict(st.land.landcover)
    for year in st.years[1:]:
        lc = landcover[year].copy()
        lc[planted] = 60
        landcover[year] = lc
    land = dataclasses.replace(st.land, landcover=landcover)
    polys = [
        shapely.geometry.shape(g)
        for g, v in rasterio.features.shapes(planted.astype(np.uint8), mask=planted, transform=st.grid.transform)
        if v == 1
    ]
    footprint = shapely.transform(shapely.union_all(polys), to_ll.transform, interleaved=False)
    features = [
        {"type": "Feature", "properties": {"kind": "footprint", "width_m": width_m, "pixels": int(planted.sum()),
                                           "years": list(st.years[1:]), "other_changes_beyond_m": quiet_m,
                                           "note": "SIMULATED construction corridor"},
         "geometry": shapely.geometry.mapping(footprint)},
        *({"type": "Feature", "properties": {"kind": "centreline", "width_m": width_m},
           "geometry": shapely.geometry.mapping(g)} for g in corridors),
    ]  # fmt: skip
    return dataclasses.replace(st, land=land), {"type": "FeatureCollection", "features": features}


def simulate_archive(
    region_geometry_wgs84: BaseGeometry,
    out_dir: Path,
    *,
    region_name: str,
    years: tuple[int, ...] = (2022, 2023),
    seed: int = 20240601,
    resolution_m: float = 30.0,
    wrs_path_row: tuple[int, int] = (129, 39),
    margin_m: float = 1000.0,
    overwrite: bool = False,
    corridors: Sequence[BaseGeometry] = (),
    corridor_width_m: float = 150.0,
    corridor_quiet_m: float = 0.0,
) -> SimulatedArchive:
    """Write a small, clearly SIMULATED archive of Landsat 8/9 L2SP and Sentinel-2 L2A scenes.

    Parameters
    ----------
    region_geometry_wgs84 : region polygon in lon/lat (EPSG:4326).
    out_dir : new or empty folder (an earlier simulated archive is replaced with ``overwrite``).
    region_name : name recorded in the metadata.
    years : simulated years (first year: Sentinel-2 baseline 02.14, later: 05.09 with +1000 DN).
    seed : random seed (>= 0); the same inputs and seed give byte-identical files.
    resolution_m : Landsat and land-cover pixel size (m); Sentinel-2 bands use 2/3 of it (20 m).
    wrs_path_row : WRS-2 path/row written in the Landsat ids (default 129/039, Chengdu).
    margin_m : margin around the region bounds (m) before snapping to the pixel grid.
    overwrite : replace ``out_dir`` if it holds an earlier simulated archive.
    corridors : lines (lon/lat) along which a construction corridor ``corridor_width_m`` wide is
        planted in every year after the first: vegetated pixels (WorldCover 10-40) whose centre
        lies in the flat-capped buffer become bare (60); water and built-up stay (bridges, towns).
        The planted footprint is written to ``reference/planted_corridor.geojson`` (issue 9).
    corridor_quiet_m : the landscape's own year-2 changes (town growth, cropland to forest) are
        planted at least this far (m) from every corridor centreline: the same shares, farther
        away.  Then an assessment's rings and controls within this distance see the corridor as
        the only land-cover change, i.e. a control that did not change (issue 9: its interval
        should include 0).  0 (default): anywhere.

    Returns
    -------
    SimulatedArchive with the paths, the grid (``bbox``, ``crs``) and a ``summary`` dict (class
    shares, scenes, clear-observation counts, file count, bytes and seconds).
    """
    t0 = time.perf_counter()
    region = _check_region(region_geometry_wgs84)
    years = _check_args(years, float(resolution_m), seed)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    if not (math.isfinite(float(corridor_quiet_m)) and float(corridor_quiet_m) >= 0):
        raise ConfigError(f"demo corridor_quiet_m must be >= 0 m, got {corridor_quiet_m}")
    st = _setup(
        region, region_name, years, int(seed), float(resolution_m), tuple(wrs_path_row), margin_m,
        quiet_lines=corridors, quiet_m=float(corridor_quiet_m),
    )  # fmt: skip
    planted = None
    if corridors:
        width, quiet = float(corridor_width_m), float(corridor_quiet_m)
        st, planted = _plant_corridors(st, corridors, width, quiet)
    lut = np.zeros(256, dtype=np.intp)
    lut[list(spectra.CLASS_CODES)] = np.arange(len(spectra.CLASS_CODES))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the archive is meant to be shared
    writer = _BackgroundWriter()
    try:
        for sub in ("scenes/landsat", "scenes/sentinel2", "reference"):
            (work / sub).mkdir(parents=True)
        records: list[dict[str, Any]] = []
        min_clear: dict[str, dict[str, int]] = {"landsat": {}, "sentinel2": {}}
        shares: dict[str, dict[str, float]] = {}
        for year in years:
            lc = st.land.landcover[year]
            cls = lut[lc]
            samples = st.land.sample_index.astype(np.intp)
            pix = spectra.pixel_endmembers(st.tables, cls, samples)
            recs, min_clear["landsat"][str(year)] = _landsat_year(
                st, year, pix, lc == 80, work / "scenes" / "landsat", writer
            )
            records += recs
            del pix
            rows, cols = st.rows_s2, st.cols_s2
            pix = spectra.pixel_endmembers(st.tables, cls[rows][:, cols], samples[rows][:, cols])
            recs, min_clear["sentinel2"][str(year)] = _s2_year(
                st, year, pix, (lc == 80)[rows][:, cols], work / "scenes" / "sentinel2", writer
            )
            records += recs
            shares[str(year)] = {
                str(c): round(v, 6) for c, v in landscape.class_shares(lc, st.grid.region).items()
            }
            _write_truth(st, year, lc, work / "reference")
        if planted is not None:
            (work / "reference" / "planted_corridor.geojson").write_text(json.dumps(planted))
        writer.finish()
        summary = _summary(st, shares, records, min_clear)
        _write_docs(st, work, summary)
        _move_into_place(work, out_dir)
    except BaseException:
        writer.abort()
        shutil.rmtree(work, ignore_errors=True)
        raise

    n_files, n_bytes = _tree_bytes(out_dir)
    summary = {
        **summary,
        "files": n_files,
        "bytes": n_bytes,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    folder = {"landsat": "landsat", "sentinel2": "sentinel2"}
    reference = out_dir / "reference"
    return SimulatedArchive(
        root=out_dir,
        scenes_dir=out_dir / "scenes",
        scene_dirs=[out_dir / "scenes" / folder[r["sensor"]] / r["id"] for r in records],
        truth_landcover_path=reference / f"truth_landcover_{years[0]}.tif",
        truth_landcover_paths={y: reference / f"truth_landcover_{y}.tif" for y in years},
        region_path=reference / "region.geojson",
        bbox=st.bounds,
        crs=st.crs,
        summary=summary,
    )
