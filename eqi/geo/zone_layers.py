"""Zone layers the station supplies itself, and the user library that keeps them.

National key ecological function zones, ecological red lines, protected areas (Giant Panda
National Park …), water-source areas: polygon layers with this schema (docs/zones.md):

===================  ==========================================  ===========================
field                meaning                                      required
===================  ==========================================  ===========================
``id``               the zone's identifier, unique in the layer   yes
``name``             its name                                     yes
``type``             one of :data:`ZONE_TYPES` (English or 中文)   yes
``parent_adcode``    6-digit adcode of the region it belongs to   no
===================  ==========================================  ===========================

Field names may also be the Chinese labels (编号, 名称, 类型, 上级区划代码).
:func:`read_zone_file` refuses a file that does not follow the schema with an
:class:`~eqi.errors.AOIError` naming the file, the feature (1-based, and its id) and the field.

:func:`import_zones` validates a file and stores it as ``<library>/zones/<layer>.gpkg``
(EPSG:4326) in the user library: ``$EQI_AOI_LIBRARY`` or the platform's user data folder
(``platformdirs.user_data_dir("eqi")/aoi``), never inside the installed package.
AOI specs ``zones:<layer>`` (all features), ``zones:<layer>:<selector>[,…]`` (by id, name,
type or parent adcode) and ``zones`` (every layer) resolve through :func:`load_zones`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.validation import explain_validity

from eqi.errors import AOIError

__all__ = [
    "ZONE_TYPES",
    "ZONE_FIELDS",
    "library_dir",
    "read_zone_file",
    "import_zones",
    "list_zone_layers",
    "load_zones",
    "is_zone_spec",
]

ZONES = "zones"
# canonical type -> accepted spellings (normalised)
ZONE_TYPES: dict[str, tuple[str, ...]] = {
    "key_function_zone": ("重点生态功能区", "国家重点生态功能区", "function_zone", "key_ecological_function_zone"),
    "red_line": ("生态保护红线", "红线", "ecological_red_line", "redline"),
    "protected_area": ("自然保护地", "保护区", "自然保护区", "国家公园", "national_park", "nature_reserve"),
    "water_source": ("水源地", "饮用水水源地", "水源保护区", "water_source_area"),
    "other": ("其他",),
}
ZONE_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("编号", "代码", "zone_id"),
    "name": ("名称", "zone_name"),
    "type": ("类型", "zone_type"),
    "parent_adcode": ("上级区划代码", "行政区划代码", "adcode", "parent"),
}
_REQUIRED = ("id", "name", "type")
_LAYER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _norm(text: Any) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text))).lower()


def library_dir() -> Path:
    """The user AOI library: ``$EQI_AOI_LIBRARY`` or ``<user data dir>/eqi/aoi``."""
    env = os.environ.get("EQI_AOI_LIBRARY")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("eqi", appauthor=False)) / "aoi"


def _zone_type(value: Any) -> str | None:
    key = _norm(value)
    for canonical, spellings in ZONE_TYPES.items():
        if key == canonical or key in {_norm(s) for s in spellings}:
            return canonical
    return None


def _blank(v: Any) -> bool:
    if v is None:
        return True
    try:
        if pd.isna(v):
            return True
    except (TypeError, ValueError):
        pass
    return isinstance(v, str) and not v.strip()


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def read_zone_file(path: str | Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read and validate a zone file: columns ``id, name, type, parent_adcode`` + geometry (EPSG:4326).

    Raises :class:`AOIError` naming the file, feature and field of the first problems found
    (up to 20 listed).
    """
    p = Path(path)
    if not p.exists():
        raise AOIError(f"zone file not found: {p}")
    import pyogrio  # imported by the readers (see eqi.geo.regions): ~45 MiB no tile needs
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        layers = [str(n) for n in pyogrio.list_layers(p)[:, 0]]
        if layer is None:
            if len(layers) != 1:
                raise AOIError(f"zone file {p} has {len(layers)} layers ({', '.join(layers)}); name one with --layer")
            layer = layers[0]
        elif layer not in layers:
            raise AOIError(f"zone file {p} has no layer '{layer}'; its layers: {', '.join(layers)}")
        frame = pyogrio.read_dataframe(p, layer=layer)
    except (DataSourceError, DataLayerError, ValueError) as exc:
        raise AOIError(f"cannot read zone file {p}: it must be a vector file GDAL opens (GeoPackage, GeoJSON, Shapefile): {exc}") from None
    if not isinstance(frame, gpd.GeoDataFrame) or len(frame) == 0:
        raise AOIError(f"zone file {p} has no features (or no geometry column)")
    columns = [c for c in frame.columns if c != frame.geometry.name]
    lookup = {_norm(c): c for c in columns}
    found: dict[str, str] = {}
    for canonical, aliases in ZONE_FIELDS.items():
        for name in (canonical, *aliases):
            if _norm(name) in lookup:
                found[canonical] = lookup[_norm(name)]
                break
    missing = [f for f in _REQUIRED if f not in found]
    if missing:
        raise AOIError(
            f"zone file {p}: missing field(s) {', '.join(repr(m) for m in missing)} "
            f"(schema: id, name, type, optional parent_adcode; see docs/zones.md); fields found: "
            f"{', '.join(map(str, columns)) or '(none)'}"
        )
    if frame.crs is None:
        raise AOIError(f"zone file {p} has no CRS; set it (QGIS: Layer ▸ Set CRS) or save it as GeoJSON in WGS 84")
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, (rec, geom) in enumerate(zip(frame[list(found.values())].to_dict("records"), frame.geometry, strict=True), start=1):
        vals = {k: rec[col] for k, col in found.items()}
        fid = None if _blank(vals["id"]) else _text(vals["id"])
        where = f"feature {i}" + (f" (id '{fid}')" if fid else "")
        for f in _REQUIRED:
            if _blank(vals[f]):
                problems.append(f"{where}, field '{found[f]}': empty value ({f} is required)")
        ztype = None
        if not _blank(vals["type"]):
            ztype = _zone_type(vals["type"])
            if ztype is None:
                problems.append(f"{where}, field '{found['type']}': unknown zone type '{vals['type']}'; use one of {', '.join(ZONE_TYPES)}")
        parent = ""
        if "parent_adcode" in found and not _blank(vals["parent_adcode"]):
            parent = _text(vals["parent_adcode"])
            if not re.fullmatch(r"\d{6}", parent):
                problems.append(f"{where}, field '{found['parent_adcode']}': '{parent}' is not a 6-digit adcode")
        if fid is not None:
            if fid in seen:
                problems.append(f"{where}, field '{found['id']}': id '{fid}' already used by feature {seen[fid]}")
            seen.setdefault(fid, i)
        if geom is None or geom.is_empty:
            problems.append(f"{where}, geometry: empty")
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(f"{where}, geometry: a {geom.geom_type}, zones must be polygons")
        elif not geom.is_valid:
            problems.append(f"{where}, geometry: invalid ({explain_validity(geom)}); fix it (QGIS: Fix Geometries)")
        rows.append({"id": fid or "", "name": "" if _blank(vals["name"]) else _text(vals["name"]),
                     "type": ztype or "", "parent_adcode": parent})  # fmt: skip
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AOIError(f"zone file {p}: {len(problems)} problem(s):\n  {shown}{more}")
    out = gpd.GeoDataFrame(rows, geometry=list(frame.geometry.values), crs=frame.crs)
    if not out.crs.equals("EPSG:4326", ignore_axis_order=True):
        out = out.to_crs("EPSG:4326")
    return out


