"""Monte-Carlo draws of class areas (eqi.science.uncertainty): area is conserved, the spread
follows the confusion counts, the interval and edge flag are what they say."""

from __future__ import annotations

import numpy as np
import pytest

from eqi.science.uncertainty import Confusion, crosses_edge, draw_class_areas, draw_means, interval


def test_draws_conserve_area_and_spread_with_the_error_rate():
    mapped = {21: 60.0, 12: 30.0, 0: 5.0}  # class 0 (nodata) is ignored
    rng = np.random.default_rng(0)
    sure = Confusion((12, 21), ((1000, 0), (0, 1000)), prior=0.0 + 1e-9)
    wrong = Confusion((12, 21), ((700, 300), (300, 700)))
    a = draw_class_areas(mapped, 10.0, sure, 400, rng)
    b = draw_class_areas(mapped, 10.0, wrong, 400, rng)
    for d in (a, b):
        assert np.allclose(d.areas.sum(axis=1), 100.0)  # mapped 90 + invalid 10
    i21 = a.codes.index(21)
    a0, b0 = (draw_class_areas(mapped, 0.0, c, 400, rng) for c in (sure, wrong))
    assert a0.areas[:, i21].std() < 0.01
    # Beta(700.5, 300.5) sd of a row share x 60 km² and x 30 km², independent rows
    sd = np.sqrt(0.7 * 0.3 / 1002) * np.hypot(60, 30)
    assert b0.areas[:, i21].std() == pytest.approx(sd, rel=0.15)
    # invalid pixels alone: Dirichlet(10 x shares) of 10 km² -> sd = 10 sqrt(p(1 - p) / 11), p = 2/3
    assert a.areas[:, i21].std() == pytest.approx(10 * np.sqrt(2 / 9 / 11), rel=0.15)
    # expected forest area with 30 % confusion both ways: 0.7 x 60 + 0.3 x 30 + 10 x 60/90
    assert b.areas[:, i21].mean() == pytest.approx(0.7 * 60 + 0.3 * 30 + 10 * 60 / 90, rel=0.02)


def test_means_interval_and_edges():
    rng = np.random.default_rng(1)
    assert np.all(draw_means(0.5, 0.2, 1.0, 50, rng) == 0.5)  # all pixels valid: no spread
    m = draw_means(0.5, 0.2, 0.5, 20000, rng)
    assert m.std() == pytest.approx(0.1, rel=0.05)  # half the region at N(0.5, 0.2)
    lo, hi = interval(np.arange(1001.0), 0.95)
    assert (lo, hi) == pytest.approx((25.0, 975.0))
    grade = lambda x: "a" if x >= 55 else "b"  # noqa: E731
    assert crosses_edge(56, 54.9, 57, grade) and not crosses_edge(56, 55.0, 57, grade)
