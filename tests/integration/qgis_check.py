"""Open a finished eqi run in a real headless QGIS and report what QGIS sees (run by Debian's python3).

Usage: ``QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_check.py OUT RESULT.json PNG_DIR``

For every ``OUT/<region>/<year>/*.tif`` (with its same-stem ``.qml``, loaded by QGIS itself), every
``*.gpkg`` and every ``*.qgs``: is the layer valid, is its CRS valid, which renderer and which
palette labels / ramp it has; for each project the layer tree, the visible layers, the extent,
and the map canvas rendered to a PNG (plus a render with the boundaries hidden, to see them).
Writes a JSON report; the pytest side asserts on it.  Imports nothing from eqi (QGIS's Python is
not the project's venv).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def raster_info(layer: QgsRasterLayer) -> dict:
    renderer = layer.renderer()
    info = {
        "valid": layer.isValid(),
        "crs_valid": layer.crs().isValid(),
        "crs": layer.crs().toWkt()[:80],
        "renderer": renderer.type() if renderer else None,
    }
    if renderer is not None and renderer.type() == "paletted":
        info["labels"] = {int(c.value): c.label for c in renderer.classes()}
        info["colours"] = {int(c.value): c.color.name() for c in renderer.classes()}
    if renderer is not None and renderer.type() == "singlebandpseudocolor":
        shader = renderer.shader().rasterShaderFunction()
        items = shader.colorRampItemList()
        info["ramp"] = [c.color.name() for c in items]
        info["ramp_type"] = int(shader.colorRampType())
    return info


def render(project: QgsProject, size: int, png: Path, hide: set[str] = frozenset()) -> dict:
    root = project.layerTreeRoot()
    layers = [la for la in root.checkedLayers() if la.id() not in hide]
    canvas = project.viewSettings()
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(project.crs())
    extent = canvas.defaultViewExtent() if not canvas.defaultViewExtent().isEmpty() else None
    if extent is None or extent.isEmpty():
        extent = project.layerTreeRoot().findLayers()[0].layer().extent()
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(png), "PNG")
    colours = {}
    boundary = 0  # pixels near the boundary colour (#e0218a, magenta), antialiasing included
    for y in range(image.height()):
        for x in range(image.width()):
            rgb = image.pixel(x, y) & 0xFFFFFF
            colours[rgb] = colours.get(rgb, 0) + 1
            r, g, b = rgb >> 16, (rgb >> 8) & 0xFF, rgb & 0xFF
            if r > 180 and g < 110 and 90 < b < 190 and r - g > 110:
                boundary += 1
    return {"png": str(png), "layers": [la.name() for la in layers], "colours": len(colours),
            "white_share": colours.get(0xFFFFFF, 0) / max(1, sum(colours.values())),
            "errors": [str(e.message) for e in job.errors()], "boundary_pixels": boundary,
            "pixels": {f"{k:06x}": v for k, v in sorted(colours.items(), key=lambda kv: -kv[1])[:400]}}


def project_info(path: Path, png_dir: Path) -> dict:
    project = QgsProject()
    ok = project.read(str(path))
    root = project.layerTreeRoot()
    layers = {}
    for node in root.findLayers():
        layer = node.layer()
        entry = {"valid": bool(layer and layer.isValid()), "visible": node.isVisible(),
                 "group": node.parent().name(), "name": node.name(),
                 "source": layer.source() if layer else None,
                 "crs_valid": bool(layer and layer.crs().isValid())}
        if isinstance(layer, QgsRasterLayer):
            entry.update(raster_info(layer))
        elif isinstance(layer, QgsVectorLayer):
            entry["features"] = layer.featureCount()
            entry["labels"] = bool(layer.labelsEnabled())
            entry["renderer"] = layer.renderer().type() if layer.renderer() else None
        layers[layer.id() if layer else node.layerId()] = entry
    boundaries = {lid for lid, e in layers.items() if e["group"].startswith("Regions")}
    stem = path.stem
    info = {
        "read": ok,
        "crs_valid": project.crs().isValid(),
        "absolute_paths": project.readBoolEntry("Paths", "/Absolute", True)[0],
        "groups": [g.name() for g in root.children()],
        "layers": layers,
        "render": render(project, 400, png_dir / f"{stem}.png"),
        "render_without_boundaries": render(project, 400, png_dir / f"{stem}-nob.png", boundaries),
    }
    ext = project.viewSettings().defaultViewExtent()
    info["view"] = [ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()]
    return info


def main() -> None:
    out, result, png_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    png_dir.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], False)
    app.initQgis()
    report = {"qgis": Qgis.QGIS_VERSION, "rasters": {}, "vectors": {}, "projects": {}}
    for tif in sorted([*out.rglob("*.tif"), *out.rglob("*.vrt")]):
        if "archive" in tif.relative_to(out).parts:
            continue
        layer = QgsRasterLayer(str(tif), tif.stem, "gdal")
        styled = tif.with_suffix(".qml").is_file()
        if styled:
            layer.loadDefaultStyle()  # the same-stem .qml, as QGIS does when a user adds the file
        report["rasters"][str(tif.relative_to(out))] = {**raster_info(layer), "styled": styled}
    for gpkg in sorted(out.glob("**/*.gpkg")):
        if "archive" in gpkg.parts:
            continue
        whole = QgsVectorLayer(str(gpkg), "x", "ogr")
        for sub in whole.dataProvider().subLayers():
            name = sub.split("!!::!!")[1]
            layer = QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr")
            report["vectors"][f"{gpkg.relative_to(out)}|{name}"] = {
                "valid": layer.isValid(), "crs_valid": layer.crs().isValid(), "features": layer.featureCount()}
    for qgs in sorted(out.glob("*/*/*.qgs")):
        report["projects"][str(qgs.relative_to(out))] = project_info(qgs, png_dir)
    result.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    sys.stdout.flush()
    # QGIS 3.22 can crash tearing down layers at interpreter exit; the report is written, so leave now
    os._exit(0)


if __name__ == "__main__":
    main()
