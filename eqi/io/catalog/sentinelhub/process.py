"""Process API requests for one acquisition on one tile grid, and the request cache.

The evalscript asks for the bands, ``SCL`` and ``dataMask`` in ``units: "DN"``, ``sampleType:
UINT16``, with ``processing.harmonizeValues = false``.  Sentinel Hub's default
(``harmonizeValues = true``) removes the BOA offset of baseline >= 04.00 products and clamps
negative reflectance to 0; with ``false`` the DNs are those of the ESA L2A product files (DN =
reflectance x 10000 + 1000 from baseline 04.00), so :mod:`eqi.sensors` applies the same
per-item offset rule as for every other source.  Pixels outside the data (``dataMask`` 0) are 0,
the L2A nodata value.  Resampling is NEAREST (Sentinel Hub's default, stated explicitly).

Grid: when the tile's CRS has an EPSG code the request covers exactly the tile (bbox, CRS, width
and height of its GeoBox).  Sentinel Hub accepts only EPSG-coded CRSs, so for other tile CRSs
(eqi's default ``albers-china`` is a PROJ string) the request covers the tile on the UTM zone of
its centre at ``utm_resolution`` (default: the largest Sentinel-2 native spacing, 10/20/60 m, not
coarser than the tile, so pixels are aligned to the L2A grids), snapped to that spacing, one pixel
of margin; the loader then warps those files onto the tile like any scene file.

Cache: each request is keyed by the SHA-256 of its URL and JSON body; its answer is split into one
single-band GeoTIFF per band under ``CACHE/<key[:2]>/<key>/`` (``red.tif`` ... ``scl.tif``,
``datamask.tif``, ``request.json``), written to a temporary folder and renamed into place, so a
folder that exists is complete and a rerun sends no request (and spends no processing units).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from eqi.errors import SourceError
from eqi.sensors import SENSORS

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

__all__ = [
    "RequestGrid",
    "request_grid",
    "evalscript",
    "process_payload",
    "cache_key",
    "estimate_processing_units",
    "store_response",
    "cached_files",
    "ordered_bands",
    "S2_NATIVE_SPACINGS",
]

S2_NATIVE_SPACINGS = (10.0, 20.0, 60.0)  # metres: Sentinel-2 L2A band grids
_S2 = SENSORS["sentinel2"]
_ORDER = list(_S2.bands)  # canonical band order (sensor table), so equal requests hash equally


@dataclass(frozen=True)
class RequestGrid:
    """The pixel grid of one Process API request: EPSG code, bounds, size."""

    epsg: int
    bounds: tuple[float, float, float, float]  # left, bottom, right, top in CRS units
    width: int
    height: int
    exact: bool  # True: the tile's own grid

    @property
    def transform(self) -> Affine:
        left, bottom, right, top = self.bounds
        return Affine(
            (right - left) / self.width, 0.0, left, 0.0, -(top - bottom) / self.height, top
        )

    @property
    def crs_code(self) -> str:
        return f"EPSG:{self.epsg}"


def _utm_epsg(lon: float, lat: float) -> int:
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def _default_spacing(tile_resolution: float) -> float:
    fitting = [s for s in S2_NATIVE_SPACINGS if s <= tile_resolution + 1e-9]
    return fitting[-1] if fitting else tile_resolution


def request_grid(geobox: GeoBox, *, utm_resolution: float | None = None) -> RequestGrid:
    """The request grid for a tile GeoBox (see the module docstring)."""
    t = geobox.transform
    epsg = geobox.crs.epsg if geobox.crs is not None else None
    axis_aligned = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
    if epsg is not None and axis_aligned and not ProjCRS.from_epsg(epsg).is_geographic:
        box = geobox.boundingbox
        return RequestGrid(
            epsg=int(epsg),
            bounds=(box.left, box.bottom, box.right, box.top),
            width=int(geobox.shape.x),
            height=int(geobox.shape.y),
            exact=True,
        )
    centre = geobox.extent.centroid.to_crs("EPSG:4326")
    lon, lat = centre.coords[0]
    utm = _utm_epsg(lon, lat)
    spacing = float(utm_resolution or _default_spacing(abs(float(t.a))))
    to_utm = Transformer.from_crs(geobox.crs.to_wkt(), f"EPSG:{utm}", always_xy=True)
    height, width = int(geobox.shape.y), int(geobox.shape.x)
    # the tile's outline, 32 points per edge, in UTM
    steps = np.linspace(0.0, 1.0, 33)
    cols = np.concatenate([steps * width, np.full(33, width), steps[::-1] * width, np.zeros(33)])
    rows = np.concatenate([np.zeros(33), steps * height, np.full(33, height), steps[::-1] * height])
    xs, ys = t * (cols, rows)
    ux, uy = to_utm.transform(np.asarray(xs), np.asarray(ys))
    left = (math.floor(float(np.min(ux)) / spacing) - 1) * spacing
    bottom = (math.floor(float(np.min(uy)) / spacing) - 1) * spacing
    right = (math.ceil(float(np.max(ux)) / spacing) + 1) * spacing
    top = (math.ceil(float(np.max(uy)) / spacing) + 1) * spacing
    return RequestGrid(
        epsg=utm,
        bounds=(left, bottom, right, top),
        width=int(round((right - left) / spacing)),
        height=int(round((top - bottom) / spacing)),
        exact=False,
    )


def ordered_bands(aliases: Sequence[str]) -> list[str]:
    """Sentinel-2 aliases among ``aliases`` in the sensor table's order (others dropped)."""
    wanted = set(aliases)
    return [a for a in _ORDER if a in wanted]


