"""QGIS styles and colour tables from one class table / ramp."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from eqi.io.atomic import TEMP_MARKER
from eqi.io.qml import (
    categorical_qml,
    colormap_from_classes,
    continuous_qml,
    hex_to_rgba,
    names_from_classes,
    qml_path,
    ramp,
    write_qml,
)

CLASSES = [(1, "#1A9641", "forest 林地"), (2, "#ffffbf", "grassland"), (5, "#2c7bb6", "water")]


def _parse(qml: str) -> ET.Element:
    assert qml.startswith("<!DOCTYPE qgis")
    return ET.fromstring(qml.split("\n", 1)[1])


def test_colour_table_and_names_come_from_the_class_table() -> None:
    assert colormap_from_classes(CLASSES) == {
        1: (0x1A, 0x96, 0x41, 255),
        2: (255, 255, 191, 255),
        5: (0x2C, 0x7B, 0xB6, 255),
    }
    assert names_from_classes(CLASSES) == {1: "forest 林地", 2: "grassland", 5: "water"}


def test_bad_class_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        colormap_from_classes([(1, "#000000", "a"), (1, "#ffffff", "b")])
    with pytest.raises(ValueError, match="colour"):
        colormap_from_classes([(1, "green", "a")])
    with pytest.raises(ValueError, match="empty"):
        categorical_qml([])


def test_categorical_qml_is_a_paletted_renderer_matching_the_classes() -> None:
    root = _parse(categorical_qml(CLASSES, nodata=0, label="Land cover"))
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted"
    assert renderer.get("band") == "1"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [(e.get("value"), e.get("color"), e.get("label")) for e in entries] == [
        ("1", "#1a9641", "forest 林地"),
        ("2", "#ffffbf", "grassland"),
        ("5", "#2c7bb6", "water"),
    ]
    # same colours as the GeoTIFF colour table built from the same list
    cmap = colormap_from_classes(CLASSES)
    for e in entries:
        assert hex_to_rgba(e.get("color"))[:3] == cmap[int(e.get("value"))][:3]
    transparent = renderer.find("rasterTransparency/singleValuePixelList/pixelListEntry")
    assert transparent is not None and transparent.get("min") == "0"
    assert transparent.get("percentTransparent") == "100"


def test_continuous_qml_is_an_interpolated_pseudocolour_ramp() -> None:
    stops = ramp("ndvi", -0.2, 1.0)
    assert stops[0] == (-0.2, "#8c510a") and stops[-1][0] == pytest.approx(1.0)
    root = _parse(continuous_qml(-0.2, 1.0, stops, nodata=-9999, label="NDVI"))
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "singlebandpseudocolor"
    assert renderer.get("classificationMin") == "-0.2"
    assert renderer.get("classificationMax") == "1"
    shader = renderer.find("rastershader/colorrampshader")
    assert shader is not None and shader.get("colorRampType") == "INTERPOLATED"
    items = shader.findall("item")
    assert len(items) == len(stops)
    assert items[0].get("color") == "#8c510a"  # brown at the low end ...
    assert items[-1].get("color") == "#1b5e20"  # ... green at the high end
    assert [float(i.get("value")) for i in items] == pytest.approx([v for v, _ in stops])
    assert renderer.find("rasterTransparency/singleValuePixelList/pixelListEntry") is not None
    label = root.find("customproperties/Option/Option[@name='eqi/label']")
    assert label is not None and label.get("value") == "NDVI"


def test_nan_nodata_needs_no_transparency_entry_and_ramps_run_low_to_high() -> None:
    root = _parse(continuous_qml(0, 1, ramp("rsei", 0, 1), nodata=float("nan"), label="RSEI"))
    assert root.find("pipe/rasterrenderer/rasterTransparency/singleValuePixelList") is None
    items = root.findall("pipe/rasterrenderer/rastershader/colorrampshader/item")
    assert items[0].get("color") == "#d7191c" and items[-1].get("color") == "#1a9641"
    lst = ramp("lst", 250, 330)
    assert lst[0][1] == "#2c7bb6" and lst[-1][1] == "#d7191c"  # blue → red
    with pytest.raises(ValueError, match="unknown colour ramp"):
        ramp("viridis-ish", 0, 1)
    with pytest.raises(ValueError, match="increas"):
        continuous_qml(1, 0, lst, nodata=None, label="x")


def test_write_qml_uses_the_tif_stem(tmp_path: Path) -> None:
    tif = tmp_path / "ndvi.tif"
    assert qml_path(tif) == tmp_path / "ndvi.qml"
    out = write_qml(tif, categorical_qml(CLASSES))
    assert out == tmp_path / "ndvi.qml"
    assert _parse(out.read_text(encoding="utf-8")).find("pipe/rasterrenderer") is not None
    assert not any(TEMP_MARKER in p.name for p in tmp_path.iterdir())
