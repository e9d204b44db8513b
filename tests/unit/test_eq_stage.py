"""Ecosystem quality in the regional assessment (eqi.pipeline.eq_stage, HJ 1172-2021 spec §4.1).

Oracle: a worked example on a 20 x 20 px grid computed by hand below (ecosystem types, reference
values = the shipped profile's 95th percentile of the pooled years, RD, Q, the region means and
the grade at the 75 boundary); missing inputs named, unreadable files exit 2 naming the field.

Layout (30 m pixels, CAS codes), the same both years (2021, 2022):

    rows 0-9   cols 0-9  forest 21     LAI 4 (2021) / 6 (2022), FVC 0.9, NPP 800
    rows 0-9   cols 10-19 shrub 22     LAI 2 (cols 10-14) / 3 (cols 15-19), FVC 0.6, NPP 400
    rows 10-15 cols 0-9  grassland 31  LAI 2,   FVC 0.8, NPP 400   ("high")
    rows 16-19 cols 0-9  grassland 31  LAI 1.5, FVC 0.6, NPP 300   ("low", 0.75 x high)
    rows 10-19 cols 10-19 cropland 12  (not an assessed ecosystem type)

References (95th percentile of 200 pooled values, positions 189-190 of the sorted values):
forest LAI 6, FVC 0.9, NPP 800; shrub LAI 3, FVC 0.6, NPP 400; grassland LAI 2, FVC 0.8, NPP 400.
Q = 100 x (RD_lai + RD_fvc + RD_npp) / 3:
forest 2021: 100 x (4/6 + 1 + 1)/3 = 88.888…; 2022: 100.  shrub: cols 10-14 88.888…, 15-19 100.
grassland high 100, low 100 x 0.75 = 75 (grade 优: 75 is the lower edge, closed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin

from eqi.config import build_config
from eqi.errors import ConfigError, InputError
from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.regions import Region
from eqi.io.raster import open_raster, read_onto
from eqi.pipeline import eq_stage
from eqi.pipeline.assess_stage import assess_area, check_inputs
from eqi.resources import load_profile
from eqi.science.ecosystem_quality import quality_grade

RES, N = 30.0, 20
X0, Y0 = 500_000.0, 3_300_000.0
P = load_profile("eq-hj1172-2021")
YEARS = (2021, 2022)
Q_LOW_FOREST = 100 * (4 / 6 + 2) / 3  # 88.888…


def _write(path: Path, data: np.ndarray, nodata, crs=ALBERS_CHINA, transform=None) -> Path:
    transform = transform or from_origin(X0, Y0, RES, RES)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def _landcover() -> np.ndarray:
    lc = np.full((N, N), 12, dtype=np.uint8)
    lc[:10, :10], lc[:10, 10:], lc[10:, :10] = 21, 22, 31
    return lc


def _parameters(year: int) -> dict[str, np.ndarray]:
    lai, fvc, npp = (np.zeros((N, N), dtype=np.float32) for _ in range(3))
    lai[:10, :10], fvc[:10, :10], npp[:10, :10] = (4.0 if year == 2021 else 6.0), 0.9, 800.0
    lai[:10, 10:15], lai[:10, 15:], fvc[:10, 10:], npp[:10, 10:] = 2.0, 3.0, 0.6, 400.0
    lai[10:16, :10], fvc[10:16, :10], npp[10:16, :10] = 2.0, 0.8, 400.0
    lai[16:, :10], fvc[16:, :10], npp[16:, :10] = 1.5, 0.6, 300.0
    lai[10:, 10:], fvc[10:, 10:], npp[10:, 10:] = 1.0, 0.3, 100.0  # cropland: values, but no type
    return {"lai": lai, "fvc": fvc, "npp": npp}


def _block(r0: int, c0: int, nr: int, nc: int):
    return shapely.box(X0 + c0 * RES, Y0 - (r0 + nr) * RES, X0 + (c0 + nc) * RES, Y0 - r0 * RES)


def _ll(geom_albers):
    tr = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    return shapely.transform(geom_albers, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _region(name: str, geom_albers) -> Region:
    return Region(name, _ll(geom_albers), "EPSG:4326", {"level": "zone", "adcode": "", "name": name, "zone_id": name,
                                                        "zone_type": "aoi", "zone_layer": "aoi", "parent_adcode": ""})  # fmt: skip


REGIONS = {"all": _block(0, 0, N, N), "forest": _block(0, 0, 10, 10), "shrub": _block(0, 10, 10, 10),
           "grass_low": _block(16, 0, 4, 10), "crop": _block(10, 10, 10, 10)}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("eq")
    mosaics, opts = {}, {"lai": {}, "npp": {}}
    for year in YEARS:
        (d / str(year)).mkdir()
        par = _parameters(year)
        mosaics[year] = {"landcover": _write(d / str(year) / "landcover.tif", _landcover(), 0),
                         "fvc": _write(d / str(year) / "fvc.tif", par["fvc"], float("nan"))}  # fmt: skip
        for name in ("lai", "npp"):
            opts[name][str(year)] = str(_write(d / f"{name}_{year}.tif", par[name], -1.0))
    return d, mosaics, opts


def _run(inputs, tmp_path, opts=None, regions=("all", "forest", "shrub", "grass_low", "crop")):
    _, mosaics, default = inputs
    outcome = eq_stage.eq_rasters(mosaics, default if opts is None else opts, P, tmp_path / "eq", tags={}, progress=lambda m: None)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result = assess_area(mosaics=mosaics, regions=[_region(n, REGIONS[n]) for n in regions], tables={},
                         ei_profile=load_profile("ei-hj192-2015"), eqi_profile=load_profile("eqi-2021"),
                         products=["ecosystem_quality"], work=work, draws=0, min_coverage=0.5,
                         eq_profile=P, eq_outcome=outcome)  # fmt: skip
    return outcome, {(r["region"], r["year"]): r for r in result["rows"]}


def test_worked_example_types_references_quality_and_grades(inputs, tmp_path):
    outcome, rows = _run(inputs, tmp_path)
    assert outcome.references == {"forest": {"lai": 6.0, "fvc": pytest.approx(0.9), "npp": 800.0},
                                  "shrub": {"lai": 3.0, "fvc": pytest.approx(0.6), "npp": 400.0},
                                  "grassland": {"lai": 2.0, "fvc": pytest.approx(0.8), "npp": 400.0}}  # fmt: skip
    assert outcome.baseline == [2021, 2022] and "all pixels of each ecosystem type" in outcome.scope
    q21 = np.asarray(open_raster(outcome.rasters[2021]).values)
    expected = np.full((N, N), np.nan)
    expected[:10, :10] = Q_LOW_FOREST
    expected[:10, 10:15], expected[:10, 15:] = Q_LOW_FOREST, 100.0
    expected[10:16, :10], expected[16:, :10] = 100.0, 75.0
    np.testing.assert_allclose(q21, expected, rtol=1e-6)  # NaN where not forest/shrub/grassland
    q22 = np.asarray(open_raster(outcome.rasters[2022]).values)
    np.testing.assert_allclose(q22[:10, :10], 100.0, rtol=1e-6)
    f = rows[("forest", 2021)]
    assert f["eq_status"] == "assessed" and f["eq_mean"] == pytest.approx(Q_LOW_FOREST, rel=1e-6)
    assert f["eq_grade"] == "优" and f["eq_assessed_fraction"] == pytest.approx(1.0)
    assert rows[("forest", 2022)]["eq_mean"] == pytest.approx(100.0, rel=1e-6)
    assert rows[("shrub", 2021)]["eq_mean"] == pytest.approx((Q_LOW_FOREST + 100) / 2, rel=1e-6)
    g = rows[("grass_low", 2021)]  # the grade edge: 75.0 -> 优 (closed below), 74.99 -> 良
    assert g["eq_mean"] == pytest.approx(75.0, abs=1e-4) and g["eq_grade"] == "优" and g["eq_grade_en"] == "excellent"
    assert quality_grade(np.array([75.0, 74.99, 20.0, 19.99]), P).tolist() == [1, 2, 4, 5]
    # the whole grid: 300 assessed pixels of 400; (150 x 88.89 + 50 x 100 + 60 x 100 + 40 x 75) / 300
    a = rows[("all", 2021)]
    assert a["eq_assessed_fraction"] == pytest.approx(0.75)
    assert a["eq_mean"] == pytest.approx((150 * Q_LOW_FOREST + 5000 + 6000 + 3000) / 300, rel=1e-6)
    c = rows[("crop", 2021)]
    assert c["eq_status"] == "not_assessed" and c["eq_assessed_fraction"] == 0 and "eq_mean" not in c
    assert "no forest, shrub or grassland" in c["eq_missing"]
    assert f["eq_profile_id"] == "eq-hj1172-2021" and "weights=[U]" in f["eq_tags"] and "grades=[D]" in f["eq_tags"]
    assert "all pixels" in f["eq_notes"]


def test_reference_areas_restrict_the_reference_pixels(inputs, tmp_path):
    d, _, opts = inputs
    import geopandas as gpd

    # everything but the shrub's LAI-3 half: the shrub reference becomes LAI 2 and every shrub pixel RD 1
    keep = _ll(shapely.box(X0, Y0 - N * RES, X0 + N * RES, Y0).difference(_block(0, 15, 10, 5)))
    path = d / "protected.gpkg"
    gpd.GeoDataFrame({"name": ["pa"]}, geometry=[keep], crs="EPSG:4326").to_file(path)
    outcome, rows = _run(inputs, tmp_path, {**opts, "reference_areas": str(path)}, regions=("shrub", "forest"))
    assert outcome.references["shrub"]["lai"] == pytest.approx(2.0) and outcome.references["forest"]["lai"] == 6.0
    assert rows[("shrub", 2021)]["eq_mean"] == pytest.approx(100.0, rel=1e-6)
    assert "protected.gpkg" in outcome.scope and "protected.gpkg" in rows[("shrub", 2021)]["eq_notes"]


def test_missing_parameter_is_named_and_nothing_is_imputed(inputs, tmp_path):
    _, _, opts = inputs
    outcome, rows = _run(inputs, tmp_path, {"lai": opts["lai"]}, regions=("forest",))
    assert outcome.rasters == {}
    for year in YEARS:
        r = rows[("forest", year)]
        assert r["eq_status"] == "not_assessed" and "eq_mean" not in r
        assert r["eq_missing"] == "npp (assess.ecosystem_quality.npp not given)"


def test_a_year_missing_from_the_mapping_is_not_assessed(inputs, tmp_path):
    _, _, opts = inputs
    partial = {"lai": {"2021": opts["lai"]["2021"]}, "npp": opts["npp"]}
    outcome, rows = _run(inputs, tmp_path, partial, regions=("forest",))
    assert sorted(outcome.rasters) == [2021] and outcome.baseline == [2021]
    assert rows[("forest", 2022)]["eq_missing"] == "lai 2022 (assess.ecosystem_quality.lai has no 2022)"
    # the baseline is 2021 alone: forest LAI 4 everywhere -> its own reference, RD 1
    assert rows[("forest", 2021)]["eq_mean"] == pytest.approx(100.0, rel=1e-6)


def test_bad_files_exit_2_naming_field_and_file(inputs, tmp_path):
    _, _, opts = inputs
    missing = str(tmp_path / "nope_{year}.tif")
    with pytest.raises(InputError, match=r"assess\.ecosystem_quality\.lai \(2021\): file .*nope_2021\.tif not found") as exc:
        check_inputs({"ecosystem_quality": {**opts, "lai": missing}}, products=["ecosystem_quality"], years=[2021])
    assert exc.value.exit_code == 2
    garbage = tmp_path / "npp_2021.tif"
    garbage.write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"assess\.ecosystem_quality\.npp \(2021\): cannot read .*npp_2021\.tif"):
        check_inputs({"ecosystem_quality": {**opts, "npp": {"2021": str(garbage)}}}, products=["ecosystem_quality"], years=[2021])
    with pytest.raises(InputError, match=r"reference_areas: file .*pa\.gpkg not found"):
        check_inputs({"ecosystem_quality": {**opts, "reference_areas": str(tmp_path / "pa.gpkg")}},
                     products=["ecosystem_quality"], years=[2021])  # fmt: skip
    check_inputs({"ecosystem_quality": {"lai": missing}}, products=["ei"], years=[2021])  # not asked for: not checked


def test_config_template_without_year_is_a_field_error(tmp_path):
    base = {"source": "x.parquet", "aoi": "sichuan:510117", "years": [2021], "products": ["ecosystem_quality"], "out": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"assess\.ecosystem_quality\.lai.*\{year\}"):
        build_config({**base, "assess": {"ecosystem_quality": {"lai": "lai.tif"}}})
    with pytest.raises(ConfigError, match=r"assess\.ecosystem_quality.*lia"):
        build_config({**base, "assess": {"ecosystem_quality": {"lia": "lai_{year}.tif"}}})
    cfg = build_config({**base, "assess": {"ecosystem_quality": {"lai": "lai_{year}.tif", "npp": {2021: "n.tif"}}}})
    assert cfg.assess.ecosystem_quality.npp == {2021: "n.tif"}


def test_read_onto_resamples_another_crs_bilinearly(tmp_path):
    """A linear field f = 10 lon + 20 lat in EPSG:4326 at 0.001°, read onto the Albers grid:
    bilinear interpolation reproduces a linear field, so the oracle is f at the target pixel
    centres (pyproj); tolerance: GDAL's approximate transformer (< 0.125 source px)."""
    step = 0.001
    from odc.geo.geobox import GeoBox

    tr = Transformer.from_crs(ALBERS_CHINA, "EPSG:4326", always_xy=True)
    gb = GeoBox((N, N), from_origin(X0, Y0, RES, RES), ALBERS_CHINA)
    xs, ys = np.meshgrid(X0 + (np.arange(N) + 0.5) * RES, Y0 - (np.arange(N) + 0.5) * RES)
    lon, lat = tr.transform(xs, ys)
    west, north = float(lon.min()) - 0.01, float(lat.max()) + 0.01
    cols, rows = int((lon.max() - west) / step) + 20, int((north - lat.min()) / step) + 20
    clon = west + (np.arange(cols) + 0.5) * step
    clat = north - (np.arange(rows) + 0.5) * step
    field = (10 * clon[None, :] + 20 * clat[:, None]).astype(np.float64)
    src = _write(tmp_path / "f.tif", field, -9999.0, crs="EPSG:4326", transform=from_origin(west, north, step, step))
    got = read_onto(src, gb)
    assert got.dtype == np.float32 and got.shape == (N, N)
    np.testing.assert_allclose(got, 10 * lon + 20 * lat, atol=30 * step * 0.125 + 1e-3)
    assert not math.isnan(float(got.mean()))


def test_a_sliver_below_min_assessed_fraction_gets_no_grade():
    """5 % of the region assessed (the profile's minimum) is graded; 4.9 % is not."""
    outcome = eq_stage.EqOutcome(missing={2021: []}, scope="all pixels")
    graded = eq_stage.eq_row(P, outcome, 2021, evaluated=True, reason="",
                             zonal={"mean": 80.0, "valid_km2": 5.0, "region_km2": 100.0})  # fmt: skip
    assert graded["eq_status"] == "assessed" and graded["eq_grade"] == "优"
    sliver = eq_stage.eq_row(P, outcome, 2021, evaluated=True, reason="",
                             zonal={"mean": 80.0, "valid_km2": 4.9, "region_km2": 100.0})  # fmt: skip
    assert sliver["eq_status"] == "not_assessed" and "eq_grade" not in sliver and "eq_mean" not in sliver
    assert sliver["eq_missing"] == "only 4.9 % of the region has a quality value (profile min_assessed_fraction 0.05)"
