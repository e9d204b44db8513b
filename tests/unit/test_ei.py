"""EI per HJ 192-2015 (eqi.science.ei): hand-computed worked examples for every sub-index, the
composite, every grade and ΔEI class boundary, the restriction downgrade and the rounding rule.

Every expected number below is written out from the spec's formulas (§2) and the coefficients
of configs/methods/ei-hj192-2015.yaml, not taken from the code.
"""

from __future__ import annotations

import math

import pytest

from eqi.resources import load_profile
from eqi.science import ei

P = load_profile("ei-hj192-2015")

# A 100 km² region: 40 有林地, 10 灌木林地, 20 高覆盖度草地, 20 旱地, 10 城镇用地.
AREAS = {21: 40.0, 22: 10.0, 31: 20.0, 12: 20.0, 51: 10.0}
# Σ W_k Σ w_kj A = 0.35 (0.60·40 + 0.25·10) + 0.21 (0.60·20) + 0.11 (0.40·20) + 0.04 (0.30·10)
#               = 9.275 + 2.52 + 0.88 + 0.12 = 12.795
HQ = 511.2642131067 * 12.795 / 100  # 65.41625606700227


def test_profile_tags_every_coefficient():
    assert P.param("habitat_quality", "a_bio").tag == "[V-impl]"
    assert P.param("vegetation_cover", "a_veg").tag == "[U]"
    assert P.param("composite", "weights", "bri").value == 0.35
    glacier = [c for c in P["habitat_quality"]["groups"]["water_wetland"]["classes"] if 44 in c["codes"]]
    assert glacier[0]["tag"] == "[U]"


def test_habitat_quality_worked_example():
    hq, notes = ei.habitat_quality(AREAS, 100.0, P)
    assert hq == pytest.approx(65.41625606700227, abs=1e-9)
    assert notes == ()


def test_habitat_quality_pure_forest_is_clipped_to_100():
    # spec §8: 511.264 × 0.35 × 0.60 = 107.37 -> 100
    hq, _ = ei.habitat_quality({21: 50.0}, 50.0, P)
    assert hq == 100.0
    raw, _ = ei.habitat_quality({21: 50.0}, 50.0, P, clip=False)
    assert raw == pytest.approx(511.2642131067 * 0.35 * 0.60, rel=1e-12)


def test_habitat_quality_flags_glacier_weight_and_unweighted_classes():
    hq, notes = ei.habitat_quality({44: 10.0, 99: 5.0, 0: 3.0}, 15.0, P)
    assert hq == pytest.approx(511.2642131067 * 0.28 * 0.10 * 10.0 / 15.0, rel=1e-12)
    assert any("[U]" in n for n in notes)
    assert any("99" in n and "without a habitat weight" in n for n in notes)


def test_biological_abundance_with_and_without_bi():
    assert ei.biological_abundance(HQ, None, P) == pytest.approx(HQ)
    assert ei.biological_abundance(HQ, 80.0, P) == pytest.approx((80.0 + HQ) / 2)


def test_vegetation_cover_float_and_integer_ndvi():
    # 0.0121165124 × 10000 × 0.62 = 75.12237688
    assert ei.vegetation_cover(0.62, P) == pytest.approx(75.12237688, abs=1e-9)
    assert ei.vegetation_cover(6200.0, P, scale="int10000") == pytest.approx(75.12237688, abs=1e-9)
    assert ei.vegetation_cover(0.95, P) == 100.0  # 115.1 clipped
    # calibration gain 1.1, offset -0.02: 0.62 -> 0.662 -> 121.165124 × 0.662 = 80.21131209
    assert ei.vegetation_cover(0.62, P, calibration=(1.1, -0.02)) == pytest.approx(80.211312088, abs=1e-8)


def test_water_network_density_worked_example():
    # area 1000 km², rivers 500 km, lakes 20 km², water resources 800 (10⁶ m³):
    # (84.3704083981 × 0.5 + 591.7908642005 × 0.02 + 86.3869548281 × 0.8) / 3
    # = (42.18520419905 + 11.83581728401 + 69.10956386248) / 3 = 41.04352844851
    got = ei.water_network_density(500.0, 20.0, 800.0, 1000.0, P)
    assert got == pytest.approx(41.04352844851, abs=1e-9)


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        (600.0, 600.0),  # r = 1.2 <= 1.4: W
        (700.0, 700.0),  # r = 1.4 exactly: still W
        (900.0, 300.0),  # r = 1.8: 500 × (2.4 − 1.8)
        (1200.0, 0.0),  # r = 2.4 exactly: 500 × 0
        (1300.0, 0.0),  # r = 2.6 > 2.4: 0
    ],
)
def test_wet_year_cap_rule(w, expected):
    value, _note = ei.capped_water_resources(w, [400.0, 500.0, 600.0], P)
    assert value == pytest.approx(expected, abs=1e-9)


