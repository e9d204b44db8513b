"""Impact statistics and zones (spec §4.5) against hand computations and textbook formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from eqi.geo.zones import build_zones, chainage_segments
from eqi.science import impact

S = impact.BootstrapSettings(replicates=2000, confidence=0.95, max_pixels=100_000, seed=1)


def test_pixel_bootstrap_matches_the_normal_theory_interval() -> None:
    rng = np.random.default_rng(0)
    before = np.zeros(4000)
    after = rng.normal(-0.1, 0.2, 4000)
    iv, _ = impact.delta_interval(before, after, S)
    half = 1.96 * after.std() / math.sqrt(after.size)  # oracle: mean ± z σ/√n
    assert iv.value == pytest.approx(after.mean())
    assert iv.low == pytest.approx(after.mean() - half, abs=0.15 * half)
    assert iv.high == pytest.approx(after.mean() + half, abs=0.15 * half)
    assert iv.excludes_zero()


def test_block_bootstrap_is_wider_for_autocorrelated_pixels() -> None:
    """Blocks of 10x10 pixels sharing one random offset: the block interval is the right width
    (σ_block/√blocks), the pixel interval about 10x too narrow."""
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 0.1, (20, 20))
    field = np.kron(offsets, np.ones((10, 10))) + rng.normal(0, 0.01, (200, 200))
    blocks = (np.arange(200)[:, None] // 10) * 20 + np.arange(200)[None, :] // 10
    fast = impact.BootstrapSettings(replicates=400, confidence=0.95, max_pixels=100_000, seed=1)
    pix, _ = impact.delta_interval(np.zeros_like(field), field, fast)
    blk, _ = impact.delta_interval(np.zeros_like(field), field, S, blocks=blocks)
    expected = 2 * 1.96 * offsets.std() / 20  # 400 independent blocks
    assert blk.high - blk.low == pytest.approx(expected, rel=0.15)
    assert (pix.high - pix.low) < 0.2 * (blk.high - blk.low)


def test_weighted_control_mean_and_baci() -> None:
    d_c = np.array([1.0, 1.0, 3.0, 3.0])
    w = np.array([3.0, 3.0, 1.0, 1.0])  # oracle: (3+3+3+3)/8 = 1.5
    ctl = impact.delta_interval(np.zeros(4), d_c, S, weights=w)
    assert ctl[0].value == pytest.approx(1.5)
    imp = impact.delta_interval(np.zeros(5), np.full(5, 4.0), S)
    b = impact.baci(imp, ctl, 0.95)
    assert b.value == pytest.approx(2.5)
    assert 1.0 <= b.low <= b.high <= 3.0


def test_nan_pixels_are_left_out() -> None:
    iv, _ = impact.delta_interval(np.array([0.0, np.nan, 0.0]), np.array([1.0, 5.0, np.nan]), S)
    assert iv.value == 1.0 and iv.n == 1


def test_dynamic_degree_and_conversion_out_intensity_by_hand() -> None:
    # forest 100 -> 80 km² in 5 years: (80-100)/100/5*100 = -4 %/yr
    assert impact.dynamic_degree(100.0, 80.0, 5) == pytest.approx(-4.0)
    assert math.isnan(impact.dynamic_degree(0.0, 5.0, 5))
    matrix = {2: {2: 80.0, 5: 15.0, 1: 5.0}, 5: {5: 10.0}}  # forest lost 20 of 100 km²
    cio = impact.conversion_out_intensity(matrix, 4)
    assert cio[2] == pytest.approx(20 / 100 / 4 * 100)
    assert cio[5] == 0.0


def test_fragmentation_patch_density_and_mesh_by_hand() -> None:
    classes = np.zeros((10, 10), dtype=np.int32)
    classes[0:2, 0:2] = 2  # 4 px
    classes[5:8, 5:8] = 3  # 9 px
    classes[8, 8] = 2  # 1 px touching the 3x3 patch (7, 7) only diagonally
    zone = np.ones((10, 10), dtype=bool)
    f8 = impact.fragmentation(classes, zone, [2, 3], pixel_km2=0.01, connectivity=8)
    f4 = impact.fragmentation(classes, zone, [2, 3], pixel_km2=0.01, connectivity=4)
    assert f8["patches"] == 2 and f4["patches"] == 3
    area = 100 * 0.01
    assert f8["mesh_km2"] == pytest.approx((0.04**2 + 0.10**2) / area)
    assert f4["mesh_km2"] == pytest.approx((0.04**2 + 0.09**2 + 0.01**2) / area)
    assert f8["patch_density"] == pytest.approx(2 / area * 100)


def test_disturbance_mask_thresholds() -> None:
    before = np.array([0.8, 0.8, 0.15, 0.5, np.nan])
    after = np.array([0.3, 0.7, -0.2, 0.32, 0.1])
    m = impact.disturbance_mask(before, after, ndvi_drop=0.2, relative_drop=0.3, min_ndvi_before=0.2)
    # drop .5 ok; .1 too small; not vegetated before; .18 < .2; NaN
    assert m.tolist() == [True, False, False, False, False]
    small = np.zeros((6, 6), dtype=bool)
    small[0, 0] = True
    small[3:5, 3:5] = True
    assert impact.remove_small(small, 4).sum() == 4


def test_match_weights_reproduce_the_impact_stratum_mix() -> None:
    imp = np.array([0] * 30 + [1] * 70)
    ctl = np.array([0] * 80 + [1] * 20 + [2] * 50)  # stratum 2 absent from the impact zone
    w, report = impact.match_weights(imp, ctl, min_stratum_px=5)
    assert w[ctl == 0].sum() / w.sum() == pytest.approx(0.3)
    assert w[ctl == 1].sum() / w.sum() == pytest.approx(0.7)
    assert np.all(w[ctl == 2] == 0)
    assert report["impact_matched_share"] == 1.0 and report["strata"] == 2
    # covariate balance: after weighting the control mean equals the impact mean
    cov_i, cov_c = imp.astype(float), ctl.astype(float)
    assert abs(impact.standardized_difference(cov_i, cov_c, w)) < 1e-9
    assert impact.standardized_difference(cov_i, cov_c) == pytest.approx((0.7 - 0.8) / math.sqrt((0.21 + (220 / 150 - 0.8**2)) / 2))


def test_strata_bands_and_breaks() -> None:
    elev = np.array([0.0, 150.0, 250.0, np.nan])
    slope = np.array([1.0, 10.0, 30.0, 2.0])
    s = impact.strata([(elev, 200.0), (slope, [5, 15, 25])])
    assert s[3] == -1 and s[0] != s[1] and len(set(s[:3].tolist())) == 3


def test_slope_of_a_plane() -> None:
    x = np.arange(20) * 30.0
    dem = np.tile(x * math.tan(math.radians(20)), (20, 1))  # 20° along x
    assert np.allclose(impact.slope_degrees(dem, 30.0, -30.0), 20.0, atol=1e-4)


def test_linear_rings_have_flat_caps_and_do_not_overlap() -> None:
    line = shapely.LineString([(0, 0), (10_000, 0)])
    zones = build_zones(line, "linear", footprint_m=50, rings_m=[300, 1000], control_m=(2000, 3000))
    fp, r1, r2, ctl = (z.geometry for z in zones)
    assert fp.area == pytest.approx(10_000 * 100, rel=1e-9)
    assert r1.area == pytest.approx(10_000 * 2 * 300, rel=1e-6)  # flat caps: 2 L (r2 - r1)
    assert r2.area == pytest.approx(10_000 * 2 * 700, rel=1e-6)
    assert ctl.area == pytest.approx(10_000 * 2 * 1000, rel=1e-6)
    assert not shapely.Point(10_050, 0).intersects(r1)  # nothing beyond the end of the line
    for a in range(4):
        for b in range(a + 1, 4):
            assert zones[a].geometry.intersection(zones[b].geometry).area < 1e-3
    assert zones[1].name == "ring_0_300m" and zones[3].role == "control"


def test_point_rings_are_annuli_and_explicit_control_excludes_rings() -> None:
    zones = build_zones(
        shapely.Point(0, 0), "point", footprint_m=500, rings_m=[1000], control_m=None,
        control_geometry=shapely.box(0, 0, 5000, 5000),
    )  # fmt: skip
    fp, ring, ctl = (z.geometry for z in zones)
    assert fp.area == pytest.approx(math.pi * 500**2, rel=2e-3)
    assert ring.area == pytest.approx(math.pi * (1500**2 - 500**2), rel=2e-3)
    assert ctl.area == pytest.approx(25e6 - math.pi * 1500**2 / 4, rel=2e-3)


def test_chainage_segments_cover_the_line() -> None:
    line = shapely.LineString([(0, 0), (25_000, 0)])
    segs = chainage_segments(line, 10_000, 500)
    assert [(s[1], s[2]) for s in segs] == [(0, 10), (10, 20), (20, 25)]
    assert segs[2][3].area == pytest.approx(5000 * 1000)