def _layer_path(name: str) -> Path:
    return library_dir() / ZONES / f"{name}.gpkg"


def import_zones(path: str | Path, *, name: str | None = None, layer: str | None = None, replace: bool = False) -> Path:
    """Validate ``path`` and add it to the user library as zone layer ``name`` (default: file stem)."""
    p = Path(path)
    layer_name = _norm(name or p.stem).replace(".", "-")
    if not _LAYER.match(layer_name):
        raise AOIError(f"zone layer name '{name or p.stem}' must be lower-case letters, digits, '-' or '_' (give --name)")
    frame = read_zone_file(p, layer=layer)
    target = _layer_path(layer_name)
    if target.exists() and not replace:
        raise AOIError(f"zone layer '{layer_name}' is already in the library ({target}); use --replace to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    frame.to_file(tmp, driver="GPKG", layer=layer_name)
    os.replace(tmp, target)
    meta = {"layer": layer_name, "source": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
            "features": len(frame), "types": sorted(set(frame["type"]))}  # fmt: skip
    target.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def list_zone_layers() -> list[dict[str, Any]]:
    """Zone layers of the user library: ``layer``, ``spec``, ``features``, ``types``, ``path``."""
    folder = library_dir() / ZONES
    out = []
    for gpkg in sorted(folder.glob("*.gpkg")) if folder.is_dir() else []:
        if gpkg.name.endswith(".tmp.gpkg"):
            continue
        meta_path = gpkg.with_suffix(".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        out.append({"layer": gpkg.stem, "spec": f"{ZONES}:{gpkg.stem}", "features": meta.get("features", ""),
                    "types": ",".join(meta.get("types", [])), "source": meta.get("source", ""), "path": str(gpkg)})  # fmt: skip
    return out


