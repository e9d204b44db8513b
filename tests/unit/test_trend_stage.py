"""The trend stage (eqi.pipeline.trend_stage) through the written rasters: slopes and p-values of a
5-year stack of area mosaics equal scipy.stats.theilslopes / pymannkendall.original_test (1e-6),
NaN where fewer than the configured years are valid; classes, clipping per region, per-region km²
summaries (against a hand count on the area raster) and the done marker."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pymannkendall as mk
import pytest
import rasterio
import shapely
from odc.geo.xr import xr_coords
from pyproj import Transformer
from scipy import stats

from eqi.geo.grid import TileGrid
from eqi.geo.regions import Region
from eqi.io.cog import write_cog
from eqi.pipeline.trend_stage import run_trends
from eqi.products import expand_products, wants_trends
from eqi.resources import load_profile

YEARS = [2016, 2017, 2019, 2020, 2023]
CRS = "EPSG:32648"
RES = 30.0
X0, Y0 = 400020.0, 3400020.0  # upper-left corner (metres, on the 30 m grid)
H, W = 48, 64  # the regions' extent in pixels (the area box is a little larger)
MIN_YEARS = int(load_profile("trend").value("min_years"))


def _stack(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.asarray(YEARS, float)[:, None, None] - 2016
    slope = rng.normal(0, 0.02, (h, w))
    slope[:, : w // 3] = 0.03  # a clearly improving band
    slope[:, -w // 3 :] = -0.03  # a clearly degrading band
    x = np.round(0.5 + slope[None] * t + rng.normal(0, 0.01, (5, h, w)), 3).astype(np.float32)
    x[:3, 5, 5:20] = np.nan  # 2 valid years < min_years
    x[1, 10, :] = np.nan  # 4 valid years
    x[:, 20, 30] = np.nan
    return x


def _region(name: str, x0: float, y0: float, x1: float, y1: float) -> Region:
    (lon0, lon1), (lat0, lat1) = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform([x0, x1], [y0, y1])
    return Region(name, shapely.box(lon0, lat0, lon1, lat1), "EPSG:4326", {})


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("trends")
    grid = TileGrid(CRS, RES, tile_px=512)
    west = _region("west", X0 + 100, Y0 - H * RES + 100, X0 + W * RES / 2, Y0 - 100)
    east = _region("east", X0 + W * RES / 2, Y0 - H * RES + 100, X0 + W * RES - 100, Y0 - 100)
    area_geom = shapely.union_all([west.geometry, east.geometry])
    geobox = grid.region_geobox(area_geom)
    full = _stack(*geobox.shape)  # the area mosaics' grid: the regions' box in whole pixels
    area = SimpleNamespace(slug="area-test", regions=(west, east), geometry=area_geom)
    plan = SimpleNamespace(
        out=out, area=area, area_root=out / "areas" / "area-test", years=tuple(YEARS),
        outputs=("ndvi",), config_hash="cfg", options={"simulated": True},
        stack=SimpleNamespace(season="06-01/09-30", grid=grid, chunk=512),
    )  # fmt: skip
    import xarray as xr

    for i, year in enumerate(YEARS):
        da = xr.DataArray(full[i], dims=("y", "x")).assign_coords(xr_coords(geobox))
        write_cog(da, plan.area_root / str(year) / "ndvi.vrt", nodata=float("nan"), description="NDVI", kind="continuous")
    messages: list[str] = []
    written = run_trends(plan, progress=messages.append)
    again: list[str] = []
    assert run_trends(plan, progress=again.append) == [] and "skip trends" in again[0]
    return {"out": out, "plan": plan, "full": full, "written": written, "messages": messages}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_slopes_and_p_equal_the_oracles_through_the_rasters(run_out):
    tdir = run_out["out"] / "areas" / "area-test" / "trends" / "2016-2023"
    slope, p, cls = (_read(tdir / f"ndvi_trend_{k}.tif") for k in ("slope", "p", "class"))
    full = run_out["full"]
    ty = np.asarray(YEARS, float)
    want_slope = np.full(full.shape[1:], np.nan)
    want_p = np.full(full.shape[1:], np.nan)
    for idx in np.ndindex(*full.shape[1:]):
        v = full[(slice(None), *idx)].astype(np.float64)
        ok = np.isfinite(v)
        if ok.sum() >= MIN_YEARS:
            want_slope[idx] = stats.theilslopes(v[ok], ty[ok]).slope
            want_p[idx] = mk.original_test(v[ok]).p
    # float32 COGs: 1e-6 absolute on slopes of ~0.03/yr and p in [0, 1]
    np.testing.assert_allclose(slope, want_slope, atol=1e-6, rtol=0, equal_nan=True)
    np.testing.assert_allclose(p, want_p, atol=1e-6, rtol=0, equal_nan=True)
    assert np.isnan(slope[np.sum(np.isfinite(full), axis=0) < MIN_YEARS]).all()
    assert np.isfinite(slope).sum() > 1000
    alpha = float(load_profile("trend").value("alpha"))
    want_cls = np.where(np.isnan(want_p), 0, np.where(want_p < alpha, np.where(want_slope > 0, 1, 3), 2))
    want_cls[np.isfinite(want_p) & (want_p < alpha) & (want_slope == 0)] = 2
    np.testing.assert_array_equal(cls, want_cls)
    assert {1, 2, 3} <= set(np.unique(cls))
    assert (tdir / "ndvi_trend_class.qml").is_file() and (tdir / "ndvi_trend_slope.qml").is_file()
    with rasterio.open(tdir / "ndvi_trend_slope.tif") as src:
        assert src.tags()["EQI_SIMULATED"] == "true" and src.tags()["EQI_YEARS"] == "2016,2017,2019,2020,2023"
        assert src.overviews(1) or max(src.shape) < 512


def test_regions_clipped_and_summarised(run_out):
    out = run_out["out"]
    area_cls = out / "areas" / "area-test" / "trends" / "2016-2023" / "ndvi_trend_class.tif"
    with rasterio.open(area_cls) as src:
        acls, atr = src.read(1), src.transform
    for name in ("west", "east"):
        rdir = out / name / "trends" / "2016-2023"
        with rasterio.open(rdir / "ndvi_trend_class.tif") as src:
            rcls, rtr = src.read(1), src.transform
        # the region's raster is the area's on the same pixels, nodata outside the region
        r0, c0 = int(round((atr.f - rtr.f) / RES)), int(round((rtr.c - atr.c) / RES))
        sub = acls[r0 : r0 + rcls.shape[0], c0 : c0 + rcls.shape[1]]
        inside = rcls > 0
        assert inside.sum() > 100 and np.array_equal(rcls[inside], sub[inside])
        summary = json.loads((rdir / "summary.json").read_text())
        s = summary["products"]["ndvi"]
        total = s["improving_km2"] + s["no_trend_km2"] + s["degrading_km2"] + s["not_evaluated_km2"]
        assert total == pytest.approx(s["region_km2"], rel=1e-9)
        # against a centre-of-pixel count on the clipped raster: differs only along the boundary
        px = RES * RES / 1e6
        for key, code in (("improving_km2", 1), ("no_trend_km2", 2), ("degrading_km2", 3)):
            assert s[key] == pytest.approx((rcls == code).sum() * px, abs=2 * (rcls.shape[0] + rcls.shape[1]) * px)
        assert summary["min_years"] == MIN_YEARS and summary["years"] == YEARS
    west = json.loads((out / "west" / "trends" / "2016-2023" / "summary.json").read_text())["products"]["ndvi"]
    east = json.loads((out / "east" / "trends" / "2016-2023" / "summary.json").read_text())["products"]["ndvi"]
    assert west["improving_km2"] > west["degrading_km2"] and east["degrading_km2"] > east["improving_km2"]
    assert west["slope_median_per_year"] == pytest.approx(0.03, abs=0.005)


def test_too_few_years_and_the_product_word(run_out, tmp_path):
    plan = SimpleNamespace(**{**vars(run_out["plan"]), "years": (2016, 2017), "out": tmp_path})
    messages: list[str] = []
    assert run_trends(plan, progress=messages.append) == []
    assert "fewer than 3 evaluated years" in messages[0]
    assert wants_trends(["ndvi", "Trend"]) and not wants_trends(["ndvi"])
    assert expand_products(["ndvi", "trend"]) == ["ndvi"]
