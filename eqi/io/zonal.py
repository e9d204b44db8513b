"""Zonal statistics of product rasters per region with exactextract (exact fractional coverage).

One call summarises one raster (a COG, a VRT mosaic — anything rasterio opens) over many regions
in one pass (exactextract reads each region's window block by block, ``max_cells_in_memory`` at a
time).  Every statistic weights a pixel by the fraction of its area inside the region
(exactextract's coverage fraction), so boundary pixels count partially, not by whether their
centre falls inside.

Regions: a GeoDataFrame (any CRS), a sequence of :class:`eqi.geo.regions.Region`, or of shapely
geometries with ``regions_crs``; they are reprojected to the raster's CRS (vertex by vertex).

Areas (km²) — column ``area_method`` says which rule applied:

* ``equal-area``: the raster CRS is equal-area (areal scale factor 1 at its centre and corners,
  e.g. eqi's ``albers-china``): pixel area = |dx × dy|; region area = the polygon's area in that
  CRS, so class areas of a fully covered, all-valid region add up to it.
* ``spherical``: geographic (degrees) raster: exactextract's per-cell spherical areas
  (``area_spherical_km2``, a sphere, up to ~0.5 % from the WGS 84 ellipsoid); region area is
  geodesic on WGS 84.  Statistics are then weighted by cell area.
* ``planar-scale-corrected``: other projected CRS (e.g. UTM): planar pixel area divided by the
  CRS's areal scale factor at the region's centroid (pyproj ``get_factors``) — exact at the
  centroid, off by the scale variation across the region (UTM: < 0.1 % within a zone); region
  area geodesic on WGS 84.  Use an equal-area grid for official areas (spec §0.2).

Columns (one row per region, in input order): ``region`` (+ the regions' attributes),
``region_km2``, ``covered_km2`` (inside the raster's extent, nodata included), ``valid_km2``,
``valid_fraction`` (= valid / covered), ``outside_fraction`` (share of the region beyond the
raster's extent), ``cells_valid`` (Σ coverage of valid cells), ``pixel_km2``,
``area_method``; with ``cell_counts=True`` also ``cells_touched``, ``cells_interior`` (coverage 1)
and ``cells_boundary`` (0 < coverage < 1); continuous: ``mean, median, min, max, std`` (coverage-weighted; ``std`` the
population standard deviation), ``sum`` (Σ value × coverage, value·pixels) and ``area_sum``
(Σ value × km², e.g. t C from t C km⁻²); categorical: ``majority``, ``class_<code>_km2`` and
``class_<code>_frac`` (share of the valid area) for every code in ``classes`` and every code found.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from exactextract import exact_extract
from exactextract.feature import Feature, FeatureSource
from exactextract.operation import Operation
from exactextract.raster import RasterioRasterSource
from pyproj import CRS, Geod, Proj, Transformer
from rasterio.enums import MaskFlags
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from eqi.errors import InputError
from eqi.geo.regions import Region
from eqi.science.change import TRANSITION_BASE, matrix_from_code_areas, transition_code

__all__ = [
    "AreaModel",
    "area_model",
    "regions_frame",
    "zonal_stats",
    "zonal_stats_many",
    "continuous_ops",
    "categorical_ops",
    "write_transition_raster",
    "transition_matrices",
]

Kind = Literal["continuous", "categorical"]
_ROW = "_eqi_row"
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class AreaModel:
    """How pixel areas of a raster are turned into km² (see the module doc)."""

    method: Literal["equal-area", "spherical", "planar-scale-corrected"]
    pixel_km2: float  # planar |dx·dy| in km² (NaN for geographic rasters)
    crs: CRS

    def correction(self, lon: float, lat: float) -> float:
        """Factor turning planar km² into true km² near (lon, lat) (1 when equal-area)."""
        if self.method != "planar-scale-corrected":
            return 1.0
        return 1.0 / float(Proj(self.crs).get_factors(lon, lat).areal_scale)


def _unit_m(crs: CRS) -> float:
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return float(factor or 1.0)


def area_model(crs: Any, transform: Any, width: int, height: int) -> AreaModel:
    """The area rule for a raster grid: equal-area, spherical or planar-scale-corrected."""
    c = CRS.from_user_input(crs)
    if c.is_geographic:
        return AreaModel("spherical", math.nan, c)
    unit = _unit_m(c)
    px = abs(transform.a * transform.e - transform.b * transform.d) * unit * unit / 1e6
    to_ll = Transformer.from_crs(c, "EPSG:4326", always_xy=True)
    xs = [transform.c + transform.a * fx * width for fx in (0.0, 0.5, 1.0)]
    ys = [transform.f + transform.e * fy * height for fy in (0.0, 0.5, 1.0)]
    lons, lats = to_ll.transform(*np.meshgrid(xs, ys))
    factors = Proj(c).get_factors(np.ravel(lons), np.ravel(lats))
    scale = np.asarray(factors.areal_scale, dtype=np.float64)
    method = "equal-area" if np.all(np.abs(scale - 1.0) < 1e-6) else "planar-scale-corrected"
    return AreaModel(method, px, c)  # type: ignore[arg-type]


def regions_frame(
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    regions_crs: Any = None,
    name_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Regions as a GeoDataFrame with a ``region`` column first (plus their attributes)."""
    if isinstance(regions, gpd.GeoDataFrame):
        if regions.crs is None:
            raise InputError("the regions have no CRS: set one (GeoDataFrame.set_crs) before zonal statistics")
        gdf = regions.reset_index(drop=True)
        if name_field is not None:
            gdf["region"] = gdf[name_field].astype(str)
        elif "region" not in gdf:
            gdf["region"] = gdf["name"].astype(str) if "name" in gdf else [str(i) for i in regions.index]
    else:
        items = list(regions)
        if not items:
            raise InputError("no regions given for zonal statistics")
        if all(isinstance(r, Region) for r in items):
            crs = {r.crs for r in items}
            if len(crs) != 1:
                raise InputError(f"regions come in several CRS ({sorted(crs)}); give them in one")
            rows = [{"region": r.name, **{k: v for k, v in r.attrs.items() if k != "region"}} for r in items]
            gdf = gpd.GeoDataFrame(rows, geometry=[r.geometry for r in items], crs=crs.pop())
        elif all(isinstance(g, BaseGeometry) for g in items):
            if regions_crs is None:
                raise InputError("geometries given without regions_crs: say which CRS they are in")
            gdf = gpd.GeoDataFrame({"region": [str(i) for i in range(len(items))]}, geometry=items, crs=regions_crs)
        else:
            raise TypeError("regions must be a GeoDataFrame, Regions or shapely geometries")
    cols = ["region", *[c for c in gdf.columns if c not in ("region", gdf.geometry.name)]]
    return gdf[[*cols, gdf.geometry.name]]


