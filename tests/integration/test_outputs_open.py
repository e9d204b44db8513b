"""Outputs people open (issue 10): the STAC catalog, the COGs and the QGIS projects of a small run.

One small simulated run (two zones of a 2.4 x 3.3 km polygon on the Chengdu plain, one year, the
demo's products) is built once.  Oracles: the STAC JSON schemas (pinned copies, offline), sha256 of
the files, rio-cogeo's validator, the full-resolution mean read back with rasterio, and a real
headless QGIS (Debian ``python3-qgis``) that opens and renders what eqi wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pystac
import pytest
import rasterio
import yaml
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import Polygon, box, mapping
from stac_offline import OfflineValidator, validate_tree

from eqi.products import spec_for

pytestmark = pytest.mark.integration

TINY = Polygon([(103.80, 30.69), (103.825, 30.70), (103.815, 30.72), (103.79, 30.71)])
ZONES = {"西区 West": box(103.0, 30.0, 103.808, 31.0), "东区 East": box(103.808, 30.0, 104.0, 31.0)}
YEARS = (2022,)
PRODUCTS = ["composite", "count", "ndvi", "evi", "mndwi", "ndbsi", "wet", "lst", "fvc", "rsei", "rsei_grade",
            "landcover", "landcover_confidence"]  # fmt: skip
# the national land-cover classes and the RSEI grades, bilingual (spec; configs/methods)
LANDCOVER_LABELS = {1: "耕地 Cropland", 2: "林地 Forest land", 3: "草地 Grassland", 4: "水域 Water bodies"}
RSEI_GRADE_LABELS = {1: "差 poor", 2: "较差 fair", 3: "中等 moderate", 4: "良 good", 5: "优 excellent"}
QGIS_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    from eqi.config import load_config
    from eqi.demo import simulate_archive
    from eqi.io.catalog.archive import index_archive
    from eqi.pipeline.run import run

    out = tmp_path_factory.mktemp("outputs") / "run"
    out.mkdir()
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name, "adcode": f"90000{i}"}, "geometry": mapping(TINY.intersection(b))}
        for i, (name, b) in enumerate(ZONES.items(), start=1)]}  # fmt: skip
    (out / "zones.geojson").write_text(json.dumps(zones, ensure_ascii=False), encoding="utf-8")
    sim = simulate_archive(TINY, out / "archive", region_name="tiny", years=YEARS, margin_m=600.0)
    index_archive([sim.scenes_dir], out / "archive.parquet")
    config = {
        "title": "outputs test (SIMULATED)", "source": "archive.parquet",
        "collections": ["landsat-c2-l2", "sentinel-2-l2a"], "aoi": "zones.geojson", "years": list(YEARS),
        "season": "06-01/09-30", "crs": "albers-china", "resolution": 30, "products": PRODUCTS, "out": ".",
        "simulated": True, "tile_size": 1024,
        "landcover": {"reference": "archive/reference/truth_landcover_{year}.tif", "product": "esa-worldcover",
                      "mode": "classify", "samples_per_class": 100},
    }  # fmt: skip
    (out / "run.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    run(load_config(out / "run.yaml"), progress=lambda _: None)
    return out


@pytest.fixture(scope="module")
def moved_run(small_run: Path, tmp_path_factory) -> Path:
    """The finished outputs copied elsewhere (the simulated input archive left behind)."""
    target = tmp_path_factory.mktemp("moved") / "elsewhere"
    shutil.copytree(small_run, target, ignore=shutil.ignore_patterns("archive", "archive.parquet", ".eqi.lock"))
    return target


def _task_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/*/item.json"))


def _json_files(out: Path) -> list[Path]:
    return sorted([out / "catalog.json", *out.glob("*/*/item.json"), *out.glob("collections/*/*.json")])


# ---------------------------------------------------------------------------------------- STAC


def test_catalog_items_and_collections_validate_offline(small_run: Path) -> None:
    tasks = _task_dirs(small_run)
    assert len(tasks) == len(ZONES) * len(YEARS)
    count = validate_tree(small_run / "catalog.json")
    families = {"composite", "vegetation", "water", "heat", "rsei", "landcover"}
    store = [*small_run.glob("tiles/*/*/*/item.json"), *small_run.glob("areas/*/*/*/item.json")]
    assert len(store) == 2 * len(YEARS)  # one tile, composited and applied
    # catalog + task items + one collection per family + one item per family and task + the tile store
    assert count == 1 + len(tasks) + len(families) * (1 + len(tasks)) + 1 + len(store)
    catalog = pystac.Catalog.from_file(str(small_run / "catalog.json"))
    assert {c.id for c in catalog.get_children()} == {f"eqi-{f}" for f in families} | {"eqi-tile-store"}
    rsei = catalog.get_child("eqi-rsei")
    assert isinstance(rsei, pystac.Collection)
    assert set(rsei.summaries.get_list("eqi:products")) == {"rsei", "rsei_grade", "ndbsi", "wet"}
    view = next(rsei.get_items())
    assert set(view.assets) >= {"rsei", "rsei_style", "rsei_grade"} and "ndvi" not in view.assets
    assert Path(view.assets["rsei"].get_absolute_href()).is_file()


def test_every_item_is_checked_by_the_schemas(small_run: Path, tmp_path: Path) -> None:
    """A negative control: a broken checksum, a lost class value and a bad bbox are refused."""
    raw = json.loads((_task_dirs(small_run)[0] / "item.json").read_text(encoding="utf-8"))
    validator = OfflineValidator()
    pystac.validation.validate_dict(raw, validator=validator)
    for breaking in (
        lambda d: d["assets"]["ndvi"].__setitem__("file:checksum", "not-a-multihash"),
        lambda d: d["assets"]["landcover"]["classification:classes"][0].pop("value"),
        lambda d: d["assets"]["ndvi"].__setitem__("proj:shape", [1.5, "x"]),
    ):
        broken = json.loads(json.dumps(raw))
        breaking(broken)
        with pytest.raises(pystac.errors.STACValidationError):
            pystac.validation.validate_dict(broken, validator=validator)


def test_checksums_sizes_and_classes_match_the_files(small_run: Path) -> None:
    checked = 0
    for path in _json_files(small_run):
        raw = json.loads(path.read_text(encoding="utf-8"))
        for key, asset in raw.get("assets", {}).items():
            target = (path.parent / asset["href"]).resolve()
            assert target.is_file(), (path, key)
            assert asset["file:size"] == target.stat().st_size, (path, key)
            if "file:checksum" in asset:
                assert asset["file:checksum"] == "1220" + hashlib.sha256(target.read_bytes()).hexdigest(), (path, key)
                checked += 1
            assert asset.get("roles") and asset.get("type"), (path, key)
    assert checked > 100
    for task in _task_dirs(small_run):
        assets = json.loads((task / "item.json").read_text(encoding="utf-8"))["assets"]
        for name, expected in (("landcover", LANDCOVER_LABELS), ("rsei_grade", RSEI_GRADE_LABELS)):
            classes = {c["value"]: c for c in assets[name]["classification:classes"]}
            assert {v: classes[v]["description"] for v in expected} == expected
            with rasterio.open(task / f"{name}.tif") as src:
                colormap = src.colormap(1)
            for value, cls in classes.items():
                assert cls["color_hint"] == "{:02X}{:02X}{:02X}".format(*colormap[value][:3])
        assert "classification:classes" not in assets["ndvi"]
        assert not any(a["href"].endswith(".qgs") for a in assets.values())  # rebuildable, not part of the done marker


def test_moved_folder_keeps_the_catalog_valid_and_resolving(small_run: Path, moved_run: Path) -> None:
    assert validate_tree(moved_run / "catalog.json") == validate_tree(small_run / "catalog.json")
    for path in _json_files(moved_run):
        text = path.read_text(encoding="utf-8")
        assert str(small_run) not in text and '"href": "/' not in text, path
    catalog = pystac.Catalog.from_file(str(moved_run / "catalog.json"))
    items = [*catalog.get_items()] + [i for c in catalog.get_children() for i in c.get_items()]
    assert len(items) == validate_tree(moved_run / "catalog.json") - 1 - len(list(catalog.get_children()))
    hrefs = [a.get_absolute_href() for i in items for a in i.assets.values()]
    assert hrefs and all(Path(h).resolve().is_relative_to(moved_run.resolve()) for h in hrefs)
    assert all(Path(h).is_file() for h in hrefs)


# ---------------------------------------------------------------------------------------- COGs


def test_every_deliverable_is_a_valid_cog(small_run: Path) -> None:
    """The region outputs are COGs (the tile store holds plain tiled GeoTIFFs that only eqi reads)."""
    tifs = [p for task in _task_dirs(small_run) for p in sorted(task.glob("*.tif"))]
    assert len(tifs) == len(ZONES) * len(YEARS) * 18
    for tif in tifs:
        valid, errors, _warnings = cog_validate(str(tif), quiet=True)
        assert valid and not errors, (tif, errors)
        with rasterio.open(tif) as src:
            kind = spec_for(src.tags()["EQI_PRODUCT"]).kind  # the registry says what a product is
            assert src.tags()["OVERVIEW_RESAMPLING"] == ("AVERAGE" if kind == "continuous" else "MODE"), tif


def test_overviews_of_continuous_products_keep_the_mean(small_run: Path, tmp_path: Path) -> None:
    """Every continuous 1024-px layer of the run written as a deliverable COG (``write_cog``, the
    region stage's writer): each overview level has the full-resolution mean within 1 %."""
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import wrap_xr

    from eqi.io.cog import write_cog

    levels = 0
    for layer in sorted(small_run.glob("tiles/*/*/*/*.tif")):
        with rasterio.open(layer) as src:
            name = re.sub(r"_s\d+$", "", src.tags()["EQI_PRODUCT"])
            if spec_for(name).kind != "continuous":
                continue
            data, nodata = src.read(1), src.nodata
            gbox = GeoBox(data.shape, src.transform, src.crs.to_wkt())
        cog = write_cog(wrap_xr(data, gbox), tmp_path / layer.name, nodata=nodata, description=name, kind="continuous")
        with rasterio.open(cog) as src:
            assert src.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE" and src.overviews(1), cog
            full = src.read(1, masked=True).astype("float64")
            mean, spread = float(full.mean()), float(full.std())
            for level in range(len(src.overviews(1))):
                with rasterio.open(cog, overview_level=level) as ovr:
                    reduced = ovr.read(1, masked=True).astype("float64")
                # 1 % of the mean, or 1 % of the spread for means near zero (NDBSI, wetness)
                tolerance = max(0.01 * abs(mean), 0.01 * spread)
                assert abs(float(reduced.mean()) - mean) <= tolerance, (layer.name, level, mean, float(reduced.mean()))
                levels += 1
    assert levels >= 15


# ---------------------------------------------------------------------------------------- QGIS


def _qgis_available() -> bool:
    if not Path(QGIS_PYTHON).is_file():
        return False
    res = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60)
    return res.returncode == 0