def is_zone_spec(spec: Any) -> bool:
    """Whether an AOI spec names the zone library (``zones``, ``zones:<layer>[:sel]``)."""
    return isinstance(spec, str) and spec.split(":", 1)[0].strip().lower() == ZONES and not Path(spec).exists()


def _slug(value: Any) -> str:
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return re.sub(r"[^\w.-]+", "-", text).strip("-.").lower()[:80]


def load_zones(spec: str) -> gpd.GeoDataFrame:
    """The zones an AOI spec selects, with ``region`` (slug ``<layer>-<id>``), ``zone_layer``.

    ``zones:<layer>:<sel>,…``: a selector matches a feature's id, name, type (English or 中文)
    or parent adcode.
    """
    parts = [s.strip() for s in spec.split(":", 2)]
    layers = [r["layer"] for r in list_zone_layers()]
    if len(parts) == 1 or not parts[1]:
        picks = layers
    else:
        if parts[1] not in layers:
            known = ", ".join(f"{ZONES}:{name}" for name in layers) or "none yet (eqi aoi import FILE --as zones)"
            raise AOIError(f"unknown zone layer '{parts[1]}' in AOI '{spec}'; zone layers: {known}")
        picks = [parts[1]]
    if not picks:
        raise AOIError(f"no zone layer in the library ({library_dir()}); add one with `eqi aoi import FILE --as zones`")
    import pyogrio

    frames = []
    for name in picks:
        frame = pyogrio.read_dataframe(_layer_path(name), layer=name)
        frame["zone_layer"] = name
        frames.append(frame)
    zones = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    if len(parts) == 3 and parts[2]:
        keep = pd.Series(False, index=zones.index)
        for token in filter(None, (t.strip() for t in parts[2].split(","))):
            ztype = _zone_type(token)
            hit = (zones["id"] == token) | (zones["name"] == token) | (zones["parent_adcode"] == token)
            if ztype is not None:
                hit |= zones["type"] == ztype
            if not hit.any():
                raise AOIError(f"no zone of '{ZONES}:{parts[1]}' has id, name, type or parent adcode '{token}'; see `eqi aoi list`")
            keep |= hit
        zones = zones[keep]
    zones = zones.reset_index(drop=True)
    zones["region"] = [f"{layer}-{_slug(i)}" for layer, i in zip(zones["zone_layer"], zones["id"], strict=True)]
    return zones