def _cw(model: AreaModel) -> str:
    return "coverage_weight=area_spherical_km2" if model.method == "spherical" else ""


def _op(name: str, stat: str, *args: str) -> str:
    a = ",".join(x for x in args if x)
    return f"{name}={stat}({a})" if a else f"{name}={stat}"


def _base_ops(model: AreaModel, default: str, cell_counts: bool) -> list[str]:
    cw = _cw(model)
    ops = [_op("cells_valid", "count")]
    if cw:
        ops += [_op("km2_valid", "count", cw), _op("km2_all", "count", cw, f"default_value={default}")]
    if cell_counts:  # each option set is one more accumulator in exactextract: opt-in
        ops += [
            _op("cells_touched", "count", "coverage_weight=none", f"default_value={default}"),
            _op("cells_interior", "count", "coverage_weight=none", "min_coverage_frac=1", f"default_value={default}"),
        ]
    return ops


def continuous_ops(
    model: AreaModel,
    stats: Iterable[str] = ("mean", "median", "min", "max", "std", "sum"),
    *,
    cell_counts: bool = False,
) -> list[str]:
    """exactextract operation strings behind ``kind="continuous"`` (for callers and benchmarks)."""
    cw = _cw(model)
    names = {"mean": "mean", "median": "median", "min": "min", "max": "max", "std": "stdev", "sum": "sum"}
    ops = _base_ops(model, "0", cell_counts)
    for s in stats:
        if s not in names:
            raise ValueError(f"unknown statistic {s!r}; choose from {sorted(names)}")
        ops.append(_op(s, names[s], cw if s in ("mean", "median", "std") else ""))
    if cw and "sum" in stats:
        ops.append(_op("area_sum", "sum", cw))
    return ops