@pytest.fixture(scope="module")
def qgis_report(moved_run: Path, tmp_path_factory) -> dict:
    """What a real headless QGIS sees in the moved copy of the outputs."""
    if not _qgis_available():
        if os.environ.get("CI"):
            pytest.fail("QGIS (Debian python3-qgis) is missing: `make system-deps` installs it")
        pytest.skip("QGIS (Debian python3-qgis) is not installed")
    work = tmp_path_factory.mktemp("qgis")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(work)}
    env.pop("PYTHONPATH", None)  # QGIS's own Python, not the project's venv
    res = subprocess.run([QGIS_PYTHON, str(Path(__file__).with_name("qgis_check.py")), str(moved_run),
                          str(work / "report.json"), str(work / "png")], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((work / "report.json").read_text(encoding="utf-8"))


def test_qgis_opens_every_raster_styled(qgis_report: dict) -> None:
    rasters = qgis_report["rasters"]
    region_cogs = {n: i for n, i in rasters.items() if n.endswith(".tif") and i["styled"]}
    assert len(region_cogs) == len(ZONES) * len(YEARS) * 18  # every product of every task
    assert len(rasters) > 3 * len(region_cogs)  # + mosaics (VRT), the tile store and the area
    for name, info in rasters.items():
        assert info["valid"] and info["crs_valid"], name
    for name, info in region_cogs.items():
        product = Path(name).stem
        if product in ("landcover", "rsei_grade"):
            assert info["renderer"] == "paletted", name
            expected = LANDCOVER_LABELS if product == "landcover" else RSEI_GRADE_LABELS
            assert {v: info["labels"][str(v)] for v in expected} == expected, name
        else:
            assert info["renderer"] == "singlebandpseudocolor", name
            assert len(set(info["ramp"])) >= 2 and info["ramp_type"] == 0, name  # 0 = interpolated


def test_qgis_opens_every_vector(qgis_report: dict) -> None:
    vectors = qgis_report["vectors"]
    assert len(vectors) == len(ZONES) * len(YEARS)
    for name, info in vectors.items():
        assert info["valid"] and info["crs_valid"] and info["features"] == len(ZONES), name


def test_qgis_projects_open_grouped_in_view_and_render(qgis_report: dict, moved_run: Path) -> None:
    projects = qgis_report["projects"]
    assert len(projects) == len(ZONES) * len(YEARS)
    for name, info in projects.items():
        assert info["read"] and info["crs_valid"] and info["absolute_paths"] is False, name
        assert info["groups"][0].startswith("Regions") and any(g.startswith("Composites") for g in info["groups"])
        layers = info["layers"].values()
        assert all(la["valid"] and la["crs_valid"] for la in layers), name
        assert all(Path(la["source"].split("|")[0]).resolve().is_relative_to(moved_run.resolve()) for la in layers)
        visible = {la["name"].split(" ")[0] for la in layers if la["visible"]}
        assert visible == {"Boundaries", "rsei", "true"}, (name, visible)
        boundaries = next(la for la in layers if la["group"].startswith("Regions"))
        assert boundaries["labels"] and boundaries["features"] == len(ZONES)
        with rasterio.open(moved_run / Path(name).parent / "rsei.tif") as src:
            b = src.bounds
        x0, y0, x1, y1 = info["view"]
        assert x0 <= b.left + 60 and y0 <= b.bottom + 60 and x1 >= b.right - 60 and y1 >= b.top - 60, name
        assert (x1 - x0) < 2 * (b.right - b.left) + 1000, name  # the region in view, not the whole area
        render, without = info["render"], info["render_without_boundaries"]
        assert not render["errors"], render["errors"]
        assert render["colours"] >= 50 and render["white_share"] < 0.8, name  # a map, not a blank page
        assert render["boundary_pixels"] > 300 and without["boundary_pixels"] < render["boundary_pixels"] / 10, name
