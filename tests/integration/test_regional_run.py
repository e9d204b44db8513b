"""`eqi run --products ...,ei,eqi` end to end on a real (downsampled) Landsat scene: the run's
regions are assessed from the area mosaics and the tables are written; a rerun skips the
assessment; a missing biodiversity table leaves EQI incomplete naming the indicator.  Ecosystem
quality (HJ 1172): a supplied file that does not exist ends with exit 2 and nothing written, a
missing NPP is named in the tables and the log, LAI/NPP in another CRS are resampled and assessed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from eqi.cli import main

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"


def _eqi(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_run_with_ei_eqi_writes_the_regional_tables(sample_data: Path, tmp_path: Path, capsys) -> None:
    archive, crs, _b, ref, aoi = _scene_inputs(sample_data, tmp_path, water=True, x_share=(0.35, 0.6))
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "disasters.csv").write_text("adcode,year,affected_km2\n510115,2019,0.5\n", encoding="utf-8")
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "source": str(archive), "collections": ["landsat-c2-l2"], "aoi": str(aoi), "years": [2019],
        "season": "11-01/12-31", "crs": crs.to_string(), "resolution": 90, "tile_size": 512,
        "products": ["ndvi", "fvc", "landcover", "ei", "eqi"], "out": str(out),
        "landcover": {"reference": str(ref), "mode": "reclassify", "level": 2},
        "assess": {"tables": str(tables), "levels": ["zone"], "min_coverage": 0.5, "uncertainty": {"draws": 20}},
    }))  # fmt: skip
    assert _eqi("run", str(cfg)) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "assessment tables in" in printed
    folder = next((out / "areas").iterdir()) / "tables"
    doc = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    (row,) = doc["rows"]
    assert row["region"] == "site" and row["level"] == "zone" and row["zone_type"] == "aoi" and row["evaluated"]
    # a user AOI has no adcode: every tabular input is missing, and named
    assert row["eqi_complete"] is False and "bd_species (物种多样性, table)" in row["eqi_missing"]
    assert row["ei_complete"] is False and "cod load (PLI)" in row["ei_missing"]
    assert row["ep_ecoland_ratio_source"] == "remote_sensing" and row["bd_species_source"] == "table"
    classes = sum(v for k, v in row.items() if k.startswith("landcover_class_") and k.endswith("_km2"))
    assert classes == pytest.approx(row["valid_fraction"] * row["region_km2"], rel=1e-9)
    assert 0 < row["ndvi_mean"] < 1 and 0 <= row["fvc_mean"] <= 1
    assert list(pyogrio.list_layers(folder / "regions.gpkg")[:, 0]) == ["zone"]
    assert (folder / "regions-zh.xlsx").is_file() and (folder / "assessment.json").is_file()
    # issue 10: the first run's QGIS project already joins the region tables written after it
    (project,) = (out / "site" / "2019").glob("*.qgs")
    assert "tables/regions.gpkg" in project.read_text(encoding="utf-8")
    before = (folder / "regions.json").read_bytes()
    assert _eqi("run", str(cfg)) == 0
    assert "skip assessment" in capsys.readouterr().out
    assert (folder / "regions.json").read_bytes() == before


def _scene_inputs(sample_data: Path, tmp_path: Path, *, water: bool = False,
                  x_share: tuple[float, float] = (0.2, 0.5)) -> tuple[Path, object, object, Path, Path]:  # fmt: skip
    """Archive, CRS, bounds, a made-up WorldCover-coded reference on the scene's extent (tree / crop /
    built bands, with ``water`` a water band too) and an AOI over ``x_share`` of its width."""
    scene_dir = sample_data / "landsat-c2l2-downsampled-scenes" / SCENE
    archive = tmp_path / "archive.parquet"
    assert _eqi("archive", "index", str(scene_dir), "--out", str(archive)) == 0
    with rasterio.open(scene_dir / f"{SCENE}_SR_B4.TIF") as src:
        crs, b = src.crs, src.bounds
    w, h = int((b.right - b.left) // 90), int((b.top - b.bottom) // 90)
    codes = np.full((h, w), 10, dtype=np.uint8)
    codes[:, w // 3 :] = 40
    codes[: h // 4, : w // 4] = 50
    if water:
        codes[h // 2 : h // 2 + 5, :] = 80
    ref = tmp_path / "reference.tif"
    with rasterio.open(ref, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs,
                       transform=from_origin(b.left, b.top, 90, 90), nodata=0) as dst:  # fmt: skip
        dst.write(codes, 1)
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat0, lat1) = tr.transform([b.left + x_share[0] * (b.right - b.left), b.left + x_share[1] * (b.right - b.left)],
                                              [b.bottom + 0.35 * (b.top - b.bottom), b.bottom + 0.6 * (b.top - b.bottom)])  # fmt: skip
    aoi = tmp_path / "site.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "site"},
                   "geometry": {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}}]}))  # fmt: skip
    return archive, crs, b, ref, aoi


def _lonlat_raster(path: Path, crs, b, base: float, slope: float) -> Path:
    """A parameter raster in EPSG:4326 at 0.002° over the scene: base + slope x (column share)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs, ys = tr.transform([b.left, b.right, b.left, b.right], [b.bottom, b.bottom, b.top, b.top])
    step = 0.002
    w, h = int((max(xs) - min(xs)) / step) + 2, int((max(ys) - min(ys)) / step) + 2
    data = (base + slope * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(min(xs) - step, max(ys) + step, step, step), nodata=-1.0) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def test_run_with_ecosystem_quality(sample_data: Path, tmp_path: Path, capsys) -> None:
    archive, crs, b, ref, aoi = _scene_inputs(sample_data, tmp_path)
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    base = {"source": str(archive), "collections": ["landsat-c2-l2"], "aoi": str(aoi), "years": [2019],
            "season": "11-01/12-31", "crs": crs.to_string(), "resolution": 90, "tile_size": 512,
            "products": ["ndvi", "fvc", "landcover", "ecosystem_quality"], "out": str(out),
            "landcover": {"reference": str(ref), "mode": "reclassify", "level": 2}}  # fmt: skip
    # a supplied file that does not exist: exit 2 naming the field and the file, nothing written
    cfg.write_text(yaml.safe_dump({**base, "assess": {"levels": ["zone"], "ecosystem_quality": {"lai": "lai_{year}.tif"}}}))
    assert _eqi("run", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "assess.ecosystem_quality.lai (2019)" in err and "lai_2019.tif not found" in err
    assert not out.exists()
    # LAI only: the run succeeds, the tables and the log name the missing NPP
    _lonlat_raster(tmp_path / "lai_2019.tif", crs, b, 1.0, 4.0)
    cfg.write_text(yaml.safe_dump({**base, "assess": {"levels": ["zone"], "min_coverage": 0.5, "uncertainty": {"draws": 0},
                                                      "ecosystem_quality": {"lai": "lai_{year}.tif"}}}))  # fmt: skip
    assert _eqi("validate", str(cfg)) == 0, capsys.readouterr()
    assert "ecosystem quality 2019: not assessed, missing npp (assess.ecosystem_quality.npp not given)" in capsys.readouterr().out
    assert _eqi("run", str(cfg)) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert printed.count("ecosystem quality not assessed") == 1 and "npp (assess.ecosystem_quality.npp not given)" in printed
    folder = next((out / "areas").iterdir()) / "tables"
    (row,) = json.loads((folder / "regions.json").read_text(encoding="utf-8"))["rows"]
    assert row["eq_status"] == "not_assessed" and row["eq_mean"] is None
    assert row["eq_missing"] == "npp (assess.ecosystem_quality.npp not given)"
    # LAI and NPP (EPSG:4326, 0.002°) resampled onto the run's 90 m UTM grid: assessed
    _lonlat_raster(tmp_path / "npp_2019.tif", crs, b, 300.0, 600.0)
    cfg.write_text(yaml.safe_dump({**base, "assess": {"levels": ["zone"], "min_coverage": 0.5, "uncertainty": {"draws": 0},
                                                      "ecosystem_quality": {"lai": "lai_{year}.tif",
                                                                            "npp": {2019: str(tmp_path / "npp_2019.tif")}}}}))  # fmt: skip
    assert _eqi("run", str(cfg)) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "ecosystem quality not assessed" not in printed and "ecosystem quality 2019: reference all pixels" in printed
    doc = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    (row,) = doc["rows"]
    # FVC is valid on ~19 % of this cloudy site and forest/shrub/grass cover little of it: the
    # quality raster covers < 1 % of the region, below the profile's min_assessed_fraction (0.05)
    assert 0 < row["eq_assessed_fraction"] < 0.05 and row["eq_mean"] is None and row["eq_grade"] is None
    assert row["eq_status"] == "not_assessed" and "min_assessed_fraction 0.05" in row["eq_missing"]
    meta = doc["profiles"]["ecosystem_quality"]
    assert meta["id"] == "eq-hj1172-2021" and meta["assessed_years"] == [2019] and meta["tags"]["weights"] == "[U]"
    assert "all pixels" in meta["reference_scope"] and meta["references"]["forest"]["lai"] > 1.0
    area_tif = next((out / "areas").iterdir()) / "ecosystem_quality" / "2019" / "ecosystem_quality.tif"
    region_tif = out / "site" / "ecosystem_quality" / "2019" / "ecosystem_quality.tif"
    for tif in (area_tif, region_tif):
        with rasterio.open(tif) as src:
            q = src.read(1)
            assert src.tags()["EQI_PRODUCT"] == "ecosystem_quality" and tif.with_suffix(".qml").is_file()
        finite = q[np.isfinite(q)]
        assert finite.size and finite.min() >= 0 and finite.max() <= 100
    assert "ecosystem_quality" in load_workbook_sheets(folder / "regions-en.xlsx")


def load_workbook_sheets(path: Path) -> list[str]:
    from openpyxl import load_workbook

    return load_workbook(path, read_only=True).sheetnames