def categorical_ops(model: AreaModel, default: int = 0, *, cell_counts: bool = False) -> list[str]:
    """exactextract operation strings behind ``kind="categorical"``."""
    cw = _cw(model)
    return [
        *_base_ops(model, str(int(default)), cell_counts),
        _op("classes", "unique"),
        _op("fractions", "frac", cw),
        _op("majority", "majority", cw),
    ]


class _Source(RasterioRasterSource):
    """exactextract's rasterio source with an optional extra nodata value."""

    def __init__(self, ds: Any, band: int, nodata: float | None, name: str | None = None) -> None:
        super().__init__(ds, band, name=name)  # a unique name per source: exactextract keys its
        # accumulators by raster name, so unnamed sources in one call would share them
        self._nodata_override = nodata
        flags = set(ds.mask_flag_enums[band - 1])
        # nodata-only masks: exactextract skips nodata and NaN itself, so read without a mask
        self._plain = not self.scaled and flags <= {MaskFlags.nodata, MaskFlags.all_valid}

    def read_window(self, x0: int, y0: int, nx: int, ny: int) -> Any:
        if self._plain:
            return self.ds.read(self.band_idx, window=Window(x0, y0, nx, ny))
        return super().read_window(x0, y0, nx, ny)

    def nodata_value(self) -> Any:
        if self._nodata_override is None:
            return super().nodata_value()
        return self._nodata_override if self.isfloat else int(self._nodata_override)


class _WkbFeature(Feature):
    """A feature handing exactextract its geometry as WKB (no GeoJSON round trip)."""

    def __init__(self, props: dict[str, Any], wkb: bytes) -> None:
        Feature.__init__(self)
        self._props = props
        self._wkb = wkb

    def geometry(self) -> bytes:
        return self._wkb

    def get(self, name: str) -> Any:
        return self._props[name]

    def set(self, name: str, value: Any) -> None:
        self._props[name] = value

    def fields(self) -> list[str]:
        return list(self._props)

    def set_geometry(self, wkb: bytes) -> None:
        self._wkb = wkb

    def set_geometry_format(self) -> str:
        return "wkb"


class _WkbSource(FeatureSource):
    """Regions as WKB, numbered by ``_eqi_row`` (2x faster than geopandas' GeoJSON features)."""

    def __init__(self, geoms: Any, srs_wkt: str) -> None:
        super().__init__()
        self._wkb = shapely.to_wkb(np.asarray(geoms, dtype=object))
        self._srs = srs_wkt

    def count(self) -> int:
        return len(self._wkb)

    def __iter__(self) -> Any:
        for i, wkb in enumerate(self._wkb):
            yield _WkbFeature({_ROW: i}, wkb)

    def srs_wkt(self) -> str:
        return self._srs


def _region_area_km2(geoms_raster: gpd.GeoSeries, geoms_ll: gpd.GeoSeries, model: AreaModel) -> np.ndarray:
    if model.method == "equal-area":
        unit = _unit_m(model.crs)
        return geoms_raster.area.to_numpy() * unit * unit / 1e6
    return np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) / 1e6 for g in geoms_ll])


