"""`eqi run --products ...,ei,eqi` end to end on a real (downsampled) Landsat scene: the run's
regions are assessed from the area mosaics and the tables are written; a rerun skips the
assessment; a missing biodiversity table leaves EQI incomplete naming the indicator."""

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
    scene_dir = sample_data / "landsat-c2l2-downsampled-scenes" / SCENE
    archive = tmp_path / "archive.parquet"
    assert _eqi("archive", "index", str(scene_dir), "--out", str(archive)) == 0
    with rasterio.open(scene_dir / f"{SCENE}_SR_B4.TIF") as src:
        crs, b = src.crs, src.bounds
    # a made-up ESA WorldCover-coded reference on the scene's extent: tree / crop / built / water bands
    w, h = int((b.right - b.left) // 90), int((b.top - b.bottom) // 90)
    codes = np.full((h, w), 10, dtype=np.uint8)
    codes[:, w // 3 :] = 40
    codes[: h // 4, : w // 4] = 50
    codes[h // 2 : h // 2 + 5, :] = 80
    ref = tmp_path / "reference.tif"
    with rasterio.open(ref, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs,
                       transform=from_origin(b.left, b.top, 90, 90), nodata=0) as dst:  # fmt: skip
        dst.write(codes, 1)
    x0, x1 = b.left + 0.35 * (b.right - b.left), b.left + 0.6 * (b.right - b.left)
    y0, y1 = b.bottom + 0.35 * (b.top - b.bottom), b.bottom + 0.6 * (b.top - b.bottom)
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat0, lat1) = tr.transform([x0, x1], [y0, y1])
    aoi = tmp_path / "site.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "site"},
                   "geometry": {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}}]}))  # fmt: skip
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
