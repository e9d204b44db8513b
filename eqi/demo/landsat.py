"""Simulated Landsat 8/9 Collection 2 Level-2 (L2SP) scene folders, laid out like USGS deliveries.

``<id>/<id>_SR_B1.TIF .. _SR_B7.TIF, _ST_B10.TIF, _QA_PIXEL.TIF, _MTL.txt, _MTL.json`` with
``<id> = LC0s_L2SP_PPPRRR_YYYYMMDD_yyyymmdd_02_T1``.  The MTL files carry the fields a parser
needs, in the USGS ODL (GROUP = ... / END_GROUP = ...) and JSON layouts, and say in ORIGIN that the
scene is simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path

import numpy as np
from pyproj import Transformer
from rasterio.transform import Affine

from eqi.demo.encoding import (
    LANDSAT_SR_OFFSET,
    LANDSAT_SR_SCALE,
    LANDSAT_ST_OFFSET,
    LANDSAT_ST_SCALE,
)
from eqi.demo.rasterio_io import run_parallel, write_landsat_tif
from eqi.io.atomic import atomic_write_text

__all__ = [
    "ORIGIN",
    "LandsatScene",
    "landsat_product_id",
    "mtl_groups",
    "format_odl",
    "write_landsat_scene",
]

ORIGIN = "SIMULATED by the eqi offline demo - not real USGS data"
_SOFTWARE = "eqi.demo.simulate (simulated scene, schema 1)"


@dataclass(frozen=True)
class LandsatScene:
    """Metadata of one simulated L2SP scene."""

    platform: str  # "LC08" | "LC09"
    wrs_path: int
    wrs_row: int
    acquired: datetime  # UTC
    processed: date
    cloud_cover: float  # percent of valid pixels flagged cloud
    sun_azimuth: float
    sun_elevation: float
    earth_sun_distance: float
    utm_zone: int
    transform: Affine
    shape: tuple[int, int]
    crs: str

    @property
    def product_id(self) -> str:
        return landsat_product_id(
            self.platform, self.wrs_path, self.wrs_row, self.acquired.date(), self.processed
        )


def landsat_product_id(platform: str, path: int, row: int, acquired: date, processed: date) -> str:
    """USGS Collection 2 Level-2 product id, e.g. ``LC08_L2SP_129039_20220608_20220616_02_T1``."""
    return f"{platform}_L2SP_{path:03d}{row:03d}_{acquired:%Y%m%d}_{processed:%Y%m%d}_02_T1"


class _Bare(str):
    """An ODL value written without quotes (numbers, dates)."""


def _corners(scene: LandsatScene) -> list[tuple[str, _Bare]]:
    # USGS corner coordinates are the centres of the corner pixels
    h, w = scene.shape
    t = scene.transform
    res = t.a
    ul = (t.c + res / 2, t.f - res / 2)
    lr = (t.c + (w - 0.5) * res, t.f - (h - 0.5) * res)
    xy = {"UL": (ul[0], ul[1]), "UR": (lr[0], ul[1]), "LL": (ul[0], lr[1]), "LR": (lr[0], lr[1])}
    to_ll = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    fields: list[tuple[str, _Bare]] = []
    for name, (x, y) in xy.items():
        lon, lat = to_ll.transform(x, y)
        fields += [
            (f"CORNER_{name}_LAT_PRODUCT", _Bare(f"{lat:.5f}")),
            (f"CORNER_{name}_LON_PRODUCT", _Bare(f"{lon:.5f}")),
        ]
    for name, (x, y) in xy.items():
        fields += [
            (f"CORNER_{name}_PROJECTION_X_PRODUCT", _Bare(f"{x:.3f}")),
            (f"CORNER_{name}_PROJECTION_Y_PRODUCT", _Bare(f"{y:.3f}")),
        ]
    return fields


def mtl_groups(scene: LandsatScene) -> dict[str, list[tuple[str, str]]]:
    """The MTL content as ``{group: [(key, value), ...]}`` (values of type ``_Bare`` are unquoted)."""
    pid = scene.product_id
    number = scene.platform[-1]
    files = [(f"FILE_NAME_BAND_{b}", f"{pid}_SR_B{b}.TIF") for b in range(1, 8)]
    files += [
        ("FILE_NAME_BAND_ST_B10", f"{pid}_ST_B10.TIF"),
        ("FILE_NAME_QUALITY_L1_PIXEL", f"{pid}_QA_PIXEL.TIF"),
        ("FILE_NAME_METADATA_ODL", f"{pid}_MTL.txt"),
    ]
    types = [(f"DATA_TYPE_BAND_{b}", "UINT16") for b in range(1, 8)]
    types += [("DATA_TYPE_BAND_ST_B10", "UINT16"), ("DATA_TYPE_QUALITY_L1_PIXEL", "UINT16")]
    acq = scene.acquired
    generated = _Bare(f"{scene.processed:%Y-%m-%d}T06:00:00Z")
    h, w = scene.shape
    res = _Bare(f"{scene.transform.a:.2f}")
    sr_max = 65535 * LANDSAT_SR_SCALE + LANDSAT_SR_OFFSET
    sr_min = 1 * LANDSAT_SR_SCALE + LANDSAT_SR_OFFSET
    sr_params: list[tuple[str, str]] = []
    for b in range(1, 8):
        sr_params += [
            (f"REFLECTANCE_MAXIMUM_BAND_{b}", _Bare(f"{sr_max:.6f}")),
            (f"REFLECTANCE_MINIMUM_BAND_{b}", _Bare(f"{sr_min:.6f}")),
        ]
    for b in range(1, 8):
        sr_params += [
            (f"QUANTIZE_CAL_MAX_BAND_{b}", _Bare("65535")),
            (f"QUANTIZE_CAL_MIN_BAND_{b}", _Bare("1")),
        ]
    sr_params += [
        (f"REFLECTANCE_MULT_BAND_{b}", _Bare(f"{LANDSAT_SR_SCALE:.2e}")) for b in range(1, 8)
    ]
    sr_params += [
        (f"REFLECTANCE_ADD_BAND_{b}", _Bare(f"{LANDSAT_SR_OFFSET:g}")) for b in range(1, 8)
    ]
    st_max = 65535 * LANDSAT_ST_SCALE + LANDSAT_ST_OFFSET
    st_min = 1 * LANDSAT_ST_SCALE + LANDSAT_ST_OFFSET
    projection = [
        ("MAP_PROJECTION", "UTM"),
        ("DATUM", "WGS84"),
        ("ELLIPSOID", "WGS84"),
        ("UTM_ZONE", _Bare(str(scene.utm_zone))),
    ]
    doy = acq.timetuple().tm_yday
    return {
        "PRODUCT_CONTENTS": [
            ("ORIGIN", ORIGIN),
            ("LANDSAT_PRODUCT_ID", pid),
            ("PROCESSING_LEVEL", "L2SP"),
            ("COLLECTION_NUMBER", _Bare("02")),
            ("COLLECTION_CATEGORY", "T1"),
            ("OUTPUT_FORMAT", "GEOTIFF"),
            *files,
            *types,
        ],
        "IMAGE_ATTRIBUTES": [
            ("SPACECRAFT_ID", f"LANDSAT_{number}"),
            ("SENSOR_ID", "OLI_TIRS"),
            ("WRS_TYPE", _Bare("2")),
            ("WRS_PATH", _Bare(str(scene.wrs_path))),
            ("WRS_ROW", _Bare(str(scene.wrs_row))),
            ("NADIR_OFFNADIR", "NADIR"),
            ("TARGET_WRS_PATH", _Bare(str(scene.wrs_path))),
            ("TARGET_WRS_ROW", _Bare(str(scene.wrs_row))),
            ("DATE_ACQUIRED", _Bare(f"{acq:%Y-%m-%d}")),
            ("SCENE_CENTER_TIME", f"{acq:%H:%M:%S}.{acq.microsecond:06d}0Z"),
            ("STATION_ID", "LGN"),
            ("CLOUD_COVER", _Bare(f"{scene.cloud_cover:.2f}")),
            ("CLOUD_COVER_LAND", _Bare(f"{scene.cloud_cover:.2f}")),
            ("IMAGE_QUALITY_OLI", _Bare("9")),
            ("IMAGE_QUALITY_TIRS", _Bare("9")),
            ("ROLL_ANGLE", _Bare("-0.001")),
            ("SUN_AZIMUTH", _Bare(f"{scene.sun_azimuth:.8f}")),
            ("SUN_ELEVATION", _Bare(f"{scene.sun_elevation:.8f}")),
            ("EARTH_SUN_DISTANCE", _Bare(f"{scene.earth_sun_distance:.7f}")),
        ],
        "PROJECTION_ATTRIBUTES": [
            *projection,
            ("GRID_CELL_SIZE_REFLECTIVE", res),
            ("GRID_CELL_SIZE_THERMAL", res),
            ("REFLECTIVE_LINES", _Bare(str(h))),
            ("REFLECTIVE_SAMPLES", _Bare(str(w))),
            ("THERMAL_LINES", _Bare(str(h))),
            ("THERMAL_SAMPLES", _Bare(str(w))),
            ("ORIENTATION", "NORTH_UP"),
            *_corners(scene),
        ],
        "LEVEL2_PROCESSING_RECORD": [
            ("ORIGIN", ORIGIN),
            ("REQUEST_ID", "L2"),
            ("LANDSAT_PRODUCT_ID", pid),
            ("PROCESSING_LEVEL", "L2SP"),
            ("OUTPUT_FORMAT", "GEOTIFF"),
            ("DATE_PRODUCT_GENERATED", generated),
            ("PROCESSING_SOFTWARE_VERSION", _SOFTWARE),
            ("ALGORITHM_SOURCE_SURFACE_REFLECTANCE", "SIMULATED"),
            ("ALGORITHM_SOURCE_SURFACE_TEMPERATURE", "SIMULATED"),
        ],
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": sr_params,
        "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS": [
            ("TEMPERATURE_MAXIMUM_BAND_ST_B10", _Bare(f"{st_max:.6f}")),
            ("TEMPERATURE_MINIMUM_BAND_ST_B10", _Bare(f"{st_min:.6f}")),
            ("QUANTIZE_CAL_MAXIMUM_BAND_ST_B10", _Bare("65535")),
            ("QUANTIZE_CAL_MINIMUM_BAND_ST_B10", _Bare("1")),
            ("TEMPERATURE_MULT_BAND_ST_B10", _Bare(f"{LANDSAT_ST_SCALE:.8f}")),
            ("TEMPERATURE_ADD_BAND_ST_B10", _Bare(f"{LANDSAT_ST_OFFSET:.1f}")),
        ],
        "LEVEL1_PROCESSING_RECORD": [
            ("ORIGIN", ORIGIN),
            ("REQUEST_ID", "L2"),
            (
                "LANDSAT_SCENE_ID",
                f"L{scene.platform[0]}{number}{scene.wrs_path:03d}{scene.wrs_row:03d}{acq:%Y}{doy:03d}LGN00",
            ),
            ("LANDSAT_PRODUCT_ID", pid.replace("_L2SP_", "_L1TP_")),
            ("PROCESSING_LEVEL", "L1TP"),
            ("COLLECTION_CATEGORY", "T1"),
            ("OUTPUT_FORMAT", "GEOTIFF"),
            ("DATE_PRODUCT_GENERATED", generated),
            ("PROCESSING_SOFTWARE_VERSION", _SOFTWARE),
        ],
        "LEVEL1_PROJECTION_PARAMETERS": [
            *projection,
            ("GRID_CELL_SIZE_REFLECTIVE", res),
            ("GRID_CELL_SIZE_THERMAL", res),
            ("ORIENTATION", "NORTH_UP"),
            ("RESAMPLING_OPTION", "CUBIC_CONVOLUTION"),
        ],
    }


def format_odl(groups: dict[str, list[tuple[str, str]]]) -> str:
    """USGS MTL text: ``GROUP = LANDSAT_METADATA_FILE`` ... ``END`` with two-space indents."""
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for group, items in groups.items():
        lines.append(f"  GROUP = {group}")
        for key, value in items:
            text = value if isinstance(value, _Bare) else f'"{value}"'
            lines.append(f"    {key} = {text}")
        lines.append(f"  END_GROUP = {group}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(lines)


def format_mtl_json(groups: dict[str, list[tuple[str, str]]]) -> str:
    """USGS MTL JSON: ``{"LANDSAT_METADATA_FILE": {group: {key: "value"}}}``, all values strings."""
    doc = {
        "LANDSAT_METADATA_FILE": {g: {k: str(v) for k, v in items} for g, items in groups.items()}
    }
    return json.dumps(doc)


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text, encoding="ascii")


def write_landsat_scene(
    parent: Path,
    scene: LandsatScene,
    sr_dn: np.ndarray,
    st_dn: np.ndarray,
    qa: np.ndarray,
    threads: int | None = None,
) -> Path:
    """Write one scene folder under ``parent``; ``sr_dn`` is (7, H, W) uint16. Returns the folder.

    ``threads`` bounds the parallel band writes (default: up to 4).
    """
    pid = scene.product_id
    folder = parent / pid
    folder.mkdir(parents=True, exist_ok=True)
    rasters = [(f"SR_B{b + 1}", sr_dn[b], 0) for b in range(7)]
    rasters += [("ST_B10", st_dn, 0), ("QA_PIXEL", qa, None)]
    run_parallel([
        partial(write_landsat_tif, folder / f"{pid}_{name}.TIF", data, scene.transform, scene.crs, nodata)
        for name, data, nodata in rasters
    ], threads)  # fmt: skip
    groups = mtl_groups(scene)
    _write_text(folder / f"{pid}_MTL.txt", format_odl(groups))
    _write_text(folder / f"{pid}_MTL.json", format_mtl_json(groups))
    return folder
