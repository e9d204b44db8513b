"""Synthetic inputs for the benchmarks, written once into a cache folder (``bench/.cache/``).

* :func:`landsat_scenes` — Landsat 8 Collection-2 Level-2-like scenes, one per date (every 16 days),
  as tiled DEFLATE uint16 GeoTIFFs ``SR_B4`` (red), ``SR_B5`` (nir) and ``QA_PIXEL`` on one 30 m
  UTM 48N grid, with seeded clouds (QA_PIXEL bit 3) and a seeded scene-edge fill (DN 0,
  QA_PIXEL bit 0) whose left wedge is fill on every date (so the composite has NaN pixels);
  :func:`landsat_items` builds the matching pystac Items (asset keys ``red``, ``nir08``,
  ``qa_pixel``, projection and raster extensions).
* :func:`reflectance_bands` — float32 composite-like bands (``blue .. swir22`` reflectance 0-1,
  ``lwir`` kelvin, NaN wedge) for the RSEI stage, one ``.npy`` per band; :func:`lazy_band` reads
  one as a Dask array block by block (nothing materialised), :func:`load_band` into memory.

Every file is written under a temporary name and renamed into place, so an interrupted run never
leaves a half-written input behind.  The data are simulated, not real scenes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dask.array as da
import numpy as np
import pystac
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from scipy import ndimage

from eqi.demo.rasterio_io import write_landsat_tif
from eqi.io.atomic import atomic_path

__all__ = [
    "CACHE_DIR",
    "CRS",
    "RSEI_BANDS",
    "scene_dates",
    "landsat_scenes",
    "landsat_items",
    "scene_geobox",
    "reflectance_bands",
    "lazy_band",
    "load_band",
]

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
CRS = "EPSG:32648"  # UTM 48N, central Sichuan
RES_M = 30.0
ORIGIN = (300_000.0, 3_400_000.0)  # upper-left corner (x, y) in metres
SEED = 20240601
FIXTURE_VERSION = 1  # bump when the content changes: a new cache folder is used

# Landsat C2 L2 surface-reflectance DN encoding (USGS): SR = DN x 2.75e-5 - 0.2, DN 0 = fill.
SR_SCALE = 2.75e-5
SR_OFFSET = -0.2
QA_FILL = 1  # bit 0
QA_CLEAR = 21824  # clear, low-confidence cloud/shadow/snow/cirrus bits (typical L8 value)
QA_CLOUD = 22280  # bit 3 cloud + high cloud confidence (typical L8 value)

_BANDS = {"red": "SR_B4", "nir08": "SR_B5", "qa_pixel": "QA_PIXEL"}
_FIRST_DATE = date(2021, 1, 5)
_REVISIT_DAYS = 16

RSEI_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22", "lwir")


# ------------------------------------------------------------------------------------ helpers


def _transform() -> Affine:
    return Affine(RES_M, 0.0, ORIGIN[0], 0.0, -RES_M, ORIGIN[1])


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1) of shape (size, size): bilinear zoom of a coarse grid."""
    coarse = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return ndimage.zoom(coarse, size / (cells + 1), order=1, grid_mode=True, mode="nearest")[
        :size, :size
    ]


def _to_dn(reflectance: np.ndarray) -> np.ndarray:
    dn = np.rint((reflectance - SR_OFFSET) / SR_SCALE)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def scene_dates(n_dates: int) -> list[date]:
    """Acquisition dates of the first ``n_dates`` scenes (16-day revisit from 2021-01-05)."""
    return [_FIRST_DATE + timedelta(days=_REVISIT_DAYS * i) for i in range(n_dates)]


def _scene_id(day: date) -> str:
    processed = day + timedelta(days=9)
    return f"LC08_L2SP_129039_{day:%Y%m%d}_{processed:%Y%m%d}_02_T1"


def _scene_folder(size: int, cache: Path) -> Path:
    return cache / f"landsat-v{FIXTURE_VERSION}-{size}"


# ------------------------------------------------------------------------------------ Landsat scenes