def _open(raster: str | os.PathLike[str]) -> Any:
    path = Path(raster)
    if not path.exists() and "://" not in str(raster):
        raise InputError(f"raster {raster} not found")
    try:
        ds = rasterio.open(raster)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot open raster {raster}: {exc}") from None
    if ds.crs is None:
        ds.close()
        raise InputError(f"raster {raster} has no CRS")
    return ds


def _ops(model: AreaModel, kind: Kind, stats: Iterable[str], cell_counts: bool) -> list[str]:
    if kind == "continuous":
        return continuous_ops(model, tuple(stats), cell_counts=cell_counts)
    if kind == "categorical":
        return categorical_ops(model, cell_counts=cell_counts)
    raise ValueError(f"kind must be continuous or categorical, not {kind!r}")


def _operation(op: str, prefix: str, src: Any) -> Operation:
    """An exactextract operation string (``name=stat(opt=v,...)``) bound to one raster source."""
    name, _, rest = op.partition("=")
    stat, _, args = rest.partition("(")
    options = dict(a.split("=", 1) for a in args.rstrip(")").split(",") if a)
    return Operation(stat, f"{prefix}{name}", src, None, options)


def _extract(sources: Sequence[Any], feats: Any, ops: Sequence[Any], strategy: str, max_cells_in_memory: int) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Spatial reference system of input features", RuntimeWarning)
        raw = exact_extract(
            list(sources) if len(sources) > 1 else sources[0], feats, list(ops), include_cols=[_ROW],
            output="pandas", strategy=strategy, max_cells_in_memory=max_cells_in_memory,
        )  # fmt: skip
    return raw.sort_values(_ROW).reset_index(drop=True)


@dataclass(frozen=True)
class _Setup:
    """Regions prepared for one raster grid: frame, reprojected geometries, area model."""

    gdf: gpd.GeoDataFrame
    in_raster: gpd.GeoDataFrame
    ll: gpd.GeoDataFrame
    model: AreaModel
    extent: Any


def _setup(ds: Any, gdf: gpd.GeoDataFrame) -> _Setup:
    model = area_model(ds.crs, ds.transform, ds.width, ds.height)
    return _Setup(gdf, gdf.to_crs(ds.crs), gdf.to_crs("EPSG:4326"), model, shapely.box(*ds.bounds))


def zonal_stats(
    raster: str | os.PathLike[str],
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    kind: Kind = "continuous",
    band: int = 1,
    nodata: float | None = None,
    classes: Iterable[int] | None = None,
    stats: Iterable[str] = ("mean", "median", "min", "max", "std", "sum"),
    regions_crs: Any = None,
    name_field: str | None = None,
    cell_counts: bool = False,
    strategy: Literal["feature-sequential", "raster-sequential"] = "feature-sequential",
    max_cells_in_memory: int = 30_000_000,
) -> pd.DataFrame:
    """Statistics of one raster band per region (see the module doc for every column).

    Parameters
    ----------
    raster
        Path of a GeoTIFF/COG/VRT (anything rasterio opens).
    regions
        GeoDataFrame (with CRS), :class:`~eqi.geo.regions.Region` list, or shapely geometries
        with ``regions_crs``.
    kind
        ``"continuous"`` (mean, median, …) or ``"categorical"`` (class areas and fractions).
    nodata
        Extra value treated as nodata besides the raster's own nodata/mask (NaN always is).
    classes
        Categorical: codes that always get columns (0 km² when absent); codes found but not
        listed get columns too.
    stats
        Continuous statistics to compute (subset of mean, median, min, max, std, sum).
    cell_counts
        Also count the cells touched (coverage > 0), interior (coverage 1) and on the boundary
        (costs one more exactextract accumulator: ~1.5x the time).
    strategy, max_cells_in_memory
        Passed to :func:`exactextract.exact_extract` (feature-sequential keeps memory bounded).
    """
    stats = tuple(stats)
    gdf = regions_frame(regions, regions_crs=regions_crs, name_field=name_field)
    with _open(raster) as ds:
        st = _setup(ds, gdf)
        ops = _ops(st.model, kind, stats, cell_counts)
        feats = _WkbSource(st.in_raster.geometry.values, ds.crs.to_wkt())
        raw = _extract([_Source(ds, band, nodata)], feats, ops, strategy, max_cells_in_memory)
    return _table(raw, st, kind=kind, stats=stats, classes=classes, cell_counts=cell_counts)


