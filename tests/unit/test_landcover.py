"""Land-cover class table, product mappings and reclassification (eqi.science.landcover)."""

from __future__ import annotations

import re
import warnings

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr

from eqi.errors import ConfigError, InputError
from eqi.io import landcover_tables as tables
from eqi.science import landcover as lc

# documented source codes per product (methods spec §1.3)
DOCUMENTED = {
    "esa-worldcover": {10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100},
    "dynamic-world": set(range(0, 9)),
    "esri-lulc": set(range(1, 12)),
    "clcd": set(range(1, 10)),
}
HEX = re.compile(r"^#[0-9a-f]{6}$", re.IGNORECASE)


def reclassify(da, mapping, level=1, nodata_out=0, **kw):
    """The science function with the shipped class table and split parameters passed in."""
    extra = {
        "split": tables.load_fvc_split() if kw.get("fvc") is not None else None,
        "water": tables.load_water_split() if kw.get("water_bodies") is not None else None,
        "paddy": tables.load_paddy_split() if kw.get("rice") is not None else None,
    }
    return lc.reclassify(da, mapping, level, nodata_out, table=tables.load_class_table(), **extra, **kw)


# ------------------------------------------------------------------ class table and mappings


def test_class_table_has_cas_lucc_levels():
    table = tables.load_class_table()
    assert table.codes(1) == (1, 2, 3, 4, 5, 6)
    level2 = table.codes(2)
    assert len(level2) == 25
    assert {c // 10 for c in level2} == set(table.codes(1))
    for c in table:
        assert HEX.match(c.color), c
        assert c.name_zh and c.name_en
        if c.level == 2:
            assert c.parent == c.code // 10
    assert table.get(31).name_zh == "高覆盖度草地"
    assert table.get(65).name_zh == "裸土地" and table.get(65).parent == 6
    assert table.nodata.code == 0 and 0 not in table
    parent = table.parent_lookup()
    assert (
        parent[31] == 3
        and parent[66] == 6
        and parent[4] == 4
        and parent[0] == 0
        and parent[99] == 0
    )
    cmap = table.colormap(1)
    assert set(cmap) == {0, 1, 2, 3, 4, 5, 6} and cmap[0][3] == 0 and cmap[2][3] == 255
    assert cmap[2][:3] == table.get(2).rgb
    with pytest.raises(InputError, match="not in the national class table"):
        table.get(7)


@pytest.mark.parametrize("product", sorted(DOCUMENTED))
def test_mapping_covers_every_documented_code(product):
    table = tables.load_class_table()
    mapping = tables.load_mapping(product)
    assert set(mapping.codes) == DOCUMENTED[product]
    assert mapping.source and mapping.tag and mapping.mapping_tag == "[D]"
    for cls in mapping.classes:
        if cls.to_nodata:
            continue
        assert cls.level1 in table.codes(1)
        assert cls.level2 in table.codes(2)
        assert table.get(cls.level2).parent == cls.level1
    l1, l2 = mapping.lookup(1), mapping.lookup(2)
    assert l1.dtype == np.uint8 and l1.shape == (256,)
    for code in range(256):  # undocumented codes map to nodata
        if code not in DOCUMENTED[product]:
            assert l1[code] == 0 and l2[code] == 0


def test_product_specific_mapping_details():
    assert tables.load_mapping("clcd").tag == "[U]"
    assert all(c.tag == "[U]" for c in tables.load_mapping("clcd").classes)
    esri = tables.load_mapping("esri-lulc")
    assert esri[10].to_nodata and esri.lookup(1)[10] == 0  # clouds → nodata
    dw = tables.load_mapping("dynamic-world")
    # label 0 is water, not nodata: eqi reads DW with 255 as nodata
    assert dw.nodata == 255 and dw.lookup(1)[0] == 4 and dw.lookup(2)[0] == 41
    assert "255" in dw.nodata_note
    wc = tables.load_mapping("esa-worldcover")
    assert wc.lookup(2)[30] == 32 and wc.split_mask()[30] and not wc.split_mask()[100]
    assert wc.lookup(2)[100] == 33 and wc.lookup(1)[70] == 4
    # spec §1.3 auxiliary rules, one per class that needs it
    assert np.flatnonzero(wc.split_mask("water_body")).tolist() == [80]
    assert np.flatnonzero(wc.split_mask("sparse_fvc")).tolist() == [60]
    assert np.flatnonzero(wc.split_mask("paddy")).tolist() == [40]
    esri_paddy = np.flatnonzero(esri.split_mask("paddy")).tolist()
    assert esri_paddy == [4, 5] and esri[4].level2 == 46 and esri[4].level1 == 4
    assert np.flatnonzero(dw.split_mask("paddy")).tolist() == [3, 4]
    for product in DOCUMENTED:  # every water class: river 41 by default, split by a layer
        m = tables.load_mapping(product)
        water = [c for c in m.classes if c.level1 == 4 and c.level2 in (41, 42, 43)]
        assert water and all(c.level2 == 41 and c.split == "water_body" for c in water), product


@pytest.mark.parametrize("product", sorted(DOCUMENTED))
def test_every_mapping_entry_keeps_its_source_and_tag(product):
    mapping = tables.load_mapping(product)
    for cls in mapping.classes:
        assert cls.tag in ("[V]", "[V-impl]", "[P]", "[U]", "[D]"), (product, cls.code)
        assert "§1.3" in cls.source, (product, cls.code)


def test_unknown_product_and_level_are_config_errors():
    with pytest.raises(ConfigError, match="unknown land-cover product"):
        tables.load_mapping("modis")
    da = xr.DataArray(np.array([[10]], dtype=np.uint8), dims=("y", "x"))
    with pytest.raises(ConfigError, match="level must be 1"):
        reclassify(da, tables.load_mapping("esa-worldcover"), level=3)


# ------------------------------------------------------------------ real WorldCover tiles


def _read_worldcover(sample_data, year: int) -> xr.DataArray:
    version = {2020: "v100", 2021: "v200"}[year]
    path = (
        sample_data
        / "esa-worldcover-copdem-saotome"
        / f"ESA_WorldCover_10m_{year}_{version}_N00E006_Map_crop.tif"
    )
    with rasterio.open(path) as src:
        data, nodata = src.read(1), src.nodata
    return xr.DataArray(data, dims=("y", "x"), attrs={"nodata": nodata})


def _expected_counts(src: np.ndarray, mapping: lc.ProductMapping, level: int) -> dict[int, int]:
    lookup = {c.code: (c.level1 if level == 1 else c.level2) for c in mapping.classes}
    expected: dict[int, int] = {}
    for code, n in zip(*np.unique(src, return_counts=True), strict=True):
        target = lookup.get(int(code), 0)
        expected[target] = expected.get(target, 0) + int(n)
    return dict(sorted(expected.items()))


@pytest.mark.parametrize("year", [2020, 2021])
@pytest.mark.parametrize("level", [1, 2])
def test_worldcover_counts_equal_source_counts_through_mapping(sample_data, year, level):
    da = _read_worldcover(sample_data, year)
    mapping = tables.load_mapping("esa-worldcover")
    out = reclassify(da, mapping, level)
    assert out.dtype == np.uint8 and out.shape == da.shape
    assert lc.class_pixel_counts(out) == _expected_counts(da.values, mapping, level)
    mapped = np.isin(da.values, [c for c in mapping.codes if int(mapping.lookup(level)[c]) != 0])
    assert sum(lc.class_pixel_counts(out, nodata=0).values()) == int(mapped.sum())


def test_worldcover_2021_exact_level_counts(sample_data):
    """Figures of the issue report; the source has no nodata pixels in this window."""
    da = _read_worldcover(sample_data, 2021)
    mapping = tables.load_mapping("esa-worldcover")
    assert lc.class_pixel_counts(reclassify(da, mapping, 1)) == {
        1: 576,
        2: 1163953,
        3: 41862,
        4: 112274,
        5: 120763,
        6: 572,
    }
    assert lc.class_pixel_counts(reclassify(da, mapping, 2)) == {
        12: 576,
        21: 1163944,
        22: 9,
        32: 41862,
        41: 112255,  # WorldCover 80 → 河渠 41 without a water-body layer
        46: 19,
        51: 120763,
        66: 572,
    }


def test_worldcover_dask_equals_numpy_and_stays_lazy(sample_data):
    da = _read_worldcover(sample_data, 2021)
    mapping = tables.load_mapping("esa-worldcover")
    lazy = reclassify(da.chunk({"y": 512, "x": 512}), mapping, 2)
    assert isinstance(lazy.data, dsa.Array) and lazy.chunks == ((512, 512, 176),) * 2
    np.testing.assert_array_equal(lazy.values, reclassify(da, mapping, 2).values)
    assert lc.class_pixel_counts(lazy) == lc.class_pixel_counts(reclassify(da, mapping, 2))


def test_worldcover_nodata_stays_nodata(sample_data):
    da = _read_worldcover(sample_data, 2021).copy()
    da.values[:100, :250] = 0
    da.values[-3:, :] = 0
    mapping = tables.load_mapping("esa-worldcover")
    nodata = da.values == 0
    for level in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("error", lc.UnmappedCodeWarning)
            out = reclassify(da.chunk(300), mapping, level).values
        np.testing.assert_array_equal(out == 0, nodata)
    assert lc.unmapped_codes(da, mapping) == {}
    out255 = reclassify(da, mapping, 1, nodata_out=255)
    assert lc.class_pixel_counts(out255)[255] == nodata.sum()


# ------------------------------------------------------------------ small hand-made arrays


def test_unmapped_codes_are_reported_and_set_to_nodata():
    codes = np.array([[10, 7, 7], [255, 80, 0]], dtype=np.uint8)
    da = xr.DataArray(codes, dims=("y", "x"))
    mapping = tables.load_mapping("esa-worldcover")
    assert lc.unmapped_codes(da, mapping) == {7: 2, 255: 1}
    with pytest.warns(lc.UnmappedCodeWarning, match=r"\[7, 255\]"):
        out = reclassify(da, mapping, 2)
    np.testing.assert_array_equal(out.values, [[21, 0, 0], [0, 41, 0]])


def test_wide_integer_input_and_explicit_nodata():
    codes = np.array([[2, 10, 65535], [11, 300, 7]], dtype=np.uint16)
    da = xr.DataArray(codes, dims=("y", "x"))
    esri = tables.load_mapping("esri-lulc")
    with pytest.warns(lc.UnmappedCodeWarning, match="300"):
        out = reclassify(da, esri, 1, source_nodata=65535)
    np.testing.assert_array_equal(out.values, [[2, 0, 0], [3, 0, 5]])
    assert out.dtype == np.uint8
    assert lc.unmapped_codes(da, esri, source_nodata=65535) == {300: 1}


def test_dynamic_world_water_is_not_nodata():
    dw = tables.load_mapping("dynamic-world")
    labels = np.array([[0, 1, 8, 255]], dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lc.UnmappedCodeWarning)  # 255 is DW's (eqi) nodata
        out = reclassify(xr.DataArray(labels, dims=("y", "x")), dw, 2)
        attrs255 = reclassify(xr.DataArray(labels, dims=("y", "x"), attrs={"nodata": 255}), dw, 1)
    np.testing.assert_array_equal(out.values, [[41, 21, 44, 0]])
    np.testing.assert_array_equal(attrs255.values, [[4, 2, 4, 0]])
    # a file that declares 0 as nodata has lost its water: refused, with the remedy
    with pytest.raises(InputError, match=r"0 \(water\) as nodata.*unmask\(255\)"):
        reclassify(xr.DataArray(labels, dims=("y", "x"), attrs={"nodata": 0}), dw, 1)


def test_fvc_split_of_grassland():
    codes = np.array([[30, 30, 30, 30, 30, 30, 30, 10, 100]], dtype=np.uint8)
    fvc = np.array([[0.6, 0.5, 0.2, 0.1, 0.05, 0.04, np.nan, 0.01, 0.9]], dtype=np.float32)
    da = xr.DataArray(codes, dims=("y", "x"))
    fv = xr.DataArray(fvc, dims=("y", "x"))
    wc = tables.load_mapping("esa-worldcover")
    level2 = reclassify(da, wc, 2, fvc=fv)
    # > 0.5 → 31; 0.2–0.5 → 32; 0.05–0.2 → 33; < 0.05 → 65; NaN → default 32; non-grass unchanged
    np.testing.assert_array_equal(level2.values, [[31, 32, 32, 33, 33, 65, 32, 21, 33]])
    level1 = reclassify(da.chunk({"x": 4}), wc, 1, fvc=fv.chunk({"x": 3}))
    np.testing.assert_array_equal(level1.values, [[3, 3, 3, 3, 3, 6, 3, 2, 3]])
    assert level2.attrs["fvc_split"] == "yes"
    with pytest.raises(InputError, match="same grid"):
        reclassify(da, wc, 2, fvc=fv.isel(x=slice(0, 4)))


def test_float_codes_are_rejected_and_counts_skip_nodata():
    wc = tables.load_mapping("esa-worldcover")
    with pytest.raises(InputError, match="must be integers"):
        reclassify(xr.DataArray(np.array([[10.0]]), dims=("y", "x")), wc)
    da = xr.DataArray(np.array([[0, 0, 3], [3, 3, 9]], dtype=np.int16), dims=("y", "x"))
    assert lc.class_pixel_counts(da) == {0: 2, 3: 3, 9: 1}
    assert lc.class_pixel_counts(da.chunk(1), nodata=0) == {3: 3, 9: 1}


def test_sparse_vegetation_in_bare_classes_by_fvc():
    """ESA 60 / Esri 8 / DW 7 / CLCD 7: FVC ≥ 0.05 is sparse grass (33, spec §1.1), else 66."""
    fv = xr.DataArray(np.array([[0.6, 0.3, 0.05, 0.049, 0.0, np.nan]], dtype=np.float32), dims=("y", "x"))
    # 0.6 > 0.5 → 31; 0.3 → 32; 0.05 → 33 (inclusive); below 0.05 and NaN → the default 66
    for product, bare in (("esa-worldcover", 60), ("esri-lulc", 8), ("dynamic-world", 7), ("clcd", 7)):
        codes = xr.DataArray(np.full((1, 6), bare, dtype=np.uint8), dims=("y", "x"))
        mapping = tables.load_mapping(product)
        np.testing.assert_array_equal(reclassify(codes, mapping, 2, fvc=fv).values, [[31, 32, 33, 66, 66, 66]])
        np.testing.assert_array_equal(reclassify(codes, mapping, 1, fvc=fv).values, [[3, 3, 3, 6, 6, 6]])
        np.testing.assert_array_equal(reclassify(codes, mapping, 2).values, [[66] * 6])


def test_rivers_and_lakes_from_a_water_body_layer():
    wc = tables.load_mapping("esa-worldcover")
    codes = xr.DataArray(np.array([[80, 80, 80, 80, 10, 90]], dtype=np.uint8), dims=("y", "x"))
    # a boolean river mask: True → 41, False → 43 (lake/reservoir); non-water classes untouched
    river = xr.DataArray(np.array([[True, False, True, False, True, True]]), dims=("y", "x"))
    np.testing.assert_array_equal(reclassify(codes, wc, 2, water_bodies=river).values, [[41, 43, 41, 43, 21, 46]])
    # an inventory raster of national codes: 42 lake, 43 reservoir, 0 = unknown → default 41
    inventory = xr.DataArray(np.array([[42, 43, 0, 41, 43, 43]], dtype=np.uint8), dims=("y", "x"))
    out = reclassify(codes.chunk({"x": 2}), wc, 2, water_bodies=inventory.chunk({"x": 3}))
    np.testing.assert_array_equal(out.values, [[42, 43, 41, 41, 21, 46]])
    assert out.attrs["water_split"] == "water-body layer"
    # level 1 is unchanged; without a layer every water pixel is the documented default 41
    np.testing.assert_array_equal(reclassify(codes, wc, 1, water_bodies=river).values, [[4, 4, 4, 4, 2, 4]])
    np.testing.assert_array_equal(reclassify(codes, wc, 2).values, [[41, 41, 41, 41, 21, 46]])
    with pytest.raises(InputError, match="water_bodies dims"):
        reclassify(codes, wc, 2, water_bodies=river.isel(x=slice(0, 3)))
    with pytest.raises(InputError, match="boolean river mask"):
        reclassify(codes, wc, 2, water_bodies=river.astype("float32"))


def test_split_water_on_a_national_map():
    """The same split for maps already in national classes (e.g. the classifier's 二级 output)."""
    national = xr.DataArray(np.array([[41, 43, 42, 21, 0, 41]], dtype=np.uint8), dims=("y", "x"))
    river = xr.DataArray(np.array([[False, True, True, True, True, True]]), dims=("y", "x"))
    out = lc.split_water(national, river, water=tables.load_water_split())
    np.testing.assert_array_equal(out.values, [[43, 41, 41, 21, 0, 41]])
    codes = xr.DataArray(np.array([[0, 0, 43, 0, 0, 42]], dtype=np.uint8), dims=("y", "x"))
    out = lc.split_water(national.chunk(2), codes.chunk(3), water=tables.load_water_split())
    np.testing.assert_array_equal(out.values, [[41, 43, 43, 21, 0, 42]])


def test_paddy_rice_within_flooded_vegetation_and_cropland():
    rice = xr.DataArray(np.array([[True, False, True, False, True]]), dims=("y", "x"))
    esri = tables.load_mapping("esri-lulc")
    codes = xr.DataArray(np.array([[4, 4, 5, 5, 2]], dtype=np.uint8), dims=("y", "x"))
    # flooded vegetation: rice → 水田 11 (一级 耕地 1), else 滩地 46 (一级 水域 4); crops 11 vs 12
    np.testing.assert_array_equal(reclassify(codes, esri, 2, rice=rice).values, [[11, 46, 11, 12, 21]])
    np.testing.assert_array_equal(reclassify(codes, esri, 1, rice=rice).values, [[1, 4, 1, 1, 2]])
    np.testing.assert_array_equal(reclassify(codes, esri, 2).values, [[46, 46, 12, 12, 21]])
    wc = tables.load_mapping("esa-worldcover")  # ESA herbaceous wetland (90) is never paddy
    wcodes = xr.DataArray(np.array([[40, 90, 40, 90, 10]], dtype=np.uint8), dims=("y", "x"))
    np.testing.assert_array_equal(reclassify(wcodes, wc, 2, rice=rice).values, [[11, 46, 11, 46, 21]])


def test_paddy_from_the_crop_calendar():
    """LSWI + 0.05 ≥ NDVI at transplanting and NDVI ≥ 0.5 at the peak (profile thresholds)."""
    paddy = tables.load_paddy_split()
    assert (paddy.flood_margin, paddy.peak_ndvi_min, paddy.paddy_code) == (0.05, 0.5, 11)
    lswi = xr.DataArray(np.array([0.30, 0.30, 0.10, 0.30, np.nan]), dims="x")
    ndvi_flood = xr.DataArray(np.array([0.34, 0.36, 0.40, 0.20, 0.2]), dims="x")
    ndvi_peak = xr.DataArray(np.array([0.70, 0.70, 0.80, 0.45, 0.8]), dims="x")
    # 0.30+0.05=0.35 ≥ 0.34 and 0.70 ≥ 0.5 → rice; 0.35 < 0.36 → no; 0.15 < 0.40 → no;
    # flooded but peak 0.45 < 0.5 → no; NaN → no
    out = lc.paddy_from_calendar(lswi, ndvi_flood, ndvi_peak, paddy=paddy)
    assert out.dtype == bool and out.values.tolist() == [True, False, False, False, False]
