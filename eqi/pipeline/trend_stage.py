"""Per-pixel trends over the evaluated years (issue 8 item 6): Theil–Sen slope, Mann–Kendall p
and trend class of NDVI, FVC and RSEI, as styled COGs, clipped per region, with per-region areas
significantly improving / degrading / without significant trend.

Asked for with the pseudo-product ``trend`` (``--products ndvi,fvc,rsei,trend``); computed after
the region tasks from the area mosaics ``OUT/areas/<area>/<year>/<product>.vrt`` of the run's
years (at least ``min_years`` of ``configs/methods/trend.yaml``; fewer: skipped with a note).

Outputs (``<first>-<last>`` = the first and last year used):

* ``OUT/areas/<area>/trends/<first>-<last>/<product>_trend_slope.tif`` (float32, product units per
  year, NaN where fewer than ``min_years`` years are valid), ``<product>_trend_p.tif`` (float32,
  two-sided Mann–Kendall p) and ``<product>_trend_class.tif`` (uint8: 1 significant improvement,
  2 no significant trend, 3 significant degradation, 0 nodata), each with its ``.qml``;
  ``summary.json`` (every region) and ``trends.json`` (done marker with the task id, last);
* ``OUT/<region>/trends/<first>-<last>/``: the same three rasters clipped to the region (pixel
  centre inside), and ``summary.json``: km² per class (exact fractional coverage, from
  :func:`eqi.io.zonal.zonal_stats` on the area class raster) and the mean / median slope.

Computation: the yearly mosaics are stacked lazily (Dask, one chunk in time) and
:func:`eqi.science.trend.theil_sen_mk_dask` runs block by block; slope and p are stored in one
pass (``dask.array.store``) into a temporary tiled GeoTIFF, from which the COGs are written.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from rasterio.windows import Window

from eqi.errors import InputError
from eqi.geo.regions import Region
from eqi.io.atomic import atomic_write_json
from eqi.io.cog import write_cog
from eqi.io.qml import (
    categorical_qml,
    colormap_from_classes,
    continuous_qml,
    names_from_classes,
    write_qml,
)
from eqi.io.raster import open_raster, read_layer, region_mask, write_vrt
from eqi.io.stac import eqi_version
from eqi.io.zonal import zonal_stats
from eqi.palettes import ramp
from eqi.params import Profile
from eqi.pipeline.tasks import check_done, params_hash
from eqi.pipeline.writing import display_range
from eqi.products import ClassEntry, spec_for
from eqi.resources import load_profile
from eqi.science.trend import TREND_FIELDS, theil_sen_mk_dask, trend_class

__all__ = ["TREND_PRODUCTS", "trend_rasters", "clip_to_region", "run_trends"]

TREND_PRODUCTS: tuple[str, ...] = ("ndvi", "fvc", "rsei")  # higher is better for all three
_COLOURS = {1: "#1a9641", 2: "#e0e0e0", 3: "#d7191c"}
_SLOPE, _P = TREND_FIELDS.index("slope"), TREND_FIELDS.index("p")


def trend_classes(profile: Profile) -> list[ClassEntry]:
    """Class table of the trend class raster (value, colour, "中文 English") from the profile."""
    return [(int(c["value"]), _COLOURS.get(int(c["value"]), "#808080"), f"{c['zh']} {c['en']}")
            for c in profile.value("classes", "values")]  # fmt: skip


class _Bands:
    """``dask.array.store`` target: one band of a rasterio dataset, written window by window."""

    def __init__(self, dst: Any, band: int, lock: threading.Lock) -> None:
        self.dst, self.band, self.lock = dst, band, lock
        self.shape = (dst.height, dst.width)
        self.dtype = np.dtype("float32")
        self.ndim = 2

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        with self.lock:
            self.dst.write(np.asarray(value, dtype=np.float32), self.band, window=Window.from_slices(*key))


def _stack(mosaics: Mapping[int, Path], chunk: int) -> tuple[da.Array, xr.DataArray]:
    layers = [read_layer(mosaics[y], chunk=chunk) for y in sorted(mosaics)]
    first = layers[0]
    for year, layer in zip(sorted(mosaics), layers, strict=True):
        if layer.shape != first.shape or layer.odc.geobox != first.odc.geobox:
            raise InputError(f"the {year} mosaic {mosaics[year]} is not on the grid of the others; "
                             "trends need one grid (rerun those years with the same configuration)")  # fmt: skip
    return da.stack([layer.data.astype(np.float32) for layer in layers]), first


def _sampled(arr: xr.DataArray, max_pixels: int = 1_000_000) -> xr.DataArray:
    """A regular subsample of ``arr`` (every k-th row and column) for display ranges: a
    province-wide raster is never loaded whole."""
    step = max(1, int(np.ceil(np.sqrt(arr.size / max_pixels))))
    return arr[::step, ::step]


def _spread(arr: xr.DataArray) -> float:
    """Half-width of a symmetric display range for slopes (98th percentile of |slope|)."""
    return float(np.nanmax(np.abs(display_range(_sampled(arr))))) or 1e-3


def _like(template: xr.DataArray, data: Any) -> xr.DataArray:
    return xr.DataArray(data, dims=("y", "x"), coords=template.coords)


def _write(name: str, arr: xr.DataArray, path: Path, *, kind: str, description: str, units: str | None,
           tags: Mapping[str, str], classes: Sequence[ClassEntry] | None = None,
           display: tuple[float, float] | None = None) -> Path:  # fmt: skip
    """A styled COG: continuous float32 (NaN nodata) or categorical uint8 (nodata 0)."""
    product_tags = {**tags, "EQI_PRODUCT": name}
    if tags.get("EQI_SIMULATED") == "true":
        description = f"{description} [SIMULATED DATA]"
    if kind == "categorical":
        write_cog(arr, path, nodata=0, description=description, kind="categorical", tags=product_tags,
                  colormap=colormap_from_classes(classes or ()), category_names=names_from_classes(classes or ()))  # fmt: skip
        write_qml(path, categorical_qml(list(classes or ()), nodata=0, label=description))
        return path
    write_cog(arr, path, nodata=float("nan"), description=description, kind="continuous", units=units,
              tags=product_tags)  # fmt: skip
    slope = display is not None
    lo, hi = display if slope else (0.0, 1.0)  # slopes: symmetric; p-values: 0-1
    write_qml(path, continuous_qml(lo, hi, ramp("change" if slope else "count", lo, hi), nodata=None,
                                   label=description, precision=4))  # fmt: skip
    return path


def trend_rasters(
    mosaics: Mapping[int, Path],
    out_dir: Path,
    product: str,
    profile: Profile,
    *,
    tags: Mapping[str, str],
    chunk: int = 512,
) -> dict[str, Path]:
    """Slope, p and class COGs of ``product`` from its yearly mosaics ``{year: path}``.

    Returns ``{"slope": path, "p": path, "class": path}``.  Pixels with fewer than the profile's
    ``min_years`` valid years are NaN (slope, p) and 0 (class).
    """
    years = sorted(mosaics)
    min_years = int(profile.value("min_years"))
    stack, template = _stack(mosaics, chunk)
    stats = theil_sen_mk_dask(stack, years, min_years=min_years)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{product}-trend-{years[0]}-{years[-1]}.tif"
    geobox: GeoBox = template.odc.geobox
    profile_tif = {
        "driver": "GTiff", "width": geobox.width, "height": geobox.height, "count": 2, "dtype": "float32",
        "crs": geobox.crs.to_wkt(), "transform": geobox.affine, "nodata": float("nan"), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "zstd", "zstd_level": 1, "bigtiff": "if_safer",
    }  # fmt: skip
    try:
        with rasterio.open(tmp, "w", **profile_tif) as dst:  # slope and p in one pass over the stack
            lock = threading.Lock()
            da.store([stats[_SLOPE], stats[_P]], [_Bands(dst, 1, lock), _Bands(dst, 2, lock)], lock=False)
        slope, p_arr = (_like(template, da.from_array(_BandReader(tmp, b, geobox.shape), chunks=chunk)) for b in (1, 2))
        units = spec_for(product).units
        label = f"{spec_for(product).description}: Theil-Sen slope {years[0]}-{years[-1]}"
        spread = _spread(slope)
        paths = {
            "slope": _write(f"{product}_trend_slope", slope, out_dir / f"{product}_trend_slope.tif", kind="continuous",
                            description=label, units=f"{units or '1'} per year", tags=tags, display=(-spread, spread)),
            "p": _write(f"{product}_trend_p", p_arr, out_dir / f"{product}_trend_p.tif", kind="continuous",
                        description=f"{spec_for(product).description}: Mann-Kendall p {years[0]}-{years[-1]}",
                        units="1", tags=tags),
        }  # fmt: skip
        cls = da.map_blocks(trend_class, slope.data, p_arr.data, profile, dtype=np.uint8)
        paths["class"] = _write(
            f"{product}_trend_class", _like(template, cls), out_dir / f"{product}_trend_class.tif",
            kind="categorical", description=f"{spec_for(product).description}: trend class {years[0]}-{years[-1]} "
            f"(Mann-Kendall p < {profile.value('alpha')})", units=None, tags=tags, classes=trend_classes(profile),
        )  # fmt: skip
    finally:
        tmp.unlink(missing_ok=True)
    return paths


class _BandReader:
    """Array-like reading one band of a GeoTIFF window by window (for ``da.from_array``)."""

    def __init__(self, path: Path, band: int, shape: tuple[int, int]) -> None:
        self.path, self.band, self.shape = path, band, shape
        self.dtype = np.dtype("float32")
        self.ndim = 2

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        with rasterio.open(self.path) as src:
            return src.read(self.band, window=Window.from_slices(*key, height=src.height, width=src.width))


def clip_to_region(area_tif: Path, area_geobox: GeoBox, region: Region, grid: Any, out_dir: Path, *,
                   tags: Mapping[str, str], classes: Sequence[ClassEntry] | None, chunk: int = 512) -> Path:  # fmt: skip
    """``area_tif`` clipped to ``region`` (pixel centre inside; outside = nodata), styled, in ``out_dir``."""
    geobox = grid.region_geobox(region.geometry)
    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(area_tif) as src:
        dtype, nodata, description = src.dtypes[0], src.nodata, src.descriptions[0] or area_tif.stem
        units = src.units[0] or None
    vrt = write_vrt(out_dir / f".{area_tif.stem}.vrt", geobox, [(area_tif, area_geobox)], dtype=dtype,
                    nodata=nodata, description=description)  # fmt: skip
    try:
        da_ = open_raster(vrt, chunk=chunk)
        inside = xr.DataArray(region_mask(region.geometry, geobox), dims=("y", "x"), coords={"y": da_.y, "x": da_.x})
        categorical = np.issubdtype(np.dtype(dtype), np.integer)
        clipped = da_.where(inside, 0).astype(dtype) if categorical else da_.where(inside)
        clipped = clipped.assign_coords(xr_coords(geobox))
        path = out_dir / area_tif.name
        description = description.replace(" [SIMULATED DATA]", "")
        if categorical:
            return _write(area_tif.stem, clipped, path, kind="categorical", description=description, units=None,
                          tags=tags, classes=classes)  # fmt: skip
        spread = _spread(clipped) if area_tif.stem.endswith("_slope") else None
        return _write(area_tif.stem, clipped, path, kind="continuous", description=description, units=units,
                      tags=tags, display=(-spread, spread) if spread else None)  # fmt: skip
    finally:
        vrt.unlink(missing_ok=True)


def region_summaries(paths: Mapping[str, Mapping[str, Path]], regions: Sequence[Region]) -> dict[str, dict[str, Any]]:
    """Per region and product: km² significantly improving / no trend / degrading / not evaluated
    (exact fractional coverage) and the mean / median slope."""
    out: dict[str, dict[str, Any]] = {r.name: {} for r in regions}
    for product, files in paths.items():
        classes = zonal_stats(files["class"], regions, kind="categorical", classes=(1, 2, 3))
        slopes = zonal_stats(files["slope"], regions, stats=("mean", "median"))
        for (_, c), (_, s), region in zip(classes.iterrows(), slopes.iterrows(), regions, strict=True):
            out[region.name][product] = {
                "improving_km2": float(c["class_1_km2"]), "no_trend_km2": float(c["class_2_km2"]),
                "degrading_km2": float(c["class_3_km2"]),
                "not_evaluated_km2": float(c["region_km2"] - c["valid_km2"]),
                "region_km2": float(c["region_km2"]),
                "slope_mean_per_year": _num(s["mean"]), "slope_median_per_year": _num(s["median"]),
            }  # fmt: skip
    return out


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def run_trends(plan: Any, *, overwrite: bool = False, progress: Callable[[str], None] = print,
               profile: Profile | None = None) -> list[Path]:  # fmt: skip
    """The trend stage of a run (``plan``: :class:`eqi.pipeline.plan.Plan`); returns files written."""
    profile = profile or load_profile("trend")
    min_years = int(profile.value("min_years"))
    products = [p for p in TREND_PRODUCTS if p in plan.outputs]
    if not products:
        progress(f"trends: none of {', '.join(TREND_PRODUCTS)} among the products; nothing to do")
        return []
    mosaics = {p: {y: plan.area_root / str(y) / f"{p}.vrt" for y in plan.years} for p in products}
    mosaics = {p: {y: m for y, m in ms.items() if m.is_file()} for p, ms in mosaics.items()}
    products = [p for p in products if len(mosaics[p]) >= min_years]
    if not products:
        progress(f"trends: fewer than {min_years} evaluated years (trend.min_years); skipped")
        return []
    years = sorted({y for p in products for y in mosaics[p]})
    period = f"{years[0]}-{years[-1]}"
    area_dir = plan.area_root / "trends" / period
    marker = area_dir / "trends.json"
    task_id = f"trends_{plan.area.slug}_{period}_" + params_hash(
        {"years": {p: sorted(mosaics[p]) for p in products}, "config": plan.config_hash,
         "profile": profile.sha256, "eqi": eqi_version()}
    )  # fmt: skip
    if not overwrite and check_done(marker, task_id) is None:
        progress(f"skip trends {period}: done (task {task_id}; --overwrite to redo)")
        return []
    marker.unlink(missing_ok=True)
    simulated = bool(plan.options.get("simulated"))
    tags = {"EQI_VERSION": eqi_version(), "EQI_YEARS": ",".join(map(str, years)), "EQI_SEASON": plan.stack.season,
            "EQI_SIMULATED": "true" if simulated else "false", "EQI_TREND_PROFILE": f"{profile.id} {profile.version}"}  # fmt: skip
    if simulated:
        tags["EQI_NOTE"] = "SIMULATED DATA - produced by the eqi offline demo, not an observation"
    written: list[Path] = []
    paths: dict[str, dict[str, Path]] = {}
    area_geobox = plan.stack.grid.region_geobox(plan.area.geometry)
    classes = trend_classes(profile)
    for product in products:
        progress(f"trends {product} {period}: {len(mosaics[product])} years")
        paths[product] = trend_rasters(mosaics[product], area_dir, product, profile,
                                       tags={**tags, "EQI_REGION": plan.area.slug}, chunk=plan.stack.chunk)  # fmt: skip
        written += list(paths[product].values())
    regions = list(plan.area.regions)
    summaries = region_summaries(paths, regions)
    meta = {"years": years, "min_years": min_years, "alpha": profile.value("alpha"),
            "profile": {"id": profile.id, "version": profile.version}, "simulated": simulated,
            "classes": {str(v): name for v, _, name in classes}}  # fmt: skip
    for region in regions:
        rdir = plan.out / region.name / "trends" / period
        rtags = {**tags, "EQI_REGION": region.name}
        for files in paths.values():
            for key, f in files.items():
                written.append(clip_to_region(f, area_geobox, region, plan.stack.grid, rdir, tags=rtags,
                                              classes=classes if key == "class" else None, chunk=plan.stack.chunk))  # fmt: skip
        written.append(atomic_write_json(rdir / "summary.json", {"region": region.name, **meta,
                                                                  "products": summaries[region.name]}))  # fmt: skip
    written.append(atomic_write_json(area_dir / "summary.json", {"area": plan.area.slug, **meta, "regions": summaries}))
    assets = {str(f.relative_to(plan.out)): {"href": os.path.relpath(f, area_dir), "file:size": f.stat().st_size}
              for f in written}  # fmt: skip
    written.append(atomic_write_json(marker, {"properties": {"eqi:task_id": task_id, "eqi:products": products,
                                                             "eqi:years": years}, "assets": assets}))  # fmt: skip
    return written
