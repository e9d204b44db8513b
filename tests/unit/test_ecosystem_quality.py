"""Ecosystem quality (HJ 1172-2021, spec §4.1) in eqi.science.ecosystem_quality: hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from eqi.resources import load_profile
from eqi.science import ecosystem_quality as eq

P = load_profile("eq-hj1172-2021")


def test_profile_is_tagged_unverified():
    assert P.param("weights").tag == "[U]" and P.param("reference", "quantile").tag == "[U]"
    assert P["structure_tag"] == "[P]"


def test_quality_hand_computed():
    lc = np.array([[21, 22], [31, 51]])
    et = eq.ecosystem_type(lc, P)
    assert et.tolist() == [[1, 2], [3, 0]]
    refs = {1: {"lai": 6.0, "fvc": 0.9, "npp": 800.0}, 2: {"lai": 3.0, "fvc": 0.8, "npp": 500.0},
            3: {"lai": 2.0, "fvc": 0.8, "npp": 400.0}}  # fmt: skip
    params = {
        "lai": np.array([[3.0, 3.0], [1.0, 2.0]]),
        "fvc": np.array([[0.9, 0.4], [0.8, 0.5]]),
        "npp": np.array([[400.0, 600.0], [200.0, 300.0]]),
    }
    q = eq.ecosystem_quality(params, et, refs, P)
    # forest: RD 3/6 = 0.5, 0.9/0.9 = 1, 400/800 = 0.5 -> 100 × 2/3 = 66.667
    # shrub: 3/3 = 1, 0.4/0.8 = 0.5, 600/500 = 1.2 -> 1 (clipped) -> 100 × 2.5/3 = 83.333
    # grassland: 1/2, 0.8/0.8, 200/400 -> 66.667; built-up: not assessed (NaN)
    np.testing.assert_allclose(q[0, 0], 200 / 3, rtol=1e-6)
    np.testing.assert_allclose(q[0, 1], 250 / 3, rtol=1e-6)
    np.testing.assert_allclose(q[1, 0], 200 / 3, rtol=1e-6)
    assert np.isnan(q[1, 1])
    assert eq.quality_grade(q, P).tolist() == [[2, 1], [2, 0]]


def test_quality_grade_edges():
    g = eq.quality_grade(np.array([75.0, 74.99, 55.0, 35.0, 34.99, 20.0, 19.99, np.nan]), P)
    assert g.tolist() == [1, 2, 2, 3, 4, 4, 5, 0]


def test_reference_values_quantile_over_least_disturbed_pixels():
    et = np.array([1] * 200 + [2] * 50 + [1] * 10)
    lai = np.concatenate([np.arange(1.0, 201.0), np.full(50, 2.0), np.full(10, 999.0)])
    mask = np.array([True] * 250 + [False] * 10)  # the 999 pixels are disturbed: excluded
    refs = eq.reference_values({"lai": lai}, et, mask, P)
    # 95th percentile of 1..200, linear: position 0.95 × 199 = 189.05 -> 190.05
    assert refs[1]["lai"] == pytest.approx(190.05)
    assert np.isnan(refs[2]["lai"])  # 50 reference pixels < min_pixels (100)
    assert np.isnan(refs[3]["lai"])
