"""Local archive: index the real Landsat / Sentinel-2 sample scenes, validate, search in-process."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterExtension

from eqi.errors import ConfigError, InputError
from eqi.io.catalog import load_items, open_catalog, save_items
from eqi.io.catalog.archive import ArchiveCatalog, index_archive
from eqi.io.catalog.mtl import read_mtl
from eqi.io.catalog.stac_api import StacApiCatalog
from eqi.sensors import resolve_item

LANDSAT_IDS = [
    "LC08_L2SP_017036_20130419_20200913_02_T2",
    "LC08_L2SP_005009_20150710_20200908_02_T2",
    "LC08_L2SP_008059_20191201_20200825_02_T1",
]
S2_ID = "S2A_29RKH_20200219_0_L2A"
ALL_IDS = [*LANDSAT_IDS, S2_ID]  # sorted by datetime: 2013, 2015, 2019, 2020
COLOMBIA = (-75.5, 1.0, -75.0, 1.5)  # inside LC08_L2SP_008059 only
WORLD = (-180.0, -90.0, 180.0, 90.0)
ALL_COLLECTIONS = ["landsat-c2-l2", "sentinel-2-l2a"]


@pytest.fixture(scope="module")
def scenes(sample_data: Path) -> dict[str, Path]:
    return {
        "landsat": sample_data / "landsat-c2l2-downsampled-scenes",
        "s2": sample_data / "sentinel2-l2a-29RKH-downsampled",
    }


@pytest.fixture(scope="module")
def archive(scenes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("archive") / "scenes.parquet"
    report = index_archive([scenes["landsat"], scenes["s2"]], out)
    return report, ArchiveCatalog(out)


@pytest.fixture(scope="module")
def items(archive) -> dict[str, pystac.Item]:
    return {item.id: item for item in archive[1].items()}


def _link_scene(src: Path, dst: Path, replace: dict[str, bytes] | None = None, drop=()) -> Path:
    """A scene folder of symlinks to ``src`` files, some replaced by bytes or left out."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        name = path.name
        if any(name.endswith(suffix) for suffix in drop):
            continue
        match = next((v for k, v in (replace or {}).items() if name.endswith(k)), None)
        if match is not None:
            (dst / name).write_bytes(match)
        else:
            (dst / name).symlink_to(path)
    return dst


# --------------------------------------------------------------------------------- indexing


def test_index_report_and_file(archive) -> None:
    report, catalog = archive
    assert report.item_ids == ALL_IDS
    assert report.skipped == []
    assert report.out.is_file() and report.out.suffix == ".parquet"
    assert [p.name for p in report.out.parent.iterdir()] == ["scenes.parquet"]  # no temp left
    assert f"indexed 4 scene(s) into {report.out}" in report.summary()
    assert [item.id for item in catalog.items()] == ALL_IDS


def _pystac_core_schema_map() -> dict[str, str]:
    """Remote core schema URLs -> the copies bundled in the pystac package (no network)."""
    root = Path(pystac.__file__).parent / "validation" / "jsonschemas"
    mapping = {
        f"https://geojson.org/schema/{p.name}": str(p) for p in (root / "geojson").glob("*.json")
    }
    for path in (root / "stac-spec" / "v1.1.0").glob("*.json"):
        for kind in ("item", "catalog", "collection"):
            mapping[f"https://schemas.stacspec.org/v1.1.0/{kind}-spec/json-schema/{path.name}"] = (
                str(path)
            )
    return mapping


def test_items_pass_stac_validator_core_schema_offline(items, monkeypatch) -> None:
    from stac_validator.validate import StacValidate

    def no_network(*args, **kwargs):
        raise OSError("network access attempted during validation")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    schema_map = _pystac_core_schema_map()
    for item in items.values():
        validator = StacValidate(core=True, schema_map=schema_map)
        assert validator.validate_dict(item.to_dict()), validator.message
        assert validator.message[0]["version"] == "1.1.0"
    # the validator really checks: "collection" without a rel=collection link is invalid
    broken = items[S2_ID].to_dict()
    broken["links"] = [link for link in broken["links"] if link["rel"] != "collection"]
    assert not StacValidate(core=True, schema_map=schema_map).validate_dict(broken)