def test_wet_year_cap_without_history_says_so():
    value, note = ei.capped_water_resources(900.0, [], P)
    assert value == 900.0 and "not applied" in note


def test_land_stress_worked_example():
    # 236.04356779 × (0.4·10 + 0.2·30 + 0.2·25 + 0.2·5) / 1000 = 236.04356779 × 16 / 1000
    assert ei.land_stress(10.0, 30.0, 25.0, 5.0, 1000.0, P) == pytest.approx(3.77669708464, abs=1e-11)


def test_pollution_load_worked_example():
    loads = {"cod": 20000.0, "nh3n": 2000.0, "so2": 5000.0, "dust": 3000.0, "nox": 8000.0, "solid_waste": 1000.0}
    # precipitation 1000 mm × 1000 km² = 1e6
    # 0.2·4.3937397289·20000/1e6 = 0.0175749589156     0.2·40.1764754986·2000/1e6 = 0.0160705901994
    # 0.2·0.0648660287·5000/1000 = 0.0648660287        0.1·4.0904459321·3000/1000 = 1.22713377963
    # 0.2·0.5103049278·8000/1000 = 0.81648788448       0.1·0.0749894283·1000/1000 = 0.00749894283
    expected = 0.0175749589156 + 0.0160705901994 + 0.0648660287 + 1.22713377963 + 0.81648788448 + 0.00749894283
    assert ei.pollution_load(loads, 1000.0, 1000.0, P) == pytest.approx(expected, abs=1e-10)
    assert expected == pytest.approx(2.14963218475, abs=1e-10)


def test_composite_worked_example_and_rounding():
    # rounded: 65.4, 75.1, 41.0, 3.8, 2.1 ->
    # 0.35·65.4 + 0.25·75.1 + 0.15·41.0 + 0.15·(100−3.8) + 0.10·(100−2.1)
    # = 22.89 + 18.775 + 6.15 + 14.43 + 9.79 = 72.035 (exactly, decimal arithmetic)
    sub = {"bri": HQ, "vci": 75.12237688, "wndi": 41.04352844851, "lsi": 3.77669708464, "pli": 2.14963218475}
    assert ei.composite(sub, P) == 72.035


def test_rounding_before_weighting_decides_the_grade():
    # unrounded: 0.35·74.96 + 0.25·75 + 0.15·75 + 0.15·(100−25) + 0.10·(100−25) = 74.986 -> 良
    # HJ 192 convention (1 decimal first): 74.96 -> 75.0, EI = 75.0 -> 优
    sub = {"bri": 74.96, "vci": 75.0, "wndi": 75.0, "lsi": 25.0, "pli": 25.0}
    assert ei.composite(sub, P) == 75.0
    assert ei.ei_grade(ei.composite(sub, P), P) == "优"


def test_round_half_up_on_printed_value():
    assert float(ei.round_decimal(65.45, 1)) == 65.5  # binary 65.4500000000000028...
    assert float(ei.round_decimal(2.675, 2)) == 2.68  # binary 2.67499999..., Python round() gives 2.67
    assert float(ei.round_decimal(0.25, 1, "half_even")) == 0.2


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        (100.0, "优"), (75.0, "优"), (74.99, "良"), (55.0, "良"), (54.99, "一般"), (35.0, "一般"),
        (34.99, "较差"), (20.0, "较差"), (19.99, "差"), (0.0, "差"),
    ],
)  # fmt: skip
def test_every_grade_boundary(value, grade):
    assert ei.ei_grade(value, P) == grade


def test_grade_of_nan_is_none():
    assert ei.ei_grade(math.nan, P) is None


@pytest.mark.parametrize(
    ("delta", "label"),
    [
        (8.0, "显著变好"), (7.99, "明显变好"), (3.0, "明显变好"), (2.99, "略微变好"), (1.0, "略微变好"),
        (0.99, "无明显变化"), (0.0, "无明显变化"), (-0.99, "无明显变化"), (-1.0, "略微变差"),
        (-2.99, "略微变差"), (-3.0, "明显变差"), (-7.99, "明显变差"), (-8.0, "显著变差"),
    ],
)  # fmt: skip
def test_every_delta_ei_class_boundary(delta, label):
    d, got = ei.delta_ei_class(50.0, 50.0 + delta, P)
    assert got == label
    assert d == pytest.approx(delta, abs=1e-12)