def _table(raw: pd.DataFrame, st: _Setup, *, kind: Kind, stats: Sequence[str], classes: Iterable[int] | None,
           cell_counts: bool) -> pd.DataFrame:  # fmt: skip
    """The documented columns from exactextract's raw results (one row per region, input order)."""
    model, in_raster, ll = st.model, st.in_raster, st.ll
    out = pd.DataFrame(st.gdf.drop(columns=st.gdf.geometry.name)).reset_index(drop=True)
    centroids = ll.geometry.representative_point()
    corr = np.array([model.correction(p.x, p.y) for p in centroids])
    out["region_km2"] = _region_area_km2(in_raster.geometry, ll.geometry, model)
    if model.method == "spherical":
        covered = raw["km2_all"].to_numpy(dtype=float)
        valid = raw["km2_valid"].to_numpy(dtype=float)
        px = np.full(len(out), math.nan)
    else:
        # Σ coverage over the cells in the extent = area of (region ∩ extent): no raster pass
        px = model.pixel_km2 * corr
        unit = _unit_m(model.crs)
        inside = shapely.area(shapely.intersection(np.asarray(in_raster.geometry.values), st.extent))
        covered = inside * unit * unit / 1e6 * corr
        valid = raw["cells_valid"].to_numpy(dtype=float) * px
    out["covered_km2"] = covered
    out["valid_km2"] = valid
    with np.errstate(divide="ignore", invalid="ignore"):
        out["valid_fraction"] = np.where(covered > 0, valid / covered, np.nan)
        out["outside_fraction"] = np.clip(1.0 - covered / out["region_km2"].to_numpy(), 0.0, 1.0)
    if cell_counts:
        out["cells_touched"] = raw["cells_touched"].to_numpy(dtype=float)
        out["cells_interior"] = raw["cells_interior"].to_numpy(dtype=float)
        out["cells_boundary"] = out["cells_touched"] - out["cells_interior"]
    out["cells_valid"] = raw["cells_valid"].to_numpy(dtype=float)
    out["pixel_km2"] = px
    out["area_method"] = model.method
    if kind == "continuous":
        for s in stats:
            col = raw[s].to_numpy(dtype=float)
            out[s] = np.where(out["cells_valid"] > 0, col, np.nan) if s != "sum" else col
        if "sum" in stats:
            out["area_sum"] = raw["area_sum"].to_numpy(dtype=float) if model.method == "spherical" else raw["sum"].to_numpy(dtype=float) * px
    else:
        _class_columns(out, raw, classes, valid)
    return out


def _class_columns(out: pd.DataFrame, raw: pd.DataFrame, classes: Iterable[int] | None, valid_km2: np.ndarray) -> None:
    found: set[int] = set()
    per_row: list[dict[int, float]] = []
    for codes, fracs in zip(raw["classes"], raw["fractions"], strict=True):
        d = {int(c): float(f) for c, f in zip(np.atleast_1d(codes), np.atleast_1d(fracs), strict=True)}
        found.update(d)
        per_row.append(d)
    listed = [int(c) for c in classes] if classes is not None else []
    codes = listed + sorted(found - set(listed))
    majority = raw["majority"].to_numpy(dtype=float)
    out["majority"] = np.where(valid_km2 > 0, majority, np.nan)
    for c in codes:
        frac = np.array([d.get(c, 0.0) for d in per_row])
        out[f"class_{c}_km2"] = frac * valid_km2
        out[f"class_{c}_frac"] = np.where(valid_km2 > 0, frac, np.nan)


