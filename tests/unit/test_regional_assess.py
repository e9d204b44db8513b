"""The regional assessment (eqi.pipeline.assess_stage) on a synthetic evaluation area.

Oracles: class areas by hand (regions are unions of whole 30 m pixels of known classes), EI /
EQI recomputed with the science functions from those hand areas, county sums equal to
prefecture and province, the documented table layout (docs/tables.md), byte-identical files for
equal inputs, and the Monte-Carlo interval widening when a land-cover error rate is planted.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from openpyxl import load_workbook
from pyproj import Transformer
from rasterio.transform import from_origin

from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.regions import Region
from eqi.io import tables as tabular
from eqi.pipeline.assess_stage import assess_area, write_assessment
from eqi.resources import load_profile
from eqi.science.ei import EiInputs, compute_ei
from eqi.science.eqi_index import eqi_grade

RES = 30.0
X0, Y0 = 500_000.0, 3_300_000.0
N = 100  # 100 x 100 px = 3 x 3 km; 4 counties of 50 x 50 px
PX_KM2 = RES * RES / 1e6
EI_P = load_profile("ei-hj192-2015")
EQI_P = load_profile("eqi-2021")
COUNTIES = {"510101": (0, 0), "510102": (0, 50), "510201": (50, 0), "510202": (50, 50)}  # (row, col) of the block


def _write(path: Path, data: np.ndarray, nodata) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=N, height=N, count=1, dtype=data.dtype, crs=ALBERS_CHINA,
                       transform=from_origin(X0, Y0, RES, RES), nodata=nodata) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def _landcover(year: int) -> np.ndarray:
    lc = np.full((N, N), 21, dtype=np.uint8)  # forest
    lc[:, 50:] = 12  # dry cropland in the east counties
    lc[:10, :10] = 51  # town in 510101
    lc[60:70, 60:80] = 42 if year == 2022 else 12  # a lake in 510202 drained to cropland by 2023
    return lc


def _region(adcode: str, geom_albers, level: str, parent: str) -> Region:
    tr = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    g = shapely.transform(geom_albers, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    attrs = {"adcode": adcode, "name": f"r{adcode}", "level": level}
    if level == "county":
        attrs["prefecture_adcode"] = parent
    return Region(f"r-{adcode}", g, "EPSG:4326", attrs)


def _block(r0: int, c0: int, nr: int, nc: int):
    return shapely.box(X0 + c0 * RES, Y0 - (r0 + nr) * RES, X0 + (c0 + nc) * RES, Y0 - r0 * RES)


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    d = tmp_path_factory.mktemp("area")
    mosaics = {}
    for year in (2022, 2023):
        y = d / str(year)
        y.mkdir()
        lc = _landcover(year)
        ndvi = np.where(lc == 21, 0.8, np.where(lc == 12, 0.5, np.where(lc == 42, 0.0, 0.2))).astype(np.float32)
        ndvi[95:, 95:] = np.nan  # a few invalid NDVI pixels (clouds) in 510202
        fvc = np.clip((ndvi - 0.05) / 0.8, 0, 1).astype(np.float32)
        mosaics[year] = {"landcover": _write(y / "landcover.tif", lc, 0), "ndvi": _write(y / "ndvi.tif", ndvi, float("nan")),
                         "fvc": _write(y / "fvc.tif", fvc, float("nan"))}  # fmt: skip
    regions = [_region("510000", _block(0, 0, N, N), "province", "")]
    regions += [_region("510100", _block(0, 0, 50, N), "prefecture", "510000"), _region("510200", _block(50, 0, 50, N), "prefecture", "510000")]
    regions += [_region(a, _block(r, c, 50, 50), "county", a[:4] + "00") for a, (r, c) in COUNTIES.items()]
    return d, mosaics, regions


def _tables(tmp: Path, *, biodiversity: bool = True) -> dict[str, pd.DataFrame]:
    t = tmp / "tables"
    t.mkdir(exist_ok=True)
    codes = ["510000", "510100", "510200", *COUNTIES]
    lines = {
        "pollution": "adcode,year,cod_t,nh3n_t,so2_t,dust_t,nox_t,solid_waste_t,precipitation_mm\n",
        "water_resources": "adcode,year,water_resources_1e6m3\n",
        "erosion": "adcode,year,severe_erosion_km2,moderate_erosion_km2,other_stress_km2\n",
        "disasters": "adcode,year,affected_km2\n",
    }
    if biodiversity:
        lines["biodiversity"] = "adcode,year,biodiversity_index,invasive_species\n"
    for code in codes:
        for year in (2022, 2023):
            lines["pollution"] += f"{code},{year},50,5,10,8,20,1,900\n"
            lines["water_resources"] += f"{code},{year},3\n"
            lines["erosion"] += f"{code},{year},0.05,0.1,0\n"
            lines["disasters"] += f"{code},{year},0.01\n"
            if biodiversity:
                lines["biodiversity"] += f"{code},{year},40,3\n"
    for family, text in lines.items():
        (t / f"{family}.csv").write_text(text, encoding="utf-8")
    return tabular.read_tables(t, known_adcodes=codes)


def _assess(area, tmp_path, only=None, **kw):
    _, mosaics, regions = area
    if only is not None:
        regions = [r for r in regions if r.attrs["adcode"] in only]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    kw.setdefault("tables", _tables(tmp_path))
    return assess_area(mosaics=mosaics, regions=regions, ei_profile=EI_P, eqi_profile=EQI_P, products=["ei", "eqi"],
                       work=work, **{"draws": 50, **kw})  # fmt: skip


def _rows(result, level=None):
    return [r for r in result["rows"] if level is None or r["level"] == level]


def test_class_areas_by_hand_and_nested_regions_add_up(area, tmp_path):
    res = _assess(area, tmp_path, draws=0)
    by = {(r["adcode"], r["year"]): r for r in res["rows"]}
    # hand areas: 510101 = 2500 px, of which 100 town, 2400 forest
    r = by[("510101", 2022)]
    assert r["landcover_class_51_km2"] == pytest.approx(100 * PX_KM2, abs=1e-9)
    assert r["landcover_class_21_km2"] == pytest.approx(2400 * PX_KM2, abs=1e-9)
    assert r["region_km2"] == pytest.approx(2500 * PX_KM2, abs=1e-9)
    assert by[("510202", 2022)]["landcover_class_42_km2"] == pytest.approx(200 * PX_KM2, abs=1e-9)
    for year in (2022, 2023):
        codes = {k for r in res["rows"] for k in r if k.startswith("landcover_class_") and k.endswith("_km2")}
        for col in sorted(codes) + ["region_km2"]:
            counties = sum(by[(a, year)].get(col, 0.0) for a in COUNTIES)
            prefectures = sum(by[(a, year)].get(col, 0.0) for a in ("510100", "510200"))
            province = by[("510000", year)].get(col, 0.0)
            assert counties == pytest.approx(prefectures, abs=1e-9) and prefectures == pytest.approx(province, abs=1e-9), col
        for r in res["rows"]:
            total = sum(v for k, v in r.items() if k.startswith("landcover_class_") and k.endswith("_km2"))
            assert total == pytest.approx(r["region_km2"], abs=1e-9)


def test_ei_and_eqi_from_hand_inputs(area, tmp_path):
    res = _assess(area, tmp_path, draws=0)
    r = next(x for x in res["rows"] if x["adcode"] == "510101" and x["year"] == 2022)
    area_km2 = 2500 * PX_KM2
    ndvi_land = (2400 * 0.8 + 100 * 0.2) / 2500  # no water in 510101
    expect = compute_ei(EiInputs(area_km2=area_km2, class_areas_km2={21: 2400 * PX_KM2, 51: 100 * PX_KM2}, ndvi_mean=ndvi_land,
                                 river_length_km=None, water_resources=3, severe_erosion_km2=0.05, moderate_erosion_km2=0.1,
                                 other_stress_km2=0, pollution_t={"cod": 50, "nh3n": 5, "so2": 10, "dust": 8, "nox": 20, "solid_waste": 1},
                                 precipitation_mm=900, biodiversity_index=40), EI_P)  # fmt: skip
    # no river layer and no river_length in the water table: EI incomplete, naming it
    assert not r["ei_complete"] and "river length (WNDI)" in r["ei_missing"]
    assert r["hq"] == pytest.approx(expect.hq) and r["vci"] == pytest.approx(expect.vci) and r["pli"] == pytest.approx(expect.pli)
    assert r["bri_source"] == "remote_sensing+table" and r["vci_source"] == "remote_sensing" and r["pli_source"] == "table"
    # EQI is complete (no river needed): ecological land 96 %, land development 4 %
    assert r["eqi_complete"], r["eqi_missing"]
    assert r["ep_ecoland_ratio_raw"] == pytest.approx(96.0) and r["es_land_dev_raw"] == pytest.approx(4.0)
    assert r["ef_fvc_raw"] == pytest.approx(100 * (2400 * 0.9375 + 100 * 0.1875) / 2500, rel=1e-6)
    assert r["eqi_profile_id"] == "eqi-2021-proxy" and r["ei_profile_id"] == "ei-hj192-2015"


def test_river_layer_completes_ei_and_changes_are_classified(area, tmp_path):
    _, mosaics, regions = area
    tr = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    line = shapely.LineString([tr.transform(X0 + 10, Y0 - 1000), tr.transform(X0 + N * RES - 10, Y0 - 1000)])
    import geopandas as gpd

    path = tmp_path / "rivers.gpkg"
    gpd.GeoDataFrame({"n": [1]}, geometry=[line], crs="EPSG:4326").to_file(path)
    res = _assess(area, tmp_path, rivers=str(path), draws=0)
    r = next(x for x in res["rows"] if x["adcode"] == "510101" and x["year"] == 2022)
    assert r["ei_complete"], r["ei_missing"]
    assert r["wndi_source"] == "remote_sensing+table+vector"
    ch = next(c for c in res["changes"] if c["adcode"] == "510202")
    assert (ch["year_from"], ch["year_to"]) == (2022, 2023)
    assert ch["delta_ei"] == pytest.approx(ch["ei_to"] - ch["ei_from"], abs=1e-9) and ch["delta_ei_class"]
    # the drained lake: 200 px 42 -> 12 in 510202 and in its prefecture and the province
    for code in ("510202", "510200", "510000"):
        t = [x for x in res["transitions"] if x["adcode"] == code and x["from_class"] == 42]
        assert len(t) == 1 and t[0]["to_class"] == 12 and t[0]["area_km2"] == pytest.approx(200 * PX_KM2, abs=1e-9)


def test_missing_biodiversity_table_marks_eqi_incomplete_naming_the_indicator(area, tmp_path):
    (tmp_path / "nobio").mkdir()
    res = _assess(area, tmp_path, tables=_tables(tmp_path / "nobio", biodiversity=False), draws=5)
    for r in res["rows"]:
        assert r["eqi_complete"] is False and math.isnan(r["eqi"])
        assert "bd_species (物种多样性, table)" in r["eqi_missing"]
        assert "eqi_ci_low" not in r  # no interval for an incomplete index


def test_tables_layout_and_byte_stability(area, tmp_path):
    _, _, regions = area
    res = _assess(area, tmp_path, draws=20)
    meta = {"area": "test", "simulated": True}
    a = write_assessment(tmp_path / "a", res, regions=regions, products=["ei", "eqi"], ei_profile=EI_P, eqi_profile=EQI_P, meta=meta)
    b = write_assessment(tmp_path / "b", res, regions=regions, products=["ei", "eqi"],
                         ei_profile=EI_P, eqi_profile=EQI_P, meta=meta)  # fmt: skip (draws are seeded: tested below)
    names = sorted(p.name for p in a)
    assert names == ["regions-en.csv", "regions-en.xlsx", "regions-zh.csv", "regions-zh.xlsx", "regions.gpkg", "regions.json"]
    for pa, pb in zip(sorted(a), sorted(b), strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    folder = tmp_path / "a"
    assert sorted(pyogrio.list_layers(folder / "regions.gpkg")[:, 0]) == ["county", "prefecture", "province"]
    county = pyogrio.read_dataframe(folder / "regions.gpkg", layer="county")
    assert len(county) == 8 and {"ei", "eqi", "ei_ci_low", "bd_species_source", "landcover_class_21_km2"} <= set(county.columns)
    doc = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "eqi-regions/1" and doc["simulated"] is True and len(doc["rows"]) == 14
    assert doc["profiles"]["eqi"]["id"] == "eqi-2021-proxy" and doc["profiles"]["ei"]["tags"]["grades"] == "[V]"
    assert all(r["simulated"] is True for r in doc["rows"])
    en = pd.read_csv(folder / "regions-en.csv")
    assert "EI (0-100)" in en.columns and "region area (km²)" in en.columns
    zh = pd.read_csv(folder / "regions-zh.csv", encoding="utf-8-sig")
    assert "生态环境状况指数 EI (0-100)" in zh.columns and "区域面积 (km²)" in zh.columns
    assert "EQI 物种多样性 (0-100)" in zh.columns and "EQI species diversity (HJ 623 biodiversity index from surveys) source" in en.columns
    for frame in (en, zh):  # every header names one column
        assert not any(c.endswith(".1") for c in frame.columns), list(frame.columns)
    wb = load_workbook(folder / "regions-zh.xlsx", read_only=True)
    assert wb.sheetnames == ["ei", "eqi", "zonal", "changes", "transitions", "profiles"]
    header = [c.value for c in next(wb["ei"].iter_rows(max_row=1))]
    assert "EI 95% 区间下限 (0-100)" in header and "EI 方法配置" in header
    with zipfile.ZipFile(folder / "regions-en.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _accuracy(path: Path, error: float) -> Path:
    """An accuracy report with 200 test samples per mapped class and ``error`` of them wrong."""
    labels = [12, 21, 42, 51]
    n = 200
    counts = []
    for i, _ in enumerate(labels):
        row = [0] * len(labels)
        wrong = int(round(error * n))
        row[i] = n - wrong
        row[(i + 1) % len(labels)] += wrong
        counts.append(row)
    path.write_text(json.dumps({"map_accuracy": {"labels": labels, "counts_map_rows": counts}}), encoding="utf-8")
    return path


def test_planted_land_cover_error_widens_the_interval_and_flags_grade_edges(area, tmp_path):
    good = {y: _accuracy(tmp_path / f"good{y}.json", 0.0) for y in (2022, 2023)}
    bad = {y: _accuracy(tmp_path / f"bad{y}.json", 0.4) for y in (2022, 2023)}
    kw = {"only": COUNTIES, "draws": 100}
    r_good = _assess(area, tmp_path, accuracy=good, **kw)
    r_bad = _assess(area, tmp_path, accuracy=bad, **kw)
    again = _assess(area, tmp_path, accuracy=bad, **kw)
    assert [r.get("eqi_ci_low") for r in r_bad["rows"]] == [r.get("eqi_ci_low") for r in again["rows"]]  # seeded
    widths_good = [r["eqi_ci_high"] - r["eqi_ci_low"] for r in r_good["rows"]]
    widths_bad = [r["eqi_ci_high"] - r["eqi_ci_low"] for r in r_bad["rows"]]
    assert all(wb > 3 * max(wg, 0.05) for wg, wb in zip(widths_good, widths_bad, strict=True)), (widths_good, widths_bad)
    assert not any(r["eqi_grade_uncertain"] for r in r_good["rows"])
    assert any(r["eqi_grade_uncertain"] for r in r_bad["rows"])
    for r in r_bad["rows"]:  # the flag is exactly "the interval's ends fall in different classes"
        crosses = len({eqi_grade(r["eqi"], EQI_P), eqi_grade(r["eqi_ci_low"], EQI_P), eqi_grade(r["eqi_ci_high"], EQI_P)}) > 1
        assert r["eqi_grade_uncertain"] == crosses


def test_invalid_pixels_alone_give_an_interval(area, tmp_path):
    res = _assess(area, tmp_path, only=["510202"], draws=100)
    r = next(x for x in res["rows"] if x["adcode"] == "510202" and x["year"] == 2022)
    assert r["ndvi_valid_fraction"] < 1
    assert r["eqi_ci_low"] <= r["eqi"] <= r["eqi_ci_high"]


def test_poorly_covered_region_is_not_evaluated(area, tmp_path):
    _, mosaics, regions = area
    tr = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    half_out = shapely.box(X0 - 1500, Y0 - 1500, X0 + 1500, Y0)
    g = shapely.transform(half_out, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    zone = Region("zone-x", g, "EPSG:4326", {"level": "zone", "adcode": "", "name": "x", "zone_id": "x", "zone_type": "red_line"})
    work = tmp_path / "w2"
    work.mkdir()
    res = assess_area(mosaics=mosaics, regions=[zone], tables={}, ei_profile=EI_P, eqi_profile=EQI_P, products=["ei", "eqi"],
                      work=work, draws=10)  # fmt: skip
    r = res["rows"][0]
    assert r["evaluated"] is False and r["covered_fraction"] == pytest.approx(0.5, abs=1e-6)
    assert r["ei_missing"].startswith("coverage: valid land cover on 50.0 %")
