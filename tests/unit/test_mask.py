"""Clear-pixel masks and reason flags from real Collection 2 QA_PIXEL / QA_RADSAT values and SCL classes.

The QA bad lists now come from configs/methods/mask.yaml (MaskRules.from_profile) instead of code
constants, so the "defaults" tests read the profile.
"""

from __future__ import annotations

import numpy as np
import pytest

from eqi.errors import ConfigError
from eqi.resources import load_profile
from eqi.science.mask import (
    MaskRules,
    band_flags,
    bit_counts,
    buffer_bad,
    buffer_flags,
    finish_flags,
    qa_pixel_clear,
    qa_pixel_flags,
    radsat_flags,
    reason_names,
    scl_clear,
    scl_flags,
)

RULES = MaskRules.from_profile(load_profile("mask"))

# Real Landsat 8-9 C2 QA_PIXEL values (USGS product guide table): meaning -> value
QA = {
    "fill": 1,
    "clear_land": 21824,
    "clear_water": 21952,
    "cloud_high": 22280,
    "cloud_high_2": 55052,
    "shadow": 23888,
    "cirrus_dilated": 54596,
    "snow": 30048,
}


def test_profile_defaults_are_the_documented_lists() -> None:
    assert RULES.qa_pixel_bad == ("dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")
    assert RULES.scl_bad == (1, 3, 8, 9, 10, 11)  # class 2 (dark area / terrain shadow) kept
    assert RULES.valid_range and RULES.radsat and RULES.buffer_px == 0
    assert set(RULES.radsat_flags) == {"terrain_occlusion", "dropped_pixel"}


def test_rules_refuse_unknown_flags() -> None:
    with pytest.raises(ConfigError, match="unknown QA_PIXEL flag"):
        MaskRules(("clouds",), (), 0, True, True, ())
    with pytest.raises(ConfigError, match="SCL classes must be 1..11"):
        MaskRules((), (0,), 0, True, True, ())


def test_qa_pixel_defaults() -> None:
    values = np.array(list(QA.values()), dtype=np.uint16)
    clear = dict(zip(QA, qa_pixel_clear(values, RULES.qa_pixel_bad), strict=True))
    assert clear["clear_land"] and clear["clear_water"]
    for bad in ("fill", "cloud_high", "cloud_high_2", "shadow", "cirrus_dilated", "snow"):
        assert not clear[bad], bad


def test_qa_pixel_configurable_keeps_snow() -> None:
    snow = np.array([QA["snow"]], dtype=np.uint16)
    assert qa_pixel_clear(snow, ["cloud", "cloud_shadow"])[0]
    assert not qa_pixel_clear(np.array([1], dtype=np.uint16), [])[0]  # fill is always bad


def test_scl_classes() -> None:
    scl = np.arange(12, dtype=np.uint8)
    clear = scl_clear(scl, RULES.scl_bad)
    assert list(np.flatnonzero(clear)) == [2, 4, 5, 6, 7]
    assert not scl_clear(scl, [])[0]  # class 0 no data is always bad
    assert not scl_clear(scl, [*RULES.scl_bad, 2])[2]  # class 2 masked when asked


def test_buffer_grows_bad_area() -> None:
    clear = np.ones((7, 7), dtype=bool)
    clear[3, 3] = False
    grown = buffer_bad(clear, 1)
    assert (~grown).sum() == 5 and not grown[2, 3] and grown[1, 1]
    assert buffer_bad(clear, 0) is clear


def test_qa_pixel_flags_one_bit_per_reason_and_fill_exclusive() -> None:
    names = reason_names("qa_pixel", RULES)
    assert names[:4] == ("fill", "out_of_range", "saturated", "buffer")
    values = np.array(list(QA.values()), dtype=np.uint16)
    flags = dict(zip(QA, finish_flags(qa_pixel_flags(values, RULES.qa_pixel_bad)), strict=True))
    bit = {n: 1 << i for i, n in enumerate(names)}
    assert flags["clear_land"] == flags["clear_water"] == 0
    assert flags["fill"] == bit["fill"]
    # bits set (hand-decoded): 22280 -> 3 + confidences 8-14; 55052 -> 2, 3 + confidences;
    # 23888 -> 4, 6 + confidences; 54596 -> 2, 6 + confidences; 30048 -> 5, 6 + confidences
    assert flags["cloud_high"] == bit["qa_pixel:cloud"]
    assert flags["cloud_high_2"] == bit["qa_pixel:cirrus"] | bit["qa_pixel:cloud"]
    assert flags["shadow"] == bit["qa_pixel:cloud_shadow"]
    assert flags["cirrus_dilated"] == bit["qa_pixel:cirrus"]
    assert flags["snow"] == bit["qa_pixel:snow"]


def test_scl_flags_and_reason_names() -> None:
    names = reason_names("scl", RULES)
    assert names[4:] == (
        "scl:saturated_or_defective", "scl:cloud_shadows", "scl:cloud_medium_probability",
        "scl:cloud_high_probability", "scl:thin_cirrus", "scl:snow",
    )  # fmt: skip
    flags = scl_flags(np.arange(12, dtype=np.uint8), RULES.scl_bad)
    assert flags[0] == 1 and flags[2] == 0 and flags[4] == 0
    assert flags[3] == 1 << names.index("scl:cloud_shadows")


def test_band_flags_landsat_valid_range() -> None:
    # USGS valid range of C2 L2 SR DN: 7273-43636 (reflectance 0-1); 0 = fill
    dn = np.array([0, 7272, 7273, 43636, 43637, 20000], dtype=np.uint16)
    flags = band_flags(dn, 0, (7273, 43636))
    assert flags.tolist() == [1, 2, 0, 0, 2, 0]
    assert band_flags(dn, 0, None).tolist() == [1, 0, 0, 0, 0, 0]


def test_radsat_flags_band_bits_and_extra_flags() -> None:
    # OLI QA_RADSAT: bit 3 = band 4 (red) saturated, bit 5 = band 6, bit 11 = terrain occlusion
    radsat = np.array([0, 1 << 3, 1 << 5, 1 << 11, 1 << 0], dtype=np.uint16)
    out = radsat_flags(radsat, band_bits=[3, 4], flag_bits=[(11, 9)])
    assert out.tolist() == [0, 4, 0, 1 << 9, 0]  # band 6 and band 1 are not used: not saturated


def test_buffer_flags_marks_only_new_pixels_and_bit_counts() -> None:
    flags = np.zeros((1, 5, 5), dtype=np.uint16)
    flags[0, 2, 2] = 1 << 4
    grown = buffer_flags(flags, 1)
    assert grown[0, 2, 2] == 1 << 4
    assert (grown == 1 << 3).sum() == 4  # disk radius 1: the four neighbours
    assert bit_counts(grown, 5).tolist() == [0, 0, 0, 4, 1]
