"""The Sichuan boundary library (aoi/) and AOI loading/validation (eqi.geo.regions)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from eqi.errors import AOIError, InputError
from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.regions import Region, list_library, load_regions
from eqi.resources import aoi_dir

VRT = aoi_dir() / "sichuan.vrt"


def _layer(name: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(VRT, layer=name)


# --- the library data -----------------------------------------------------------------------


def test_library_counts_and_adcodes() -> None:
    for spec, n in [("sichuan", 1), ("sichuan:prefectures", 21), ("sichuan:counties", 183)]:
        regions = load_regions(spec)
        assert len(regions) == n
        codes = [r.attrs["adcode"] for r in regions]
        assert len(set(codes)) == n
        assert all(len(c) == 6 and c.isdigit() and c.startswith("51") for c in codes)
        assert len({r.name for r in regions}) == n
        assert all(r.crs == "EPSG:4326" for r in regions)


def test_known_units() -> None:
    (jinjiang,) = load_regions("sichuan:510104")
    assert jinjiang.attrs["name"] == "锦江区"
    assert jinjiang.attrs["level"] == "county"
    assert (
        jinjiang.attrs["prefecture"] == "成都市" and jinjiang.attrs["prefecture_adcode"] == "510100"
    )
    assert jinjiang.name == "jinjiang-510104"
    (aba,) = load_regions("sichuan:513200")
    assert aba.attrs["name"] == "阿坝藏族羌族自治州" and aba.attrs["level"] == "prefecture"
    (prov,) = load_regions("sichuan")
    assert prov.attrs["name"] == "四川省" and prov.attrs["level"] == "province"
    # Chengdu's Jinjiang district lies near 104.08 E, 30.63 N
    assert jinjiang.geometry.contains(Point(104.09, 30.62))
    minx, miny, maxx, maxy = prov.bounds
    assert 97 < minx < 98.5 and 108 < maxx < 109 and 26 < miny < 26.2 and 34 < maxy < 34.5


def test_library_files_small_valid_and_in_wgs84() -> None:
    files = sorted(aoi_dir().glob("*.gpkg"))
    assert files, "no GeoPackages in aoi/"
    referenced = set()
    for line in VRT.read_text(encoding="utf-8").splitlines():
        if "<SrcDataSource" in line:
            referenced.add(line.split(">")[2].split("<")[0])
    assert referenced == {f.name for f in files}
    for f in files:
        assert f.stat().st_size < 2 * 2**20, f
    for layer in ("province", "prefectures", "counties"):
        info = pyogrio.read_info(VRT, layer=layer)
        assert info["crs"] == "EPSG:4326"
        frame = _layer(layer)
        assert frame.geometry.is_valid.all()
        assert set(frame.geom_type) == {"MultiPolygon"}
        xy = shapely.get_coordinates(frame.geometry.values)
        np.testing.assert_array_equal(xy, np.round(xy, 6))  # rounded to 1e-6 degree


def test_layers_nest_exactly_without_gaps_or_overlaps() -> None:
    counties = _layer("counties")
    prefectures = _layer("prefectures").set_index("adcode")
    province = _layer("province").geometry.iloc[0]
    assert shapely.coverage_is_valid(counties.geometry.values)
    for code, group in counties.groupby("prefecture_adcode"):
        union = shapely.coverage_union_all(group.geometry.values)
        assert union.equals(prefectures.geometry[code]), code
    assert shapely.coverage_union_all(counties.geometry.values).equals(province)
    assert counties.prefecture_adcode.nunique() == 21


def test_pinyin_is_plain_and_hand_fixes_applied() -> None:
    rows = {r["adcode"]: r for r in list_library()}
    assert len(rows) == 205
    assert all(
        r["pinyin"].isascii() and r["pinyin"].isalpha() and r["pinyin"].islower()
        for r in rows.values()
    )
    assert rows["510682"]["pinyin"] == "shifang"  # 什邡, not "shenfang"
    assert rows["511524"]["pinyin"] == "changning"  # 长宁, not "zhangning"
    assert rows["510402"]["pinyin"] == "dongqu"  # 东区 keeps its suffix
    assert rows["513200"]["pinyin"] == "aba"
    assert rows["510000"]["library_name"] == "sichuan"
    assert rows["510104"]["library_name"] == "sichuan:510104"


@pytest.fixture(scope="module")
def oracle(sample_data: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    folder = sample_data / "sichuan-admin-boundaries-cnmaps"
    wgs, gcj = folder / "sichuan_counties_wgs84.geojson", folder / "sichuan_counties.geojson"
    if not wgs.is_file() or not gcj.is_file():
        pytest.skip(f"cnmaps oracle files not found in {folder}")
    return pyogrio.read_dataframe(wgs).set_index("adcode"), pyogrio.read_dataframe(gcj).set_index(
        "adcode"
    )


def _vertex_distance_m(
    ours: gpd.GeoSeries, other: gpd.GeoSeries, step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) of every ``step``-th vertex of ``ours`` from the same unit's border in ``other``."""
    a = gpd.GeoSeries(ours.values, crs=4326).to_crs(ALBERS_CHINA).values
    b = gpd.GeoSeries(shapely.boundary(other.values), crs=4326).to_crs(ALBERS_CHINA).values
    xy, idx = shapely.get_coordinates(a, return_index=True)
    xy, idx = xy[::step], idx[::step]
    return shapely.distance(shapely.points(xy), b[idx]), idx