def _write_scene(folder: Path, size: int, index: int, day: date, vegetation: np.ndarray) -> None:
    rng = np.random.default_rng([SEED, size, index])
    season = np.float32(0.5 + 0.5 * np.sin(2 * np.pi * (day.timetuple().tm_yday - 100) / 365.0))
    veg = np.clip(vegetation * (0.6 + 0.4 * season), 0.0, 1.0)
    red = 0.03 + 0.10 * (1.0 - veg) + rng.normal(0, 0.005, veg.shape).astype(np.float32)
    nir = 0.12 + 0.35 * veg + rng.normal(0, 0.01, veg.shape).astype(np.float32)
    # clouds: blobs covering 5-70 % of the scene, bright in red and nir
    field = _smooth(rng, size, 24)
    cover = rng.uniform(0.05, 0.7)
    cloud = field > np.quantile(field[:: max(1, size // 256), :: max(1, size // 256)], 1 - cover)
    red = np.where(cloud, 0.35 + 0.1 * field, red)
    nir = np.where(cloud, 0.40 + 0.1 * field, nir)
    # scene edge: a tilted left edge that moves between dates; columns < 5 % are always fill
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    edge = size * rng.uniform(0.05, 0.12) + 0.1 * rows
    fill = cols < edge
    qa = np.where(cloud, QA_CLOUD, QA_CLEAR).astype(np.uint16)
    qa[fill] = QA_FILL
    red_dn, nir_dn = _to_dn(red), _to_dn(nir)
    red_dn[fill] = 0
    nir_dn[fill] = 0
    scene = folder / _scene_id(day)
    scene.mkdir(parents=True, exist_ok=True)
    transform = _transform()
    write_landsat_tif(scene / f"{scene.name}_SR_B4.TIF", red_dn, transform, CRS, 0)
    write_landsat_tif(scene / f"{scene.name}_SR_B5.TIF", nir_dn, transform, CRS, 0)
    # written last: its presence marks a complete cached scene
    write_landsat_tif(scene / f"{scene.name}_QA_PIXEL.TIF", qa, transform, CRS, QA_FILL)


def landsat_scenes(n_dates: int, size: int = 2048, cache: Path = CACHE_DIR) -> Path:
    """Write (once) the first ``n_dates`` synthetic scenes of ``size`` x ``size`` px; return their folder."""
    folder = _scene_folder(size, cache)
    vegetation = None
    for i, day in enumerate(scene_dates(n_dates)):
        scene_id = _scene_id(day)
        if (folder / scene_id / f"{scene_id}_QA_PIXEL.TIF").is_file():
            continue
        if vegetation is None:
            vegetation = _smooth(np.random.default_rng([SEED, size]), size, 16)
        _write_scene(folder, size, i, day, vegetation)
    return folder


def scene_geobox(size: int = 2048) -> GeoBox:
    """The scenes' own pixel grid (30 m, EPSG:32648, ``size`` x ``size``)."""
    return GeoBox((size, size), _transform(), CRS)


def landsat_items(n_dates: int, size: int = 2048, cache: Path = CACHE_DIR) -> list[pystac.Item]:
    """pystac Items (Earth Search / Planetary Computer ``landsat-c2-l2`` style) of the scenes."""
    folder = _scene_folder(size, cache)
    transform = _transform()
    x0, y0 = ORIGIN
    x1, y1 = x0 + size * RES_M, y0 - size * RES_M
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = [to_ll.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    geometry = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
    items = []
    for day in scene_dates(n_dates):
        scene_id = _scene_id(day)
        when = datetime(day.year, day.month, day.day, 3, 50, 12, tzinfo=UTC)
        item = pystac.Item(
            id=scene_id,
            geometry=geometry,
            bbox=[min(lons), min(lats), max(lons), max(lats)],
            datetime=when,
            properties={"platform": "landsat-8", "instruments": ["oli", "tirs"]},
            collection="landsat-c2-l2",
        )
        RasterExtension.add_to(item)
        ProjectionExtension.ext(item, add_if_missing=True).apply(
            code=CRS, shape=[size, size], transform=list(transform)[:6]
        )
        for key, native in _BANDS.items():
            is_qa = key == "qa_pixel"
            asset = pystac.Asset(
                href=str(folder / scene_id / f"{scene_id}_{native}.TIF"),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["cloud", "data-mask"] if is_qa else ["data", "reflectance"],
            )
            item.add_asset(key, asset)
            ProjectionExtension.ext(asset).apply(
                code=CRS, shape=[size, size], transform=list(transform)[:6]
            )
            band = RasterBand.create(
                nodata=QA_FILL if is_qa else 0,
                data_type="uint16",
                spatial_resolution=RES_M,
                scale=None if is_qa else SR_SCALE,
                offset=None if is_qa else SR_OFFSET,
            )
            RasterExtension.ext(asset).apply(bands=[band])
        items.append(item)
    return items


# ------------------------------------------------------------------------------------ RSEI bands


def _band_folder(size: int, cache: Path) -> Path:
    return cache / f"reflectance-v{FIXTURE_VERSION}-{size}"


def reflectance_bands(size: int, cache: Path = CACHE_DIR) -> dict[str, Path]:
    """Write (once) float32 composite-like bands of ``size`` x ``size`` px; return ``{band: .npy}``.

    Reflectance is unitless (0-1), ``lwir`` is kelvin; a wedge along the left edge is NaN in every
    band, and a few smooth patches are water (MNDWI > 0).
    """
    folder = _band_folder(size, cache)
    paths = {b: folder / f"{b}.npy" for b in RSEI_BANDS}
    if all(p.is_file() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([SEED, size, 99])
    veg = _smooth(rng, size, 32)
    built = _smooth(rng, size, 20) ** 2
    water = _smooth(rng, size, 40) > 0.9

    def noise(sd: float) -> np.ndarray:
        return rng.normal(0, sd, (size, size)).astype(np.float32)

    bands = {
        "blue": 0.04 + 0.05 * built + noise(0.004),
        "green": 0.06 + 0.04 * built + 0.02 * veg + noise(0.004),
        "red": 0.05 + 0.10 * (1 - veg) + 0.05 * built + noise(0.005),
        "nir": 0.15 + 0.30 * veg + noise(0.01),
        "swir16": 0.12 + 0.12 * built + 0.08 * (1 - veg) + noise(0.008),
        "swir22": 0.08 + 0.10 * built + 0.06 * (1 - veg) + noise(0.008),
        "lwir": 288.0 + 18.0 * (1 - veg) + 6.0 * built + noise(0.5),
    }
    water_values = {"blue": 0.05, "green": 0.07, "red": 0.04, "nir": 0.03, "swir16": 0.015,
                     "swir22": 0.01, "lwir": 286.0}  # fmt: skip
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    wedge = cols < (0.04 * size + 0.05 * rows)
    for name, values in bands.items():
        values = values.astype(np.float32)
        values[water] = np.float32(water_values[name])
        values[wedge] = np.nan
        with atomic_path(paths[name]) as tmp, tmp.open("xb") as fh:
            np.save(fh, values)
    return paths


class _NpyBlocks:
    """Array-like over a ``.npy`` file: each slice maps the file, copies the window, unmaps."""

    def __init__(self, path: Path) -> None:
        header = np.load(path, mmap_mode="r")
        self.path = path
        self.shape = header.shape
        self.dtype = header.dtype
        self.ndim = header.ndim
        del header

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r")
        out = np.array(mapped[key])
        del mapped
        return out


def lazy_band(path: Path, chunk: int = 512) -> da.Array:
    """A band as a Dask array read block by block from its ``.npy`` (nothing held in memory)."""
    return da.from_array(
        _NpyBlocks(path), chunks=(chunk, chunk), asarray=True, fancy=False, inline_array=True
    )


def load_band(path: Path) -> np.ndarray:
    """A band fully in memory."""
    return np.load(path)
