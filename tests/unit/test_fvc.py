"""FVC pixel dichotomy model (spec §5.1, §8.1)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eqi.errors import ConfigError
from eqi.resources import load_profile
from eqi.science import fvc as fvc_module
from eqi.science.fvc import FvcBounds

P = load_profile("fvc")


def fvc(*args, **kw):
    return fvc_module.fvc(*args, params=P, **kw)


def fvc_bounds(*args, **kw):
    return fvc_module.fvc_bounds(*args, params=P, **kw)


def _da(values, chunks=None) -> xr.DataArray:
    da = xr.DataArray(np.asarray(values, np.float32), dims=("y", "x"))
    return da.chunk(chunks) if chunks else da


def test_fvc_fixed_bounds_and_clipping():
    ndvi = _da([[-0.2, 0.15, 0.525], [0.9, 0.95, np.nan]])
    out, bounds = fvc(ndvi, method="fixed")
    assert (bounds.ndvi_soil, bounds.ndvi_veg, bounds.method) == (0.15, 0.90, "fixed")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.values, [[0.0, 0.0, 0.5], [1.0, 1.0, np.nan]], atol=1e-6)


def test_percentile_bounds_exclude_water_and_nan():
    land = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, 101)
    ndvi = np.concatenate([land, np.full((1, 101), -0.5, np.float32)])
    ndvi[1, 0] = np.nan
    water = np.zeros(ndvi.shape, bool)
    water[1] = True
    b = fvc_bounds(_da(ndvi), xr.DataArray(water, dims=("y", "x")))
    assert b.method == "percentile" and b.n_valid == 101
    assert b.ndvi_soil == pytest.approx(0.05, abs=1e-6)
    assert b.ndvi_veg == pytest.approx(0.95, abs=1e-6)
    # without the water mask the -0.5 water pixels pull NDVI_soil down
    assert fvc_bounds(_da(ndvi)).ndvi_soil < 0


def test_percentiles_independent_of_chunking_and_pooled_years():
    rng = np.random.default_rng(1)
    ndvi = rng.uniform(-0.1, 0.9, (64, 48)).astype(np.float32)
    eager = fvc_bounds(_da(ndvi))
    assert fvc_bounds(_da(ndvi, chunks={"y": 16, "x": 7})) == eager
    pooled = fvc_bounds([_da(ndvi[:32]), _da(ndvi[32:], chunks=8)], [None, None])
    assert pooled == eager
    out, used = fvc(_da(ndvi, chunks=16), bounds=eager)
    assert used is eager and out.chunks is not None
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_fallback_to_fixed_when_too_few_pixels_or_no_spread():
    few = fvc_bounds(_da([[0.1, 0.8]]))
    assert few.method == "fixed" and "min_valid_pixels" in few.fallback_reason
    flat = fvc_bounds(_da(np.full((20, 20), 0.4)))
    assert flat.method == "fixed" and "min_spread" in flat.fallback_reason
    assert (flat.ndvi_soil, flat.ndvi_veg) == (0.15, 0.90)


def test_bad_configuration_raises():
    with pytest.raises(ConfigError, match="method"):
        fvc_bounds(_da([[0.1]]), method="median")
    with pytest.raises(ConfigError, match="NDVI_veg"):
        fvc(_da([[0.1]]), bounds=FvcBounds(0.5, 0.4, "fixed"))


def test_profile_records_tags():
    p = load_profile("fvc")
    assert p["p_soil"]["tag"] == "[U]" and p["p_veg"]["tag"] == "[U]"
    assert p["ndvi_soil_fixed"]["tag"] == "[V-impl]"
