"""Partial deliveries: folders with only some band files index, and runs fail only when they must.

Real scenes: a whole Landsat 8 C2 L2 scene (``landsat-c2l2-downsampled-scenes``) copied with
files deleted, the native-30 m xlandsat crops (USGS MTL from the published archive plus the
georeferenced bands of ``*_stack.tif``: Liverpool has SR_B1-SR_B7 + ST_B10, Brumadinho SR_B2-SR_B7,
neither a QA_PIXEL) and the Sentinel-2 L2A sample with band files deleted.  The oracle for
``eqi:missing_bands`` is the list of files each test leaves out.
"""

from __future__ import annotations

from pathlib import Path

import pystac
import pytest
import rasterio

from eqi.errors import BandError
from eqi.io.catalog.archive import ArchiveCatalog, index_archive
from eqi.io.load import group_items

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"  # Colombia, complete delivery
OTHER = "LC08_L2SP_005009_20150710_20200908_02_T2"  # Greenland, complete delivery
LIVERPOOL = "LC08_L2SP_204023_20200927_20201006_02_T1"
BRUMADINHO = "LC08_L2SP_218074_20190114_20200829_02_T1"
S2_ID = "S2A_29RKH_20200219_0_L2A"


def only_item(report) -> pystac.Item:
    (item,) = ArchiveCatalog(report.out).items()
    return item


# ------------------------------------------------------------------------------------ indexing


def test_landsat_scene_without_sr_b1_and_qa_pixel_indexes_with_a_warning(
    sample_data: Path, tmp_path: Path, copy_scene
) -> None:
    src = sample_data / "landsat-c2l2-downsampled-scenes" / SCENE
    copy_scene(src, tmp_path / "in", drop=("_SR_B1.TIF", "_QA_PIXEL.TIF"))
    copy_scene(sample_data / "landsat-c2l2-downsampled-scenes" / OTHER, tmp_path / "in")
    report = index_archive([tmp_path / "in"], tmp_path / "a.parquet")
    assert report.item_ids == [OTHER, SCENE] and report.skipped == []
    assert report.missing == {SCENE: ["SR_B1", "QA_PIXEL"]}
    (warning,) = report.warnings()
    assert f"scene {SCENE} lacks SR_B1, QA_PIXEL" in warning and "--no-cloud-mask" in warning
    assert f"warning: {warning}" in report.summary()

    items = {item.id: item for item in ArchiveCatalog(report.out).items()}  # read back from parquet
    partial, complete = items[SCENE], items[OTHER]
    assert partial.properties["eqi:missing_bands"] == ["SR_B1", "QA_PIXEL"]
    assert "eqi:missing_bands" not in complete.properties
    assert set(partial.assets) == {
        "blue", "green", "red", "nir", "swir16", "swir22", "lwir", "qa_radsat", "mtl"
    }  # fmt: skip
    assert {"coastal", "qa_pixel"} <= set(complete.assets)
    folder = tmp_path / "in" / SCENE
    assert partial.assets["nir"].href == str(folder / f"{SCENE}_SR_B5.TIF")
    with rasterio.open(src / f"{SCENE}_SR_B4.TIF") as red:  # georeferencing read from the files
        assert partial.assets["red"].extra_fields["proj:transform"] == list(red.transform)[:6]


def test_liverpool_crop_sr_b2_to_b7_and_st_b10_indexes(
    sample_data: Path, tmp_path: Path, xlandsat_delivery
) -> None:
    # the case: SR_B2-SR_B7 and ST_B10, no SR_B1, no QA_PIXEL
    xlandsat_delivery(LIVERPOOL, tmp_path / "in", drop=("SR_B1",))
    report = index_archive([tmp_path / "in"], tmp_path / "a.parquet")
    assert report.item_ids == [LIVERPOOL] and report.skipped == []
    item = only_item(report)
    assert item.properties["eqi:missing_bands"] == ["SR_B1", "QA_PIXEL"]
    assert set(item.assets) == {"blue", "green", "red", "nir", "swir16", "swir22", "lwir", "mtl"}
    lwir = item.assets["lwir"].extra_fields["raster:bands"][0]
    assert (lwir["scale"], lwir["offset"], lwir["unit"]) == (0.00341802, 149.0, "kelvin")  # MTL
    assert item.properties["proj:code"] == "EPSG:32630"
    stack = sample_data / "landsat-c2l2-xlandsat-crops" / LIVERPOOL / f"{LIVERPOOL}_stack.tif"
    with rasterio.open(stack) as src:
        assert item.properties["proj:shape"] == [src.height, src.width] == [267, 433]


def test_brumadinho_crop_lists_the_thermal_band_as_missing(tmp_path: Path, xlandsat_delivery) -> None:
    xlandsat_delivery(BRUMADINHO, tmp_path / "in")
    report = index_archive([tmp_path / "in"], tmp_path / "a.parquet")
    assert only_item(report).properties["eqi:missing_bands"] == ["SR_B1", "ST_B10", "QA_PIXEL"]


