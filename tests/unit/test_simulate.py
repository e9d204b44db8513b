"""Tests of the simulated demo archive (eqi.demo): files, flags, scaling, determinism."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from shapely.geometry import Point, Polygon, shape

from eqi.demo import clouds as demo_clouds
from eqi.demo import encoding, simulate_archive
from eqi.demo.sentinel2 import mgrs_tile
from eqi.errors import AOIError, ConfigError, InputError
from eqi.sensors import resolve_item

# a small hand-made polygon on the Chengdu plain (about 2.4 x 3.3 km)
TINY = Polygon([(103.80, 30.69), (103.825, 30.70), (103.815, 30.72), (103.79, 30.71)])
YEARS = (2022, 2023)


def _simulate(out: Path) -> object:
    return simulate_archive(TINY, out, region_name="tiny test region", years=YEARS, margin_m=600.0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    return _simulate(tmp_path_factory.mktemp("sim") / "archive")


def _landsat_dirs(archive) -> list[Path]:
    return sorted((archive.scenes_dir / "landsat").iterdir())


def _s2_dirs(archive) -> list[Path]:
    return sorted((archive.scenes_dir / "sentinel2").iterdir())


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _parse_odl(text: str) -> dict:
    """Minimal USGS MTL (ODL) parser: nested {group: {key: value-without-quotes}}."""
    root: dict = {}
    stack = [root]
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "END":
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            stack[-1][value] = {}
            stack.append(stack[-1][value])
        elif key == "END_GROUP":
            stack.pop()
        else:
            stack[-1][key] = value.strip('"')
    assert len(stack) == 1
    return root


def _region_mask(archive) -> np.ndarray:
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", archive.crs, always_xy=True)
    with rasterio.open(archive.truth_landcover_path) as src:
        return geometry_mask(
            [shapely.transform(TINY, to_utm.transform, interleaved=False)],
            out_shape=src.shape,
            transform=src.transform,
            invert=True,
        )


def _patch_rc(archive, path: Path) -> tuple[int, int]:
    x, y = archive.summary["always_cloudy_patch"]["center_xy"]
    with rasterio.open(path) as src:
        return src.index(x, y)


def test_same_seed_gives_identical_bytes(archive, tmp_path: Path) -> None:
    again = _simulate(tmp_path / "again")

    def digests(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    first, second = digests(archive.root), digests(again.root)
    assert len(first) == archive.summary["files"] > 200
    assert first == second
    # an earlier archive is replaced only when asked
    with pytest.raises(InputError, match="overwrite=True"):
        _simulate(tmp_path / "again")
    third = simulate_archive(TINY, tmp_path / "again", region_name="tiny test region", seed=7,
                             years=YEARS, margin_m=600.0, overwrite=True)  # fmt: skip
    assert digests(third.root) != second and third.summary["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary folders left


def test_layout_crs_dtype_nodata(archive) -> None:
    assert archive.crs == "EPSG:32648"
    assert len(archive.scene_dirs) == 22 and all(p.is_dir() for p in archive.scene_dirs)
    ls = _landsat_dirs(archive)
    assert len(ls) == 12 and {p.name[:4] for p in ls} == {"LC08", "LC09"}
    for folder in ls:
        assert re.fullmatch(r"LC0[89]_L2SP_129039_\d{8}_\d{8}_02_T1", folder.name)
        for suffix, dtype, nodata in [("SR_B1", "uint16", 0), ("SR_B7", "uint16", 0),
                                      ("ST_B10", "uint16", 0), ("QA_PIXEL", "uint16", None)]:  # fmt: skip
            with rasterio.open(folder / f"{folder.name}_{suffix}.TIF") as src:
                assert src.crs.to_epsg() == 32648
                assert src.dtypes[0] == dtype and src.nodata == nodata
                assert src.profile["compress"] == "deflate" and src.profile["tiled"]
                assert src.tags()["EQI_SIMULATED"] == "TRUE"
                assert src.res == (30.0, 30.0)
    s2 = _s2_dirs(archive)
    assert len(s2) == 10 and {p.name[:3] for p in s2} == {"S2A", "S2B"}
    for folder in s2:
        assert re.fullmatch(r"S2[AB]_48RUU_\d{8}_0_L2A", folder.name)
        with rasterio.open(folder / "B8A.tif") as src:
            assert (src.crs.to_epsg(), src.dtypes[0], src.nodata, src.res) == (
                32648,
                "uint16",
                0,
                (20.0, 20.0),
            )
        with rasterio.open(folder / "SCL.tif") as src:
            assert (src.dtypes[0], src.nodata) == ("uint8", 0)
    with rasterio.open(archive.truth_landcover_path) as src:
        assert (src.dtypes[0], src.crs.to_epsg(), src.res) == ("uint8", 32648, (30.0, 30.0))
        assert "SIMULATED" in src.tags()["EQI_NOTE"]
        assert src.colormap(1)[80][:3] == (0, 100, 200)


def test_landsat_qa_flags_match_clouds(archive) -> None:
    cloudy_dates = 0
    for folder in _landsat_dirs(archive):
        qa = _read(folder / f"{folder.name}_QA_PIXEL.TIF")
        blue = (
            _read(folder / f"{folder.name}_SR_B2.TIF") * encoding.LANDSAT_SR_SCALE
            + encoding.LANDSAT_SR_OFFSET
        )
        fill = (qa & demo_clouds.QA.FILL) > 0
        cloud = (qa & demo_clouds.QA.CLOUD) > 0
        clear = ((qa & demo_clouds.QA.CLEAR) > 0) & ((qa & demo_clouds.QA.SHADOW) == 0)
        # fill border: QA 1 and SR 0 together, nowhere else
        assert np.array_equal(fill, _read(folder / f"{folder.name}_SR_B2.TIF") == 0)
        assert fill.any() and np.all(qa[fill] == 1)
        assert np.all(
            clear | cloud | fill | ((qa & (demo_clouds.QA.SHADOW | demo_clouds.QA.DILATED)) > 0)
        )
        assert blue[clear].max() < 0.19  # clear land and water are dark in blue
        if cloud.sum() > 50:
            cloudy_dates += 1
            assert blue[cloud].min() > 0.2  # flagged clouds are bright
            st = (
                _read(folder / f"{folder.name}_ST_B10.TIF") * encoding.LANDSAT_ST_SCALE
                + encoding.LANDSAT_ST_OFFSET
            )
            assert np.median(st[cloud]) < np.median(st[clear]) - 15  # and cold
    assert cloudy_dates >= 8


def test_s2_scl_matches_clouds(archive) -> None:
    for folder in _s2_dirs(archive):
        item = json.loads((folder / f"{folder.name}.json").read_text())
        offset = 1000 if float(item["properties"]["s2:processing_baseline"]) >= 4 else 0
        scl = _read(folder / "SCL.tif")
        blue = (_read(folder / "B02.tif").astype(np.int32) - offset) / 10000.0
        nodata = scl == 0
        assert np.array_equal(nodata, _read(folder / "B02.tif") == 0)
        cloud = np.isin(scl, (8, 9, 10))
        clear = np.isin(scl, (4, 5, 6))
        assert blue[clear].max() < 0.19
        if cloud.any():
            assert blue[np.isin(scl, (9, 10))].min() > 0.2
        assert set(np.unique(scl)) <= {0, 3, 4, 5, 6, 8, 9, 10}


def test_qa_values_are_the_real_collection2_codes() -> None:
    shape2 = (1, 8)
    z = np.zeros(shape2, dtype=bool)
    masks = demo_clouds.CloudMasks(
        cloud=np.array([[0, 0, 1, 1, 0, 0, 0, 0]], dtype=bool),
        cirrus=np.array([[0, 0, 0, 1, 0, 0, 0, 0]], dtype=bool),
        thickness=np.zeros(shape2, dtype=np.float32),
        dilated=np.array([[0, 0, 0, 0, 1, 0, 1, 0]], dtype=bool),
        shadow=np.array([[0, 0, 0, 0, 0, 1, 1, 0]], dtype=bool),
    )
    water = np.array([[0, 1, 0, 0, 0, 0, 0, 0]], dtype=bool)
    fill = z.copy()
    fill[0, 7] = True
    qa = demo_clouds.qa_pixel(masks, water, fill)
    assert qa.tolist() == [[21824, 21952, 22280, 55052, 22018, 23888, 23826, 1]]


@pytest.mark.parametrize("refl", [-0.15, -0.01, 0.0, 0.01234, 0.3, 0.777, 1.5])
def test_dn_round_trip_within_half_a_dn(refl: float) -> None:
    values = np.array([refl, refl + 1e-6, refl + 3.3e-5], dtype=np.float32)
    dn = encoding.landsat_sr_dn(values)
    back = dn * encoding.LANDSAT_SR_SCALE + encoding.LANDSAT_SR_OFFSET
    assert np.all(np.abs(back - values) <= 0.5 * encoding.LANDSAT_SR_SCALE * (1 + 1e-3))
    if refl >= 0:
        for offset in (
            (0, 1000) if refl >= 1e-4 else (1000,)
        ):  # DN 0 is no data before baseline 04.00
            dn2 = encoding.s2_dn(values, offset)
            back2 = (dn2.astype(np.int32) - offset) * encoding.S2_SCALE
            assert np.all(np.abs(back2 - values) <= 0.5 * encoding.S2_SCALE * (1 + 1e-3))
    kelvin = np.float32(250.0 + 60 * (refl + 0.15))
    st = encoding.landsat_st_dn(np.array([kelvin]))
    assert (
        abs(st[0] * encoding.LANDSAT_ST_SCALE + encoding.LANDSAT_ST_OFFSET - kelvin)
        <= 0.5 * encoding.LANDSAT_ST_SCALE * 1.01
    )
    fill = encoding.landsat_sr_dn(np.full((2, 1, 2), refl, np.float32), np.array([[True, False]]))
    assert fill[:, 0, 0].tolist() == [0, 0] and fill[0, 0, 1] >= 1


def test_s2_second_year_carries_the_boa_offset(archive) -> None:
    first = {
        y: next(f for f in _s2_dirs(archive) if f.name.split("_")[2].startswith(f"{y}06"))
        for y in YEARS
    }
    medians = {}
    for year, folder in first.items():
        item = pystac.Item.from_file(str(folder / f"{folder.name}.json"))
        props = item.properties
        assert props["eqi:simulated"] is True
        band = resolve_item(item, ["red"]).bands["red"]
        if year == YEARS[0]:
            assert (
                props["s2:processing_baseline"] == "02.14" and "_N0214_" in props["s2:product_uri"]
            )
            assert props["earthsearch:boa_offset_applied"] is False and band.offset == 0.0
        else:
            assert (
                props["s2:processing_baseline"] == "05.09" and "_N0509_" in props["s2:product_uri"]
            )
            assert "earthsearch:boa_offset_applied" not in props and band.offset == pytest.approx(
                -0.1
            )
        assert item.assets["red"].href == "./B04.tif" and band.href.endswith(
            f"{folder.name}/B04.tif"
        )
        scl = _read(folder / "SCL.tif")
        red = _read(folder / "B04.tif")
        clear = np.isin(scl, (4, 5, 6))
        medians[year] = float(np.median(red[clear]))
        if year != YEARS[0]:
            assert red[clear].min() > 1000  # every clear pixel carries the +1000 DN offset
    # same landscape and season: raw DNs differ by about 1000, reflectances agree
    assert abs(medians[YEARS[1]] - medians[YEARS[0]] - 1000) < 100


def test_mtl_parses_back_and_matches_json(archive) -> None:
    for folder in _landsat_dirs(archive):
        pid = folder.name
        text = (folder / f"{pid}_MTL.txt").read_text(encoding="ascii")
        assert text.startswith("GROUP = LANDSAT_METADATA_FILE\n") and text.endswith("END\n")
        mtl = _parse_odl(text)["LANDSAT_METADATA_FILE"]
        as_json = json.loads((folder / f"{pid}_MTL.json").read_text())["LANDSAT_METADATA_FILE"]
        assert as_json == mtl
        contents, image, proj = (
            mtl["PRODUCT_CONTENTS"],
            mtl["IMAGE_ATTRIBUTES"],
            mtl["PROJECTION_ATTRIBUTES"],
        )
        assert contents["LANDSAT_PRODUCT_ID"] == pid and contents["PROCESSING_LEVEL"] == "L2SP"
        assert "SIMULATED" in contents["ORIGIN"]
        for b in range(1, 8):
            assert (folder / contents[f"FILE_NAME_BAND_{b}"]).is_file()
            sr = mtl["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"]
            assert float(sr[f"REFLECTANCE_MULT_BAND_{b}"]) == 2.75e-5
            assert float(sr[f"REFLECTANCE_ADD_BAND_{b}"]) == -0.2
        assert (folder / contents["FILE_NAME_BAND_ST_B10"]).is_file()
        assert (folder / contents["FILE_NAME_QUALITY_L1_PIXEL"]).is_file()
        st = mtl["LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"]
        assert float(st["TEMPERATURE_MULT_BAND_ST_B10"]) == 0.00341802
        assert float(st["TEMPERATURE_ADD_BAND_ST_B10"]) == 149.0
        assert image["SPACECRAFT_ID"] == f"LANDSAT_{pid[3]}"
        assert (image["WRS_PATH"], image["WRS_ROW"]) == ("129", "39")
        assert pid.split("_")[3] == image["DATE_ACQUIRED"].replace("-", "")
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{7}Z", image["SCENE_CENTER_TIME"])
        assert 0.0 <= float(image["CLOUD_COVER"]) <= 100.0
        assert 20 < float(image["SUN_ELEVATION"]) < 90
        assert proj["UTM_ZONE"] == "48" and proj["MAP_PROJECTION"] == "UTM"
        assert float(proj["GRID_CELL_SIZE_REFLECTIVE"]) == 30.0
        with rasterio.open(folder / contents["FILE_NAME_BAND_4"]) as src:
            t = src.transform
            # USGS corner coordinates are pixel centres
            assert float(proj["CORNER_UL_PROJECTION_X_PRODUCT"]) == t.c + 15
            assert float(proj["CORNER_LR_PROJECTION_Y_PRODUCT"]) == t.f - (src.height - 0.5) * 30
            assert int(proj["REFLECTIVE_LINES"]) == src.height
        assert 103 < float(proj["CORNER_UL_LON_PRODUCT"]) < 104.5


def test_truth_class_shares_above_one_percent(archive) -> None:
    region = _region_mask(archive)
    for year, path in archive.truth_landcover_paths.items():
        lc = _read(path)[region]
        shares = {c: float((lc == c).mean()) for c in (10, 20, 30, 40, 50, 60, 80)}
        assert min(shares.values()) > 0.01, shares
        assert sum(shares.values()) == pytest.approx(1.0)
        reported = archive.summary["class_shares"][str(year)]
        assert all(abs(reported[str(c)] - v) < 0.01 for c, v in shares.items())
    y1, y2 = (_read(archive.truth_landcover_paths[y]) for y in YEARS)
    changed = y1 != y2
    assert changed.any()
    assert set(np.unique(y1[changed])) == {40} and set(np.unique(y2[changed])) == {10, 50}


def test_always_cloudy_patch_and_clear_observations(archive) -> None:
    region = _region_mask(archive)
    patch = archive.summary["always_cloudy_patch"]
    assert patch["year"] == YEARS[0]
    for year in YEARS:
        season = [f for f in _landsat_dirs(archive) if f.name.split("_")[3][:4] == str(year)
                  and 6 <= int(f.name.split("_")[3][4:6]) <= 9]  # fmt: skip
        assert len(season) == 5
        clear_count = np.zeros(region.shape, dtype=int)
        for folder in season:
            qa = _read(folder / f"{folder.name}_QA_PIXEL.TIF")
            clear_count += ((qa & demo_clouds.QA.CLEAR) > 0) & ((qa & demo_clouds.QA.SHADOW) == 0)
            r, c = _patch_rc(archive, folder / f"{folder.name}_QA_PIXEL.TIF")
            flagged = bool(qa[r, c] & demo_clouds.QA.CLOUD)
            if year == YEARS[0]:
                assert flagged
        r, c = _patch_rc(archive, archive.truth_landcover_path)
        rows, cols = np.indices(region.shape)
        near_patch = (
            np.hypot(rows - r, cols - c) <= (patch["radius_m"] + patch["cloud_ring_m"]) / 30 + 2
        )
        if year == YEARS[0]:
            assert clear_count[r, c] == 0  # "no clear observation -> nodata" in the demo
        assert clear_count[region & ~near_patch].min() >= 2
    for folder in _s2_dirs(archive):
        day = folder.name.split("_")[2]
        if day.startswith(str(YEARS[0])) and 6 <= int(day[4:6]) <= 9:
            scl = _read(folder / "SCL.tif")
            r, c = _patch_rc(archive, folder / "SCL.tif")
            assert scl[r, c] in (8, 9, 10)
    assert all(
        v >= 2
        for sensor in archive.summary["min_clear_growing_season_obs"].values()
        for v in sensor.values()
    )


def test_bad_regions_and_busy_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(AOIError):
        simulate_archive(Point(103.8, 30.7), tmp_path / "a", region_name="point")
    with pytest.raises(AOIError, match="at most"):
        simulate_archive(Point(103.8, 30.7).buffer(1.0), tmp_path / "b", region_name="huge")
    with pytest.raises(AOIError, match="WGS 84"):
        simulate_archive(Point(380000, 3400000).buffer(1000), tmp_path / "c", region_name="utm")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        simulate_archive(TINY, busy, region_name="tiny")
    assert (busy / "keep.txt").read_text() == "user data"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mgrs_tile_matches_real_sentinel2_items(sample_data: Path) -> None:
    from pyproj import Transformer

    files = [
        sample_data
        / "sentinel2-l2a-29RKH-downsampled/S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json",
        *sorted((sample_data / "stac-items/earth-search-v1/sentinel-2-l2a").glob("*.json")),
    ]
    for path in files:
        item = json.loads(path.read_text())
        props = item["properties"]
        asset = item["assets"]["red"]
        t, (h, w) = asset["proj:transform"], asset["proj:shape"]
        # centre of the tile's 100 km square (the tile extends 9.8 km beyond it to the east/south)
        x, y = t[2] + 0.45 * w * t[0], t[5] + 0.55 * h * t[4]
        lon, lat = Transformer.from_crs(
            f"EPSG:{props['proj:epsg']}", "EPSG:4326", always_xy=True
        ).transform(x, y)
        expected = (
            f"{props['mgrs:utm_zone']}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
        )
        assert mgrs_tile(lon, lat) == expected


def test_real_county_grid(sample_data: Path) -> None:
    """A real Sichuan county maps to UTM 48N and the Chengdu Sentinel-2 tiles (no simulation run)."""
    doc = json.loads(
        (
            sample_data
            / "sichuan-admin-boundaries-cnmaps/sichuan_counties_simplified_wgs84.geojson"
        ).read_text()
    )
    pidu = next(f for f in doc["features"] if str(f["properties"]["adcode"]) == "510117")
    geom = shape(pidu["geometry"])
    c = geom.centroid
    assert mgrs_tile(c.x, c.y) in {"48RUU", "48RUV"}
    from eqi.demo.simulate import _utm_epsg

    assert _utm_epsg(geom) == 32648


def _landsat_ndvi_composite(archive, year: int) -> np.ndarray:
    """Per-band median of the clear growing-season Landsat observations -> NDVI (the files only)."""
    reds, nirs = [], []
    for folder in _landsat_dirs(archive):
        day = folder.name.split("_")[3]
        if day[:4] != str(year) or not 6 <= int(day[4:6]) <= 9:
            continue
        qa = _read(folder / f"{folder.name}_QA_PIXEL.TIF")
        bad = demo_clouds.QA.FILL | demo_clouds.QA.DILATED | demo_clouds.QA.CLOUD | demo_clouds.QA.SHADOW
        clear = (qa & bad) == 0
        for band, out in (("SR_B4", reds), ("SR_B5", nirs)):
            dn = _read(folder / f"{folder.name}_{band}.TIF")
            out.append(np.where(clear, dn * 2.75e-5 - 0.2, np.nan))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (never clear) stay NaN
        red, nir = np.nanmedian(np.stack(reds), 0), np.nanmedian(np.stack(nirs), 0)
        return (nir - red) / (nir + red)


def test_unchanged_land_has_no_year_effect(archive) -> None:
    """The demo plants only land-cover changes: on land whose truth class did not change, the
    composites of the two years agree, no scene-wide shift (it was -0.018 NDVI on the issue-9
    corridor box when each year drew its own calendar, cloud amounts, clouds and illumination)."""
    y1, y2 = (_read(archive.truth_landcover_paths[y]) for y in YEARS)
    r, c = _patch_rc(archive, archive.truth_landcover_path)
    rows, cols = np.indices(y1.shape)
    patch = archive.summary["always_cloudy_patch"]
    near_patch = np.hypot(rows - r, cols - c) <= (patch["radius_m"] + patch["cloud_ring_m"]) / 30 + 4
    unchanged = _region_mask(archive) & (y1 == y2) & np.isin(y1, (10, 20, 30, 40)) & ~near_patch
    d = _landsat_ndvi_composite(archive, YEARS[1]) - _landsat_ndvi_composite(archive, YEARS[0])
    d = d[unchanged & np.isfinite(d)]
    assert d.size > 1000
    assert abs(float(np.median(d))) < 0.002 and abs(float(d.mean())) < 0.002, (np.median(d), d.mean())
    # the calendar repeats: the same acquisition days in both years
    dates = {y: sorted(f.name.split("_")[3][4:] for f in _landsat_dirs(archive) if f.name.split("_")[3][:4] == str(y))
             for y in YEARS}  # fmt: skip
    assert dates[YEARS[0]] == dates[YEARS[1]]


def test_corridor_quiet_zone_moves_the_other_changes_away(archive, tmp_path: Path) -> None:
    """corridor_quiet_m: the landscape's own year-2 changes lie beyond it from the corridor (the
    same amount, elsewhere); within it the corridor is the only change."""
    line = shapely.LineString([(103.800, 30.700), (103.815, 30.712)])
    quiet_m = 400.0
    sim = simulate_archive(TINY, tmp_path / "quiet", region_name="tiny test region", years=YEARS, margin_m=600.0,
                           corridors=[line], corridor_width_m=90.0, corridor_quiet_m=quiet_m)  # fmt: skip
    base = [_read(archive.truth_landcover_paths[y]) for y in YEARS]
    lc = [_read(sim.truth_landcover_paths[y]) for y in YEARS]
    assert np.array_equal(lc[0], base[0])  # the first-year map does not depend on the corridor
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", sim.crs, always_xy=True)
    line_utm = shapely.transform(line, to_utm.transform, interleaved=False)
    with rasterio.open(sim.truth_landcover_path) as src:
        near = geometry_mask([line_utm.buffer(quiet_m - 30)], out_shape=src.shape, transform=src.transform,
                             invert=True)  # fmt: skip
    changed = lc[0] != lc[1]
    assert set(np.unique(lc[1][changed & near])) == {60}  # only the corridor (bare land)
    assert ((base[0] != base[1]) & near).sum() > 0  # without the quiet zone changes were there
    region = _region_mask(archive)  # the shares are of the region's pixels
    for code in (10, 50):  # the same amount of town growth and cropland-to-forest, elsewhere
        moved = ((lc[1] == code) & changed & region).sum()
        assert moved == ((base[1] == code) & (base[0] != base[1]) & region).sum() > 0
    with pytest.raises(ConfigError, match="corridor_quiet_m"):
        simulate_archive(TINY, tmp_path / "bad", region_name="t", years=YEARS, corridors=[line], corridor_quiet_m=-1)
