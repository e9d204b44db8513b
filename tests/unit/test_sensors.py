"""eqi.sensors against every real STAC JSON in the sample data: sensor, bands, scaling or a refusal."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pystac
import pytest

from eqi.errors import BandError, ScalingError
from eqi.sensors import resolve_item, s2_boa_offset_dn

LANDSAT_SR = (2.75e-5, -0.2)
LANDSAT_ST = (0.00341802, 149.0)
S2_SCALE = 1e-4
OLI = {"coastal", "blue", "green", "red", "nir", "swir16", "swir22"}
TM = {"blue", "green", "red", "nir", "swir16", "swir22"}
S2 = {
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "swir16", "swir22",
}  # fmt: skip

# file (relative to stac-items/) -> sensor id, band set, lwir present, mask key, S2 BOA offset (DN)
EXPECTED: dict[str, tuple[str, set[str], bool, str, int | None]] = {
    "earth-search-v0/sentinel-s2-l2a-cogs/S2A_28QCH_20200714_0_L2A.json": ("sentinel2", S2, False, "SCL", 0),
    "earth-search-v1/landsat-c2-l2/LC08_L2SP_033032_20231008_02_T1.json": ("landsat8", OLI, True, "qa_pixel", None),
    "earth-search-v1/sentinel-2-c1-l2a/S2B_T24MWV_20250731T130245_L2A.json": ("sentinel2", S2, False, "scl", -1000),
    "earth-search-v1/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json": ("sentinel2", S2, False, "scl", 0),
    "earth-search-v1/sentinel-2-l2a/S2B_24MWV_20250731_0_L2A.json": ("sentinel2", S2, False, "scl", 0),
    "planetary-computer/landsat-c2-l2/LC09_L2SP_084068_20250722_02_T2.json": ("landsat9", OLI, True, "qa_pixel", None),
    "planetary-computer/landsat-c2-l2/LC09_L2SR_084056_20250722_02_T1.json": ("landsat9", OLI, False, "qa_pixel", None),
    "planetary-computer/sentinel-2-l2a/S2A_MSIL2A_20190101T000001_R116_T58UFE_20201007T214651.json": ("sentinel2", S2, False, "SCL", 0),
    "planetary-computer/sentinel-2-l2a/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json": ("sentinel2", S2, False, "SCL", 0),
    "usgs-landsatlook/landsat-c2l2-sr/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json": ("landsat8", OLI, False, "qa_pixel", None),
    "usgs-landsatlook/landsat-c2l2-sr/LC08_L2SR_081119_20200101_20200823_02_T2.json": ("landsat8", OLI, False, "QA_PIXEL.TIF", None),
    "usgs-landsatlook/landsat-c2l2-sr/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json": ("landsat7", TM, False, "qa_pixel", None),
}  # fmt: skip
REFUSED = {
    "earth-search-v1/sentinel-2-l1c/S2B_24MWV_20250731_0_L1C.json": "Level-1C",
    "esa-worldcover-stactools/ESA_WorldCover_10m_2020_v100_N00E006.json": "not a scene",
    "esa-worldcover-stactools/ESA_WorldCover_10m_2021_v200_N00E006.json": "not a scene",
}
NOT_ITEMS = {
    "INDEX.json",
    "esa-worldcover-stactools/collection.json",
    "planetary-computer/collections/sentinel-2-l2a.collection.json",
}
PAGES = {
    "earth-search-v1/search-page_multiple-collections.json",
    "planetary-computer/search-page_sentinel-2-l2a.json",
}


@pytest.fixture(scope="module")
def stac_dir(sample_data: Path) -> Path:
    return sample_data / "stac-items"


def _item(path: Path) -> pystac.Item:
    return pystac.Item.from_dict(json.loads(path.read_text()))


def _check_scaling(resolved, sensor_id: str, boa_dn: int | None) -> None:
    for alias, band in resolved.bands.items():
        if sensor_id == "sentinel2":
            assert (band.scale, band.offset) == (S2_SCALE, pytest.approx(boa_dn * S2_SCALE)), alias
            assert band.nodata == 0
        elif alias == "lwir":
            assert (band.scale, band.offset) == LANDSAT_ST
        else:
            assert (band.scale, band.offset) == LANDSAT_SR, alias
            assert band.nodata == 0


def test_every_stac_file_is_covered(stac_dir: Path) -> None:
    on_disk = {str(p.relative_to(stac_dir)) for p in stac_dir.rglob("*.json")}
    assert on_disk == set(EXPECTED) | set(REFUSED) | NOT_ITEMS | PAGES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_item_resolves_to_sensor_bands_and_scaling(stac_dir: Path, name: str) -> None:
    sensor_id, bands, has_lwir, mask_key, boa_dn = EXPECTED[name]
    resolved = resolve_item(_item(stac_dir / name))
    assert resolved.sensor.id == sensor_id
    assert set(resolved.bands) == bands | ({"lwir"} if has_lwir else set())
    assert resolved.mask is not None and resolved.mask.asset_key == mask_key
    _check_scaling(resolved, sensor_id, boa_dn)
    for band in resolved.bands.values():
        assert band.href.lower().endswith((".tif", ".jp2")), band.href


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_items_are_refused_with_reason(stac_dir: Path, name: str) -> None:
    with pytest.raises(BandError, match=REFUSED[name]):
        resolve_item(_item(stac_dir / name))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_search_page_items_resolve(stac_dir: Path, name: str) -> None:
    page = pystac.ItemCollection.from_dict(json.loads((stac_dir / name).read_text()))
    assert len(page) >= 2
    for item in page:
        resolved = resolve_item(item)
        expected = "sentinel2" if item.collection_id == "sentinel-2-l2a" else "landsat8"
        assert resolved.sensor.id == expected
        # ES v1 2023 items have baseline 05.09 but the offset already applied; PC 2019 is 02.12
        _check_scaling(resolved, expected, 0 if expected == "sentinel2" else None)


def test_landsat_thermal_only_in_l2sp(stac_dir: Path) -> None:
    sr_only = _item(
        stac_dir / "planetary-computer/landsat-c2-l2/LC09_L2SR_084056_20250722_02_T1.json"
    )
    with pytest.raises(BandError, match="Thermal"):
        resolve_item(sr_only, ["red", "lwir"])


def test_usgs_tif_keyed_assets_find_blue(stac_dir: Path) -> None:
    # LandsatLook 1.0.0-beta.2 names assets "SR_B2.TIF"; its blue file is "..._SR_B2_small.TIF"
    item = _item(
        stac_dir / "usgs-landsatlook/landsat-c2l2-sr/LC08_L2SR_081119_20200101_20200823_02_T2.json"
    )
    assert resolve_item(item, ["blue"]).bands["blue"].asset_key == "SR_B2.TIF"


def _s2_29rkh(sample_data: Path) -> dict:
    path = (
        sample_data
        / "sentinel2-l2a-29RKH-downsampled/S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json"
    )
    return json.loads(path.read_text())


def test_s2_baseline_from_granule_id_when_property_missing(sample_data: Path) -> None:
    data = _s2_29rkh(sample_data)
    for key in ("s2:processing_baseline", "s2:product_uri"):
        data["properties"].pop(key)
    item = pystac.Item.from_dict(data)
    assert s2_boa_offset_dn(item) == 0  # N02.14 in s2:datatake_id / s2:granule_id
    data["properties"]["s2:granule_id"] = (
        "S2A_OPER_MSI_L2A_TL_2BPS_20230101T000000_A0_T29RKH_N05.09"
    )
    data["properties"].pop("s2:datatake_id")
    assert s2_boa_offset_dn(pystac.Item.from_dict(data)) == -1000


def test_s2_without_baseline_raises_scaling_error_saying_how_to_state_it(sample_data: Path) -> None:
    data = _s2_29rkh(sample_data)
    props = data["properties"]
    for key in list(props):
        if key.startswith(("s2:", "sentinel:", "earthsearch:", "processing:")):
            props.pop(key)
    item = pystac.Item.from_dict(data)
    with pytest.raises(ScalingError) as info:
        resolve_item(item)
    message = str(info.value)
    assert "s2:processing_baseline" in message and "s2_boa_offset" in message
    stated = resolve_item(item, s2_boa_offset=-1000)
    assert stated.bands["red"].offset == pytest.approx(-0.1)
    data2 = copy.deepcopy(data)
    data2["properties"]["s2:processing_baseline"] = "04.00"
    assert resolve_item(pystac.Item.from_dict(data2)).bands["red"].offset == pytest.approx(-0.1)


def test_s2_boa_offset_applied_flag_wins_over_baseline(stac_dir: Path) -> None:
    data = json.loads(
        (stac_dir / "earth-search-v1/sentinel-2-l2a/S2B_24MWV_20250731_0_L2A.json").read_text()
    )
    assert data["properties"]["s2:processing_baseline"] == "05.11"
    assert s2_boa_offset_dn(pystac.Item.from_dict(data)) == 0
    data["properties"]["earthsearch:boa_offset_applied"] = False
    assert s2_boa_offset_dn(pystac.Item.from_dict(data)) == -1000


# ------------------------------------------------------------------- valid ranges, QA_RADSAT


def test_valid_dn_range_matches_the_published_ranges() -> None:
    from eqi.sensors import SENSORS, valid_dn_range

    # USGS C2 L2 SR valid range 7273-43636 (sample-data README, USGS product guide)
    red = SENSORS["landsat8"].bands["red"]
    assert red.valid_range == (0.0, 1.0)
    assert valid_dn_range(red.valid_range, *LANDSAT_SR) == (7273, 43636)
    assert valid_dn_range((0.0, 1.0), *LANDSAT_SR) == valid_dn_range((0.0, 1.0), 2.75e-5, -0.2)
    # Sentinel-2 L2A: (DN - 1000) / 1e4 from baseline 04.00, DN / 1e4 before
    assert valid_dn_range((0.0, 1.0), S2_SCALE, -0.1) == (1000, 11000)
    assert valid_dn_range((0.0, 1.0), S2_SCALE, 0.0) == (0, 10000)
    assert SENSORS["sentinel2"].bands["nir08"].valid_range == (0.0, 1.0)
    assert SENSORS["landsat8"].bands["lwir"].valid_range is None  # temperature: not checked


RADSAT_ITEMS = {
    "planetary-computer/landsat-c2-l2/LC09_L2SP_084068_20250722_02_T2.json": "qa_radsat",
    "earth-search-v1/landsat-c2-l2/LC08_L2SP_033032_20231008_02_T1.json": "qa_radsat",
    "usgs-landsatlook/landsat-c2l2-sr/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json": "qa_radsat",
    "usgs-landsatlook/landsat-c2l2-sr/LC08_L2SR_081119_20200101_20200823_02_T2.json": "QA_RADSAT.TIF",
}


@pytest.mark.parametrize("name", sorted(RADSAT_ITEMS))
def test_qa_radsat_resolves_as_second_mask_band(stac_dir: Path, name: str) -> None:
    resolved = resolve_item(_item(stac_dir / name))
    assert resolved.radsat is not None and resolved.radsat.asset_key == RADSAT_ITEMS[name]
    assert not any("QA_RADSAT" in n for n in resolved.notes)


def test_item_without_qa_radsat_is_resolved_with_a_note(stac_dir: Path) -> None:
    data = json.loads((stac_dir / sorted(RADSAT_ITEMS)[0]).read_text())
    data["assets"].pop("qa_radsat")
    resolved = resolve_item(pystac.Item.from_dict(data))
    assert resolved.radsat is None and any("QA_RADSAT" in n for n in resolved.notes)
    s2 = resolve_item(_item(stac_dir / "earth-search-v1/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json"))
    assert s2.radsat is None and not any("QA_RADSAT" in n for n in s2.notes)


def test_radsat_bits_agree_with_the_items_bitfields(stac_dir: Path) -> None:
    from eqi.sensors import SENSORS

    # the classification:bitfields the USGS / Planetary Computer publish for OLI QA_RADSAT
    data = json.loads((stac_dir / sorted(RADSAT_ITEMS)[1]).read_text())
    fields = {f["name"]: f["offset"] for f in data["assets"]["qa_radsat"]["classification:bitfields"]}
    oli = SENSORS["landsat9"]
    for alias, band in oli.bands.items():
        if band.kind == "reflectance":
            number = int(band.native.removeprefix("SR_B"))
            assert band.radsat_bit == fields[f"band{number}"], alias
    assert oli.radsat_flags == {"terrain_occlusion": fields["occlusion"]}
