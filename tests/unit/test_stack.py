"""prepare_inputs: valid range, saturation, cloud flags and their counts, on hand-written DN.

Oracle: the expected masks and fractions are written out pixel by pixel below from the USGS
valid range (SR DN 7273-43636), the QA_RADSAT bit layout (bit n-1 = band n, OLI bit 11 = terrain
occlusion) and the Sentinel-2 L2A scaling ((DN - 1000) / 10000 from baseline 04.00).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scene_stacks import groups_for, landsat_item, loaded, s2_item

from eqi.config import build_config
from eqi.params import Profile
from eqi.pipeline.masking import mask_profile, mask_rules
from eqi.pipeline.stack import prepare_inputs
from eqi.resources import load_profile
from eqi.science.composite import composite, mask_summary
from eqi.science.mask import MaskRules

PROFILE = load_profile("mask")
RULES = MaskRules.from_profile(PROFILE)
BASE = {"source": "a.parquet", "collections": ["landsat-c2-l2"], "aoi": "sichuan:510115", "years": [2023], "out": "out"}
DAY = datetime(2023, 7, 1, 3, 30, tzinfo=UTC)

CLEAR, CLOUD, FILL = 21824, 22280, 1  # real QA_PIXEL values (clear land, high-confidence cloud, fill)


def _landsat_case(rules: MaskRules):
    #          usable  red<0   nir>1  red sat  B1 sat  cloud   fill   occl.  red nodata
    red = [[10000, 7272, 10000, 10000, 10000, 10000, 0, 10000, 0]]
    nir = [[20000, 20000, 43637, 20000, 20000, 20000, 0, 20000, 20000]]
    qa = [[CLEAR, CLEAR, CLEAR, CLEAR, CLEAR, CLOUD, FILL, CLEAR, CLEAR]]
    rs = [[0, 0, 0, 1 << 3, 1 << 0, 0, 0, 1 << 11, 0]]
    item = landsat_item("landsat8", DAY, ["red", "nir"], radsat=True)
    (group,) = groups_for([item], ["red", "nir"])
    assert group.has_radsat
    arrays = {"red": np.array([red], np.uint16), "nir": np.array([nir], np.uint16),
              "qa_pixel": np.array([qa], np.uint16), "qa_radsat": np.array([rs], np.uint16)}  # fmt: skip
    inputs = prepare_inputs([group], [loaded(group, arrays)], ["red", "nir"], rules=rules)
    return inputs, composite(inputs).compute()


def test_landsat_valid_range_saturation_cloud_and_fill() -> None:
    inputs, comp = _landsat_case(RULES)
    usable = ~np.isnan(comp["red"].values[0])
    assert usable.tolist() == [True, False, False, False, True, False, False, False, False]
    np.testing.assert_allclose(comp["red"].values[0, 0], 10000 * 2.75e-5 - 0.2, rtol=1e-6)
    assert comp["count"].values[0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert comp["observed"].values[0].tolist() == [1, 1, 1, 1, 1, 1, 0, 1, 0]  # fill: not observed
    summary = mask_summary(inputs)
    n = 9
    assert summary["observations"] == n
    expected = {"usable": 2, "fill": 2, "out_of_range": 2, "saturated": 1, "buffer": 0,
                "qa_pixel:cloud": 1, "qa_pixel:snow": 0, "qa_radsat:terrain_occlusion": 1}  # fmt: skip
    for reason, count in expected.items():
        assert summary[reason] == pytest.approx(count / n), reason
    assert "qa_radsat:dropped_pixel" not in summary  # a TM/ETM+ flag, not OLI


def test_switching_off_valid_range_and_radsat_keeps_those_pixels() -> None:
    rules = MaskRules(RULES.qa_pixel_bad, RULES.scl_bad, 0, valid_range=False, radsat=False, radsat_flags=())
    inputs, comp = _landsat_case(rules)
    usable = ~np.isnan(comp["red"].values[0])
    assert usable.tolist() == [True, True, True, True, True, False, False, True, False]
    summary = mask_summary(inputs)
    assert summary["out_of_range"] == summary["saturated"] == 0
    assert "qa_radsat:terrain_occlusion" not in summary


def test_item_without_qa_radsat_is_accepted_and_noted() -> None:
    with_rs = landsat_item("landsat8", DAY, ["red"], radsat=True)
    without = landsat_item("landsat8", datetime(2023, 7, 17, 3, 30, tzinfo=UTC), ["red"])
    groups = groups_for([with_rs, without], ["red"])
    assert sorted(g.has_radsat for g in groups) == [False, True]  # split: one load each
    data = []
    for g in groups:
        arrays = {"red": np.full((1, 1, 2), 10000, np.uint16), "qa_pixel": np.full((1, 1, 2), CLEAR, np.uint16)}
        if g.has_radsat:
            arrays["qa_radsat"] = np.array([[[1 << 3, 0]]], np.uint16)
        data.append(loaded(g, arrays))
    inputs = prepare_inputs(groups, data, ["red"], rules=RULES)
    assert any("QA_RADSAT" in n and without.id in n for n in inputs.notes)
    comp = composite(inputs).compute()
    assert comp["count"].values[0].tolist() == [1, 2]  # saturated pixel masked in one scene only


def test_sentinel2_valid_range_after_boa_offset() -> None:
    # baseline 05.00: reflectance = (DN - 1000) / 1e4 -> valid DN 1000..11000; baseline 02.14: DN / 1e4
    new = s2_item(DAY, ["blue"], baseline="05.00")
    old = s2_item(datetime(2021, 7, 1, 3, 30, tzinfo=UTC), ["blue"], baseline="02.14")
    for item, dn, ok, rho in (
        (new, [999, 1000, 11000, 11001, 0], [False, True, True, False, False], [0.0, 1.0]),
        (old, [1, 10000, 10001, 0, 5000], [True, True, False, False, True], [1e-4, 1.0, 0.5]),
    ):
        (group,) = groups_for([item], ["blue"])
        arrays = {"blue": np.array([[dn]], np.uint16), "scl": np.full((1, 1, 5), 4, np.uint8)}
        comp = composite(prepare_inputs([group], [loaded(group, arrays)], ["blue"], rules=RULES)).compute()
        values = comp["blue"].values[0]
        assert (~np.isnan(values)).tolist() == ok, item.id
        np.testing.assert_allclose(values[~np.isnan(values)], rho, atol=1e-6)


def test_scl_dark_area_kept_by_default_and_masked_on_request() -> None:
    item = s2_item(DAY, ["red"])
    (group,) = groups_for([item], ["red"])
    arrays = {"red": np.full((1, 1, 4), 1500, np.uint16), "scl": np.array([[[2, 3, 4, 9]]], np.uint8)}
    keep = composite(prepare_inputs([group], [loaded(group, arrays)], ["red"], rules=RULES)).compute()
    assert keep["count"].values[0].tolist() == [1, 0, 1, 0]  # class 2 kept, 3 (shadow) and 9 masked
    config = build_config({**BASE, "mask": {"scl_bad": [1, 2, 3, 8, 9, 10, 11]}})
    rules = mask_rules(config, PROFILE)
    inputs = prepare_inputs([group], [loaded(group, arrays)], ["red"], rules=rules)
    assert composite(inputs).compute()["count"].values[0].tolist() == [0, 0, 1, 0]
    assert mask_summary(inputs)["scl:dark_area_pixels"] == pytest.approx(0.25)


def test_mask_rules_take_profile_values_unless_the_config_sets_them() -> None:
    assert mask_rules(build_config(dict(BASE)), PROFILE) == RULES
    config = build_config({**BASE, "mask": {"valid_range": False, "buffer_px": 2, "s2_offset_check": "use-data"}})
    rules = mask_rules(config, PROFILE)
    assert not rules.valid_range and rules.buffer_px == 2 and rules.qa_pixel_bad == RULES.qa_pixel_bad
    profile = mask_profile(config, PROFILE)
    assert isinstance(profile, Profile)
    assert profile.param("valid_range").source == "run configuration override (mask.valid_range)"
    assert profile["sentinel2_offset_check"]["mode"]["value"] == "use-data"


def test_buffer_counts_as_its_own_reason() -> None:
    item = landsat_item("landsat8", DAY, ["red"])
    (group,) = groups_for([item], ["red"])
    qa = np.full((1, 5, 5), CLEAR, np.uint16)
    qa[0, 2, 2] = CLOUD
    arrays = {"red": np.full((1, 5, 5), 10000, np.uint16), "qa_pixel": qa}
    rules = MaskRules(RULES.qa_pixel_bad, RULES.scl_bad, 1, True, True, RULES.radsat_flags)
    inputs = prepare_inputs([group], [loaded(group, arrays)], ["red"], rules=rules)
    summary = mask_summary(inputs)
    assert summary["buffer"] == pytest.approx(4 / 25) and summary["qa_pixel:cloud"] == pytest.approx(1 / 25)
    assert composite(inputs).compute()["count"].values.sum() == 20
