"""Regions for runs: the built-in Sichuan boundary library and user vector files.

An AOI spec is either a path to a vector file (GeoJSON, GeoPackage, Shapefile, … anything GDAL
reads; ``file.gpkg|layername=NAME`` picks a layer) or a library name:

``sichuan``                     the province
``sichuan:prefectures``         the 21 prefectures
``sichuan:counties``            the 183 counties
``sichuan:<selector>[,…]``      units by adcode (``510104``), Chinese name (``锦江区`` or
                                ``锦江``) or pinyin (``jinjiang``)
``zones[:<layer>[:<sel>,…]]``   station zone layers of the user library (:mod:`eqi.geo.zone_layers`)
                                by id, name, type or parent adcode

Every feature becomes a :class:`Region` in EPSG:4326.  User files are checked and refused, with a
message that says what to do, when they are missing, unreadable, empty, lack a CRS, hold
non-polygons or invalid (e.g. self-intersecting) polygons, or land outside lon/lat after
reprojection.  Nothing is repaired silently.

pyogrio (GDAL/OGR, a second libgdal in the process: about 45 MiB resident) is imported by the
functions that read through it, not by this module: a GeoJSON AOI is parsed with ``json`` and
:meth:`geopandas.GeoDataFrame.from_features`, so a run over one never loads it, and neither does
a Dask worker, which only computes tiles.

The library lives in ``aoi/sichuan.vrt`` (see ``aoi/README.md`` for provenance); regenerate it
with ``workflows/make_aoi.py``.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from eqi.errors import AOIError
from eqi.geo import zone_layers as zones
from eqi.resources import aoi_dir

__all__ = ["Region", "load_regions", "list_library", "LIBRARY"]

LIBRARY = "sichuan"
_LAYERS = ("province", "prefectures", "counties")
_ATTRS = ("adcode", "name", "pinyin", "level", "prefecture", "prefecture_adcode")
_NAME_COLUMNS = ("name", "adcode", "id")
_CRS_BY_SPEC = {"GeoJSON", "GeoJSONSeq", "TopoJSON"}  # RFC 7946: always WGS 84
_SUFFIX = re.compile(r"(?:(?:[\u4e00-\u9fff]族)*自治[州县]|[省市区县])$")


@dataclass(frozen=True)
class Region:
    """One area of interest: a filesystem-safe ``name``, a polygon and its attributes.

    Attributes
    ----------
    name : str
        Slug used in output paths (``OUT/<name>/<year>/``), unique within one spec.
    geometry : shapely Polygon or MultiPolygon
        Outline in ``crs`` (EPSG:4326 longitude/latitude degrees for loaded regions).
    crs : str
        CRS of ``geometry``.
    attrs : dict
        Feature properties (library: adcode, name, pinyin, level, prefecture, …).
    """

    name: str
    geometry: BaseGeometry
    crs: str = "EPSG:4326"
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in ``crs`` units."""
        minx, miny, maxx, maxy = self.geometry.bounds
        return (minx, miny, maxx, maxy)

    def to_crs(self, crs: str | CRS) -> BaseGeometry:
        """The geometry reprojected to ``crs`` (vertex by vertex, x/y order = lon/lat)."""
        return _reproject(self.geometry, self.crs, CRS.from_user_input(crs).to_string())