def test_sentinel2_scene_without_b08_and_scl_indexes(
    sample_data: Path, tmp_path: Path, copy_scene
) -> None:
    src = sample_data / "sentinel2-l2a-29RKH-downsampled" / S2_ID
    copy_scene(src, tmp_path / "in", drop=("B08.tif", "SCL.tif"))
    report = index_archive([tmp_path / "in"], tmp_path / "a.parquet")
    item = only_item(report)
    assert item.properties["eqi:missing_bands"] == ["B08", "SCL"]
    assert "nir" not in item.assets and "scl" not in item.assets and "nir08" in item.assets
    assert "without SCL" in report.warnings()[0]


# ------------------------------------------------------------------------------- run checks


@pytest.fixture(scope="module")
def partial_items(
    sample_data: Path, tmp_path_factory: pytest.TempPathFactory, copy_scene
) -> dict[str, pystac.Item]:
    """Three Landsat scenes: complete; without SR_B1 + QA_PIXEL; without SR_B5 (nir)."""
    root = tmp_path_factory.mktemp("partial")
    scenes = sample_data / "landsat-c2l2-downsampled-scenes"
    copy_scene(scenes / OTHER, root / "in")
    copy_scene(scenes / SCENE, root / "in", drop=("_SR_B1.TIF", "_QA_PIXEL.TIF"))
    no_nir = "LC08_L2SP_017036_20130419_20200913_02_T2"
    copy_scene(scenes / no_nir, root / "in", drop=("_SR_B5.TIF",))
    report = index_archive([root / "in"], root / "a.parquet")
    items = {item.id: item for item in ArchiveCatalog(report.out).items()}
    return {"complete": items[OTHER], "unmasked": items[SCENE], "no_nir": items[no_nir]}


def test_scene_without_cloud_mask_is_refused_naming_the_flag(partial_items) -> None:
    with pytest.raises(BandError) as err:
        group_items([partial_items["complete"], partial_items["unmasked"]], ["red", "nir"])
    message = str(err.value)
    assert f"scene {SCENE} has no QA_PIXEL band" in message and "--no-cloud-mask" in message
    assert OTHER not in message


def test_no_cloud_mask_accepts_it_in_a_group_of_its_own(partial_items) -> None:
    groups = group_items(
        [partial_items["complete"], partial_items["unmasked"]], ["red", "nir"], require_mask=False
    )
    by_mask = {g.has_mask: g for g in groups}
    assert set(by_mask) == {True, False}
    assert [i.id for i in by_mask[False].items] == [SCENE]
    # no cloud-mask asset to load (QA_RADSAT, the saturation mask, is loaded when present)
    assert set(by_mask[False].items[0].assets) == {"red", "nir", "qa_radsat"}
    assert [i.id for i in by_mask[True].items] == [OTHER]


def test_run_fails_only_for_a_product_that_needs_a_missing_band(partial_items) -> None:
    unmasked = partial_items["unmasked"]  # has no SR_B1 (coastal)
    assert group_items([unmasked], ["red", "nir"], needed_by={"red": ["ndvi"]}, require_mask=False)
    with pytest.raises(BandError) as err:
        group_items(
            [unmasked], ["coastal", "red", "nir"], needed_by={"coastal": ["toy"]}, require_mask=False
        )
    assert str(err.value).startswith(
        f"product 'toy' needs band coastal (SR_B1), which scene {SCENE} lacks; "
    )
    assert str(err.value).endswith(
        "; drop 'toy' from --products, or add SR_B1 to the deliveries and re-index them "
        "(eqi archive index)"
    )


def test_every_scene_lacking_a_band_is_named_once_with_every_product(partial_items) -> None:
    items = [partial_items["complete"], partial_items["no_nir"], partial_items["unmasked"]]
    needed_by = {"red": ["ndvi", "fvc"], "nir": ["ndvi", "fvc"]}
    with pytest.raises(BandError) as err:
        group_items(items, ["red", "nir"], needed_by=needed_by)
    first, second = str(err.value).split("\n")
    no_nir = partial_items["no_nir"].id
    assert first.startswith(f"products 'ndvi', 'fvc' need band nir (SR_B5), which scene {no_nir} lacks")
    assert second.startswith(f"scene {SCENE} has no QA_PIXEL band")
    assert OTHER not in str(err.value)


def test_group_items_identifies_each_sensor_once(partial_items, monkeypatch) -> None:
    import eqi.sensors as sensors

    calls: list[str] = []
    original = sensors.identify_sensor

    def counting(item: pystac.Item):
        calls.append(item.id)
        return original(item)

    monkeypatch.setattr(sensors, "identify_sensor", counting)
    items = [partial_items["complete"], partial_items["unmasked"]]
    group_items(items, ["red", "nir"], require_mask=False)
    assert sorted(calls) == sorted(i.id for i in items)
