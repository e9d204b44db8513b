"""QGIS styles (``.qml``) and colour tables, all generated from one class table or colour ramp.

A class table is a list of ``(value, "#rrggbb", label)``.  The same list gives the GeoTIFF colour
table (:func:`colormap_from_classes`), the class names of the raster attribute table
(:func:`names_from_classes`) and the paletted QGIS style (:func:`categorical_qml`), so the three
cannot disagree.  A ``.qml`` with the same stem as the GeoTIFF (``ndvi.tif`` → ``ndvi.qml``) is
loaded by QGIS automatically.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from eqi.io.atomic import atomic_write_text
from eqi.palettes import RAMPS, RampStop, hex_to_rgba, ramp

__all__ = [
    "ClassEntry",
    "RampStop",
    "RAMPS",
    "hex_to_rgba",
    "ramp",
    "colormap_from_classes",
    "names_from_classes",
    "continuous_qml",
    "categorical_qml",
    "qml_path",
    "write_qml",
]

ClassEntry = tuple[int, str, str]
"""One class: ``(value, "#rrggbb", label)``."""

def _hex6(color: str) -> str:
    r, g, b, _ = hex_to_rgba(color)
    return f"#{r:02x}{g:02x}{b:02x}"


def _check_classes(classes: Sequence[ClassEntry]) -> None:
    if not classes:
        raise ValueError("class table is empty")
    values = [int(v) for v, _, _ in classes]
    if len(set(values)) != len(values):
        raise ValueError(f"class table has duplicate values: {values}")
    for _, color, _ in classes:
        hex_to_rgba(color)


def colormap_from_classes(classes: Sequence[ClassEntry]) -> dict[int, tuple[int, int, int, int]]:
    """GeoTIFF colour table ``{value: (r, g, b, 255)}`` from a class table (opaque colours)."""
    _check_classes(classes)
    return {int(v): (*hex_to_rgba(c)[:3], 255) for v, c, _ in classes}


def names_from_classes(classes: Sequence[ClassEntry]) -> dict[int, str]:
    """Class names ``{value: label}`` for the raster attribute table, from a class table."""
    _check_classes(classes)
    return {int(v): str(label) for v, _, label in classes}


def _fmt(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


def _qgis_root(label: str | None) -> ET.Element:
    root = ET.Element(
        "qgis",
        {
            "version": "3.34.0",
            "styleCategories": "Symbology|CustomProperties",
            "hasScaleBasedVisibilityFlag": "0",
            "minScale": "1e+08",
            "maxScale": "0",
        },
    )
    if label:
        # layer title / quantity, kept with the style (QGIS custom layer property "eqi/label")
        props = ET.SubElement(ET.SubElement(root, "customproperties"), "Option", {"type": "Map"})
        ET.SubElement(props, "Option", {"type": "QString", "name": "eqi/label", "value": label})
    return root


def _min_max_origin(parent: ET.Element) -> None:
    mmo = ET.SubElement(parent, "minMaxOrigin")
    for tag, text in (
        ("limits", "None"),
        ("extent", "WholeRaster"),
        ("statAccuracy", "Estimated"),
        ("cumulativeCutLower", "0.02"),
        ("cumulativeCutUpper", "0.98"),
        ("stdDevFactor", "2"),
    ):
        ET.SubElement(mmo, tag).text = text


def _transparency(parent: ET.Element, nodata: float | None) -> None:
    tr = ET.SubElement(parent, "rasterTransparency")
    if nodata is not None and math.isfinite(nodata):
        lst = ET.SubElement(tr, "singleValuePixelList")
        ET.SubElement(
            lst,
            "pixelListEntry",
            {"min": _fmt(nodata), "max": _fmt(nodata), "percentTransparent": "100"},
        )


def _pipe_tail(root: ET.Element, pipe: ET.Element) -> None:
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(
        pipe,
        "huesaturation",
        {"saturation": "0", "grayscaleMode": "0", "colorizeOn": "0", "invertColors": "0"},
    )
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(root, "blendMode").text = "0"


def _to_text(root: ET.Element) -> str:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


def continuous_qml(
    vmin: float,
    vmax: float,
    ramp: Sequence[RampStop],
    *,
    nodata: float | None,
    label: str,
    precision: int = 2,
) -> str:
    """QGIS style (singleband pseudocolour, interpolated ramp) for a continuous raster.

    Parameters
    ----------
    vmin, vmax
        Display range in pixel units (values outside are clamped to the end colours).
    ramp
        Stops ``(value, "#rrggbb")`` in increasing value order, e.g. from :func:`ramp`.
    nodata
        Nodata value made fully transparent (NaN / None: nothing to add, QGIS skips NaN).
    label
        Layer title stored in the style (shown in the legend header).
    precision
        Decimal places of the legend labels.
    """
    if not vmax > vmin:
        raise ValueError(f"display range must increase, got vmin={vmin}, vmax={vmax}")
    stops = [(float(v), _hex6(c)) for v, c in ramp]
    if len(stops) < 2 or any(b[0] < a[0] for a, b in zip(stops, stops[1:], strict=False)):
        raise ValueError("colour ramp needs at least two stops in increasing value order")
    root = _qgis_root(label)
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        {
            "type": "singlebandpseudocolor",
            "band": "1",
            "opacity": "1",
            "alphaBand": "-1",
            "classificationMin": _fmt(vmin),
            "classificationMax": _fmt(vmax),
            "nodataColor": "",
        },
    )
    _transparency(renderer, nodata)
    _min_max_origin(renderer)
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader")
    shader.attrib.update(
        {
            "colorRampType": "INTERPOLATED",
            "classificationMode": "1",
            "clip": "0",
            "minimumValue": _fmt(vmin),
            "maximumValue": _fmt(vmax),
            "labelPrecision": str(precision),
        }
    )
    # the gradient the ramp was made from, so QGIS's "Classify" keeps the same colours
    cramp = ET.SubElement(shader, "colorramp", {"type": "gradient", "name": "[source]"})
    opts = ET.SubElement(cramp, "Option", {"type": "Map"})
    span = stops[-1][0] - stops[0][0] or 1.0

    def _rgba(c: str) -> str:
        r, g, b, a = hex_to_rgba(c)
        return f"{r},{g},{b},{a}"

    inner = ";".join(f"{(v - stops[0][0]) / span:.6g};{_rgba(c)}" for v, c in stops[1:-1])
    for name, value in (
        ("color1", _rgba(stops[0][1])),
        ("color2", _rgba(stops[-1][1])),
        ("discrete", "0"),
        ("rampType", "gradient"),
        ("stops", inner),
    ):
        ET.SubElement(opts, "Option", {"type": "QString", "name": name, "value": value})
    for v, c in stops:
        ET.SubElement(
            shader,
            "item",
            {"value": _fmt(v), "color": c, "alpha": "255", "label": f"{v:.{precision}f}"},
        )
    _pipe_tail(root, pipe)
    return _to_text(root)


def categorical_qml(
    classes: Sequence[ClassEntry], *, nodata: int | None = None, label: str | None = None
) -> str:
    """QGIS style (paletted renderer) for a class raster, from a class table.

    ``nodata``, when given, is made fully transparent; ``label`` is kept as layer title.
    """
    _check_classes(classes)
    root = _qgis_root(label)
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        {"type": "paletted", "band": "1", "opacity": "1", "alphaBand": "-1", "nodataColor": ""},
    )
    _transparency(renderer, None if nodata is None else float(nodata))
    _min_max_origin(renderer)
    palette = ET.SubElement(renderer, "colorPalette")
    for value, color, label in classes:
        r, g, b, a = hex_to_rgba(color)
        ET.SubElement(
            palette,
            "paletteEntry",
            {
                "value": str(int(value)),
                "color": f"#{r:02x}{g:02x}{b:02x}",
                "alpha": str(a),
                "label": str(label),
            },
        )
    ET.SubElement(renderer, "colorramp", {"type": "randomcolors", "name": "[source]"})
    _pipe_tail(root, pipe)
    return _to_text(root)


def qml_path(tif_path: str | os.PathLike[str]) -> Path:
    """Same-stem style path QGIS picks up automatically: ``ndvi.tif`` → ``ndvi.qml``."""
    return Path(tif_path).with_suffix(".qml")


def write_qml(tif_path: str | os.PathLike[str], qml: str) -> Path:
    """Write ``qml`` atomically next to ``tif_path`` with the same stem; return the .qml path."""
    return atomic_write_text(qml_path(tif_path), qml)
