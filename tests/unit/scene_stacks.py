"""Test helpers: STAC items, item groups and "loaded" Datasets held in memory.

The groups come from eqi's own :func:`eqi.io.load.group_items` (real band resolution and
scaling); the Datasets stand in for :func:`eqi.io.load.load_group` (dims time, y, x; integer
DN in Dask chunks of one date), filled with the DN a test writes by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import dask.array as da
import numpy as np
import pystac
import xarray as xr

from eqi.io.load import ItemGroup, group_items

LANDSAT_NATIVE = {
    "landsat8": {"coastal": "SR_B1", "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5",
                 "swir16": "SR_B6", "swir22": "SR_B7", "lwir": "ST_B10"},
    "landsat7": {"blue": "SR_B1", "green": "SR_B2", "red": "SR_B3", "nir": "SR_B4", "swir16": "SR_B5",
                 "swir22": "SR_B7", "lwir": "ST_B6"},
}  # fmt: skip
S2_NATIVE = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
}  # fmt: skip
_BOX = [[100.0, 30.0], [100.1, 30.0], [100.1, 30.1], [100.0, 30.1], [100.0, 30.0]]


def _item(item_id: str, when: datetime, properties: dict) -> pystac.Item:
    return pystac.Item(
        id=item_id,
        geometry={"type": "Polygon", "coordinates": [_BOX]},
        bbox=[100.0, 30.0, 100.1, 30.1],
        datetime=when,
        properties=properties,
    )


def landsat_item(
    sensor: str, when: datetime, bands: Sequence[str], *, qa: bool = True, radsat: bool = False
) -> pystac.Item:
    """A Landsat C2 L2 item of ``sensor`` ("landsat7" / "landsat8") with assets for ``bands``."""
    prefix = {"landsat7": "LE07", "landsat8": "LC08"}[sensor]
    item_id = f"{prefix}_L2SP_129039_{when:%Y%m%d}_{when:%Y%m%d}_02_T1"
    item = _item(item_id, when, {"platform": f"landsat-{sensor[-1]}"})
    for alias in bands:
        native = LANDSAT_NATIVE[sensor][alias]
        item.add_asset(alias, pystac.Asset(href=f"/data/{item_id}_{native}.TIF"))
    if qa:
        item.add_asset("qa_pixel", pystac.Asset(href=f"/data/{item_id}_QA_PIXEL.TIF"))
    if radsat:
        item.add_asset("qa_radsat", pystac.Asset(href=f"/data/{item_id}_QA_RADSAT.TIF"))
    return item


def s2_item(
    when: datetime,
    bands: Sequence[str],
    *,
    baseline: str = "05.00",
    platform: str = "sentinel-2a",
    properties: Mapping | None = None,
) -> pystac.Item:
    """A Sentinel-2 L2A item with assets for ``bands`` and SCL."""
    item_id = f"S2A_48RTV_{when:%Y%m%d}_0_L2A"
    props = {"platform": platform, "s2:processing_baseline": baseline, **(properties or {})}
    item = _item(item_id, when, props)
    for alias in bands:
        item.add_asset(alias, pystac.Asset(href=f"/data/{item_id}/{S2_NATIVE[alias]}.tif"))
    item.add_asset("scl", pystac.Asset(href=f"/data/{item_id}/SCL.tif"))
    return item


def groups_for(items: Sequence[pystac.Item], bands: Sequence[str], **kwargs) -> list[ItemGroup]:
    return group_items(items, list(bands), **kwargs)


def loaded(group: ItemGroup, arrays: Mapping[str, np.ndarray], chunk: int | None = None) -> xr.Dataset:
    """A Dataset as load_group returns it: ``arrays`` are (t, y, x) DN per variable."""
    first = next(iter(arrays.values()))
    nt, ny, nx = first.shape
    assert nt == len(group.items)
    cy = chunk or ny
    cx = chunk or nx
    times = [np.datetime64(i.datetime.replace(tzinfo=None), "ns") for i in group.items]
    data = {
        name: (("time", "y", "x"), da.from_array(np.asarray(a), chunks=(1, cy, cx)))
        for name, a in arrays.items()
    }
    return xr.Dataset(data, coords={"time": times}, attrs={"sensor": group.sensor.id})


def reflectance_to_landsat_dn(rho: np.ndarray | float) -> np.ndarray:
    """DN of Landsat C2 L2 SR for reflectance ``rho`` (rounded; the test then uses the exact DN)."""
    return np.rint((np.asarray(rho, dtype=np.float64) + 0.2) / 2.75e-5).astype(np.uint16)
