"""Turning a :class:`GeometrySpec` into a checked WGS 84 shapely geometry."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from eqi.errors import ConfigError, EqiError
from eqi.geo.gcj02 import gcj02_to_wgs84
from eqi.pipeline.assess.config import GeometrySpec

__all__ = ["resolve_geometry", "check_kind"]

_KINDS = {
    "linear": ("LineString", "MultiLineString"),
    "point": ("Point",),
    "area": ("Polygon", "MultiPolygon"),
}


def _crs(spec: GeometrySpec, field: str) -> CRS:
    try:
        return CRS.from_user_input(spec.crs)
    except CRSError:
        raise ConfigError(
            f"{field}.crs: unknown CRS {spec.crs!r}; use an EPSG code (EPSG:4326, EPSG:32648), WKT or a PROJ string"
        ) from None


def _from_coordinates(coords: list[Any], field: str) -> BaseGeometry:
    try:
        arr = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}.coordinates: give [x, y] or a list of [x, y] pairs") from None
    if arr.ndim == 1 and arr.size == 2:
        return shapely.Point(arr)
    if arr.ndim == 2 and arr.shape[1] == 2 and len(arr) >= 2:
        if len(arr) >= 4 and np.array_equal(arr[0], arr[-1]):
            return shapely.Polygon(arr)
        return shapely.LineString(arr)
    raise ConfigError(f"{field}.coordinates: give [x, y] or a list of at least two [x, y] pairs")


def resolve_geometry(spec: GeometrySpec, field: str) -> BaseGeometry:
    """The geometry in WGS 84 lon/lat (GCJ-02 converted when ``datum: gcj02``)."""
    crs = _crs(spec, field)
    if spec.file is not None:
        if not spec.file.is_file():
            raise ConfigError(f"{field}.file: {spec.file} not found")
        try:
            frame = gpd.read_file(spec.file, layer=spec.layer)
        except Exception as exc:  # pyogrio raises several types
            raise ConfigError(f"{field}.file: cannot read {spec.file}: {exc}") from None
        if spec.feature is not None:
            if spec.name_field not in frame:
                raise ConfigError(f"{field}.name_field: {spec.file} has no field {spec.name_field!r}")
            frame = frame[frame[spec.name_field].astype(str) == spec.feature]
            if frame.empty:
                raise ConfigError(f"{field}.feature: no feature with {spec.name_field} = {spec.feature!r} in {spec.file}")
        if frame.empty:
            raise ConfigError(f"{field}.file: {spec.file} holds no features")
        src = frame.crs if frame.crs is not None else crs
        geom = shapely.union_all(frame.geometry.values) if len(frame) > 1 else frame.geometry.iloc[0]
    elif spec.library is not None:
        from eqi.geo.regions import load_regions

        try:
            regions = load_regions(spec.library)
        except EqiError as exc:
            raise ConfigError(f"{field}.library: {exc}") from None
        geom = shapely.union_all([r.geometry for r in regions])
        src = CRS.from_user_input(regions[0].crs)
    elif spec.wkt is not None:
        try:
            geom = shapely.from_wkt(spec.wkt)
        except shapely.errors.GEOSException as exc:
            raise ConfigError(f"{field}.wkt: not valid WKT ({exc})") from None
        src = crs
    else:
        geom = _from_coordinates(spec.coordinates or [], field)
        src = crs
    src = CRS.from_user_input(src)
    if geom is None or geom.is_empty:
        raise ConfigError(f"{field}: the geometry is empty")
    if not src.equals(CRS.from_epsg(4326)):
        t = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
        geom = shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    if spec.datum == "gcj02":
        geom = shapely.transform(geom, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))
    lon0, lat0, lon1, lat1 = geom.bounds
    if not (-180 <= lon0 <= lon1 <= 180 and -90 <= lat0 <= lat1 <= 90):
        raise ConfigError(f"{field}: coordinates {geom.bounds} are not lon/lat in {spec.crs}; set crs to the CRS they are in")
    return geom


def check_kind(geom: BaseGeometry, kind: str, field: str) -> BaseGeometry:
    """Check the geometry type fits the project type; lines must not cross themselves."""
    if geom.geom_type not in _KINDS[kind]:
        raise ConfigError(f"{field}: a {kind} project needs {' or '.join(_KINDS[kind])}, got {geom.geom_type}")
    if kind == "linear" and not geom.is_simple:
        raise ConfigError(f"{field}: the line intersects itself; split it into simple lines or fix the vertices")
    if kind == "area" and not geom.is_valid:
        raise ConfigError(f"{field}: the polygon is invalid ({shapely.is_valid_reason(geom)})")
    return geom