def test_counties_agree_with_shared_wgs84_oracle(
    oracle: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    wgs, gcj = oracle
    ours = _layer("counties").set_index("adcode")
    assert set(ours.index) == set(wgs.index)
    assert (ours["name"] == wgs.loc[ours.index, "name"]).all()
    dist, idx = _vertex_distance_m(ours.geometry, wgs.loc[ours.index].geometry, step=7)
    assert len(np.unique(idx)) == 183
    # every kept vertex lies on the oracle's border up to the 1e-6 degree rounding (~0.1 m)
    assert dist.max() < 0.5
    assert dist.mean() < 0.1
    area_ours = gpd.GeoSeries(ours.geometry.values, crs=4326).to_crs(ALBERS_CHINA).area.values
    area_ref = (
        gpd.GeoSeries(wgs.loc[ours.index].geometry.values, crs=4326)
        .to_crs(ALBERS_CHINA)
        .area.values
    )
    assert np.max(np.abs(area_ours / area_ref - 1)) < 1e-3
    # and the check discriminates: the unconverted GCJ-02 borders are >100 m away on average
    dist_gcj, _ = _vertex_distance_m(ours.geometry[["510104"]], gcj.loc[["510104"]].geometry)
    assert dist_gcj.mean() > 100


# --- library names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "sichuan:510104",
        "sichuan:锦江区",
        "sichuan:锦江",
        "sichuan:jinjiang",
        "sichuan:JinJiang",
        "sichuan:jinjiang-510104",
    ],
)
def test_library_selectors(spec: str) -> None:
    assert [r.name for r in load_regions(spec)] == ["jinjiang-510104"]


def test_library_several_and_prefecture_by_name() -> None:
    assert [r.name for r in load_regions("sichuan:510104, 510105")] == [
        "jinjiang-510104",
        "qingyang-510105",
    ]
    assert [r.attrs["adcode"] for r in load_regions("sichuan:成都")] == ["510100"]
    chengdu = load_regions("sichuan:counties", where="prefecture_adcode = '510100'")
    assert len(chengdu) == 20 and {r.attrs["prefecture"] for r in chengdu} == {"成都市"}


def test_library_name_errors() -> None:
    with pytest.raises(AOIError, match=r"ambiguous.*sichuan:513200.*sichuan:513231"):
        load_regions("sichuan:aba")
    with pytest.raises(
        AOIError, match=r"unknown AOI library name 'sichuan:jinjang'.*sichuan:jinjiang"
    ):
        load_regions("sichuan:jinjang")
    with pytest.raises(
        AOIError, match=r"unknown AOI library name 'sichaun'.*Did you mean: sichuan"
    ):
        load_regions("sichaun")
    with pytest.raises(AOIError, match="no unit"):
        load_regions("sichuan:counties", where="adcode = '999999'")
    with pytest.raises(AOIError, match="invalid where"):
        load_regions("sichuan:counties", where="nosuchcolumn = 1")