def test_extension_fields_follow_their_specs(items) -> None:
    # The extension JSON schemas are not bundled in any installed package (stac_validator would
    # download them), so the fields are checked through pystac's typed extension accessors.
    data_types = {d.value for d in DataType}
    for item in items.values():
        assert ProjectionExtension.has_extension(item)
        assert re.fullmatch(r"EPSG:\d{4,5}", ProjectionExtension.ext(item).code or "")
        assert item.properties["platform"] and item.properties["constellation"]
        assert item.properties["instruments"] and 0 <= item.properties["eo:cloud_cover"] <= 100
        for key, asset in item.assets.items():
            if "data" not in (asset.roles or []):
                continue
            proj = ProjectionExtension.ext(asset)
            assert len(proj.shape) == 2 and len(proj.transform) == 6, key
            for band in RasterExtension.ext(asset).bands:
                assert band.data_type in data_types and band.spatial_resolution > 0, key
            for band in EOExtension.ext(asset).bands or []:
                assert Band.band_range(band.common_name) is not None, (key, band.common_name)


def test_proj_values_are_read_from_the_files(items) -> None:
    for item in items.values():
        for key, asset in item.assets.items():
            if not asset.href.lower().endswith((".tif", ".tiff")):
                continue
            assert Path(asset.href).is_absolute() and Path(asset.href).is_file(), asset.href
            with rasterio.open(asset.href) as src:
                proj = ProjectionExtension.ext(asset)
                assert proj.code == f"EPSG:{src.crs.to_epsg()}", key
                assert proj.shape == [src.height, src.width], key
                assert proj.transform == pytest.approx(list(src.transform)[:6]), key
                assert RasterExtension.ext(asset).bands[0].data_type == src.dtypes[0]
    # the shared S2 tile is downsampled: 100 m, not the 10 m its original JSON states
    red = ProjectionExtension.ext(items[S2_ID].assets["red"])
    assert red.shape == [1098, 1098] and red.transform[0] == 100.0


def test_every_alias_resolves_with_the_right_scaling(items) -> None:
    for landsat_id in LANDSAT_IDS:
        resolved = resolve_item(items[landsat_id])
        assert resolved.sensor.id == "landsat8"
        assert set(resolved.bands) == {
            "coastal",
            "blue",
            "green",
            "red",
            "nir",
            "swir16",
            "swir22",
            "lwir",
        }
        for alias, band in resolved.bands.items():
            expected = (0.00341802, 149.0) if alias == "lwir" else (2.75e-5, -0.2)
            assert (band.scale, band.offset) == expected
            assert band.nodata == 0 and band.asset_key == alias
        assert resolved.mask.asset_key == "qa_pixel" and resolved.mask.href.endswith(
            "_QA_PIXEL.TIF"
        )
        assert resolved.bands["nir"].href.endswith("_SR_B5.TIF")
    s2 = resolve_item(items[S2_ID])
    assert s2.sensor.id == "sentinel2" and len(s2.bands) == 12
    assert all(
        b.offset == 0.0 and b.scale == 1e-4 and b.asset_key == a for a, b in s2.bands.items()
    )
    assert s2.bands["nir"].href.endswith("/B08.tif") and s2.bands["nir08"].href.endswith("/B8A.tif")
    assert s2.mask.asset_key == "scl" and s2.mask.href.endswith("/SCL.tif")