def evalscript(aliases: Sequence[str]) -> str:
    """Evalscript: the bands (eqi aliases), SCL and dataMask as UINT16 DN, 0 where no data."""
    natives = [_S2.bands[a].native for a in aliases] + ["SCL", "dataMask"]
    names = ", ".join(f'"{n}"' for n in natives)
    values = ", ".join(f"s.{n}" for n in natives)
    zeros = ", ".join("0" for _ in natives)
    return (
        "//VERSION=3\n"
        "// eqi: Sentinel-2 L2A bands, SCL and dataMask as digital numbers (ESA L2A scaling)\n"
        "function setup() {\n"
        "  return {\n"
        f"    input: [{{ bands: [{names}], units: \"DN\" }}],\n"
        f"    output: {{ id: \"default\", bands: {len(natives)}, sampleType: \"UINT16\" }},\n"
        "    mosaicking: \"SIMPLE\"\n"
        "  };\n"
        "}\n"
        "function evaluatePixel(s) {\n"
        f"  if (s.dataMask === 0) {{ return [{zeros}]; }}\n"
        f"  return [{values}];\n"
        "}\n"
    )


def process_payload(
    aliases: Sequence[str],
    grid: RequestGrid,
    time_range: tuple[datetime, datetime],
    collection: str = "sentinel-2-l2a",
) -> dict[str, Any]:
    """The Process API JSON body, built with the sentinelhub package's request helpers."""
    from sentinelhub import CRS, BBox, DataCollection, MimeType, MosaickingOrder, ResamplingType
    from sentinelhub import SentinelHubRequest as Req

    if collection != DataCollection.SENTINEL2_L2A.api_id:
        raise SourceError(f"Sentinel Hub collection {collection} is not supported by eqi")
    data = Req.input_data(
        DataCollection.SENTINEL2_L2A,
        time_interval=time_range,
        mosaicking_order=MosaickingOrder.MOST_RECENT,
        upsampling=ResamplingType.NEAREST,
        downsampling=ResamplingType.NEAREST,
        other_args={"processing": {"harmonizeValues": False}},
    )
    # a plain dict: the collection's fixed service URL must not override the configured one
    return Req.body(
        request_bounds=Req.bounds(bbox=BBox(grid.bounds, crs=CRS(grid.epsg))),
        request_data=[dict(data)],
        request_output=Req.output(
            responses=[Req.output_response("default", MimeType.TIFF)],
            size=(grid.width, grid.height),
        ),
        evalscript=evalscript(aliases),
    )