def test_region_to_crs_and_bounds() -> None:
    (region,) = load_regions("sichuan:510104")
    assert isinstance(region, Region)
    projected = region.to_crs(ALBERS_CHINA)
    area_km2 = projected.area / 1e6
    assert 55 < area_km2 < 70  # Jinjiang district is about 62 km²
    assert region.to_crs("EPSG:4326") is region.geometry
    assert region.bounds == region.geometry.bounds


# --- user files -----------------------------------------------------------------------------

SQUARE = [[104.0, 30.0], [104.1, 30.0], [104.1, 30.1], [104.0, 30.1], [104.0, 30.0]]


def _geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    return path


def _feature(geometry: dict | None, **props: object) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _write(frame: gpd.GeoDataFrame, path: Path, **kw: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided"
        pyogrio.write_dataframe(frame, path, **kw)
    return path


def test_geojson_without_crs_is_wgs84_and_named(tmp_path: Path) -> None:
    path = _geojson(
        tmp_path / "zones.geojson",
        [
            _feature({"type": "Polygon", "coordinates": [SQUARE]}, name="Core zone"),
            _feature(
                {"type": "Polygon", "coordinates": [[[x + 0.2, y] for x, y in SQUARE]]},
                name="Core zone",
            ),
            _feature(
                {"type": "Polygon", "coordinates": [[[x + 0.4, y] for x, y in SQUARE]]}, name=None
            ),
        ],
    )
    regions = load_regions(path)
    assert [r.name for r in regions] == ["core-zone", "core-zone-2", "zones-3"]
    assert regions[0].crs == "EPSG:4326" and regions[0].bounds == (104.0, 30.0, 104.1, 30.1)
    assert regions[0].attrs == {"name": "Core zone"}
    assert [r.name for r in load_regions(str(path), where="name IS NULL")] == [
        "zones"
    ]  # one feature: the file stem


def test_names_from_field_or_stem(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"code": [7, 8], "ID": ["a", "b"]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)], crs=4326
    )
    path = _write(frame, tmp_path / "sites.gpkg", layer="sites")
    assert [r.name for r in load_regions(path)] == ["a", "b"]  # "id" column, any case
    assert [r.name for r in load_regions(path, name_field="code")] == ["7", "8"]
    assert load_regions(path, name_field="code")[0].attrs == {"code": 7, "ID": "a"}
    with pytest.raises(AOIError, match="name field 'nope' is not a column.*code, ID"):
        load_regions(path, name_field="nope")
    single = _write(frame.iloc[:1][["geometry"]], tmp_path / "one.gpkg")
    assert [r.name for r in load_regions(single)] == ["one"]


def test_projected_file_is_reprojected(tmp_path: Path) -> None:
    metric = gpd.GeoSeries([Point(104.05, 30.05)], crs=4326).to_crs(32648).buffer(1000)
    path = _write(gpd.GeoDataFrame(geometry=metric), tmp_path / "utm.shp")
    (region,) = load_regions(path)
    minx, miny, maxx, maxy = region.bounds
    assert 104.03 < minx < 104.05 < maxx < 104.07 and 30.03 < miny < 30.05 < maxy < 30.07
    assert region.to_crs("EPSG:32648").area == pytest.approx(np.pi * 1000**2, rel=0.01)


def test_multilayer_geopackage_needs_a_layer(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"name": ["x"]}, geometry=[box(104, 30, 104.1, 30.1)], crs=4326)
    path = tmp_path / "two.gpkg"
    _write(frame, path, layer="a")
    _write(frame.assign(name="y"), path, layer="b", append=False)
    with pytest.raises(AOIError, match=r"has 2 layers \(a, b\).*layername=NAME"):
        load_regions(path)
    assert [r.name for r in load_regions(f"{path}|layername=b")] == ["y"]
    with pytest.raises(AOIError, match="no layer 'c'"):
        load_regions(f"{path}|layername=c")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AOIError, match="AOI file not found"):
        load_regions(tmp_path / "nope.geojson")
    with pytest.raises(AOIError, match="AOI file not found"):
        load_regions(str(tmp_path / "nope.gpkg"))


