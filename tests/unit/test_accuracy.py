"""Map accuracy by the stratified estimator of Olofsson et al. (2014) (eqi.science.accuracy).

Oracle 1: the paper's worked example (Olofsson, Foody, Herold, Stehman, Woodcock, Wulder 2014,
"Good practices for estimating area and assessing accuracy of land change", Remote Sens. Environ.
148: 42-57, §5: Table 8 sample counts and mapped areas, Table 9 area proportions, §5.2 accuracy and
area estimates), asserted to the printed precision.
Oracle 2: an independent hand computation in plain Python on a 2-class example (comments).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eqi.errors import InputError
from eqi.science.accuracy import (
    AccuracyReport,
    assess_accuracy,
    map_accuracy_from_samples,
    stratified_map_accuracy,
)

# Table 8: rows = map class (stratum), columns = reference class; 1 deforestation, 2 forest gain,
# 3 stable forest, 4 stable non-forest
TABLE8 = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
MAPPED_PX = {1: 200_000, 2: 150_000, 3: 3_200_000, 4: 6_450_000}  # 30 m pixels (0.09 ha)
# Table 9: estimated area proportions p_ij, printed to 4 decimals
TABLE9 = np.array(
    [
        [0.0176, 0.0, 0.0013, 0.0011],
        [0.0, 0.0110, 0.0016, 0.0024],
        [0.0019, 0.0, 0.2967, 0.0213],
        [0.0040, 0.0020, 0.0179, 0.6212],
    ]
)
# §5.2: estimate ± 95 % half-width, printed to 2 decimals; areas in ha, printed to 1 ha
USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
PRODUCERS = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]
AREA_HA = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]
# Two producer's-accuracy half-widths are misprinted in the paper: forest gain is printed ± 0.23
# and stable non-forest ± 0.01, but the paper's own producer's-accuracy variance formula gives
# ± 0.254 and ± 0.018 (recomputed by hand for this test, and in independent transcriptions of the
# example); PRODUCERS above holds the equation values 0.25 and 0.02 for those two.


@pytest.fixture(scope="module")
def olofsson():
    return stratified_map_accuracy(TABLE8, [1, 2, 3, 4], MAPPED_PX, 900.0, z=1.96)


def test_olofsson_table9_area_proportions(olofsson):
    np.testing.assert_allclose(np.round(np.array(olofsson.proportions), 4), TABLE9, atol=1e-12)
    assert olofsson.counts == tuple(tuple(r) for r in TABLE8.tolist())


def test_olofsson_accuracies(olofsson):
    assert round(olofsson.overall.value, 2) == 0.95 and round(olofsson.overall.half_width, 2) == 0.02
    for code, (u, u_hw), (p, p_hw) in zip((1, 2, 3, 4), USERS, PRODUCERS, strict=True):
        entry = olofsson.get(code)
        assert (round(entry.users.value, 2), round(entry.users.half_width, 2)) == (u, u_hw), code
        assert (round(entry.producers.value, 2), round(entry.producers.half_width, 2)) == (p, p_hw), code
    # the misprinted half-widths, to 3 decimals (hand computation of Olofsson's eq. for V(P_j))
    assert round(olofsson.get(2).producers.half_width, 3) == 0.254
    assert round(olofsson.get(4).producers.half_width, 3) == 0.018


def test_olofsson_error_adjusted_areas(olofsson):
    for code, (area, hw) in zip((1, 2, 3, 4), AREA_HA, strict=True):
        entry = olofsson.get(code)
        # km² → ha (× 100), printed to the hectare
        assert round(entry.area_km2.value * 100) == area, code
        assert round(entry.area_km2.half_width * 100) == hw, code
        assert entry.mapped_area_km2 == pytest.approx(MAPPED_PX[code] * 900 / 1e6)
    # the deforestation figures in the paper's text: mapped 18 000 ha, estimated 21 158 ± 6 158 ha
    assert olofsson.get(1).mapped_area_km2 * 100 == pytest.approx(18_000)
    assert olofsson.assessed_area_km2 == pytest.approx(9_000.0)  # 10⁷ px × 900 m²
    total = sum(e.area_km2.value for e in olofsson.per_class)
    assert total == pytest.approx(olofsson.assessed_area_km2)
    assert not olofsson.unassessed


def test_two_class_example_by_hand():
    """Map: A 2 000 px, B 8 000 px (W = 0.2, 0.8); sample: A row (8 A, 2 B), B row (1 A, 9 B).

    q_A = (0.8, 0.2), q_B = (0.1, 0.9); p = [[0.16, 0.04], [0.08, 0.72]].
    OA = 0.16 + 0.72 = 0.88; V(OA) = 0.04·0.8·0.2/9 + 0.64·0.9·0.1/9 = 0.000711111 + 0.0064 = 0.00711111.
    U_A = 0.8, V = 0.8·0.2/9 = 0.0177778; U_B = 0.9, V = 0.9·0.1/9 = 0.01.
    p_.A = 0.24 → P_A = 0.16/0.24 = 2/3; p_.B = 0.76 → P_B = 0.72/0.76 = 0.947368.
    V(P_A) = [N_A²(1−P_A)² U_A(1−U_A)/9 + P_A² N_B² q_BA(1−q_BA)/9] / N̂_A², N̂_A = 2000·0.8 + 8000·0.1 = 2400
           = [4e6·(1/9)·0.0177778 + (4/9)·6.4e7·0.01] / 5.76e6 = (7901.23 + 284444.4) / 5.76e6 = 0.0507544.
    S(p_.A)² = 0.04·0.0177778 + 0.64·0.01 = 0.000711111 + 0.0064 = 0.00711111 (same terms as OA here).
    Pixel 100 m² → A = 10⁴ px · 100 m² = 1 km²; Â_A = 0.24 km², SE = sqrt(0.00711111) km².
    """
    counts = np.array([[8, 2], [1, 9]])
    res = stratified_map_accuracy(counts, [7, 9], {7: 2000, 9: 8000}, 100.0, z=2.0)
    a, b = res.get(7), res.get(9)
    assert res.overall.value == pytest.approx(0.88)
    assert res.overall.se == pytest.approx(math.sqrt(0.00711111111))
    assert res.overall.half_width == pytest.approx(2 * math.sqrt(0.00711111111))
    assert a.users.value == pytest.approx(0.8) and a.users.se == pytest.approx(math.sqrt(0.16 / 9))
    assert b.users.value == pytest.approx(0.9) and b.users.se == pytest.approx(math.sqrt(0.09 / 9))
    assert a.producers.value == pytest.approx(2 / 3)
    assert b.producers.value == pytest.approx(0.72 / 0.76)
    assert a.producers.se == pytest.approx(math.sqrt((7901.2345679 + 284444.444444) / 5.76e6))
    assert a.area_km2.value == pytest.approx(0.24) and b.area_km2.value == pytest.approx(0.76)
    assert a.area_km2.se == pytest.approx(math.sqrt(0.00711111111))
    assert a.weight == pytest.approx(0.2) and a.n_test == 10


def test_per_unit_samples_equal_the_count_matrix():
    map_class, reference = [], []
    for i, row in enumerate(TABLE8, start=1):
        for j, n in enumerate(row, start=1):
            map_class += [i] * int(n)
            reference += [j] * int(n)
    res = map_accuracy_from_samples(np.array(map_class), np.array(reference), MAPPED_PX, 900.0, z=1.96)
    assert res.labels == (1, 2, 3, 4)
    assert res.to_dict() == stratified_map_accuracy(TABLE8, [1, 2, 3, 4], MAPPED_PX, 900.0, z=1.96).to_dict()


def test_unsampled_strata_and_reference_only_classes():
    """Map class 5 has 1 test sample (not assessed); reference class 6 is never mapped."""
    map_class = np.array([1] * 10 + [2] * 10 + [5])
    reference = np.array([1] * 9 + [6] + [2] * 10 + [5])
    mapped = {0: 999, 1: 5000, 2: 4000, 5: 1000}  # 0 = nodata, ignored
    res = map_accuracy_from_samples(map_class, reference, mapped, 1e6, z=1.96)
    assert res.labels == (1, 2, 5, 6)
    assert res.unassessed == {5: 1000}
    assert res.assessed_area_km2 == pytest.approx(9000.0)  # classes 1 and 2 only
    assert math.isnan(res.get(5).users.value) and math.isnan(res.get(6).users.value)
    # class 6 exists only in the reference: producer's accuracy 0, area 5000/9000 · 0.1 · 9000 km²
    assert res.get(6).producers.value == 0.0
    assert res.get(6).area_km2.value == pytest.approx(500.0)
    assert res.get(1).area_km2.value == pytest.approx(4500.0)
    text = json.dumps(res.to_dict())  # NaN → null, valid JSON
    assert "NaN" not in text
    md = res.to_markdown()
    assert "Not assessed" in md and "5 (1000 px)" in md
    with pytest.raises(InputError, match="2 or more test samples"):
        map_accuracy_from_samples(np.array([5]), np.array([5]), {5: 10}, 1.0, z=1.96)
    with pytest.raises(InputError, match="4x4"):
        stratified_map_accuracy(TABLE8[:3], [1, 2, 3, 4], MAPPED_PX, 900.0, z=1.96)


def test_report_with_map_accuracy_round_trips(olofsson):
    import dataclasses

    sample = assess_accuracy(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2]), sample_design="toy")
    report = dataclasses.replace(sample, map_accuracy=olofsson)
    data = json.loads(json.dumps(report.to_dict()))
    back = AccuracyReport.from_dict(data)
    assert back.map_accuracy.to_dict() == olofsson.to_dict()
    assert back.overall_accuracy == 0.75 and back.sample_design == "toy"
    md = report.to_markdown({1: "deforestation"})
    assert "Area-weighted overall accuracy: 0.947 ± 0.018 (95 % CI" in md
    assert "| 1 deforestation | 180.000 | 75 | 0.880 ± 0.074 | 0.749 ± 0.213 | 211.578 ± 61.576 |" in md
    assert md.index("Map accuracy") < md.index("Sample overall accuracy")