def cache_key(url: str, payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of the request: URL and canonical JSON body."""
    text = json.dumps({"url": url, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def estimate_processing_units(grid: RequestGrid, n_input_bands: int) -> float:
    """Rough Sentinel Hub processing units of a request: pixels / 512² x input bands / 3 (UINT16).

    ``dataMask`` is not counted; the service's own minimum and multipliers may differ.
    """
    return max(grid.width * grid.height / 512**2, 0.01) * n_input_bands / 3


def _layout(aliases: Sequence[str]) -> list[tuple[str, str]]:
    """(asset key, data type) per band of the response, in its order."""
    return [(a, "uint16") for a in aliases] + [("scl", "uint8"), ("datamask", "uint8")]


def cached_files(folder: Path, aliases: Sequence[str]) -> list[tuple[str, str, str]] | None:
    """(key, path, dtype) of a complete cache entry, or None when the folder is absent."""
    if not folder.is_dir():
        return None
    rows = [(key, str(folder / f"{key}.tif"), dtype) for key, dtype in _layout(aliases)]
    if not all(Path(path).is_file() for _, path, _ in rows):
        return None
    return rows


def _check_georeferencing(src: Any, grid: RequestGrid, url: str) -> None:
    expected = (grid.height, grid.width)
    if (src.height, src.width) != expected:
        raise SourceError(
            f"Sentinel Hub ({url}) answered a {src.height} x {src.width} px image for a "
            f"{grid.height} x {grid.width} px request"
        )
    if src.crs is not None and src.crs.to_epsg() not in (None, grid.epsg):
        raise SourceError(f"Sentinel Hub ({url}) answered CRS {src.crs} for EPSG:{grid.epsg}")
    if src.crs is not None:
        tol = 1e-3 * abs(grid.transform.a)
        if not src.transform.almost_equals(grid.transform, precision=tol):
            raise SourceError(
                f"Sentinel Hub ({url}) answered a grid {tuple(src.transform)[:6]} that is not "
                f"the requested {tuple(grid.transform)[:6]}"
            )


def store_response(
    content: bytes,
    folder: Path,
    *,
    aliases: Sequence[str],
    grid: RequestGrid,
    url: str,
    payload: dict[str, Any],
) -> list[tuple[str, str, str]]:
    """Split a Process API TIFF into single-band GeoTIFFs in ``folder`` (atomically)."""
    layout = _layout(aliases)
    try:
        with MemoryFile(content) as memory, memory.open() as src:
            _check_georeferencing(src, grid, url)
            if src.count != len(layout):
                raise SourceError(
                    f"Sentinel Hub ({url}) answered {src.count} band(s), expected {len(layout)} "
                    f"({', '.join(k for k, _ in layout)})"
                )
            data = src.read()
    except RasterioError as err:
        raise SourceError(f"Sentinel Hub ({url}) answered something that is not a TIFF ({err})") from err
    valid = data[-1] > 0
    data[:, ~valid] = 0  # outside the data every band is nodata, whatever the evalscript did
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": 1,
            "crs": grid.crs_code,
            "transform": grid.transform,
            "nodata": 0,
            "compress": "deflate",
            "predictor": 2,
        }
        if grid.width >= 256 and grid.height >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        for index, (key, dtype) in enumerate(layout):
            with rasterio.open(tmp / f"{key}.tif", "w", dtype=dtype, **profile) as dst:
                dst.write(data[index].astype(dtype), 1)
        body = {"url": url, "payload": payload}
        (tmp / "request.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if cached_files(folder, aliases) is None:  # not a concurrent writer's complete entry
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    files = cached_files(folder, aliases)
    assert files is not None
    return files
