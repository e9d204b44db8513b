"""The plain script the end-to-end benchmark runs against ``eqi run``: written as a user would.

A season's cloud-free median composite, NDVI and (with ``--rsei``) RSEI of the Landsat C2 L2
scenes in a stac-geoparquet archive, with odc-stac (lazy load, Dask chunks), xarray (QA_PIXEL
bit mask, scaling, ``.median("time")``), NumPy (RSEI's PCA) and rioxarray (COG output).  It
imports nothing from eqi.

    python bench/plain_odc_stac.py --archive A.parquet --aoi AOI.geojson --year 2021 \\
        --season 01-01/12-31 --crs EPSG:32648 --resolution 30 --out OUT [--composite --rsei]

Outputs: ``OUT/ndvi.tif`` (+ ``blue.tif .. swir22.tif`` with ``--composite``, ``rsei.tif`` with
``--rsei``), float32 COGs with NaN as nodata.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import rustac
import xarray as xr
from odc.geo.geom import Geometry

# Landsat Collection 2 Level-2 scaling (USGS Landsat 8-9 C2 L2 Science Product Guide)
SR_SCALE, SR_OFFSET = 2.75e-5, -0.2
ST_SCALE, ST_OFFSET = 0.00341802, 149.0
# QA_PIXEL bits: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow
QA_BAD = 0b111111
# Tasseled-cap wetness for Landsat 8 OLI surface reflectance (Baig et al. 2014)
WET = {"blue": 0.1511, "green": 0.1973, "red": 0.3283, "nir": 0.3407, "swir16": -0.7117,
       "swir22": -0.4559}  # fmt: skip
REFLECTIVE = ["blue", "green", "red", "nir", "swir16", "swir22"]


def read_items(path: str, start: datetime, end: datetime) -> list[pystac.Item]:
    """Landsat C2 L2 items of the archive acquired in [start, end]."""
    features = rustac.read_sync(path)["features"]
    items = []
    for feature in features:
        feature["bbox"] = list(feature["bbox"])
        item = pystac.Item.from_dict(feature)
        when = item.datetime.replace(tzinfo=None)
        if item.collection_id == "landsat-c2-l2" and start <= when <= end:
            items.append(item)
    return items


def write_cog(da: xr.DataArray, path: Path) -> None:
    da.astype("float32").rio.write_nodata(np.nan).rio.to_raster(
        path, driver="COG", compress="DEFLATE", predictor=2, blocksize=512
    )


def rsei(comp: xr.Dataset) -> xr.DataArray:
    """RSEI (Xu 2013): PC1 of normalised NDVI, WET, LST, NDBSI over land pixels, scaled to 0-1."""
    b, g, r, n, s1 = (comp[k].values for k in ("blue", "green", "red", "nir", "swir16"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (n - r) / (n + r)
        wet = sum(comp[k].values * c for k, c in WET.items())
        si = ((s1 + r) - (n + b)) / ((s1 + r) + (n + b))
        ibi = (2 * s1 / (s1 + n) - (n / (n + r) + g / (g + s1))) / (
            2 * s1 / (s1 + n) + (n / (n + r) + g / (g + s1))
        )
        ndbsi = (si + ibi) / 2
        mndwi = (g - s1) / (g + s1)
    lst = comp["lwir"].values
    layers = np.stack([ndvi, wet, lst, ndbsi]).astype(np.float64)
    valid = np.isfinite(layers).all(axis=0) & ~(mndwi > 0)  # water is left out
    x = layers[:, valid]
    lo, hi = np.percentile(x, 1, axis=1), np.percentile(x, 99, axis=1)
    x = np.clip((x - lo[:, None]) / (hi - lo)[:, None], 0, 1)
    eigval, eigvec = np.linalg.eigh(np.cov(x))
    pc1 = eigvec[:, np.argmax(eigval)]
    if pc1[0] + pc1[1] < 0:  # greenness and wetness load positively
        pc1 = -pc1
    score = pc1 @ (x - x.mean(axis=1, keepdims=True))
    out = np.full(valid.shape, np.nan, np.float32)
    out[valid] = (score - score.min()) / (score.max() - score.min())
    return comp["red"].copy(data=out).rename("rsei")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", required=True)
    p.add_argument("--aoi", required=True)
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--season", default="06-01/09-30")
    p.add_argument("--crs", required=True)
    p.add_argument("--resolution", type=float, default=30.0)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--composite", action="store_true", help="also write the median bands")
    p.add_argument("--rsei", action="store_true", help="also write RSEI")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    first, last = args.season.split("/")
    start = datetime.strptime(f"{args.year}-{first}", "%Y-%m-%d")
    end = datetime.strptime(f"{args.year}-{last} 23:59:59", "%Y-%m-%d %H:%M:%S")
    items = read_items(args.archive, start, end)
    aoi = json.loads(Path(args.aoi).read_text())["features"][0]["geometry"]

    needs_all = args.composite or args.rsei
    bands = (REFLECTIVE + (["lwir"] if args.rsei else [])) if needs_all else ["red", "nir"]
    ds = odc.stac.load(
        items,
        bands=[*bands, "qa_pixel"],
        geopolygon=Geometry(aoi, crs="EPSG:4326"),
        crs=args.crs,
        resolution=args.resolution,
        chunks={"x": args.chunk, "y": args.chunk},
        groupby="solar_day",
    )
    clear = (ds["qa_pixel"] & QA_BAD) == 0
    scaled = {}
    for band in bands:
        dn = ds[band].where(clear & (ds[band] != 0))
        scaled[band] = dn * ST_SCALE + ST_OFFSET if band == "lwir" else dn * SR_SCALE + SR_OFFSET
    comp = xr.Dataset(scaled).median("time").astype("float32").compute()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.composite:
        for band in REFLECTIVE:
            write_cog(comp[band], args.out / f"{band}.tif")
    ndvi = (comp["nir"] - comp["red"]) / (comp["nir"] + comp["red"])
    write_cog(ndvi, args.out / "ndvi.tif")
    if args.rsei:
        write_cog(rsei(comp), args.out / "rsei.tif")
    print(f"{len(items)} scenes -> {sorted(p.name for p in args.out.glob('*.tif'))}")


if __name__ == "__main__":
    main()
