"""Simulated Sentinel-2 L2A items laid out like Earth Search v1 (``sentinel-2-l2a``) deliveries.

``S2A_48RUU_YYYYMMDD_0_L2A/`` holds one COG per band (``B01.tif`` .. ``B12.tif``, ``B8A.tif``,
``SCL.tif``) and the item ``S2A_48RUU_YYYYMMDD_0_L2A.json`` with assets keyed ``blue, green, red,
rededge1-3, nir, nir08, swir16, swir22, scl`` and relative hrefs (``./B04.tif``).  All bands are
written at one "S2-like" resolution (20 m by default), which the item states.  Items of processing
baseline >= 04.00 carry the +1000 DN BOA offset in their pixels (and, as Earth Search does,
``raster:bands`` offset -0.1); the item property ``eqi:simulated`` is true.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine

from eqi.demo.encoding import S2_SCALE
from eqi.demo.rasterio_io import run_parallel, write_demo_cog
from eqi.io.atomic import atomic_write_text

__all__ = ["S2_ASSETS", "S2Scene", "mgrs_tile", "write_s2_scene"]

# band file -> (asset key, title, centre wavelength um, FWHM um)
S2_ASSETS: dict[str, tuple[str, str, float, float]] = {
    "B01": ("coastal", "Coastal aerosol (band 1)", 0.443, 0.027),
    "B02": ("blue", "Blue (band 2)", 0.49, 0.098),
    "B03": ("green", "Green (band 3)", 0.56, 0.045),
    "B04": ("red", "Red (band 4)", 0.665, 0.038),
    "B05": ("rededge1", "Red edge 1 (band 5)", 0.704, 0.019),
    "B06": ("rededge2", "Red edge 2 (band 6)", 0.74, 0.018),
    "B07": ("rededge3", "Red edge 3 (band 7)", 0.783, 0.028),
    "B08": ("nir", "NIR 1 (band 8)", 0.842, 0.145),
    "B8A": ("nir08", "NIR 2 (band 8A)", 0.865, 0.033),
    "B09": ("nir09", "NIR 3 (band 9)", 0.945, 0.026),
    "B11": ("swir16", "SWIR 1 (band 11)", 1.61, 0.143),
    "B12": ("swir22", "SWIR 2 (band 12)", 2.19, 0.242),
}
_RELATIVE_ORBIT = 132  # illustrative; the demo does not model the real orbit of the tile


@dataclass(frozen=True)
class S2Scene:
    """Metadata of one simulated Sentinel-2 L2A item."""

    platform: str  # "S2A" | "S2B"
    tile: str  # MGRS tile, e.g. "48RUU"
    sensed: datetime  # UTC
    baseline: str  # "02.14" | "05.09"
    sun_azimuth: float
    sun_elevation: float
    transform: Affine
    shape: tuple[int, int]
    epsg: int
    footprint: dict[str, Any]  # GeoJSON polygon in WGS 84
    bbox: tuple[float, float, float, float]  # WGS 84
    scl_percentages: dict[str, float]
    cloud_cover: float

    @property
    def item_id(self) -> str:
        return f"{self.platform}_{self.tile}_{self.sensed:%Y%m%d}_0_L2A"

    @property
    def offset_dn(self) -> int:
        """BOA_ADD_OFFSET sign-flipped: +1000 DN in the pixels from baseline 04.00."""
        return 1000 if float(self.baseline) >= 4.0 else 0


_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COL_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"


def mgrs_tile(lon: float, lat: float) -> str:
    """MGRS 100 km grid square (= Sentinel-2 tile id) containing a WGS 84 point, e.g. ``48RUU``.

    Standard MGRS lettering (zones 1-60, latitude bands C-X, AA lettering scheme); polar zones and
    the Norway/Svalbard exceptions are not handled (the demo is for Sichuan).
    """
    from pyproj import CRS, Transformer

    zone = int((lon + 180.0) // 6.0) + 1
    band = _LAT_BANDS[min(int((lat + 80.0) // 8.0), len(_LAT_BANDS) - 1)]
    epsg = (32600 if lat >= 0 else 32700) + zone
    x, y = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(epsg), always_xy=True).transform(
        lon, lat
    )
    col = _COL_SETS[(zone - 1) % 3][int(x // 100000) - 1]
    row_index = int(y // 100000) % 20
    if zone % 2 == 0:
        row_index = (row_index + 5) % 20
    return f"{zone}{band}{col}{_ROW_LETTERS[row_index]}"


def _asset(href: str, title: str, scene: S2Scene, extra: dict[str, Any]) -> dict[str, Any]:
    t = scene.transform
    res = t.a
    return {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "title": title,
        **extra,
        "gsd": res,
        "proj:shape": [scene.shape[0], scene.shape[1]],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "roles": ["data", "reflectance"],
    }


def item_dict(scene: S2Scene) -> dict[str, Any]:
    """The STAC item of one simulated scene (Earth Search v1 shape)."""
    res = scene.transform.a
    gen = scene.sensed.replace(hour=(scene.sensed.hour + 3) % 24, microsecond=0)
    stamp = f"{scene.sensed:%Y%m%dT%H%M%S}"
    baseline_tag = scene.baseline.replace(".", "")
    offset = -scene.offset_dn * S2_SCALE
    assets: dict[str, Any] = {}
    for band, (key, name, centre, fwhm) in S2_ASSETS.items():
        assets[key] = _asset(
            f"./{band}.tif",
            f"{name} - {res:g}m (S2-like, resampled)",
            scene,
            {
                "eo:bands": [{"name": key, "common_name": key if not key.startswith("rededge") else "rededge",
                              "description": name, "center_wavelength": centre, "full_width_half_max": fwhm}],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                  "spatial_resolution": res, "scale": S2_SCALE, "offset": round(offset, 6)}],
            },
        )  # fmt: skip
    assets["scl"] = _asset(
        "./SCL.tif",
        "Scene classification map (SCL)",
        scene,
        {"raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}]},
    )
    props: dict[str, Any] = {
        "created": f"{gen:%Y-%m-%dT%H:%M:%S}.000Z",
        "platform": "sentinel-2a" if scene.platform == "S2A" else "sentinel-2b",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(scene.cloud_cover, 6),
        "proj:epsg": scene.epsg,
        "mgrs:utm_zone": int(scene.tile[:-3]),
        "mgrs:latitude_band": scene.tile[-3],
        "mgrs:grid_square": scene.tile[-2:],
        "grid:code": f"MGRS-{scene.tile}",
        "view:sun_azimuth": round(scene.sun_azimuth, 6),
        "view:sun_elevation": round(scene.sun_elevation, 6),
        **{f"s2:{k}": round(v, 6) for k, v in scene.scl_percentages.items()},
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": scene.baseline,
        "s2:product_uri": f"{scene.platform}_MSIL2A_{stamp}_N{baseline_tag}_R{_RELATIVE_ORBIT:03d}_T{scene.tile}_{gen:%Y%m%dT%H%M%S}.SAFE",
        "s2:generation_time": f"{gen:%Y-%m-%dT%H:%M:%S}.000000Z",
        "s2:datatake_id": f"G{scene.platform}_{stamp}_000000_N{scene.baseline}",
        "s2:granule_id": f"{scene.platform}_OPER_MSI_L2A_TL_EQI__{gen:%Y%m%dT%H%M%S}_A000000_T{scene.tile}_N{scene.baseline}",
        "datetime": f"{scene.sensed:%Y-%m-%dT%H:%M:%S}.{scene.sensed.microsecond // 1000:03d}000Z",
        "s2:sequence": "0",
        "processing:software": {"eqi.demo.simulate": "1"},
        "updated": f"{gen:%Y-%m-%dT%H:%M:%S}.000Z",
        "eqi:simulated": True,
        "eqi:note": (
            "SIMULATED by the eqi offline demo - not real Copernicus data; S2-like, every band "
            f"resampled to {res:g} m; spectra derived from real Landsat 8 C2 L2 pixel samples"
        ),
    }
    if scene.offset_dn == 0:
        props["earthsearch:boa_offset_applied"] = False
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": scene.item_id,
        "properties": props,
        "geometry": scene.footprint,
        "links": [],
        "assets": assets,
        "bbox": list(scene.bbox),
        "stac_extensions": [
            "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "collection": "sentinel-2-l2a",
    }


def write_s2_scene(
    parent: Path,
    scene: S2Scene,
    bands: dict[str, np.ndarray],
    scl: np.ndarray,
    threads: int | None = None,
) -> Path:
    """Write one item folder under ``parent`` (``bands`` uint16 DN keyed ``B02`` ...). Returns it.

    ``threads`` bounds the parallel band writes (default: up to 4).
    """
    folder = parent / scene.item_id
    folder.mkdir(parents=True, exist_ok=True)
    crs = f"EPSG:{scene.epsg}"
    jobs = [
        partial(write_demo_cog, folder / f"{band}.tif", bands[band], scene.transform, crs, 0)
        for band in S2_ASSETS
    ]
    jobs.append(
        partial(write_demo_cog, folder / "SCL.tif", scl, scene.transform, crs, 0, categorical=True)
    )
    run_parallel(jobs, threads)
    path = folder / f"{scene.item_id}.json"
    atomic_write_text(path, json.dumps(item_dict(scene), indent=None))
    return folder
