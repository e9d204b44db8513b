"""The QGIS project writer (eqi.io.qgis_project) on a hand-made task folder, without QGIS.

The headless-QGIS check of real runs is tests/integration/test_outputs_open.py; here: relative
paths, the styles are the .qml files' own ``<pipe>``, groups, visibility, extent, determinism.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr
from pyproj import Transformer
from shapely.geometry import box

from eqi.geo.regions import Region
from eqi.io.cog import write_cog
from eqi.io.qgis_project import write_qgis_project
from eqi.io.qml import categorical_qml, continuous_qml, ramp, write_qml

CLASSES = [(1, "#f2d16b", "耕地 Cropland"), (2, "#1e8c3a", "林地 Forest land")]
UTM = "EPSG:32648"


@pytest.fixture()
def task(tmp_path: Path) -> tuple[Path, list[Region]]:
    """OUT/west/2020 with NDVI, land cover, red/green/blue; two regions side by side."""
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    west = box(*to_ll.transform(400_000, 3_400_000), *to_ll.transform(401_200, 3_401_200))
    east = box(*to_ll.transform(401_200, 3_400_000), *to_ll.transform(402_400, 3_401_200))
    regions = [Region("west", west, attrs={"name": "西区"}), Region("east", east, attrs={"name": "东区"})]
    folder = tmp_path / "west" / "2020"
    gbox = GeoBox.from_bbox((400_000, 3_400_000, 401_200, 3_401_200), crs=UTM, resolution=30)
    rng = np.random.default_rng(0)
    for name in ("red", "green", "blue", "ndvi"):
        tif = write_cog(wrap_xr(rng.random(gbox.shape, dtype="float32") * 0.3, gbox), folder / f"{name}.tif",
                        nodata=np.nan, description=name, kind="continuous", units="1")  # fmt: skip
        write_qml(tif, continuous_qml(0.0, 0.3, ramp("ndvi", 0.0, 0.3), nodata=None, label=f"{name} label"))
    lc = write_cog(wrap_xr(rng.integers(1, 3, gbox.shape).astype("uint8"), gbox), folder / "landcover.tif",
                   nodata=0, description="lc", kind="categorical")  # fmt: skip
    write_qml(lc, categorical_qml(CLASSES, nodata=0, label="Land cover"))
    return tmp_path, regions


def _canon(el: ET.Element) -> bytes:
    """XML without indentation whitespace."""
    el = copy.deepcopy(el)
    for node in el.iter():
        node.text = (node.text or "").strip() or None
        node.tail = None
    return ET.tostring(el)


def _layers(project: ET.Element) -> dict[str, ET.Element]:
    return {ml.findtext("layername").split(" ")[0]: ml for ml in project.iter("maplayer")}


def test_project_is_relative_styled_from_the_qml_and_grouped(task) -> None:
    out, regions = task
    path = write_qgis_project(out, regions[0], 2020, regions=regions)
    assert path == out / "west" / "2020" / "west_2020.qgs"
    root = ET.parse(path).getroot()
    layers = _layers(root)
    assert set(layers) == {"Boundaries", "true", "red", "green", "blue", "ndvi", "landcover"}
    for ml in layers.values():
        source = ml.findtext("datasource")
        assert source.startswith("./"), source
        assert (path.parent / source.split("|")[0]).is_file()
    assert root.find("./properties/Paths/Absolute").text == "false"
    # the style is the .qml's own pipe, byte for byte
    for name in ("ndvi", "landcover"):
        qml = ET.fromstring((path.parent / f"{name}.qml").read_text(encoding="utf-8").split("\n", 1)[1])
        assert _canon(layers[name].find("pipe")) == _canon(qml.find("pipe"))
    palette = {e.get("value"): e.get("label") for e in layers["landcover"].iter("paletteEntry")}
    assert palette == {"1": "耕地 Cropland", "2": "林地 Forest land"}
    groups = {g.get("name"): [la.get("name").split(" ")[0] for la in g.iter("layer-tree-layer")]
              for g in root.find("layer-tree-group").findall("layer-tree-group")}  # fmt: skip
    assert list(groups)[0].startswith("Regions") and groups[list(groups)[0]] == ["Boundaries"]
    assert next(g for n, g in groups.items() if n.startswith("Land cover")) == ["landcover"]
    assert next(g for n, g in groups.items() if n.startswith("Vegetation")) == ["ndvi"]
    visible = {la.get("name").split(" ")[0] for la in root.iter("layer-tree-layer") if la.get("checked") == "Qt::Checked"}
    assert visible == {"Boundaries", "true", "landcover"}  # one composite and the main product
    assert layers["Boundaries"].get("labelsEnabled") == "1"
    assert layers["Boundaries"].find("./labeling/settings/text-style").get("fieldName") == "name"


def test_view_is_the_region_and_boundaries_are_written(task) -> None:
    out, regions = task
    path = write_qgis_project(out, regions[0], 2020, regions=regions)
    ext = ET.parse(path).getroot().find("./mapcanvas/extent")
    x0, y0, x1, y1 = (float(ext.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    assert x0 < 400_000 < 401_200 < x1 < 401_200 + 200  # the west region (+5 %), not the east one
    assert y0 < 3_400_000 < 3_401_200 < y1
    frame = pyogrio.read_dataframe(path.with_name("boundaries.gpkg"), layer="boundaries")
    assert sorted(frame["name"]) == ["东区", "西区"] and frame.crs.to_epsg() == 4326
    assert frame.set_index("region")["current"].to_dict() == {"west": 1, "east": 0}
    vrt = ET.parse(path.with_name("true_colour.vrt")).getroot()
    assert [s.text for s in vrt.iter("SourceFilename")] == ["red.tif", "green.tif", "blue.tif"]
    assert all(s.get("relativeToVRT") == "1" for s in vrt.iter("SourceFilename"))


def test_project_is_deterministic(task) -> None:
    out, regions = task
    first = write_qgis_project(out, regions[0], 2020, regions=regions).read_bytes()
    assert write_qgis_project(out, regions[0], 2020, regions=regions).read_bytes() == first


def test_region_tables_are_added_filtered_to_the_year(task) -> None:
    """``OUT/areas/<area>/tables/regions.gpkg`` (one layer per level, rows per region x year)."""
    import geopandas as gpd

    out, regions = task
    tables = out / "areas" / "a1" / "tables" / "regions.gpkg"
    tables.parent.mkdir(parents=True)
    rows = [{"region": r.name, "name": r.attrs["name"], "level": "county", "year": y, "ei": 50.0 + y - 2019}
            for r in regions for y in (2019, 2020)]  # fmt: skip
    frame = gpd.GeoDataFrame(rows, geometry=[r.geometry for r in regions for _ in (2019, 2020)], crs="EPSG:4326")
    pyogrio.write_dataframe(frame, tables, layer="county", driver="GPKG")
    path = write_qgis_project(out, regions[0], 2020, regions=regions, area="a1")
    root = ET.parse(path).getroot()
    layers = _layers(root)
    county = layers["Counties"]
    assert county.findtext("datasource") == '../../areas/a1/tables/regions.gpkg|layername=county|subset="year" = 2020'
    assert county.find("./labeling/settings/text-style").get("fieldName") == "name"
    assert layers["Boundaries"].find("labeling") is None  # the names are labelled once, by the table layer
    order = [la.get("name").split(" ")[0] for la in root.iter("layer-tree-layer")]
    assert order[:2] == ["Boundaries", "Counties"]