def test_corrupt_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"not a geopackage" * 64)
    with pytest.raises(AOIError, match="cannot read AOI file .*bad.gpkg"):
        load_regions(bad)
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type"', encoding="utf-8")
    with pytest.raises(AOIError, match="cannot read AOI file"):
        load_regions(broken)


def test_empty_feature_collection(tmp_path: Path) -> None:
    with pytest.raises(AOIError, match="has no features"):
        load_regions(_geojson(tmp_path / "empty.geojson", []))


def test_empty_geometry(tmp_path: Path) -> None:
    path = _geojson(
        tmp_path / "holes.geojson",
        [
            _feature({"type": "Polygon", "coordinates": [SQUARE]}, name="ok"),
            _feature(None, name="blank"),
        ],
    )
    with pytest.raises(AOIError, match=r"feature 2 \('blank'\).*empty geometry"):
        load_regions(path)


def test_self_intersecting_polygon_is_refused_with_location(tmp_path: Path) -> None:
    bowtie = [[104.0, 30.0], [104.1, 30.1], [104.1, 30.0], [104.0, 30.1], [104.0, 30.0]]
    path = _geojson(
        tmp_path / "bowtie.geojson",
        [_feature({"type": "Polygon", "coordinates": [bowtie]}, name="tie")],
    )
    with pytest.raises(
        AOIError, match=r"self-intersecting at \(104\.050000, 30\.050000\).*QGIS.*make_valid"
    ) as err:
        load_regions(path)
    assert "feature 1 ('tie')" in str(err.value)
    assert isinstance(err.value, InputError) and err.value.exit_code == 2


def test_shapefile_without_prj(tmp_path: Path) -> None:
    path = _write(gpd.GeoDataFrame(geometry=[box(104, 30, 104.1, 30.1)]), tmp_path / "noprj.shp")
    assert not path.with_suffix(".prj").exists()
    with pytest.raises(AOIError, match=r"has no CRS; add a \.prj or reproject"):
        load_regions(path)


def test_geopackage_with_undefined_srs(tmp_path: Path) -> None:
    path = _write(gpd.GeoDataFrame(geometry=[box(104, 30, 104.1, 30.1)]), tmp_path / "nosrs.gpkg")
    with pytest.raises(AOIError, match="has no CRS"):
        load_regions(path)


@pytest.mark.parametrize(
    ("geom", "kind"),
    [(Point(104, 30), "Point"), (LineString([(104, 30), (104.1, 30.1)]), "LineString")],
)
def test_points_and_lines_are_refused_with_buffer_hint(
    tmp_path: Path, geom: object, kind: str
) -> None:
    path = _write(
        gpd.GeoDataFrame({"name": ["dam"]}, geometry=[geom], crs=4326), tmp_path / "dam.geojson"
    )
    with pytest.raises(
        AOIError, match=rf"feature 1 \('dam'\).*is a {kind}; an AOI must be a polygon.*[Bb]uffer"
    ):
        load_regions(path)


def test_coordinates_outside_lonlat(tmp_path: Path) -> None:
    # metres labelled as degrees: a common mistake
    path = _write(
        gpd.GeoDataFrame(geometry=[box(400000, 3300000, 401000, 3301000)], crs=4326),
        tmp_path / "m.shp",
    )
    with pytest.raises(AOIError, match="outside the longitude/latitude range.*probably not"):
        load_regions(path)