def test_delta_ei_is_exact_decimal():
    # 32.01 − 29.01 in binary floating point is 2.9999999999999964 (略微变好); the class is 明显变好.
    assert 32.01 - 29.01 < 3.0
    d, label = ei.delta_ei_class(29.01, 32.01, P)
    assert d == 3.0 and label == "明显变好"
    assert ei.delta_ei_class(29.01, 32.01, P, lang="en")[1] == "obviously better"
    assert ei.delta_ei_class(1.66, 0.66, P)[1] == "略微变差"  # 0.66 − 1.66 = −0.9999999999999999


@pytest.mark.parametrize(
    ("level", "before", "after"),
    [
        (0, 80.0, 80.0), (1, 80.0, 80.0),
        (2, 80.0, 74.9), (2, 75.0, 74.9), (2, 74.99, 54.9), (2, 60.0, 54.9), (2, 40.0, 34.9),
        (2, 25.0, 19.9), (2, 15.0, 15.0),
        (3, 80.0, 54.9), (3, 60.0, 54.9), (3, 40.0, 34.9), (3, 25.0, 19.9), (3, 10.0, 10.0),
    ],
)  # fmt: skip
def test_restriction_downgrade(level, before, after):
    assert ei.restriction_downgrade(before, level, P) == after


def test_restriction_level_out_of_range():
    with pytest.raises(ValueError, match="0..3"):
        ei.restriction_downgrade(50.0, 4, P)


def _full_inputs(**over):
    base = dict(
        area_km2=100.0,
        class_areas_km2=AREAS,
        ndvi_mean=0.62,
        river_length_km=50.0,
        lake_area_km2=2.0,
        water_resources=80.0,
        severe_erosion_km2=1.0,
        moderate_erosion_km2=3.0,
        other_stress_km2=0.5,
        pollution_t={"cod": 2000.0, "nh3n": 200.0, "so2": 500.0, "dust": 300.0, "nox": 800.0, "solid_waste": 100.0},
        precipitation_mm=1000.0,
    )
    base.update(over)
    return ei.EiInputs(**base)


def test_compute_ei_region():
    # 100 km² region = the 1000 km² examples scaled by 1/10 (WNDI, PLI keep their values);
    # LSI: construction from land cover = 10 km² (code 51): 236.04356779 (0.4·1 + 0.2·3 + 0.2·10
    # + 0.2·0.5)/100 = 236.04356779 × 3.1 / 100 = 7.3173506 -> 7.3
    # PLI: P_total = 1000 × 100: same ratios as the 1000 km² example except the water terms,
    # 0.2·4.3937397289·2000/1e5 = 0.0175749589, 0.2·40.1764754986·200/1e5 = 0.0160705902 -> 2.1
    # EI = 0.35·65.4 + 0.25·75.1 + 0.15·41.0 + 0.15·(100−7.3) + 0.10·(100−2.1)
    #    = 22.89 + 18.775 + 6.15 + 13.905 + 9.79 = 71.51
    r = ei.compute_ei(_full_inputs(), P)
    assert r.complete and r.missing == ()
    assert (r.hq, r.bri, r.vci, r.wndi, r.lsi, r.pli) == (65.4, 65.4, 75.1, 41.0, 7.3, 2.1)
    assert r.ei == r.ei_raw == 71.51
    assert r.grade == "良" and r.grade_en == "good"
    assert r.sources["land_cover"] == "remote_sensing" and r.sources["pollution"] == "table"
    assert any("BRI = HQ" in n for n in r.notes)
    assert any("restriction level 0" in n for n in r.notes)


def test_compute_ei_restriction_downgrade():
    r = ei.compute_ei(_full_inputs(restriction_level=3), P)
    assert r.ei_raw == 71.51 and r.ei == 54.9 and r.grade == "一般" and r.downgraded


def test_compute_ei_missing_inputs_named_never_imputed():
    r = ei.compute_ei(_full_inputs(pollution_t=None, water_resources=None), P)
    assert not r.complete
    assert math.isnan(r.ei) and r.grade is None
    assert "water resources (WNDI)" in r.missing
    assert "cod load (PLI)" in r.missing and "solid_waste load (PLI)" in r.missing
    assert r.vci == 75.1  # what could be computed is still reported


def test_fit_ndvi_calibration_recovers_a_planted_transfer():
    import numpy as np

    x = np.linspace(0.1, 0.9, 50)
    y = 0.9 * x + 0.03
    x[3] = np.nan
    gain, offset = ei.fit_ndvi_calibration(x, y)
    assert gain == pytest.approx(0.9, abs=1e-12) and offset == pytest.approx(0.03, abs=1e-12)