def test_landsat_item_metadata_from_mtl(items, scenes) -> None:
    item = items["LC08_L2SP_008059_20191201_20200825_02_T1"]
    assert item.collection_id == "landsat-c2-l2"
    assert item.datetime.isoformat() == "2019-12-01T15:13:51.861000+00:00"
    assert item.properties["eo:cloud_cover"] == 81.02
    assert (
        item.properties["landsat:wrs_path"] == "008" and item.properties["landsat:wrs_row"] == "059"
    )
    assert "eqi:simulated" not in item.properties
    assert item.assets["mtl"].roles == ["metadata"]
    assert item.assets["qa_pixel"].roles == ["data", "cloud-mask"]
    for alias, common in (("nir", "nir08"), ("lwir", "lwir11")):  # OLI B5 and TIRS B10
        assert EOExtension.ext(item.assets[alias]).bands[0].common_name == common
    # WGS84 footprint near the MTL corner coordinates (lat 0.39-2.49, lon -76.09..-74.05)
    west, south, east, north = item.bbox
    assert west == pytest.approx(-76.095, abs=0.01) and east == pytest.approx(-74.047, abs=0.01)
    assert south == pytest.approx(0.393, abs=0.01) and north == pytest.approx(2.494, abs=0.01)


def test_mtl_text_and_json_agree(scenes) -> None:
    folder = scenes["landsat"] / LANDSAT_IDS[0]
    text = read_mtl(folder / f"{LANDSAT_IDS[0]}_MTL.txt")
    data = read_mtl(folder / f"{LANDSAT_IDS[0]}_MTL.json")
    assert text == data
    assert text.scaling["SR_B4"] == (2.75e-5, -0.2) and text.scaling["ST_B10"] == (
        0.00341802,
        149.0,
    )
    assert text.files["QA_PIXEL"] == f"{LANDSAT_IDS[0]}_QA_PIXEL.TIF"
    assert (text.wrs_path, text.wrs_row, text.cloud_cover) == (17, 36, 100.0)


def test_s2_item_keeps_properties_and_drops_absent_files(items) -> None:
    item = items[S2_ID]
    assert item.collection_id == "sentinel-2-l2a"
    assert item.properties["s2:processing_baseline"] == "02.14"
    assert "proj:epsg" not in item.properties and item.properties["proj:code"] == "EPSG:32629"
    assert set(item.assets) == {
        "aot", "blue", "coastal", "green", "nir", "nir08", "nir09", "red",
        "rededge1", "rededge2", "rededge3", "scl", "swir16", "swir22",
    }  # fmt: skip
    assert item.assets["scl"].roles == ["data", "cloud-mask"]
    assert EOExtension.ext(item.assets["red"]).bands[0].common_name == "red"
    assert not any(link.rel in {"self", "canonical"} for link in item.links)
    # footprint = raster bounds clipped by the delivered valid-data geometry, inside the tile
    assert item.bbox == pytest.approx([-11.979, 24.296, -10.875, 25.305], abs=1e-3)


def test_archive_items_load_with_odc_stac(items) -> None:
    import odc.stac

    data = odc.stac.load([items[S2_ID]], bands=["red", "scl"], crs="EPSG:32629", resolution=2000)
    red = data["red"].isel(time=0).values
    scl = data["scl"].isel(time=0).values
    assert red.dtype == np.uint16 and red.shape == scl.shape and min(red.shape) >= 55
    assert (red > 0).mean() > 0.9 and set(np.unique(scl)) <= set(range(12))


# ------------------------------------------------------------------------ failures and markers


def test_simulated_marker_from_mtl_origin_and_s2_property(scenes, tmp_path) -> None:
    src = scenes["landsat"] / LANDSAT_IDS[2]
    mtl = (src / f"{LANDSAT_IDS[2]}_MTL.txt").read_text()
    mtl = mtl.replace(
        'ORIGIN = "Image courtesy', 'ORIGIN = "Simulated by eqi demo; image courtesy', 1
    )
    _link_scene(
        src, tmp_path / "ls" / LANDSAT_IDS[2], {"_MTL.txt": mtl.encode()}, drop=("_MTL.json",)
    )
    s2_src = scenes["s2"] / S2_ID
    data = json.loads((s2_src / f"{S2_ID}.json").read_text())
    data["properties"]["eqi:simulated"] = True
    _link_scene(s2_src, tmp_path / "s2" / S2_ID, {f"{S2_ID}.json": json.dumps(data).encode()})
    report = index_archive([tmp_path / "ls", tmp_path / "s2"], tmp_path / "sim.parquet")
    found = {item.id: item for item in ArchiveCatalog(report.out).items()}
    assert found[LANDSAT_IDS[2]].properties["eqi:simulated"] is True
    assert found[S2_ID].properties["eqi:simulated"] is True