def class_areas(row: Mapping[str, Any]) -> dict[int, float]:
    """``{code: km²}`` from one categorical :func:`zonal_stats` row (``class_<code>_km2`` columns)."""
    out = {}
    for key, value in row.items():
        if key.startswith("class_") and key.endswith("_km2"):
            out[int(key[len("class_") : -len("_km2")])] = float(value)
    return out


__all__.append("class_areas")


def zonal_stats_many(
    rasters: Mapping[str, tuple[str | os.PathLike[str], Kind]],
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    one_pass: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """One table for several products: ``{product: (path, kind)}`` → columns ``<product>_<stat>``
    (region attributes and ``region_km2`` once).

    With ``one_pass`` (default) and every raster on one grid (CRS, transform, size), a single
    exactextract call serves all products: each region's coverage fractions are computed once
    and every raster is read window by window beside them (the results are those of separate
    :func:`zonal_stats` calls).  Rasters on different grids are summarised one by one.
    Other keyword arguments are those of :func:`zonal_stats` and apply to every product.
    """
    if not rasters:
        raise ValueError("no rasters given")
    tables = _tables_one_pass(rasters, regions, **kwargs) if one_pass and len(rasters) > 1 else None
    if tables is None:
        tables = {product: zonal_stats(path, regions, kind=kind, **kwargs) for product, (path, kind) in rasters.items()}
    merged: pd.DataFrame | None = None
    for product, t in tables.items():
        keep = [c for c in t.columns if c not in ("region_km2",)]
        first = [c for c in keep if c not in _STAT_COLUMNS and not c.startswith("class_")]
        stat_cols = [c for c in keep if c not in first]
        renamed = t[stat_cols].add_prefix(f"{product}_")
        if merged is None:
            merged = pd.concat([t[[*first, "region_km2"]], renamed], axis=1)
        else:
            merged = pd.concat([merged, renamed], axis=1)
    assert merged is not None
    return merged


def _tables_one_pass(
    rasters: Mapping[str, tuple[str | os.PathLike[str], Kind]],
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    band: int = 1,
    nodata: float | None = None,
    classes: Iterable[int] | None = None,
    stats: Iterable[str] = ("mean", "median", "min", "max", "std", "sum"),
    regions_crs: Any = None,
    name_field: str | None = None,
    cell_counts: bool = False,
    strategy: Literal["feature-sequential", "raster-sequential"] = "feature-sequential",
    max_cells_in_memory: int = 30_000_000,
) -> dict[str, pd.DataFrame] | None:
    """:func:`zonal_stats` tables of every raster from one exactextract call (None: not one grid)."""
    stats = tuple(stats)
    gdf = regions_frame(regions, regions_crs=regions_crs, name_field=name_field)
    datasets = []
    try:
        for path, _kind in rasters.values():
            datasets.append(_open(path))
        first = datasets[0]
        grid = (first.crs, first.transform, first.width, first.height)
        if any((d.crs, d.transform, d.width, d.height) != grid for d in datasets[1:]):
            return None
        st = _setup(first, gdf)
        sources, ops = [], []
        for k, (ds, (_path, kind)) in enumerate(zip(datasets, rasters.values(), strict=True)):
            src = _Source(ds, band, nodata, name=f"r{k}")
            sources.append(src)
            ops += [_operation(op, f"r{k}_", src) for op in _ops(st.model, kind, stats, cell_counts)]
        feats = _WkbSource(st.in_raster.geometry.values, first.crs.to_wkt())
        raw = _extract(sources, feats, ops, strategy, max_cells_in_memory)
    finally:
        for d in datasets:
            d.close()
    out = {}
    for k, (product, (_path, kind)) in enumerate(rasters.items()):
        prefix = f"r{k}_"
        part = raw[[c for c in raw.columns if c.startswith(prefix)]]
        part = part.rename(columns={c: c[len(prefix) :] for c in part.columns})
        out[product] = _table(part, st, kind=kind, stats=stats, classes=classes, cell_counts=cell_counts)
    return out


_STAT_COLUMNS = {
    "covered_km2", "valid_km2", "valid_fraction", "outside_fraction", "cells_touched", "cells_interior",
    "cells_boundary", "cells_valid", "pixel_km2", "area_method", "mean", "median", "min", "max", "std",
    "sum", "area_sum", "majority",
}  # fmt: skip


# ------------------------------------------------------------------------------------ line layers


def line_length_km(
    lines: gpd.GeoDataFrame | str | os.PathLike[str],
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    regions_crs: Any = None,
    name_field: str | None = None,
) -> pd.DataFrame:
    """Length (km, geodesic on WGS 84) of a line layer inside each region — e.g. river
    centrelines for EI's water network density (``river_length_km``).

    ``lines``: a GeoDataFrame with a CRS or a vector file; clipping is done in longitude/latitude
    (segments between vertices as straight lines there), lengths on the ellipsoid.
    """
    if isinstance(lines, gpd.GeoDataFrame):
        layer = lines
    else:
        try:
            layer = gpd.read_file(lines)
        except Exception as exc:  # pyogrio raises several types
            raise InputError(f"cannot read the line layer {lines}: {exc}") from None
    if layer.crs is None:
        raise InputError("the line layer has no CRS; set one before measuring lengths")
    ll = layer.to_crs("EPSG:4326").geometry
    ll = ll[~ll.is_empty & ll.notna()]
    if not all(t in ("LineString", "MultiLineString") for t in ll.geom_type.unique()):
        raise InputError("the line layer must hold LineString or MultiLineString features")
    geoms = np.asarray(ll.values, dtype=object)
    tree = shapely.STRtree(geoms)
    frame = regions_frame(regions, regions_crs=regions_crs, name_field=name_field)
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name)).reset_index(drop=True)
    lengths = []
    for region in frame.to_crs("EPSG:4326").geometry:
        hits = tree.query(region, predicate="intersects")
        parts = shapely.intersection(geoms[hits], region)
        lengths.append(sum(_GEOD.geometry_length(p) for p in parts if not p.is_empty) / 1000.0)
    out["line_length_km"] = lengths
    return out


