"""A QGIS project (``.qgs``) per region and year, written as XML without PyQGIS.

``OUT/<region>/<year>/<region>_<year>.qgs`` opens every styled output of the task, grouped by
product family (composites, vegetation, water, heat, RSEI, land cover, change, regions), with the
region and zone boundaries (labelled) on top and the region in view.  Raster styles are the
``<pipe>`` of the same-stem ``.qml`` files (:mod:`eqi.io.qml`), so the project and the styles QGIS
loads for a single file cannot disagree.  Boundaries are written beside the project
(``boundaries.gpkg``); the region indicator tables (``OUT/areas/<area>/tables/regions.gpkg``)
are added when present.  Every path in the project is relative (``./ndvi.tif``), so the output
folder can be moved.  Visible at open: the true-colour composite, the main product (RSEI, else
land cover, else FVC / NDVI) and the boundaries; everything else is one click away.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import rasterio
from pyproj import CRS
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eqi.geo.regions import Region
from eqi.io.atomic import atomic_write_text
from eqi.io.stac import product_family

__all__ = ["GPKG_MEDIA_TYPE", "QGS_MEDIA_TYPE", "GROUPS", "MAIN_PRODUCTS", "project_path", "write_qgis_project", "write_boundaries"]

QGS_MEDIA_TYPE = "application/x-qgis"
GPKG_MEDIA_TYPE = "application/geopackage+sqlite3"

GROUPS: tuple[tuple[str, str], ...] = (
    ("regions", "Regions 区域"),
    ("change", "Change 变化"),
    ("landcover", "Land cover 土地覆盖"),
    ("rsei", "RSEI 遥感生态指数"),
    ("heat", "Heat 地表温度"),
    ("water", "Water 水体"),
    ("vegetation", "Vegetation 植被"),
    ("composite", "Composites 合成影像"),
    ("other", "Other 其他"),
)
"""Layer-tree groups, top to bottom: ``(family, title)``."""

MAIN_PRODUCTS: tuple[str, ...] = ("eqi", "ei", "rsei", "landcover", "fvc", "ndvi")
"""The first of these present is visible when the project opens."""

_QGIS_VERSION = "3.22.0-Białowieża"  # the oldest QGIS we test with; newer versions read it
_TRUE_COLOUR = ("red", "green", "blue")
_RGB_RANGE = (0.0, 0.3)  # reflectance stretch of the true-colour composite
_BOUNDARY_COLOUR = "#e0218a"  # magenta: stands out on imagery and on every eqi ramp
_TABLES = "areas/{area}/tables/regions.gpkg"


@dataclass(frozen=True)
class _Layer:
    id: str
    name: str
    source: str  # relative to the project
    kind: str  # "raster" | "vector"
    group: str
    visible: bool
    body: list[ET.Element]  # style elements: <pipe>/<customproperties> or renderer/labeling
    crs: CRS
    extent: tuple[float, float, float, float]
    geometry: str | None = None


def project_path(task_dir: str | os.PathLike[str], region: str, year: int) -> Path:
    """``<task_dir>/<region>_<year>.qgs``."""
    return Path(task_dir) / f"{region}_{year}.qgs"


def _layer_id(name: str, source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"{safe}_{digest}"


def _srs(parent: ET.Element, crs: CRS) -> None:
    """QGIS ``<spatialrefsys>``: the authority code when there is one, else WKT2 and PROJ."""
    srs = ET.SubElement(parent, "spatialrefsys")
    auth = crs.to_authority()
    ET.SubElement(srs, "wkt").text = crs.to_wkt()
    with warnings.catch_warnings():  # PROJ strings are lossy; QGIS reads the WKT first
        warnings.simplefilter("ignore", UserWarning)
        ET.SubElement(srs, "proj4").text = crs.to_proj4()
    ET.SubElement(srs, "srsid").text = "0"
    ET.SubElement(srs, "srid").text = auth[1] if auth else "0"
    ET.SubElement(srs, "authid").text = f"{auth[0]}:{auth[1]}" if auth else ""
    ET.SubElement(srs, "description").text = crs.name
    ET.SubElement(srs, "projectionacronym").text = ""
    ET.SubElement(srs, "ellipsoidacronym").text = ""
    ET.SubElement(srs, "geographicflag").text = "true" if crs.is_geographic else "false"


def _extent(parent: ET.Element, tag: str, bounds: Sequence[float]) -> None:
    ext = ET.SubElement(parent, tag)
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), bounds, strict=True):
        ET.SubElement(ext, key).text = repr(float(value))


def _options(parent: ET.Element, props: Mapping[str, str]) -> None:
    """Symbol-layer properties both as ``<Option>`` map (QGIS ≥ 3.10) and legacy ``<prop>``."""
    opt = ET.SubElement(parent, "Option", {"type": "Map"})
    for key, value in props.items():
        ET.SubElement(opt, "Option", {"type": "QString", "name": key, "value": value})
    for key, value in props.items():
        ET.SubElement(parent, "prop", {"k": key, "v": value})


def _rgb(color: str, alpha: int = 255) -> str:
    c = color.lstrip("#")
    return f"{int(c[0:2], 16)},{int(c[2:4], 16)},{int(c[4:6], 16)},{alpha}"


def _raster_style(qml: Path) -> list[ET.Element]:
    """The ``<customproperties>`` and ``<pipe>`` of a ``.qml`` written by :mod:`eqi.io.qml`."""
    root = ET.fromstring(qml.read_text(encoding="utf-8").split("\n", 1)[1])
    return [el for el in root if el.tag in ("customproperties", "pipe")]


def _qml_label(qml: Path) -> str | None:
    root = ET.fromstring(qml.read_text(encoding="utf-8").split("\n", 1)[1])
    for opt in root.iter("Option"):
        if opt.get("name") == "eqi/label":
            return opt.get("value")
    return None


def _true_colour_style() -> list[ET.Element]:
    pipe = ET.Element("pipe")
    lo, hi = (repr(v) for v in _RGB_RANGE)
    renderer = ET.SubElement(pipe, "rasterrenderer", {
        "type": "multibandcolor", "opacity": "1", "alphaBand": "-1", "nodataColor": "",
        "redBand": "1", "greenBand": "2", "blueBand": "3",
    })  # fmt: skip
    ET.SubElement(renderer, "rasterTransparency")
    mmo = ET.SubElement(renderer, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                      ("cumulativeCutLower", "0.02"), ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        ET.SubElement(mmo, tag).text = text
    for colour in ("red", "green", "blue"):
        ce = ET.SubElement(renderer, f"{colour}ContrastEnhancement")
        ET.SubElement(ce, "minValue").text = lo
        ET.SubElement(ce, "maxValue").text = hi
        ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(pipe, "huesaturation", {"saturation": "0", "grayscaleMode": "0", "colorizeOn": "0", "invertColors": "0"})
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    return [pipe]


def _true_colour_vrt(task_dir: Path) -> Path | None:
    """``true_colour.vrt``: red, green, blue COGs of the task as one 3-band VRT (relative paths)."""
    paths = [task_dir / f"{b}.tif" for b in _TRUE_COLOUR]
    if not all(p.is_file() for p in paths):
        return None
    with rasterio.open(paths[0]) as src:
        width, height, transform, crs = src.width, src.height, src.transform, src.crs
        dtype = src.dtypes[0]
    root = ET.Element("VRTDataset", {"rasterXSize": str(width), "rasterYSize": str(height)})
    ET.SubElement(root, "SRS").text = crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in transform.to_gdal())
    gdal_type = {"float32": "Float32", "uint16": "UInt16", "int16": "Int16", "uint8": "Byte"}[dtype]
    for i, (band, path) in enumerate(zip(_TRUE_COLOUR, paths, strict=True), start=1):
        with rasterio.open(path) as src:
            if (src.width, src.height, src.transform) != (width, height, transform):
                return None
            nodata = src.nodata
        el = ET.SubElement(root, "VRTRasterBand", {"dataType": gdal_type, "band": str(i)})
        ET.SubElement(el, "Description").text = band
        if nodata is not None:
            ET.SubElement(el, "NoDataValue").text = "nan" if nodata != nodata else repr(float(nodata))
        ET.SubElement(el, "ColorInterp").text = band.capitalize()
        src_el = ET.SubElement(el, "SimpleSource")
        ET.SubElement(src_el, "SourceFilename", {"relativeToVRT": "1"}).text = path.name
        ET.SubElement(src_el, "SourceBand").text = "1"
        window = {"xOff": "0", "yOff": "0", "xSize": str(width), "ySize": str(height)}
        ET.SubElement(src_el, "SrcRect", window)
        ET.SubElement(src_el, "DstRect", window)
    ET.indent(root)
    return atomic_write_text(task_dir / "true_colour.vrt", ET.tostring(root, encoding="unicode") + "\n")


def _boundary_style(label_field: str, *, width_mm: float, colour: str, labels: bool) -> list[ET.Element]:
    renderer = ET.Element("renderer-v2", {"type": "singleSymbol", "symbollevels": "0", "enableorderby": "0", "forceraster": "0"})
    symbols = ET.SubElement(renderer, "symbols")
    symbol = ET.SubElement(symbols, "symbol", {"type": "fill", "name": "0", "alpha": "1", "clip_to_extent": "1", "force_rhr": "0"})
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    _options(layer, {
        "border_width_map_unit_scale": "3x:0,0,0,0,0,0", "color": "0,0,0,0", "joinstyle": "bevel",
        "offset": "0,0", "offset_map_unit_scale": "3x:0,0,0,0,0,0", "offset_unit": "MM",
        "outline_color": _rgb(colour), "outline_style": "solid", "outline_width": repr(width_mm),
        "outline_width_unit": "MM", "style": "no",
    })  # fmt: skip
    out = [renderer]
    if labels:
        labeling = ET.Element("labeling", {"type": "simple"})
        settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
        style = ET.SubElement(settings, "text-style", {
            "fieldName": label_field, "isExpression": "0", "fontFamily": "Noto Sans CJK SC",
            "fontSize": "10", "fontSizeUnit": "Point", "fontWeight": "75", "fontItalic": "0",
            "textColor": "30,30,30,255", "textOpacity": "1", "namedStyle": "Bold",
            "multilineHeight": "1", "blendMode": "0", "previewBkgrdColor": "255,255,255,255",
        })  # fmt: skip
        ET.SubElement(style, "text-buffer", {
            "bufferDraw": "1", "bufferSize": "1", "bufferSizeUnits": "MM", "bufferColor": "255,255,255,255",
            "bufferOpacity": "0.85", "bufferJoinStyle": "128", "bufferNoFill": "1", "bufferBlendMode": "0",
        })  # fmt: skip
        ET.SubElement(settings, "text-format", {"wrapChar": "", "multilineAlign": "3", "plussign": "0"})
        ET.SubElement(settings, "placement", {"placement": "1", "centroidInside": "1", "centroidWhole": "0",
                                              "fitInPolygonOnly": "0", "priority": "5", "dist": "0"})  # fmt: skip
        ET.SubElement(settings, "rendering", {"drawLabels": "1", "obstacle": "0", "displayAll": "1",
                                              "upsidedownLabels": "0", "labelPerPart": "0",
                                              "mergeLines": "0", "limitNumLabels": "0"})  # fmt: skip
        out.append(labeling)
    return out


def write_boundaries(path: str | os.PathLike[str], regions: Sequence[Any], *, current: str | None = None) -> Path:
    """GeoPackage ``boundaries`` layer (EPSG:4326) of ``regions`` (:class:`eqi.geo.regions.Region`).

    Columns: ``region`` (output folder name), ``name`` (label: the unit's own name when the region
    came from the library or a named file, else the folder name), ``adcode`` when known, and
    ``current`` (1 for the project's own region).  Written atomically; returns the path.
    """
    path = Path(path)
    rows = []
    for r in regions:
        attrs = dict(getattr(r, "attrs", {}) or {})
        rows.append({
            "region": r.name,
            "name": str(attrs.get("name") or r.name),
            "adcode": str(attrs.get("adcode") or ""),
            "current": int(r.name == current),
            "geometry": r.geometry if r.crs == "EPSG:4326" else r.to_crs("EPSG:4326"),
        })  # fmt: skip
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    tmp = path.with_name(f".{path.name}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    import pyogrio  # here, not at the top: ~45 MiB (its own libgdal) that tile workers never need

    pyogrio.write_dataframe(frame, tmp, layer="boundaries", driver="GPKG", promote_to_multi=True,
                             dataset_options={"VERSION": "1.2"})  # QGIS 3.22's GDAL reads 1.2 fully
    os.replace(tmp, path)
    return path


def _raster_layer(tif: Path, task_dir: Path, visible: set[str]) -> _Layer | None:
    qml = tif.with_suffix(".qml")
    if not qml.is_file():
        return None
    with rasterio.open(tif) as src:
        crs = CRS.from_wkt(src.crs.to_wkt())
        bounds = tuple(src.bounds)
    name = tif.stem
    label = _qml_label(qml)
    title = f"{name} — {label.split(' [')[0]}" if label else name
    source = "./" + tif.relative_to(task_dir).as_posix()
    return _Layer(_layer_id(name, source), title, source, "raster", product_family(name), name in visible,
                  _raster_style(qml), crs, bounds)  # fmt: skip


def _vector_layer(gpkg: Path, layer: str, task_dir: Path, *, title: str, visible: bool,
                  label_field: str, width_mm: float, labels: bool, subset: str | None = None,
                  colour: str = _BOUNDARY_COLOUR) -> _Layer:
    import pyogrio

    info = pyogrio.read_info(gpkg, layer=layer)
    crs = CRS.from_user_input(info["crs"])
    geometry = "Polygon" if "Polygon" in str(info["geometry_type"]) else "Unknown"
    source = os.path.relpath(gpkg, task_dir).replace(os.sep, "/")
    source = (source if source.startswith(".") else "./" + source) + f"|layername={layer}"
    if subset:
        source += f"|subset={subset}"
    return _Layer(_layer_id(f"{gpkg.stem}_{layer}", source), title, source, "vector", "regions", visible,
                  _boundary_style(label_field, width_mm=width_mm, colour=colour, labels=labels),
                  crs, tuple(info["total_bounds"]), geometry)  # fmt: skip


_TABLE_LEVELS = {"zone": ("Zones 分区", True), "county": ("Counties 县（区）", True),
                 "prefecture": ("Prefectures 市（州）", False), "province": ("Province 省", False)}  # fmt: skip


def _table_layers(tables: Path, task_dir: Path, year: int) -> list[_Layer]:
    """The region indicator tables (one GeoPackage layer per level, rows per region x year; see the
    regional assessment's docs/tables.md) as layers filtered to ``year``: counties and zones
    visible and labelled, prefectures and the province hidden; every indicator in the attributes."""
    import pyogrio

    out = []
    listed = {str(row[0]): str(row[1]) for row in pyogrio.list_layers(tables)}
    for level, (title, visible) in _TABLE_LEVELS.items():
        if level not in listed or "Polygon" not in listed[level]:
            continue
        fields = list(pyogrio.read_info(tables, layer=level)["fields"])
        subset = f'"year" = {int(year)}' if "year" in fields else None
        out.append(_vector_layer(tables, level, task_dir, title=f"{title} — indicators 指标", visible=visible,
                                 label_field="name" if "name" in fields else "region", width_mm=0.35,
                                 labels=visible, subset=subset, colour="#3c3c3c"))  # fmt: skip
    return out


def _maplayer(parent: ET.Element, layer: _Layer) -> None:
    attrs = {"type": layer.kind, "hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08", "maxScale": "0",
             "styleCategories": "AllStyleCategories", "autoRefreshEnabled": "0", "autoRefreshTime": "0",
             "refreshOnNotifyEnabled": "0", "refreshOnNotifyMessage": ""}  # fmt: skip
    if layer.kind == "vector":
        attrs.update({"geometry": layer.geometry or "Polygon", "labelsEnabled": "1", "simplifyDrawingHints": "0",
                      "simplifyAlgorithm": "0", "simplifyDrawingTol": "1", "simplifyLocal": "1",
                      "simplifyMaxScale": "1", "readOnly": "0"})  # fmt: skip
    ml = ET.SubElement(parent, "maplayer", attrs)
    _extent(ml, "extent", layer.extent)
    ET.SubElement(ml, "id").text = layer.id
    ET.SubElement(ml, "datasource").text = layer.source
    ET.SubElement(ml, "layername").text = layer.name
    _srs(ET.SubElement(ml, "srs"), layer.crs)
    if layer.kind == "raster":
        ET.SubElement(ml, "provider").text = "gdal"
        nodata = ET.SubElement(ml, "noData")
        ET.SubElement(nodata, "noDataList", {"bandNo": "1", "useSrcNoData": "1"})
    else:
        ET.SubElement(ml, "provider", {"encoding": "UTF-8"}).text = "ogr"
    ml.extend(layer.body)
    ET.SubElement(ml, "blendMode").text = "0"
    if layer.kind == "vector":
        ET.SubElement(ml, "featureBlendMode").text = "0"
        ET.SubElement(ml, "layerOpacity").text = "1"


def _tree(root: ET.Element, layers: Sequence[_Layer]) -> None:
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    for family, title in GROUPS:
        members = [la for la in layers if la.group == family]
        if not members:
            continue
        group = ET.SubElement(tree, "layer-tree-group", {"name": title, "checked": "Qt::Checked", "expanded": "1" if family in ("regions", "rsei", "landcover") else "0"})
        ET.SubElement(group, "customproperties")
        for la in members:
            ET.SubElement(group, "layer-tree-layer", {
                "id": la.id, "name": la.name, "source": la.source, "expanded": "0",
                "providerKey": "gdal" if la.kind == "raster" else "ogr",
                "checked": "Qt::Checked" if la.visible else "Qt::Unchecked",
            })  # fmt: skip
    order = ET.SubElement(tree, "custom-order", {"enabled": "0"})
    for la in _ordered(layers):
        ET.SubElement(order, "item").text = la.id


def _ordered(layers: Sequence[_Layer]) -> list[_Layer]:
    rank = {family: i for i, (family, _) in enumerate(GROUPS)}
    return sorted(layers, key=lambda la: rank[la.group])


def write_qgis_project(
    run_dir: str | os.PathLike[str],
    region: Any,
    year: int,
    *,
    regions: Sequence[Any] | None = None,
    area: str | None = None,
    title: str | None = None,
) -> Path:
    """Write ``OUT/<region>/<year>/<region>_<year>.qgs`` (+ ``boundaries.gpkg``, ``true_colour.vrt``).

    Parameters
    ----------
    run_dir
        The output root ``OUT`` of the run.
    region
        The :class:`eqi.geo.regions.Region` of the task, or its folder name (its boundary is then
        read from ``OUT/<region>/<year>/item.json``).
    year
        The task's year.
    regions
        Every region to draw as boundary (the run's regions; default: the task's region, or the
        regions of ``year`` that have an ``item.json``).
    area
        The evaluation area's slug; ``OUT/areas/<area>/tables/regions.gpkg`` is added when present.
    title
        Project title (default ``"<region> <year>"``).

    Returns the project path.  Reads only finished files of the task folder; computes nothing.
    """
    out = Path(run_dir)
    if isinstance(region, str):
        region_obj = None
        name = region
    else:
        region_obj, name = region, region.name
    task_dir = out / name / str(year)
    if regions is None:
        regions = [region_obj] if region_obj is not None else _regions_from_items(out, year)
    if region_obj is None:
        region_obj = next((r for r in regions if r.name == name), None)
    boundaries = write_boundaries(task_dir / "boundaries.gpkg", regions, current=name)

    products = {p.stem for p in task_dir.glob("*.tif")}
    main = next((p for p in MAIN_PRODUCTS if p in products), None)
    rgb = _true_colour_vrt(task_dir)
    tables = out / _TABLES.format(area=area) if area else None
    table_layers = _table_layers(tables, task_dir, year) if tables is not None and tables.is_file() else []
    labelled = any(la.visible for la in table_layers)  # county / zone names come from the tables then
    layers: list[_Layer] = [
        _vector_layer(boundaries, "boundaries", task_dir, title="Boundaries 边界", visible=True,
                      label_field="name", width_mm=0.7, labels=not labelled),
        *table_layers,
    ]  # fmt: skip
    rasters = [la for tif in sorted(task_dir.glob("*.tif")) if (la := _raster_layer(tif, task_dir, {main} if main else set()))]
    if rgb is not None:
        with rasterio.open(rgb) as src:
            rgb_layer = _Layer(_layer_id("true_colour", "./true_colour.vrt"), "true colour — red, green, blue (0–0.3)",
                               "./true_colour.vrt", "raster", "composite", True, _true_colour_style(),
                               CRS.from_wkt(src.crs.to_wkt()), tuple(src.bounds))  # fmt: skip
        rasters.insert(0, rgb_layer)
    elif rasters and not any(la.visible and la.group == "composite" for la in rasters):
        first = next((i for i, la in enumerate(rasters) if la.group == "composite"), None)
        if first is not None:
            la = rasters[first]
            rasters[first] = _Layer(la.id, la.name, la.source, la.kind, la.group, True, la.body, la.crs, la.extent)
    layers += rasters
    crs = rasters[0].crs if rasters else CRS.from_epsg(4326)
    if region_obj is not None:
        geom: BaseGeometry = region_obj.to_crs(crs)
        bounds = geom.bounds
    else:
        bounds = rasters[0].extent if rasters else (0.0, 0.0, 1.0, 1.0)
    pad = 0.05 * max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    view = (bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad)
    text = _project_xml(title or f"{name} {year}", layers, crs, view)
    return atomic_write_text(project_path(task_dir, name, year), text)


def _regions_from_items(out: Path, year: int) -> list[Region]:
    """The regions of ``year`` that have a finished task (``item.json``), from their footprints."""
    found = []
    for item in sorted(out.glob(f"*/{year}/item.json")):
        raw = json.loads(item.read_text(encoding="utf-8"))
        props = raw.get("properties", {})
        if "eqi:region" in props and raw.get("geometry"):
            found.append(Region(str(props["eqi:region"]), shape(raw["geometry"])))
    return found


def _project_xml(title: str, layers: Sequence[_Layer], crs: CRS, view: Sequence[float]) -> str:
    root = ET.Element("qgis", {"projectname": title, "version": _QGIS_VERSION, "saveUser": "", "saveUserFull": "",
                               "saveDateTime": ""})  # fmt: skip
    ET.SubElement(root, "homePath", {"path": ""})
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "projectFlags", {"set": ""})
    _srs(ET.SubElement(root, "projectCrs"), crs)
    _tree(root, layers)
    canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
    ET.SubElement(canvas, "units").text = "degrees" if crs.is_geographic else "meters"
    _extent(canvas, "extent", view)
    ET.SubElement(canvas, "rotation").text = "0"
    _srs(ET.SubElement(canvas, "destinationsrs"), crs)
    ET.SubElement(canvas, "rendermaptile").text = "0"
    settings = ET.SubElement(root, "ProjectViewSettings", {"UseProjectScales": "0", "rotation": "0"})
    ET.SubElement(settings, "Scales")
    default = ET.SubElement(settings, "DefaultViewExtent", dict(zip(("xmin", "ymin", "xmax", "ymax"), (repr(float(v)) for v in view), strict=True)))
    _srs(default, crs)
    ET.SubElement(root, "legend", {"updateDrawingOrder": "true"})
    projectlayers = ET.SubElement(root, "projectlayers")
    for la in layers:
        _maplayer(projectlayers, la)
    order = ET.SubElement(root, "layerorder")
    for la in _ordered(layers):
        ET.SubElement(order, "layer", {"id": la.id})
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", {"type": "bool"}).text = "false"
    srs_props = ET.SubElement(props, "SpatialRefSys")  # QGIS < 3.28 reads projectCrs only with this
    ET.SubElement(srs_props, "ProjectionsEnabled", {"type": "int"}).text = "1"
    gui = ET.SubElement(props, "Gui")
    ET.SubElement(gui, "SelectionColorRedPart", {"type": "int"}).text = "255"
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"