def test_corrupt_or_bandless_scenes_are_skipped_with_reason(scenes, tmp_path) -> None:
    good, bad, bandless = LANDSAT_IDS
    _link_scene(scenes["landsat"] / good, tmp_path / good)
    tif = (scenes["landsat"] / bad / f"{bad}_SR_B4.TIF").read_bytes()
    _link_scene(scenes["landsat"] / bad, tmp_path / bad, {"_SR_B4.TIF": tif[: len(tif) // 2]})
    _link_scene(scenes["landsat"] / bandless, tmp_path / bandless, drop=(".TIF",))
    report = index_archive([tmp_path], tmp_path / "out" / "a.parquet")
    assert report.item_ids == [good]
    reasons = {s.path.parent.name: s.reason for s in report.skipped}
    assert set(reasons) == {bad, bandless}
    assert "SR_B4" in reasons[bad]
    assert "none of its band files" in reasons[bandless] and "SR_B4.TIF" in reasons[bandless]


def test_missing_dir_and_no_scenes_raise_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        index_archive([tmp_path / "nowhere"], tmp_path / "a.parquet")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match=r"no scenes found.*_MTL\.txt.*B04\.tif"):
        index_archive([tmp_path / "empty"], tmp_path / "a.parquet")
    assert not (tmp_path / "a.parquet").exists()


# ----------------------------------------------------------------------------------- search


def test_search_by_bbox_datetime_and_collection(archive) -> None:
    catalog = archive[1]

    def ids(**kw):
        args = {"bbox": WORLD, "datetime": "2010-01-01/2025-12-31", "collections": ALL_COLLECTIONS}
        return [item.id for item in catalog.search(**{**args, **kw})]

    assert ids() == ALL_IDS
    assert ids(bbox=COLOMBIA) == ["LC08_L2SP_008059_20191201_20200825_02_T1"]
    assert ids(bbox=COLOMBIA, datetime="2019-12-01/2019-12-01") == [LANDSAT_IDS[2]]  # end inclusive
    assert ids(bbox=COLOMBIA, datetime="2020-01-01/2020-12-31") == []  # another year
    assert ids(bbox=(103.0, 30.0, 104.0, 31.0)) == []  # Sichuan: far away
    assert ids(collections=["sentinel-2-l2a"]) == [S2_ID]
    assert ids(
        bbox=(-11.5, 24.5, -11.4, 24.6), datetime="2020-02-19T11:00:00Z/2020-02-19T12:00:00Z"
    ) == [S2_ID]
    assert ids(limit=2) == ALL_IDS[:2]
    assert ids(datetime="2019") == ids(datetime="2019-12") == [LANDSAT_IDS[2]]
    assert ids(datetime="2015/..") == ALL_IDS[1:]
    with pytest.raises(ConfigError):
        ids(bbox=(0, 0, 200, 1))
    with pytest.raises(ConfigError):
        ids(datetime="June 2022")
    with pytest.raises(ConfigError, match="collections"):
        ids(collections=[])


def test_open_catalog_dispatch_and_errors(archive, tmp_path) -> None:
    report, _ = archive
    assert isinstance(open_catalog(report.out), ArchiveCatalog)
    assert isinstance(open_catalog(str(report.out)), ArchiveCatalog)
    assert isinstance(open_catalog("https://earth-search.aws.element84.com/v1"), StacApiCatalog)
    missing = tmp_path / "nope.parquet"
    with pytest.raises(
        InputError,
        match=r"nope\.parquet not found; build it with: eqi archive index DIR\.\.\. --out",
    ):
        open_catalog(missing)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"corrupt\.parquet"):
        open_catalog(corrupt)
    with pytest.raises(ConfigError, match="neither a STAC API URL"):
        open_catalog(tmp_path / "scenes.csv")


def test_save_and_load_items_round_trip(items, tmp_path) -> None:
    path = tmp_path / "run" / "items.json"
    save_items(list(items.values()), path)
    assert [p.name for p in path.parent.iterdir()] == ["items.json"]
    loaded = load_items(path)
    assert [item.to_dict() for item in loaded] == [item.to_dict() for item in items.values()]
    with pytest.raises(InputError, match="not found"):
        load_items(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(InputError, match="bad.json"):
        load_items(tmp_path / "bad.json")


def test_reindex_replaces_file_atomically(archive, scenes, tmp_path) -> None:
    out = tmp_path / "a.parquet"
    shutil.copy(archive[0].out, out)
    report = index_archive([scenes["s2"]], out)
    assert report.item_ids == [S2_ID]
    assert [item.id for item in ArchiveCatalog(out).items()] == [S2_ID]


def test_footprints_are_built_once_per_archive(archive, monkeypatch) -> None:
    import eqi.io.catalog.archive.search as search_module

    built: list[object] = []
    original = search_module.shape
    monkeypatch.setattr(search_module, "shape", lambda geom: built.append(1) or original(geom))
    catalog = ArchiveCatalog(archive[0].out)
    assert len(built) == len(ALL_IDS)  # once per item, when the archive is read
    args = {"bbox": WORLD, "datetime": "2010/2025", "collections": ALL_COLLECTIONS}
    first = [item.id for item in catalog.search(**args)]
    assert first == ALL_IDS
    assert [item.id for item in catalog.search(**args)] == first
    assert [item.id for item in catalog.search(**{**args, "bbox": COLOMBIA})] == [LANDSAT_IDS[2]]
    assert len(built) == len(ALL_IDS)  # later searches reuse them
    catalog.search(**args)[0].properties["changed"] = True  # results are copies
    assert "changed" not in catalog.items()[0].properties


def test_collections_default_to_those_the_archive_holds(archive, tmp_path) -> None:
    from eqi.errors import BandError
    from eqi.io.catalog import resolve_collections
    from eqi.io.catalog.archive import write_archive
    from eqi.io.landcover_reference import item_for_raster

    report, catalog = archive
    assert catalog.collections() == ALL_COLLECTIONS
    assert resolve_collections(catalog, None) == ALL_COLLECTIONS
    assert resolve_collections(report.out, None) == ALL_COLLECTIONS  # a source path
    assert resolve_collections(str(report.out), []) == ALL_COLLECTIONS
    assert resolve_collections(catalog, ["sentinel-2-l2a"]) == ["sentinel-2-l2a"]
    with pytest.raises(BandError, match="unknown collection.*landsat-c9"):
        resolve_collections(catalog, ["landsat-c9"])
    with pytest.raises(ConfigError, match="STAC API.*--collections"):
        resolve_collections("https://earth-search.aws.element84.com/v1", None)  # no request made
    with pytest.raises(ConfigError, match="STAC API.*--collections"):
        resolve_collections(StacApiCatalog("https://example.invalid/stac"), None)
    # an archive of land-cover maps only: no scene collection to default to
    tif = tmp_path / "lc.tif"
    with rasterio.open(
        tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32618",
        transform=rasterio.transform.from_origin(500000, 100000, 30, 30), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(np.full((1, 4, 4), 10, np.uint8))
    lc = item_for_raster(tif)
    lc.collection_id = "esa-worldcover"
    only_lc = write_archive([lc], tmp_path / "lc.parquet")
    assert ArchiveCatalog(only_lc).collections() == ["esa-worldcover"]
    with pytest.raises(ConfigError, match="holds no scene collection.*esa-worldcover"):
        resolve_collections(only_lc, None)
