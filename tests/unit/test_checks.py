"""Sentinel-2 BOA offset: metadata checked against the pixels (eqi.pipeline.checks).

Oracle: the L2A scaling of ESA (DN = 10000 x reflectance, + 1000 from baseline 04.00) applied by
hand to vegetation reflectance typical of blue (0.01-0.06), and a real desert tile whose
metadata (baseline 02.14) are right.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pystac
import pytest
import rasterio
from scene_stacks import groups_for, loaded, s2_item

from eqi.config import build_config
from eqi.errors import ScalingError
from eqi.pipeline.checks import check_s2_offset
from eqi.pipeline.masking import s2_offset_check_params
from eqi.pipeline.stack import prepare_inputs
from eqi.resources import load_profile
from eqi.science.composite import composite
from eqi.science.mask import MaskRules

PROFILE = load_profile("mask")
PARAMS = PROFILE["sentinel2_offset_check"]
RULES = MaskRules.from_profile(PROFILE)
DAY = datetime(2023, 7, 1, 3, 30, tzinfo=UTC)
RHO = np.random.default_rng(7).uniform(0.01, 0.06, size=(1, 80, 80))  # vegetation blue reflectance


def _case(pixels_shifted: bool, **item_kwargs):
    item = s2_item(DAY, ["blue"], **item_kwargs)
    (group,) = groups_for([item], ["blue"])
    dn = np.rint(RHO * 1e4 + (1000 if pixels_shifted else 0)).astype(np.uint16)
    ds = loaded(group, {"blue": dn, "scl": np.full(dn.shape, 4, np.uint8)}, chunk=40)
    return item, group, ds


def test_agreeing_metadata_pass_and_are_recorded() -> None:
    for shifted, baseline in ((True, "05.00"), (False, "02.14")):
        item, group, ds = _case(shifted, baseline=baseline)
        out = check_s2_offset(group, ds, PARAMS)
        (note,) = out.attrs["s2_offset_check"]
        assert item.id in note and "confirmed" in note
        assert "boa_offset_dn" not in out.coords


def test_flag_false_but_pixels_already_corrected_is_refused() -> None:
    # Element84/earth-search#66/#71: baseline 04.00+, flag false, pixels already offset-corrected
    item, group, ds = _case(False, baseline="05.09", properties={"earthsearch:boa_offset_applied": False})
    with pytest.raises(ScalingError) as info:
        check_s2_offset(group, ds, PARAMS)
    message = str(info.value)
    assert item.id in message and "--s2-boa-offset 0" in message and "earth-search#66" in message
    assert "earthsearch:boa_offset_applied = false" in message and "processing baseline 05.09" in message


def test_flag_true_but_pixels_carry_the_offset_is_refused() -> None:
    # the flag says "already applied" (offset 0) while the pixels still hold +1000 DN
    item, group, ds = _case(True, baseline="05.09", properties={"earthsearch:boa_offset_applied": True})
    assert group.offset["blue"] == 0.0
    with pytest.raises(ScalingError, match="--s2-boa-offset -1000"):
        check_s2_offset(group, ds, PARAMS)


def test_use_data_mode_lets_the_pixels_decide_and_prepare_inputs_applies_it() -> None:
    item, group, ds = _case(False, baseline="05.09")  # metadata -1000, pixels unshifted
    params = s2_offset_check_params(build_config({
        "source": "a.parquet", "collections": ["sentinel-2-l2a"], "aoi": "sichuan:510115",
        "years": [2023], "out": "out", "mask": {"s2_offset_check": "use-data"},
    }), PROFILE)  # fmt: skip
    out = check_s2_offset(group, ds, params)
    assert out.coords["boa_offset_dn"].values.tolist() == [0]
    assert "taken from the pixels" in out.attrs["s2_offset_check"][0]
    inputs = prepare_inputs([group], [out], ["blue"], rules=RULES)
    assert any("taken from the pixels" in n for n in inputs.notes)
    comp = composite(inputs).compute()
    np.testing.assert_allclose(comp["blue"].values, np.rint(RHO[0] * 1e4) / 1e4, atol=1e-6)


def test_off_mode_and_other_sensors_are_untouched() -> None:
    _, group, ds = _case(False, baseline="05.09")
    params = {**PARAMS, "mode": "off"}
    assert check_s2_offset(group, ds, params) is ds


def test_real_desert_tile_is_inconclusive_not_a_false_alarm(sample_data) -> None:
    folder = sample_data / "sentinel2-l2a-29RKH-downsampled" / "S2A_29RKH_20200219_0_L2A"
    item = pystac.Item.from_dict(json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text()))
    (group,) = groups_for([item], ["blue"])
    assert group.offset["blue"] == 0.0  # baseline 02.14: no offset, and the pixels have none
    with rasterio.open(folder / "B02.tif") as src:
        blue = src.read(1)[::2, ::2][:549, :549]  # 100 m -> the 200 m SCL grid
    with rasterio.open(folder / "SCL.tif") as src:
        scl = src.read(1)
    ds = loaded(group, {"blue": blue[None], "scl": scl[None]}, chunk=256)
    (note,) = check_s2_offset(group, ds, PARAMS).attrs["s2_offset_check"]
    assert "inconclusive" in note  # no vegetation or water: the metadata stand
    # a naive "clear land below 1000 DN is rare" test would call this unshifted desert shifted
    naive = {**PARAMS, "reference_scl_classes": [5]}
    with pytest.raises(ScalingError, match="carry the \\+1000 DN offset"):
        check_s2_offset(group, ds, naive)


def test_numpy_backed_dataset_is_sampled_too() -> None:
    _, group, ds = _case(False, baseline="05.09")
    with pytest.raises(ScalingError):
        check_s2_offset(group, ds.compute(), PARAMS)