def test_non_geometry_table(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("name,value\na,1\n", encoding="utf-8")
    with pytest.raises(AOIError, match="no geometries"):
        load_regions(path)


# --- workflows/make_aoi.py helpers ---------------------------------------------------------


def test_romanise_place_names() -> None:
    pytest.importorskip("pypinyin")
    from workflows.make_aoi import romanise

    assert romanise("锦江区") == "jinjiang"
    assert romanise("阿坝藏族羌族自治州") == "aba"
    assert romanise("北川羌族自治县") == "beichuan"
    assert romanise("东区") == "dongqu"
    assert romanise("什邡市") == "shifang"
    assert romanise("郫都区") == "pidu"


# --- GeoJSON read without GDAL --------------------------------------------------------------


def _through_gdal(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[Region]:
    """The same file read by pyogrio (GDAL's GeoJSON driver): the oracle for the json reader."""
    import eqi.geo.regions as regions

    with monkeypatch.context() as patch:
        patch.setattr(regions, "_read_geojson", lambda _path: None)
        return load_regions(path)


def _same_regions(ours: list[Region], gdal: list[Region]) -> None:
    assert [r.name for r in ours] == [r.name for r in gdal]
    for a, b in zip(ours, gdal, strict=True):
        assert a.crs == b.crs
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=1e-9), a.name
        assert a.attrs == b.attrs, a.name


@pytest.mark.parametrize(
    "name",
    [
        "sichuan-admin-boundaries-cnmaps/sichuan_prefectures.geojson",
        "sichuan-admin-boundaries-cnmaps/sichuan_province_wgs84.geojson",
        "sichuan-reference-features/aoi_proxies_from_admin_polygons_wgs84.geojson",
    ],
)
def test_shared_geojson_reads_as_gdal_reads_it(
    sample_data: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = sample_data / name
    _same_regions(load_regions(path), _through_gdal(monkeypatch, path))


def test_geojson_shapes_and_legacy_crs_read_as_gdal_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed = _geojson(
        tmp_path / "mixed.geojson",
        [
            _feature({"type": "Polygon", "coordinates": [SQUARE]}, name="A", code=7, area=1.5),
            _feature(
                {"type": "MultiPolygon", "coordinates": [[[[x + 0.2, y] for x, y in SQUARE]]]},
                name="B",
                flag=True,
            ),
        ],
    )
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"type": "Polygon", "coordinates": [SQUARE]}), encoding="utf-8")
    single = tmp_path / "single.geojson"
    single.write_text(json.dumps(_feature({"type": "Polygon", "coordinates": [SQUARE]}, NAME="x")))
    utm = gpd.GeoSeries([Point(104.05, 30.05)], crs=4326).to_crs(32648).buffer(500)
    legacy = tmp_path / "legacy.geojson"
    legacy.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32648"}},
                "features": [_feature(shapely.geometry.mapping(utm.iloc[0]), name="site")],
            }
        )
    )
    for path in (mixed, bare, single, legacy):
        _same_regions(load_regions(path), _through_gdal(monkeypatch, path))
    assert load_regions(mixed)[0].attrs == {"name": "A", "code": 7, "area": 1.5, "flag": None}
    # values stay as JSON has them (GDAL would give a Timestamp and an array): JSON-friendly attrs
    typed = _geojson(tmp_path / "typed.geojson", [_feature({"type": "Polygon", "coordinates": [SQUARE]},
                                                           name="t", when="2021-05-01", tags=[1, 2])])  # fmt: skip
    assert load_regions(typed)[0].attrs == {"name": "t", "when": "2021-05-01", "tags": [1, 2]}
    assert load_regions(legacy)[0].bounds[0] == pytest.approx(104.05 - 0.0052, abs=3e-4)


def test_geojson_aoi_loads_without_gdal_vector_reader(tmp_path: Path) -> None:
    """Reading a GeoJSON AOI imports no pyogrio (a second libgdal, about 45 MiB resident)."""
    path = _geojson(tmp_path / "a.geojson", [_feature({"type": "Polygon", "coordinates": [SQUARE]})])
    code = (
        "import sys; from eqi.geo.regions import load_regions; "
        f"r = load_regions({str(path)!r}); "
        "assert r[0].bounds == (104.0, 30.0, 104.1, 30.1), r[0].bounds; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyogrio'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
