"""Seasonal compositing: exact NaN-aware quantiles, masking, scaling per slice, counts."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from eqi.science.composite import CompositeInputs, _reduce_block, composite, nan_quantiles


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_nan_quantiles_equal_numpy(q: float) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(9, 20, 30)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[:, 0, 0] = np.nan  # a pixel without any observation
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanquantile(values.astype(np.float64), q, axis=0)
    got = nan_quantiles(values, [q])[0]
    assert np.isnan(got[0, 0])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, equal_nan=True)


def test_reduce_block_scales_per_slice_and_skips_masked() -> None:
    # three dates, one pixel row of masked DN (0 = not usable), per-slice scale/offset (two "sensors")
    dn = np.array([[[100, 200, 0]], [[0, 400, 500]], [[1100, 1200, 0]]], dtype=np.uint16)
    scale = np.array([1e-3, 1e-3, 1e-4])
    offset = np.array([0.0, 0.0, -0.1])  # third slice: Sentinel-2 baseline >= 04.00
    out = _reduce_block(dn, scale=scale, offset=offset, nodata=np.zeros(3), quantiles=(0.5,), min_clear=1)
    # pixel 0: 0.1 (slice 0) and (1100-1000)/1e4 = 0.01 (slice 2) -> median 0.055
    # pixel 1: 0.2, 0.4, 0.02 -> 0.2 ; pixel 2: only slice 1 -> 0.5
    np.testing.assert_allclose(out[0, 0], [0.055, 0.2, 0.5], atol=1e-6)
    strict = _reduce_block(dn, scale=scale, offset=offset, nodata=np.zeros(3), quantiles=(0.5,), min_clear=2)
    assert np.isnan(strict[0, 0, 2]) and np.isfinite(strict[0, 0, 0])
    counted = _reduce_block(
        [dn[:2], dn[2:]], scale=scale, offset=offset, nodata=np.zeros(3), quantiles=(0.5,), min_clear=1, with_count=True
    )
    np.testing.assert_array_equal(counted[0], out[0])  # time chunks as a list: same result
    assert counted[1].tolist() == [[2, 3, 1]]


def test_composite_no_clear_observation_is_nan_and_count_zero() -> None:
    t, h, w = 4, 6, 5
    dn = np.full((t, h, w), 5000, dtype=np.uint16)
    dn[:, 0, 0] = 0  # always cloudy: masked on every date
    inputs = CompositeInputs(
        dn={"red": da.from_array(dn, chunks=(t, 3, 5))},
        count_band="red",
        scale={"red": np.full(t, 2.75e-5)},
        offset={"red": np.full(t, -0.2)},
        nodata={"red": np.zeros(t)},
        times=np.arange(t).astype("datetime64[D]"),
        item_ids=["a", "b", "c", "d"],
        sensors=["landsat8"],
    )
    result = composite(inputs, percentiles=[10]).compute()
    assert np.isnan(result["red"].values[0, 0])
    assert result["count"].values[0, 0] == 0 and result["count"].values[1, 1] == t
    assert result["red"].dtype == np.float32
    np.testing.assert_allclose(result["red"].values[1, 1], 5000 * 2.75e-5 - 0.2, rtol=1e-6)
    assert "red_p10" in result