@cache
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _reproject(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geom
    tr = _transformer(src, dst)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def load_regions(
    spec: str | Path,
    *,
    name_field: str | None = None,
    where: str | None = None,
) -> list[Region]:
    """Resolve an AOI spec (vector file or library name) to regions in EPSG:4326.

    Parameters
    ----------
    spec : str or Path
        Vector file path (``file.gpkg|layername=NAME`` for one layer of several) or a library
        name such as ``sichuan:counties`` or ``sichuan:510104``.
    name_field : str, optional
        Column naming the regions of a file; default the first of ``name``, ``adcode``, ``id``
        present, else ``<file stem>`` (one feature) / ``<file stem>-<i>`` (1-based).  Ignored for
        the library (names are ``<pinyin>-<adcode>``).
    where : str, optional
        OGR SQL attribute filter, e.g. ``"prefecture_adcode = '510100'"``.

    Raises
    ------
    AOIError
        For any problem with the spec or the file, with a message that says what to do.
    """
    if zones.is_zone_spec(spec):  # station zone layers (eqi.geo.zone_layers, `eqi aoi import --as zones`)
        return _zone_regions(str(spec))
    if isinstance(spec, Path) or not _is_library_spec(spec):
        return _load_file(str(spec), name_field=name_field, where=where)
    return _load_library(spec, where=where)


def _zone_regions(spec: str) -> list[Region]:
    frame = zones.load_zones(spec)
    out = []
    for rec, geom in zip(frame.drop(columns=frame.geometry.name).to_dict("records"), frame.geometry, strict=True):
        attrs = {"level": "zone", "adcode": "", "name": rec["name"], "zone_id": rec["id"], "zone_type": rec["type"],
                 "zone_layer": rec["zone_layer"], "parent_adcode": rec["parent_adcode"] or ""}  # fmt: skip
        out.append(Region(rec["region"], shapely.force_2d(geom), "EPSG:4326", attrs))
    return out


def _is_library_spec(spec: str) -> bool:
    return bool(re.fullmatch(r"[^/\\.|]+", spec)) and not Path(spec).exists()


# ---------------------------------------------------------------------------------------------
# the built-in library


def _library_path() -> Path:
    path = aoi_dir() / f"{LIBRARY}.vrt"
    if not path.is_file():
        raise AOIError(
            f"AOI library '{LIBRARY}' not found at {path}; regenerate it with `make aoi`"
        )
    return path


@cache
def _library_layer(layer: str) -> gpd.GeoDataFrame:
    import pyogrio

    return pyogrio.read_dataframe(_library_path(), layer=layer)


@cache
def _library_index() -> pd.DataFrame:
    import pyogrio

    frames = [
        pyogrio.read_dataframe(_library_path(), layer=layer, read_geometry=False).assign(
            layer=layer
        )
        for layer in _LAYERS
    ]
    index = pd.concat(frames, ignore_index=True)
    index["stem"] = [_stem(n) for n in index["name"]]
    return index


def _stem(name: str) -> str:
    stem = _SUFFIX.sub("", name)
    return stem if len(stem) >= 2 else name


def _norm(text: str) -> str:
    return re.sub(r"[\s'’_-]", "", unicodedata.normalize("NFKC", text)).lower()


def list_library() -> list[dict[str, str]]:
    """All units of the library: ``library_name``, ``region_name``, adcode, name, pinyin, level, prefecture."""
    rows = []
    for rec in _library_index().to_dict("records"):
        rows.append(
            {
                "library_name": LIBRARY
                if rec["level"] == "province"
                else f"{LIBRARY}:{rec['adcode']}",
                "region_name": _library_region_name(rec),
                **{k: rec[k] or "" for k in ("adcode", "name", "pinyin", "level", "prefecture")},
            }
        )
    return rows


def _library_region_name(rec: dict[str, Any]) -> str:
    return f"{rec['pinyin']}-{rec['adcode']}"


def _resolve(token: str) -> pd.Series:
    """The library row a selector names (adcode, Chinese name or stem, pinyin, region name)."""
    index = _library_index()
    key = _norm(token)
    hit = (
        (index["adcode"] == key)
        | (index["name"] == token)
        | (index["stem"] == token)
        | (index["pinyin"] == key)
        | ((index["pinyin"] + index["adcode"]) == key)
    )
    found = index[hit]
    if len(found) == 1:
        return found.iloc[0]
    if len(found) > 1:
        options = ", ".join(
            f"{LIBRARY}:{r.adcode} ({r.name}, {r.level}{', ' + r.prefecture if r.level == 'county' else ''})"
            for r in found.itertuples()
        )
        raise AOIError(f"AOI '{LIBRARY}:{token}' is ambiguous; use an adcode: {options}")
    candidates = {str(v) for col in ("adcode", "name", "pinyin") for v in index[col]} | set(_LAYERS)
    close = difflib.get_close_matches(token.lower(), sorted(candidates), n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(f'{LIBRARY}:{c}' for c in close)}." if close else ""
    raise AOIError(f"unknown AOI library name '{LIBRARY}:{token}'.{hint} See `eqi aoi list`.")


def _load_library(spec: str, *, where: str | None) -> list[Region]:
    root, _, selector = spec.strip().partition(":")
    if root.lower() != LIBRARY:
        names = [LIBRARY, *(f"{LIBRARY}:{x}" for x in _LAYERS[1:])]
        close = difflib.get_close_matches(spec.lower(), names, n=3, cutoff=0.5)
        hint = (
            f" Did you mean: {', '.join(close)}?"
            if close
            else f" Library names: {', '.join(names)}."
        )
        raise AOIError(
            f"unknown AOI library name '{spec}' and no such file.{hint} "
            "Give a vector file path (GeoJSON, GeoPackage, Shapefile) or see `eqi aoi list`."
        )
    selector = selector.strip()
    if selector in ("", "province"):
        picks: list[tuple[str, str | None]] = [("province", None)]
    elif selector in _LAYERS:
        picks = [(selector, None)]
    else:
        picks = []
        for token in filter(None, (t.strip() for t in selector.split(","))):
            row = _resolve(token)
            picks.append((row["layer"], row["adcode"]))
    regions: list[Region] = []
    for layer, adcode in picks:
        frame = _read_library_layer(layer, where)
        if adcode is not None:
            frame = frame[frame["adcode"] == adcode]
        for rec, geom in zip(frame[list(_ATTRS)].to_dict("records"), frame.geometry, strict=True):
            regions.append(Region(_library_region_name(rec), geom, "EPSG:4326", rec))
    if not regions:
        raise AOIError(
            f"no unit of '{spec}' matches where={where!r}; check the filter (see `eqi aoi list`)"
        )
    return list({r.name: r for r in regions}.values())


def _read_library_layer(layer: str, where: str | None) -> gpd.GeoDataFrame:
    if where is None:
        return _library_layer(layer)
    import pyogrio
    from pyogrio.errors import DataLayerError

    try:
        return pyogrio.read_dataframe(_library_path(), layer=layer, where=where)
    except (ValueError, DataLayerError) as exc:
        raise AOIError(
            f"invalid where filter {where!r} for AOI library layer '{layer}': {exc}"
        ) from exc


# ---------------------------------------------------------------------------------------------
# user files


def _split_layer(spec: str) -> tuple[Path, str | None]:
    path, sep, rest = spec.partition("|")
    if not sep:
        return Path(spec), None
    key, _, value = rest.partition("=")
    if key.strip().lower() != "layername" or not value.strip():
        raise AOIError(f"cannot parse AOI spec '{spec}'; use 'file.gpkg|layername=NAME'")
    return Path(path), value.strip()


def _load_file(spec: str, *, name_field: str | None, where: str | None) -> list[Region]:
    path, layer = _split_layer(spec)
    if not path.exists():
        raise AOIError(f"AOI file not found: {path}")
    frame, driver = _read_vector(path, layer, where)
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.isna().all():
        raise AOIError(f"AOI file {path} has no geometries (a table without a geometry column?)")
    names = _region_names(frame, path, name_field)

    if frame.crs is None:
        if driver not in _CRS_BY_SPEC:
            raise AOIError(
                f"AOI file {path} has no CRS; add a .prj or reproject it (e.g. in QGIS: "
                "Layer ▸ Set CRS, then Export ▸ Save Features As… with the CRS), "
                "or save it as GeoJSON in WGS 84"
            )
        frame = frame.set_crs("EPSG:4326")

    for i, (name, geom) in enumerate(zip(names, frame.geometry, strict=True), start=1):
        _check_geometry(geom, f"feature {i} ('{name}') of {path}")

    crs = frame.crs
    if not crs.equals("EPSG:4326", ignore_axis_order=True):
        try:
            frame = frame.to_crs("EPSG:4326")
        except (CRSError, ValueError) as exc:
            raise AOIError(
                f"cannot reproject AOI file {path} from {crs.name} to EPSG:4326: {exc}"
            ) from exc
    bounds = np.asarray(frame.total_bounds, dtype=float)
    if not np.isfinite(bounds).all() or not (
        -180 <= bounds[0] <= bounds[2] <= 180 and -90 <= bounds[1] <= bounds[3] <= 90
    ):
        raise AOIError(
            f"coordinates of AOI file {path} fall outside the longitude/latitude range after "
            f"reprojection to EPSG:4326 (bounds {np.round(bounds, 3).tolist()}); its CRS "
            f"({crs.name}) is probably not the one its coordinates are in — set the right CRS "
            "(QGIS: Layer ▸ Set CRS) or reproject the file"
        )

    attrs = frame.drop(columns=frame.geometry.name).to_dict("records")
    return [
        Region(name, shapely.force_2d(geom), "EPSG:4326", {k: _plain(v) for k, v in rec.items()})
        for name, geom, rec in zip(names, frame.geometry, attrs, strict=True)
    ]


def _read_geojson(path: Path) -> gpd.GeoDataFrame | None:
    """A plain GeoJSON file read without GDAL: the features, names and CRS GDAL's GeoJSON driver
    gives (tested), attribute values as JSON has them (GDAL would turn date-like strings into
    timestamps and lists into arrays).  None for what this does not read the same way (other
    formats, a feature ``id`` GDAL would turn into a field, unparsable text): pyogrio then reads
    it, or names the problem."""
    if path.suffix.lower() not in (".geojson", ".json") or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
    elif kind == "Feature":
        features = [data]
    elif kind in ("Polygon", "MultiPolygon"):
        features = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        return None
    ok = isinstance(features, list) and all(
        isinstance(f, dict) and f.get("type") == "Feature" and "id" not in f
        and isinstance(f.get("properties") or {}, dict) and isinstance(f.get("geometry"), dict | None)
        for f in features
    )  # fmt: skip
    if not ok:
        return None
    crs = None
    member = data.get("crs")  # the 2008 GeoJSON "crs" member, which GDAL honours
    properties = member.get("properties") if isinstance(member, dict) else None
    named = properties.get("name") if isinstance(properties, dict) else None
    if named is not None:
        try:
            crs = CRS.from_user_input(named)
        except CRSError:
            return None
    plain = [{"type": "Feature", "geometry": f.get("geometry"), "properties": f.get("properties") or {}}
             for f in features]  # fmt: skip
    try:
        return gpd.GeoDataFrame.from_features(plain, crs=crs)
    except Exception:  # noqa: BLE001 - a geometry shapely cannot build: pyogrio names the problem
        return None


def _read_vector(path: Path, layer: str | None, where: str | None) -> tuple[Any, str]:
    if layer is None and where is None:
        frame = _read_geojson(path)
        if frame is not None and len(frame):
            return frame, "GeoJSON"
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    unreadable = (
        f"cannot read AOI file {path}; it must be a vector file GDAL can open "
        "(GeoJSON, GeoPackage, or a Shapefile with its .shx and .dbf beside it)"
    )
    try:
        layers = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        if layer is None:
            if len(layers) > 1:
                raise AOIError(
                    f"AOI file {path} has {len(layers)} layers ({', '.join(layers)}); choose one "
                    f"with '{path}|layername=NAME'"
                )
            if not layers:
                raise AOIError(f"AOI file {path} has no layers")
            layer = layers[0]
        elif layer not in layers:
            raise AOIError(
                f"AOI file {path} has no layer '{layer}'; its layers: {', '.join(layers)}"
            )
        driver = str(pyogrio.read_info(path, layer=layer)["driver"])
        frame = pyogrio.read_dataframe(path, layer=layer, where=where)
    except DataSourceError as exc:
        raise AOIError(f"{unreadable}: {exc}") from exc
    except (ValueError, DataLayerError) as exc:
        if where:
            raise AOIError(f"invalid where filter {where!r} for AOI file {path}: {exc}") from exc
        raise AOIError(f"{unreadable}: {exc}") from exc
    if len(frame) == 0:
        if where:
            raise AOIError(f"no feature of AOI file {path} matches where={where!r}")
        raise AOIError(f"AOI file {path} has no features; it must hold at least one polygon")
    return frame, driver


def _region_names(frame: gpd.GeoDataFrame, path: Path, name_field: str | None) -> list[str]:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if name_field is not None:
        if name_field not in columns:
            raise AOIError(
                f"name field '{name_field}' is not a column of AOI file {path}; "
                f"columns: {', '.join(map(str, columns)) or '(none)'}"
            )
        column: str | None = name_field
    else:
        lower = {str(c).lower(): c for c in columns}
        column = next((lower[c] for c in _NAME_COLUMNS if c in lower), None)
    stem = _slug(path.stem) or "aoi"
    n = len(frame)
    names: list[str] = []
    seen: set[str] = set()
    for i in range(1, n + 1):
        value = frame[column].iloc[i - 1] if column is not None else None
        name = _slug(value) if value is not None and not _isna(value) else ""
        if not name:
            name = stem if n == 1 else f"{stem}-{i}"
        while name in seen:
            name = f"{name}-{i}"
        seen.add(name)
        names.append(name)
    return names


def _check_geometry(geom: BaseGeometry | None, label: str) -> None:
    if geom is None or geom.is_empty:
        raise AOIError(f"{label} has an empty geometry; delete the feature or draw its polygon")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise AOIError(
            f"{label} is a {geom.geom_type}; an AOI must be a polygon. Buffer points or lines into "
            "polygons first (QGIS: Vector ▸ Geoprocessing Tools ▸ Buffer, or geopandas "
            "`.buffer(distance_m)` in a metric CRS)"
        )
    if not geom.is_valid:
        reason = explain_validity(geom)
        what = "invalid"
        match = re.search(r"Self-intersection\[([-\d.e+]+) ([-\d.e+]+)", reason)
        if match:
            what = f"self-intersecting at ({float(match[1]):.6f}, {float(match[2]):.6f})"
        raise AOIError(
            f"{label} is {what} ({reason}). Fix it in QGIS (Vector ▸ Geometry Tools ▸ Fix "
            "Geometries; Check Validity shows where) or with shapely.make_valid and retry; "
            "eqi does not repair AOIs silently"
        )


def _slug(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return re.sub(r"[^\w.-]+", "-", text).strip("-.").lower()[:80]


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """NumPy scalars → Python scalars, missing → None (attrs stay JSON-friendly)."""
    if _isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