__all__.append("line_length_km")


# ------------------------------------------------------------------------------------ transitions


def write_transition_raster(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    block: int = 1024,
    base: int = TRANSITION_BASE,
) -> Path:
    """Write the combined class raster ``before × base + after`` (uint16, nodata 0) block by block.

    Both rasters must share grid (CRS, transform, size) and use 0 as nodata.
    """
    out_path = Path(out)
    with rasterio.open(before) as b, rasterio.open(after) as a:
        if (b.crs, b.transform, b.width, b.height) != (a.crs, a.transform, a.width, a.height):
            raise InputError(f"{before} and {after} are not on the same grid; transitions need one grid")
        profile = {
            "driver": "GTiff", "width": b.width, "height": b.height, "count": 1, "dtype": "uint16",
            "crs": b.crs, "transform": b.transform, "nodata": 0, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        }  # fmt: skip
        with rasterio.open(out_path, "w", **profile) as dst:
            for row in range(0, b.height, block):
                for col in range(0, b.width, block):
                    w = Window(col, row, min(block, b.width - col), min(block, b.height - row))
                    dst.write(transition_code(b.read(1, window=w), a.read(1, window=w), base=base), 1, window=w)
    return out_path


def transition_matrices(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    regions: gpd.GeoDataFrame | Sequence[Region] | Sequence[BaseGeometry],
    *,
    classes: Iterable[int] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> dict[str, pd.DataFrame]:
    """Land-cover transition matrix (km², rows from / columns to) per region, in one zonal pass
    over the combined class raster (written to ``workdir`` or a temporary folder)."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="eqi-transitions-") as tmp:
        code_path = write_transition_raster(before, after, Path(tmp) / "transition.tif")
        table = zonal_stats(code_path, regions, kind="categorical", **kwargs)
    out = {}
    for _, row in table.iterrows():
        out[str(row["region"])] = matrix_from_code_areas(class_areas(row), classes=classes)
    return out
