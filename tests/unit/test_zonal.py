"""Zonal statistics (eqi.io.zonal) against exactextract called directly (1e-9), against an
independent exact coverage computed with shapely (cell ∩ polygon areas), against a
centre-of-pixel rasterisation (differences only on boundary cells), class areas adding up to
region areas, nested regions agreeing (synthetic and the real Chengdu counties of aoi/)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from geopandas import GeoDataFrame
from rasterio.features import rasterize
from rasterio.transform import from_origin

from eqi.errors import InputError
from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.regions import load_regions
from eqi.io.zonal import area_model, class_areas, transition_matrices, zonal_stats, zonal_stats_many
from eqi.science.change import transition_matrix

RES = 30.0
X0, Y0 = 500_000.0, 3_300_000.0  # upper-left corner in Albers (m)
H, W = 60, 80


def _write(path, data, *, crs=ALBERS_CHINA, transform=None, nodata=None):
    transform = transform or from_origin(X0, Y0, RES, RES)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


@pytest.fixture
def rasters(tmp_path):
    rng = np.random.default_rng(42)
    values = rng.normal(0.5, 0.2, (H, W)).astype(np.float32)
    values[10:14, 20:26] = np.nan  # a nodata hole inside region "a"
    classes = rng.choice(np.array([21, 22, 31, 42, 51], dtype=np.uint8), size=(H, W))
    return {
        "values": values,
        "classes": classes,
        "cont": _write(tmp_path / "v.tif", values, nodata=np.nan),
        "cat": _write(tmp_path / "c.tif", classes, nodata=0),
    }


def _polygons():
    # Irregular shapes whose edges cut pixels at arbitrary fractions.
    a = shapely.Polygon([(X0 + 95, Y0 - 40), (X0 + 1210, Y0 - 130), (X0 + 1430, Y0 - 950), (X0 + 400, Y0 - 1390)])
    b = shapely.Point(X0 + 1800, Y0 - 700).buffer(433.3)
    c = shapely.box(X0 + 60, Y0 - 1770, X0 + 2340, Y0 - 1500)  # on pixel edges: no partial cells
    return GeoDataFrame({"name": ["a", "b", "c"]}, geometry=[a, b, c], crs=ALBERS_CHINA)


def _cell_boxes():
    xs = X0 + RES * np.arange(W)
    ys = Y0 - RES * np.arange(H)
    xx, yy = np.meshgrid(xs, ys)
    return shapely.box(xx, yy - RES, xx + RES, yy)  # (H, W) array of cells


def _coverage(poly) -> np.ndarray:
    """Independent exact coverage fraction of every cell (shapely intersection areas)."""
    return shapely.area(shapely.intersection(_cell_boxes(), poly)) / (RES * RES)


def test_equals_exactextract_called_directly(rasters):
    regions = _polygons()
    ours = zonal_stats(rasters["cont"], regions)
    direct = exact_extract(str(rasters["cont"]), regions, ["count", "mean", "median", "min", "max", "stdev", "sum"], output="pandas")
    for ours_col, col in (("cells_valid", "count"), ("mean", "mean"), ("median", "median"), ("min", "min"),
                          ("max", "max"), ("std", "stdev"), ("sum", "sum")):  # fmt: skip
        np.testing.assert_allclose(ours[ours_col], direct[col], rtol=1e-9, atol=1e-12, err_msg=ours_col)
    np.testing.assert_allclose(ours["valid_km2"], direct["count"] * 0.0009, rtol=1e-9)


def test_covered_area_of_a_region_beyond_the_raster(rasters):
    # half of this region lies west of the raster: covered = Σ coverage of in-extent cells
    regions = GeoDataFrame({"name": ["out"]}, geometry=[shapely.box(X0 - 600, Y0 - 900, X0 + 600.5, Y0 - 300)], crs=ALBERS_CHINA)
    ours = zonal_stats(rasters["cont"], regions)
    direct = exact_extract(str(rasters["cont"]), regions, ["all=count(default_value=0)"], output="pandas")
    assert ours.loc[0, "covered_km2"] == pytest.approx(direct.loc[0, "all"] * 0.0009, rel=1e-9)
    assert ours.loc[0, "covered_km2"] == pytest.approx(600.5 * 600 / 1e6, rel=1e-9)
    assert ours.loc[0, "outside_fraction"] == pytest.approx(600 / 1200.5, rel=1e-9)


def test_equals_independent_exact_coverage(rasters):
    regions = _polygons()
    ours = zonal_stats(rasters["cont"], regions, cell_counts=True)
    v = rasters["values"].astype(np.float64)
    ok = np.isfinite(v)
    for i, poly in enumerate(regions.geometry):
        w = _coverage(poly)
        wv = np.where(ok, w, 0.0)
        mean = np.sum(wv * np.where(ok, v, 0)) / wv.sum()
        std = np.sqrt(np.sum(wv * np.where(ok, (v - mean) ** 2, 0)) / wv.sum())
        row = ours.iloc[i]
        assert row["cells_valid"] == pytest.approx(wv.sum(), rel=1e-9)
        assert row["mean"] == pytest.approx(mean, rel=1e-9)
        assert row["std"] == pytest.approx(std, rel=1e-9)
        assert row["min"] == pytest.approx(v[ok & (w > 0)].min(), rel=1e-6)
        assert row["covered_km2"] == pytest.approx(w.sum() * 0.0009, rel=1e-9)
        assert row["region_km2"] == pytest.approx(poly.area / 1e6, rel=1e-12)
        assert row["cells_touched"] == np.count_nonzero(w > 0)
        assert row["cells_interior"] == np.count_nonzero(w >= 1 - 1e-12)
    assert ours.loc[0, "valid_fraction"] < 1.0  # the NaN hole
    assert ours.loc[2, "cells_boundary"] == 0  # pixel-aligned box


def test_differs_from_centre_of_pixel_only_on_boundary_cells(rasters):
    regions = _polygons()
    # cell_id/coverage list valid cells only: use the class raster (no nodata)
    direct = exact_extract(str(rasters["cat"]), regions, ["cell_id", "coverage"], output="pandas")
    for i, poly in enumerate(regions.geometry):
        cover = np.zeros(H * W)
        cover[direct["cell_id"][i]] = direct["coverage"][i]
        cover = cover.reshape(H, W)
        np.testing.assert_allclose(cover, _coverage(poly), atol=1e-9)
        centre = rasterize([poly], out_shape=(H, W), transform=from_origin(X0, Y0, RES, RES), all_touched=False)
        interior, outside = cover >= 1 - 1e-12, cover <= 1e-12
        assert np.all(centre[interior] == 1) and np.all(centre[outside] == 0)
        boundary = ~interior & ~outside
        differ = np.abs(cover - centre) > 1e-12
        assert np.all(differ <= boundary)  # differences only on boundary cells
        if i < 2:
            assert differ.any()  # and the irregular shapes do have some
        # consequence for counts: |Σ coverage − centre count| ≤ number of boundary cells
        assert abs(cover.sum() - centre.sum()) <= boundary.sum()


def test_class_areas_add_up_to_region_area(rasters):
    regions = _polygons()
    t = zonal_stats(rasters["cat"], regions, kind="categorical", classes=[21, 22, 31, 42, 51, 61])
    for _, row in t.iterrows():
        areas = class_areas(row)
        assert set(areas) == {21, 22, 31, 42, 51, 61} and areas[61] == 0.0
        assert sum(areas.values()) == pytest.approx(row["region_km2"], rel=1e-9)
        assert sum(row[f"class_{c}_frac"] for c in areas) == pytest.approx(1.0, rel=1e-9)
    # against the independent coverage: area of class 31 in region "a"
    w = _coverage(regions.geometry[0])
    assert t.loc[0, "class_31_km2"] == pytest.approx(np.sum(w * (rasters["classes"] == 31)) * 0.0009, rel=1e-9)


def test_nested_regions_agree(rasters):
    # a "prefecture" split into three "counties" along arbitrary lines
    pref = shapely.Polygon([(X0 + 77, Y0 - 33), (X0 + 2301, Y0 - 101), (X0 + 2222, Y0 - 1699), (X0 + 133, Y0 - 1777)])
    c1 = pref.intersection(shapely.Polygon([(X0, Y0), (X0 + 1013, Y0), (X0 + 877, Y0 - 1800), (X0, Y0 - 1800)]))
    rest = pref.difference(c1)
    c2 = rest.intersection(shapely.box(X0, Y0 - 911.7, X0 + W * RES, Y0))
    c3 = rest.difference(c2)
    counties = GeoDataFrame({"name": ["c1", "c2", "c3"]}, geometry=[c1, c2, c3], crs=ALBERS_CHINA)
    whole = GeoDataFrame({"name": ["p"]}, geometry=[pref], crs=ALBERS_CHINA)
    for kind, path in (("categorical", rasters["cat"]), ("continuous", rasters["cont"])):
        parts = zonal_stats(path, counties, kind=kind)
        total = zonal_stats(path, whole, kind=kind)
        cols = [c for c in parts.columns if c.endswith("_km2") and c != "pixel_km2"] + (["area_sum", "sum"] if kind == "continuous" else [])
        for col in cols:
            assert parts[col].sum() == pytest.approx(total.loc[0, col], rel=1e-9), col
    # the area-weighted mean of the parts is the whole's mean
    parts = zonal_stats(rasters["cont"], counties)
    mean = np.sum(parts["mean"] * parts["cells_valid"]) / parts["cells_valid"].sum()
    assert mean == pytest.approx(zonal_stats(rasters["cont"], whole).loc[0, "mean"], rel=1e-9)


def test_real_chengdu_counties_add_up_to_the_prefecture(tmp_path):
    counties = load_regions("sichuan:counties", where="prefecture_adcode = '510100'")
    pref = load_regions("sichuan:510100")
    assert len(counties) == 20 and len(pref) == 1
    # synthetic 150 m class raster in Albers over Chengdu's extent
    albers = GeoDataFrame(geometry=[pref[0].geometry], crs="EPSG:4326").to_crs(ALBERS_CHINA)
    minx, miny, maxx, maxy = albers.total_bounds
    res = 150.0
    x0, y0 = np.floor(minx / res) * res - res, np.ceil(maxy / res) * res + res
    w, h = int((maxx - x0) / res) + 2, int((y0 - miny) / res) + 2
    yy, xx = np.mgrid[0:h, 0:w]
    classes = (1 + (xx // 37 + yy // 23) % 5).astype(np.uint8) * 10 + 1  # 11, 21, ..., 51
    path = _write(tmp_path / "chengdu.tif", classes, transform=from_origin(x0, y0, res, res), nodata=0)
    parts = zonal_stats(path, counties, kind="categorical")
    whole = zonal_stats(path, pref, kind="categorical")
    assert list(parts["adcode"][:2]) == ["510104", "510105"] and (parts["area_method"] == "equal-area").all()
    for _, row in parts.iterrows():
        assert sum(class_areas(row).values()) == pytest.approx(row["region_km2"], rel=1e-9)
    for col in [c for c in whole.columns if c.startswith("class_") and c.endswith("_km2")]:
        # the library's counties tile their prefecture (one coverage): sums agree to ~1e-11
        assert parts[col].sum() == pytest.approx(whole.loc[0, col], rel=1e-9), col
    assert parts["region_km2"].sum() == pytest.approx(whole.loc[0, "region_km2"], rel=1e-9)
    assert 14_000 < whole.loc[0, "region_km2"] < 14_700  # Chengdu: 14 335 km² (official figure)


def test_geographic_and_utm_rasters(tmp_path):
    poly_ll = shapely.Point(104.1, 30.6).buffer(0.05)
    regions = GeoDataFrame({"name": ["r"]}, geometry=[poly_ll], crs="EPSG:4326")
    ones = np.ones((200, 200), dtype=np.uint8)
    geo = _write(tmp_path / "ll.tif", ones, crs="EPSG:4326", transform=from_origin(104.0, 30.7, 0.001, 0.001), nodata=0)
    t = zonal_stats(geo, regions, kind="categorical")
    assert t.loc[0, "area_method"] == "spherical"
    # geodesic (WGS 84) region area vs exactextract's spherical cell areas: within 0.5 %
    assert t.loc[0, "valid_km2"] == pytest.approx(t.loc[0, "region_km2"], rel=5e-3)
    assert t.loc[0, "class_1_km2"] == pytest.approx(t.loc[0, "valid_km2"], rel=1e-12)
    utm = regions.to_crs("EPSG:32648")
    minx, miny, _, maxy = utm.total_bounds
    u = _write(tmp_path / "utm.tif", ones, crs="EPSG:32648", transform=from_origin(minx - 300, maxy + 300, 60.0, 60.0), nodata=0)
    assert area_model("EPSG:32648", from_origin(0, 0, 60, 60), 10, 10).method == "planar-scale-corrected"
    tu = zonal_stats(u, regions, kind="categorical")
    assert tu.loc[0, "area_method"] == "planar-scale-corrected"
    assert tu.loc[0, "valid_km2"] == pytest.approx(tu.loc[0, "region_km2"], rel=1e-4)


def test_nodata_override_regions_and_errors(rasters, tmp_path):
    regions = _polygons()
    full = zonal_stats(rasters["cat"], regions, kind="categorical")
    no51 = zonal_stats(rasters["cat"], regions, kind="categorical", nodata=51)
    assert "class_51_km2" not in no51
    assert no51["valid_km2"].to_numpy() == pytest.approx((full["valid_km2"] - full["class_51_km2"]).to_numpy(), rel=1e-9)
    geoms = zonal_stats(rasters["cont"], list(regions.geometry), regions_crs=ALBERS_CHINA)
    assert list(geoms["region"]) == ["0", "1", "2"]
    with pytest.raises(InputError, match="regions_crs"):
        zonal_stats(rasters["cont"], list(regions.geometry))
    with pytest.raises(InputError, match="not found"):
        zonal_stats(tmp_path / "missing.tif", regions)
    many = zonal_stats_many({"ndvi": (rasters["cont"], "continuous"), "lc": (rasters["cat"], "categorical")}, regions)
    assert {"region", "name", "region_km2", "ndvi_mean", "lc_class_21_km2", "lc_valid_km2"} <= set(many.columns)


def test_transition_matrix_numpy_hand_example():
    before = np.array([[21, 21, 31], [31, 51, 0]])
    after = np.array([[21, 51, 31], [21, 51, 31]])
    m = transition_matrix(before, after, pixel_area_km2=0.0009)
    # 21→21, 21→51, 31→31, 31→21, 51→51 one pixel each; the nodata pixel is left out
    expected = pd.DataFrame([[1, 0, 1], [1, 1, 0], [0, 0, 1]], index=[21, 31, 51], columns=[21, 31, 51]) * 0.0009
    np.testing.assert_allclose(m.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert list(m.index) == [21, 31, 51] and m.index.name == "from"


def test_transition_matrices_through_zonal_equal_numpy(rasters, tmp_path):
    rng = np.random.default_rng(1)
    before = rasters["classes"]
    after = np.where(rng.random(before.shape) < 0.2, np.uint8(51), before)
    b = _write(tmp_path / "b.tif", before, nodata=0)
    a = _write(tmp_path / "a.tif", after, nodata=0)
    box = GeoDataFrame({"name": ["all"]}, geometry=[shapely.box(X0, Y0 - H * RES, X0 + W * RES, Y0)], crs=ALBERS_CHINA)
    got = transition_matrices(b, a, box, classes=[21, 22, 31, 42, 51], workdir=tmp_path)["all"]
    want = transition_matrix(before, after, pixel_area_km2=0.0009, classes=[21, 22, 31, 42, 51])
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9)
    # and for a partial region: the matrix sums to the region's valid area
    part = transition_matrices(b, a, _polygons(), workdir=tmp_path)
    areas = zonal_stats(b, _polygons(), kind="categorical")
    assert part["a"].to_numpy().sum() == pytest.approx(areas.loc[0, "valid_km2"], rel=1e-9)


def test_real_counties_and_prefectures_add_up_to_the_province(tmp_path):
    counties = load_regions("sichuan:counties")
    prefectures = load_regions("sichuan:prefectures")
    province = load_regions("sichuan")
    assert (len(counties), len(prefectures), len(province)) == (183, 21, 1)
    albers = GeoDataFrame(geometry=[province[0].geometry], crs="EPSG:4326").to_crs(ALBERS_CHINA)
    minx, miny, maxx, maxy = albers.total_bounds
    res = 2000.0  # coarse synthetic class raster: every county still covers many cells
    x0, y0 = np.floor(minx / res) * res - res, np.ceil(maxy / res) * res + res
    w, h = int((maxx - x0) / res) + 2, int((y0 - miny) / res) + 2
    yy, xx = np.mgrid[0:h, 0:w]
    classes = (1 + (xx // 7 + yy // 5) % 5).astype(np.uint8) * 10 + 1
    path = _write(tmp_path / "sichuan.tif", classes, transform=from_origin(x0, y0, res, res), nodata=0)
    c = zonal_stats(path, counties, kind="categorical")
    p = zonal_stats(path, prefectures, kind="categorical")
    whole = zonal_stats(path, province, kind="categorical")
    for col in [k for k in whole.columns if k.startswith("class_") and k.endswith("_km2")] + ["region_km2"]:
        assert c[col].sum() == pytest.approx(whole.loc[0, col], rel=1e-9), col
        assert p[col].sum() == pytest.approx(whole.loc[0, col], rel=1e-9), col
    assert 480_000 < whole.loc[0, "region_km2"] < 490_000  # Sichuan: about 486 000 km²


def test_line_length_per_region_is_geodesic():
    from pyproj import Geod

    from eqi.io.zonal import line_length_km

    # a meridian segment 30.0-30.2°N at 104.5°E crossing two regions split at 30.1°N
    line = shapely.LineString([(104.5, 30.0), (104.5, 30.2)])
    rivers = GeoDataFrame(geometry=[line, shapely.LineString([(105.5, 30.0), (105.6, 30.0)])], crs="EPSG:4326")
    south = shapely.box(104.0, 29.9, 105.0, 30.1)
    north = shapely.box(104.0, 30.1, 105.0, 30.3)
    regions = GeoDataFrame({"name": ["s", "n"]}, geometry=[south, north], crs="EPSG:4326").to_crs(ALBERS_CHINA)
    t = line_length_km(rivers, regions)
    g = Geod(ellps="WGS84")
    want_s = g.inv(104.5, 30.0, 104.5, 30.1)[2] / 1000
    want_n = g.inv(104.5, 30.1, 104.5, 30.2)[2] / 1000
    assert t["line_length_km"].tolist() == pytest.approx([want_s, want_n], rel=1e-6)
    assert want_s == pytest.approx(11.09, abs=0.01)  # 0.1° of latitude ≈ 11.09 km


def test_vrt_mosaic_gives_the_same_statistics(rasters, tmp_path):
    # two halves of the class raster as tiles, mosaicked by a VRT (as the pipeline's per-region mosaics)
    classes = rasters["classes"]
    left = _write(tmp_path / "left.tif", np.ascontiguousarray(classes[:, :40]), nodata=0)
    right = _write(tmp_path / "right.tif", np.ascontiguousarray(classes[:, 40:]), transform=from_origin(X0 + 40 * RES, Y0, RES, RES), nodata=0)
    with rasterio.open(rasters["cat"]) as ds:
        wkt = ds.crs.to_wkt()
    sources = "".join(
        f"<SimpleSource><SourceFilename relativeToVRT='1'>{p.name}</SourceFilename><SourceBand>1</SourceBand>"
        f"<SrcRect xOff='0' yOff='0' xSize='40' ySize='{H}'/><DstRect xOff='{off}' yOff='0' xSize='40' ySize='{H}'/></SimpleSource>"
        for p, off in ((left, 0), (right, 40))
    )
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(
        f"<VRTDataset rasterXSize='{W}' rasterYSize='{H}'><SRS>{wkt}</SRS>"
        f"<GeoTransform>{X0}, {RES}, 0, {Y0}, 0, {-RES}</GeoTransform>"
        f"<VRTRasterBand dataType='Byte' band='1'><NoDataValue>0</NoDataValue>{sources}</VRTRasterBand></VRTDataset>"
    )
    a = zonal_stats(vrt, _polygons(), kind="categorical")
    b = zonal_stats(rasters["cat"], _polygons(), kind="categorical")
    pd.testing.assert_frame_equal(a, b)


def test_many_products_in_one_pass_equal_exactextract_and_separate_calls(rasters, tmp_path):
    regions = _polygons()
    products = {"ndvi": (rasters["cont"], "continuous"), "lc": (rasters["cat"], "categorical")}
    one = zonal_stats_many(products, regions, cell_counts=True)
    apart = zonal_stats_many(products, regions, cell_counts=True, one_pass=False)
    pd.testing.assert_frame_equal(one, apart, check_exact=False, rtol=1e-12, atol=1e-12)
    # the oracle: exactextract called directly on each raster
    direct = exact_extract(str(rasters["cont"]), regions, ["count", "mean", "median", "stdev"], output="pandas")
    for ours_col, col in (("ndvi_cells_valid", "count"), ("ndvi_mean", "mean"), ("ndvi_median", "median"), ("ndvi_std", "stdev")):
        np.testing.assert_allclose(one[ours_col], direct[col], rtol=1e-9, atol=1e-12, err_msg=ours_col)
    frac = exact_extract(str(rasters["cat"]), regions, ["count", "unique", "frac"], output="pandas")
    for i, (codes, fr) in enumerate(zip(frac["unique"], frac["frac"], strict=True)):
        for code, f in zip(codes, fr, strict=True):
            assert one.loc[i, f"lc_class_{code}_km2"] == pytest.approx(f * frac.loc[i, "count"] * 0.0009, rel=1e-9)
    # a raster on another grid: summarised on its own, same columns
    shifted = _write(tmp_path / "shifted.tif", rasters["values"], nodata=np.nan, transform=from_origin(X0 + 15.0, Y0, RES, RES))
    mixed = zonal_stats_many({"ndvi": (rasters["cont"], "continuous"), "moved": (shifted, "continuous")}, regions)
    alone = zonal_stats(shifted, regions)
    np.testing.assert_allclose(mixed["moved_mean"], alone["mean"], rtol=1e-12)
