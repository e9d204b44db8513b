"""Per-pixel Theil–Sen / Mann–Kendall (eqi.science.trend) against scipy.stats.theilslopes and
pymannkendall.original_test on a 5-year stack (1e-6), NaN where fewer than the configured years."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pymannkendall as mk
import pytest
from scipy import stats

from eqi.resources import load_profile
from eqi.science.trend import TREND_FIELDS, theil_sen_mk, theil_sen_mk_dask, trend_class

YEARS = [2016, 2017, 2019, 2020, 2023]  # uneven spacing: the slope is per year, not per step
MIN_YEARS = int(load_profile("trend").value("min_years"))


def _stack(seed: int = 7, shape=(12, 10)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    trend = rng.normal(0, 0.02, shape)
    x = 0.5 + trend[None] * (np.asarray(YEARS)[:, None, None] - 2016) + rng.normal(0, 0.03, (5, *shape))
    x = np.round(x, 2)  # two decimals: plenty of ties
    x[:, 0, 0] = 0.4  # constant pixel (all tied)
    x[:, 0, 1] = [0.1, 0.2, 0.2, 0.3, 0.3]  # tie groups of 2
    x[1, 1, :] = np.nan  # 4 valid years
    x[:3, 2, :3] = np.nan  # 2 valid years < min_years -> NaN
    x[:, 3, 3] = np.nan  # nothing valid
    return x


def _oracle(x: np.ndarray) -> dict[str, np.ndarray]:
    ty = np.asarray(YEARS, dtype=float)
    out = {k: np.full(x.shape[1:], np.nan) for k in ("slope", "intercept", "p", "z", "s", "tau")}
    for idx in np.ndindex(*x.shape[1:]):
        v = x[(slice(None), *idx)]
        ok = np.isfinite(v)
        if ok.sum() < MIN_YEARS:
            continue
        ts = stats.theilslopes(v[ok], ty[ok])
        res = mk.original_test(v[ok])
        out["slope"][idx] = ts.slope
        out["intercept"][idx] = ts.intercept
        out["p"][idx], out["z"][idx], out["s"][idx], out["tau"][idx] = res.p, res.z, res.s, res.Tau
    return out


def test_equals_scipy_and_pymannkendall():
    x = _stack()
    got = theil_sen_mk(x, YEARS, min_years=MIN_YEARS)
    want = _oracle(x)
    for key, ref in want.items():
        np.testing.assert_allclose(getattr(got, key), ref, atol=1e-6, rtol=0, equal_nan=True, err_msg=key)
    # the planted cases
    assert got.p[0, 0] == 1.0 and got.slope[0, 0] == 0.0  # constant series
    assert np.isnan(got.slope[2, 0]) and np.isnan(got.p[2, 2]) and np.isnan(got.n[3, 3])
    assert got.n[1, 5] == 4 and got.n[4, 4] == 5
    assert np.isfinite(got.p).sum() == 12 * 10 - 3 - 1


def test_dask_blocks_equal_numpy():
    x = _stack(11, shape=(40, 36))
    ref = theil_sen_mk(x, YEARS, min_years=MIN_YEARS)
    lazy = theil_sen_mk_dask(da.from_array(x, chunks=(2, 16, 16)), YEARS, min_years=MIN_YEARS)
    assert lazy.shape == (len(TREND_FIELDS), 40, 36) and lazy.chunks[1] == (16, 16, 8)
    got = lazy.compute(scheduler="synchronous")
    for i, key in enumerate(TREND_FIELDS):
        np.testing.assert_array_equal(got[i], getattr(ref, key), err_msg=key)


def test_min_years_from_profile_and_validation():
    x = _stack()
    strict = theil_sen_mk(x, YEARS, min_years=5)
    assert np.isnan(strict.slope[1]).all()  # row 1 has only 4 valid years
    with pytest.raises(ValueError, match="increasing"):
        theil_sen_mk(x, YEARS[::-1], min_years=3)
    with pytest.raises(ValueError, match="5 layers"):
        theil_sen_mk(x, YEARS[:4], min_years=3)


def test_trend_class():
    params = load_profile("trend")
    slope = np.array([0.1, 0.1, -0.1, -0.1, np.nan])
    p = np.array([0.01, 0.2, 0.01, 0.2, 0.01])
    assert trend_class(slope, p, params).tolist() == [1, 2, 3, 2, 0]
    assert trend_class(slope, p, params, higher_is_better=False).tolist() == [3, 2, 1, 2, 0]
