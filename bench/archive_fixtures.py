"""A delivered-format Landsat archive for the end-to-end benchmarks, written once into the cache.

:func:`landsat_archive` writes ``n`` synthetic Landsat 8/9 Collection-2 Level-2 scene folders
(USGS layout: ``SR_B1 .. SR_B7``, ``ST_B10``, ``QA_PIXEL`` GeoTIFFs and the MTL files, through the
demo's writer :func:`eqi.demo.landsat.write_landsat_scene`) on one 30 m UTM 48N grid, every
``REVISIT_DAYS`` days within one calendar year, and indexes the first ``n`` of them into a
stac-geoparquet file with ``eqi archive index`` (the command a user runs).  :func:`aoi_file`
writes a GeoJSON rectangle covering ``k x k`` pixels of that grid.

Content (seeded, SIMULATED): smooth vegetation, built-up and water fields drive all six
reflective bands and surface temperature, with a seasonal cycle, pixel noise, clouds (QA_PIXEL
bit 3, bright and cold) covering 5-60 % of each scene and a left scene edge that is fill on
every date.  ``content="ndvi"`` gives only red, nir and QA_PIXEL texture (the other bands are
constant, so they cost almost no disk): enough for NDVI runs over large areas.

The grid's upper-left corner sits on a multiple of 1024 px x 30 m (30 720 m) in both axes, so a
square of ``1024 * k`` px from that corner is exactly ``k x k`` tiles of a 1024 px tile grid
anchored at the CRS origin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from bench import fixtures
from eqi.demo.calendar import earth_sun_distance_au, sun_angles
from eqi.demo.encoding import landsat_sr_dn, landsat_st_dn
from eqi.demo.landsat import LandsatScene, write_landsat_scene
from eqi.io.atomic import atomic_write_text

__all__ = [
    "CRS",
    "RES_M",
    "ORIGIN",
    "REVISIT_DAYS",
    "YEAR",
    "Archive",
    "scene_dates",
    "landsat_archive",
    "aoi_file",
]

CRS = "EPSG:32648"  # UTM 48N, central Sichuan
RES_M = 30.0
ORIGIN = (307_200.0, 3_409_920.0)  # upper-left (x, y): 10 and 111 times 30 720 m
REVISIT_DAYS = 5  # Landsat 8 + 9 together revisit every 8 days; denser here to fit 64 in a year
YEAR = 2021
SEED = 20240602
VERSION = 1  # bump when the content changes: a new cache folder is used
_FIRST = date(YEAR, 1, 3)
_WRS = (129, 39)


@dataclass(frozen=True)
class Archive:
    """An indexed scene archive: the parquet file, its scene folders and the grid size (px)."""

    parquet: Path
    scenes: tuple[Path, ...]
    size: int

    @property
    def files(self) -> list[Path]:
        """Every raster of the archive (to warm the page cache before timing)."""
        return sorted(p for s in self.scenes for p in s.glob("*.TIF"))


def scene_dates(n: int) -> list[date]:
    """Acquisition dates of the first ``n`` scenes (every ``REVISIT_DAYS`` days from Jan 3)."""
    dates = [_FIRST + timedelta(days=REVISIT_DAYS * i) for i in range(n)]
    if dates and dates[-1].year != YEAR:
        raise ValueError(f"{n} dates every {REVISIT_DAYS} days do not fit in {YEAR}")
    return dates


def _transform() -> Affine:
    return Affine(RES_M, 0.0, ORIGIN[0], 0.0, -RES_M, ORIGIN[1])


def _folder(size: int, content: str, cache: Path) -> Path:
    return cache / f"archive-v{VERSION}-{content}-{size}"


def _fields(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, size])
    veg = fixtures._smooth(rng, size, max(4, size // 128))
    built = fixtures._smooth(rng, size, max(4, size // 200)) ** 2
    water = fixtures._smooth(rng, size, max(4, size // 50)) > 0.9
    return veg, built, water


def _scene_arrays(
    size: int, index: int, day: date, content: str, fields: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(SR DN (7, H, W), ST DN, QA_PIXEL, cloud cover %) of one date."""
    veg0, built, water = fields
    rng = np.random.default_rng([SEED, size, index])
    season = np.float32(0.5 + 0.5 * np.sin(2 * np.pi * (day.timetuple().tm_yday - 100) / 365.0))
    veg = np.clip(veg0 * (0.6 + 0.4 * season), 0.0, 1.0)

    def noise(sd: float) -> np.ndarray:
        return rng.standard_normal((size, size), dtype=np.float32) * np.float32(sd)

    shape = (size, size)
    if content == "all":
        refl = {
            "blue": 0.04 + 0.05 * built + noise(0.004),
            "green": 0.06 + 0.04 * built + 0.02 * veg + noise(0.004),
            "red": 0.05 + 0.10 * (1 - veg) + 0.05 * built + noise(0.005),
            "nir": 0.15 + 0.30 * veg + noise(0.01),
            "swir16": 0.12 + 0.12 * built + 0.08 * (1 - veg) + noise(0.008),
            "swir22": 0.08 + 0.10 * built + 0.06 * (1 - veg) + noise(0.008),
        }
        water_values = {"blue": 0.05, "green": 0.07, "red": 0.04, "nir": 0.03, "swir16": 0.015,
                        "swir22": 0.01}  # fmt: skip
        for name, value in water_values.items():
            refl[name][water] = value
        refl["coastal"] = 0.9 * refl["blue"]
        kelvin = 280.0 + 10.0 * season + 18.0 * (1 - veg) + 6.0 * built + noise(0.5)
        kelvin[water] = 283.0 + 6.0 * season
    else:  # "ndvi": only red, nir (and QA) carry texture
        flat = {b: np.full(shape, v, np.float32) for b, v in
                (("coastal", 0.04), ("blue", 0.05), ("green", 0.07), ("swir16", 0.15),
                 ("swir22", 0.1))}  # fmt: skip
        refl = {
            **flat,
            "red": 0.05 + 0.10 * (1 - veg) + noise(0.005),
            "nir": 0.15 + 0.30 * veg + noise(0.01),
        }
        kelvin = np.full(shape, 295.0, np.float32)
    # clouds: smooth blobs over 5-60 % of the scene, bright in reflectance, cold
    cloud_field = fixtures._smooth(rng, size, max(4, size // 96))
    cover = rng.uniform(0.05, 0.6)
    step = max(1, size // 256)
    cloud = cloud_field > np.quantile(cloud_field[::step, ::step], 1 - cover)
    for name in refl:
        refl[name] = np.where(cloud, 0.30 + 0.1 * cloud_field, refl[name])
    kelvin = np.where(cloud, 265.0 + 5.0 * cloud_field, kelvin)
    # scene edge: a tilted left edge that moves between dates; columns < 4 % are always fill
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    fill = cols < size * rng.uniform(0.04, 0.08) + 0.05 * rows
    order = ("coastal", "blue", "green", "red", "nir", "swir16", "swir22")  # SR_B1 .. SR_B7
    sr = landsat_sr_dn(np.stack([refl[b] for b in order]), fill)
    st = landsat_st_dn(kelvin, fill)
    qa = np.where(cloud, fixtures.QA_CLOUD, fixtures.QA_CLEAR).astype(np.uint16)
    qa[fill] = fixtures.QA_FILL
    cloud_pct = float(100.0 * cloud[~fill].mean()) if (~fill).any() else 0.0
    return sr, st, qa, cloud_pct


def _scene(size: int, index: int, day: date, cloud_pct: float) -> LandsatScene:
    x0, y0 = ORIGIN
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(x0 + size * RES_M / 2, y0 - size * RES_M / 2)
    when = datetime(day.year, day.month, day.day, 3, 50, 12, tzinfo=UTC)
    azimuth, elevation = sun_angles(lon, lat, when)
    return LandsatScene(
        platform="LC08" if index % 2 == 0 else "LC09",
        wrs_path=_WRS[0],
        wrs_row=_WRS[1],
        acquired=when,
        processed=day + timedelta(days=9),
        cloud_cover=round(cloud_pct, 2),
        sun_azimuth=azimuth,
        sun_elevation=elevation,
        earth_sun_distance=earth_sun_distance_au(day),
        utm_zone=48,
        transform=_transform(),
        shape=(size, size),
        crs=CRS,
    )


def _write_scenes(n: int, size: int, content: str, folder: Path) -> list[Path]:
    scenes_dir = folder / "scenes"
    out: list[Path] = []
    fields = None
    for i, day in enumerate(scene_dates(n)):
        existing = sorted(scenes_dir.glob(f"LC0?_L2SP_*_{day:%Y%m%d}_*"))
        done = [d for d in existing if list(d.glob("*_MTL.json"))]  # the MTL is written last
        if done:
            out.append(done[0])
            continue
        if fields is None:
            fields = _fields(size)
        sr, st, qa, cloud_pct = _scene_arrays(size, i, day, content, fields)
        out.append(write_landsat_scene(scenes_dir, _scene(size, i, day, cloud_pct), sr, st, qa, 2))
    return out


def landsat_archive(
    n: int, size: int = 2048, cache: Path = fixtures.CACHE_DIR, content: str = "all"
) -> Archive:
    """Write (once) ``n`` scenes of ``size`` x ``size`` px and index them; return the archive.

    Scenes are shared between archives of the same size and content: the archive of 16 dates
    holds the first 16 scenes of the archive of 64.
    """
    if content not in ("all", "ndvi"):
        raise ValueError(f"content must be 'all' or 'ndvi', not {content!r}")
    folder = _folder(size, content, cache)
    scenes = _write_scenes(n, size, content, folder)
    parquet = folder / f"archive-{n}.parquet"
    if not parquet.is_file():
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "eqi", "archive", "index", *map(str, scenes), "--out", str(parquet)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"eqi archive index failed:\n{res.stdout}\n{res.stderr}")
    return Archive(parquet=parquet, scenes=tuple(scenes), size=size)


def aoi_file(pixels: int, path: Path, name: str = "bench-area") -> Path:
    """GeoJSON (WGS 84) of the square of ``pixels`` x ``pixels`` px from the grid's corner.

    The square is shrunk by a quarter pixel on every side and densified before reprojection,
    so a grid snapped outwards to 30 m on the CRS origin is exactly ``pixels`` wide, and every
    pixel centre lies inside the polygon.
    """
    x0, y0 = ORIGIN
    inset = RES_M / 4
    rect = box(x0 + inset, y0 - pixels * RES_M + inset, x0 + pixels * RES_M - inset, y0 - inset)
    rect = rect.segmentize(RES_M * 16)
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    xs, ys = to_ll.transform(*rect.exterior.xy)
    ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    feature = {
        "type": "Feature",
        "properties": {"name": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path
