"""Seasonal compositing: exact NaN-aware quantiles, masking, scaling per slice, counts."""

from __future__ import annotations

from datetime import UTC, datetime

import dask.array as da
import numpy as np
import pytest
from scene_stacks import groups_for, landsat_item, loaded, s2_item

from eqi.errors import BandError
from eqi.params import Profile
from eqi.pipeline.stack import composite_options, prepare_inputs
from eqi.resources import load_profile
from eqi.science import indices
from eqi.science.composite import CompositeInputs, _reduce_block, composite, nan_quantiles
from eqi.science.mask import MaskRules


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
    given = nan_quantiles(values, [q], np.isfinite(values).sum(axis=0))[0]  # the caller's count
    np.testing.assert_array_equal(given, got)


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


def test_reduce_block_applies_reason_flags_to_dn_as_read() -> None:
    # the DN as read (clouds still have values), flags != 0 where the observation is not usable:
    # the same hand-computed medians as the masked stack above
    dn = np.array([[[100, 200, 7000]], [[6000, 400, 500]], [[1100, 1200, 0]]], dtype=np.uint16)
    flags = np.array([[[0, 0, 16]], [[32, 0, 0]], [[0, 0, 1]]], dtype=np.uint16)
    scale = np.array([1e-3, 1e-3, 1e-4])
    offset = np.array([0.0, 0.0, -0.1])
    out = _reduce_block(
        [dn[:2], dn[2:]], [flags[:2], flags[2:]], scale=scale, offset=offset, nodata=np.zeros(3),
        quantiles=(0.5,), min_clear=1, with_count=True, flagged=True,
    )  # fmt: skip
    np.testing.assert_allclose(out[0, 0], [0.055, 0.2, 0.5], atol=1e-6)
    assert out[1].tolist() == [[2, 3, 1]]


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


# ------------------------------------------------------------------ per-observation sensor logic


IDX = load_profile("indices")
RULES = MaskRules.from_profile(load_profile("mask"))
SIX = ("blue", "green", "red", "nir", "swir16", "swir22")
# tasseled-cap wetness coefficients typed from spec §6.1 (Blue, Green, Red, NIR, SWIR1, SWIR2)
ETM_HUANG2002 = (0.2626, 0.2141, 0.0926, 0.0656, -0.7629, -0.5388)
OLI_BAIG2014 = (0.1511, 0.1973, 0.3283, 0.3407, -0.7117, -0.4559)
CLEAR, CLOUD = 21824, 22280


def _rho(dn: np.ndarray) -> np.ndarray:
    return dn.astype(np.float64) * 2.75e-5 - 0.2  # Landsat C2 L2 scaling (spec §0.3)


def _dn(values) -> np.ndarray:
    return np.rint((np.asarray(values, dtype=np.float64) + 0.2) / 2.75e-5).astype(np.uint16)


def _day(month: int, day: int) -> datetime:
    return datetime(2015, month, day, 3, 30, tzinfo=UTC)


def test_mixed_landsat7_and_8_wetness_follows_each_observation() -> None:
    # one pixel, three observations: L7 on 07-01, L8 on 07-09 and 07-25 (Blue..SWIR2 reflectance)
    l7 = _dn([[0.05, 0.08, 0.06, 0.30, 0.20, 0.10]])
    l8 = _dn([[0.04, 0.07, 0.05, 0.35, 0.15, 0.08], [0.06, 0.09, 0.08, 0.25, 0.22, 0.14]])
    items = [landsat_item("landsat7", _day(7, 1), SIX), landsat_item("landsat8", _day(7, 9), SIX),
             landsat_item("landsat8", _day(7, 25), SIX)]  # fmt: skip
    groups = groups_for(items, SIX)
    assert [g.sensor.id for g in groups] == ["landsat7", "landsat8"]
    data = []
    for g, dn in zip(groups, (l7, l8), strict=True):
        nt = len(g.items)
        arrays = {b: dn[:, j].reshape(nt, 1, 1) for j, b in enumerate(SIX)}
        arrays["qa_pixel"] = np.full((nt, 1, 1), CLEAR, np.uint16)
        data.append(loaded(g, arrays))
    inputs = prepare_inputs(groups, data, list(SIX), rules=RULES)
    assert inputs.slice_sensors == ("landsat7", "landsat8", "landsat8")
    comp = composite(inputs, **composite_options(inputs, IDX, wet=True)).compute()

    # hand computation: WET per observation with its own sensor's set, then the median of three
    w7 = float(np.dot(_rho(l7[0]), ETM_HUANG2002))
    w8 = [float(np.dot(_rho(row), OLI_BAIG2014)) for row in l8]
    expected = float(np.median([w7, *w8]))
    assert comp["wet"].values[0, 0] == pytest.approx(expected, abs=1e-6)
    # ... which is not the wetness of the median reflectance, with either set
    median_rho = np.median(_rho(np.vstack([l7, l8])), axis=0)
    for coeffs in (ETM_HUANG2002, OLI_BAIG2014):
        assert abs(float(np.dot(median_rho, coeffs)) - expected) > 5e-3
    assert comp["wet"].attrs["tasseled_cap_sets"] == "landsat7: etm_huang2002, landsat8: oli_baig2014"
    # the index layer takes the per-observation wetness from the composite
    np.testing.assert_array_equal(indices.wet(comp, IDX).values, comp["wet"].values)


def test_wetness_skips_cloudy_observations_and_is_only_computed_when_asked() -> None:
    dn = _dn([[0.05, 0.08, 0.06, 0.30, 0.20, 0.10], [0.04, 0.07, 0.05, 0.35, 0.15, 0.08],
              [0.06, 0.09, 0.08, 0.25, 0.22, 0.14]])  # fmt: skip
    items = [landsat_item("landsat8", _day(7, d), SIX) for d in (1, 17, 25)]
    (group,) = groups_for(items, SIX)
    arrays = {b: dn[:, j].reshape(3, 1, 1) for j, b in enumerate(SIX)}
    arrays["qa_pixel"] = np.array([CLOUD, CLEAR, CLEAR], np.uint16).reshape(3, 1, 1)
    inputs = prepare_inputs([group], [loaded(group, arrays)], list(SIX), rules=RULES)
    assert "wet" not in composite(inputs)
    comp = composite(inputs, **composite_options(inputs, IDX, wet=True)).compute()
    w = [float(np.dot(_rho(row), OLI_BAIG2014)) for row in dn[1:]]
    assert comp["wet"].values[0, 0] == pytest.approx(np.mean(w), abs=1e-6)  # median of two


S2_BANDS = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
            "nir09", "swir16", "swir22")  # fmt: skip
# Nedkov (2017) MSI wetness, spec §6.1, same band order as S2_BANDS (B10 dropped)
NEDKOV = (0.0649, 0.1363, 0.2802, 0.3072, 0.5288, 0.1379, -0.0001, -0.0807, -0.1389, -0.0302, -0.4064, -0.5602)


def _s2_dn(rho) -> np.ndarray:
    return np.rint(np.asarray(rho) * 1e4 + 1000).astype(np.uint16)  # baseline >= 04.00


def _mixed(bandpass: bool):
    rho_s2 = np.array([0.02, 0.04, 0.07, 0.05, 0.10, 0.25, 0.30, 0.33, 0.36, 0.30, 0.18, 0.09])
    l8 = landsat_item("landsat8", _day(7, 1), ("coastal", *SIX))
    s2 = s2_item(_day(7, 3), S2_BANDS, platform="sentinel-2a")
    groups = groups_for([l8, s2], S2_BANDS)
    data = []
    for g in groups:
        if g.sensor.id == "landsat8":  # cloudy: the composite is the Sentinel-2 observation alone
            arrays = {b: np.full((1, 1, 1), 12000, np.uint16) for b in g.bands}
            arrays["qa_pixel"] = np.full((1, 1, 1), CLOUD, np.uint16)
        else:
            arrays = {b: _s2_dn(rho_s2[j]).reshape(1, 1, 1) for j, b in enumerate(S2_BANDS)}
            arrays["scl"] = np.full((1, 1, 1), 4, np.uint8)
        data.append(loaded(g, arrays))
    inputs = prepare_inputs(groups, data, list(S2_BANDS), rules=RULES)
    profile = IDX
    if bandpass:
        raw = IDX.to_dict()
        raw["bandpass_adjustment"]["enabled"]["value"] = True
        profile = Profile("indices", raw)
    options = composite_options(inputs, profile, wet=True)
    assert ("bandpass" in options) == bandpass
    return rho_s2, composite(inputs, **options).compute()


def test_sentinel2_nir_is_b8a_and_its_wetness_uses_b08_and_b8a() -> None:
    rho, comp = _mixed(bandpass=False)
    # spec §6.1: Sentinel-2 NIR = B8A (indices.yaml nir_band); the composite's nir is B8A's value
    assert comp["nir"].values[0, 0] == pytest.approx(rho[8], abs=1e-6)
    assert comp["nir08"].values[0, 0] == pytest.approx(rho[8], abs=1e-6)
    assert comp.attrs["nir_sources"] == "sentinel2: nir08"
    assert comp["wet"].values[0, 0] == pytest.approx(float(np.dot(rho, NEDKOV)), abs=1e-5)
    ndvi = (rho[8] - rho[3]) / (rho[8] + rho[3])
    assert float(indices.ndvi(comp).values[0, 0]) == pytest.approx(ndvi, abs=1e-5)


def test_hls_bandpass_adjustment_of_sentinel2a_in_a_mixed_composite() -> None:
    rho, comp = _mixed(bandpass=True)
    # HLS S2A -> OLI lines (hls.gsfc.nasa.gov bandpass-adjustment table): red 0.9765 x + 0.0009,
    # NIR (B8A) 0.9983 x - 0.0001; red edge has no line
    assert comp["red"].values[0, 0] == pytest.approx(0.9765 * rho[3] + 0.0009, abs=1e-6)
    assert comp["nir"].values[0, 0] == pytest.approx(0.9983 * rho[8] - 0.0001, abs=1e-6)
    assert comp["rededge1"].values[0, 0] == pytest.approx(rho[4], abs=1e-6)
    # wetness keeps the sensor's own reflectance (Nedkov coefficients are for MSI)
    assert comp["wet"].values[0, 0] == pytest.approx(float(np.dot(rho, NEDKOV)), abs=1e-5)
    assert "red" in comp.attrs["bandpass_adjusted"] and comp.attrs["bandpass_platforms"] == "sentinel-2a"


def test_nir08_missing_for_sentinel2_is_a_clear_error() -> None:
    s2 = s2_item(_day(7, 3), ("red", "nir"))
    (group,) = groups_for([s2], ("red", "nir"))
    arrays = {"red": np.full((1, 1, 1), 1500, np.uint16), "nir": np.full((1, 1, 1), 4000, np.uint16),
              "scl": np.full((1, 1, 1), 4, np.uint8)}  # fmt: skip
    inputs = prepare_inputs([group], [loaded(group, arrays)], ["red", "nir"], rules=RULES)
    with pytest.raises(BandError, match="nir08"):
        composite(inputs, **composite_options(inputs, IDX, wet=False))
    assert {"nir", "nir08", "red"} == indices.required_bands("ndvi", "sentinel2", IDX)


def test_valid_range_composites_are_clamped_and_say_so() -> None:
    # Sentinel-2 DN 1000 = reflectance 0 exactly; in float32 1000 x 1e-4 - 0.1 = -7.45e-09
    assert np.float32(1000) * np.float32(1e-4) + np.float32(-0.1) < 0
    s2 = s2_item(_day(7, 3), ("red", "nir", "nir08"))
    (group,) = groups_for([s2], ("red", "nir", "nir08"))
    arrays = {"red": np.full((1, 1, 1), 1000, np.uint16), "nir": np.full((1, 1, 1), 4000, np.uint16),
              "nir08": np.full((1, 1, 1), 4100, np.uint16), "scl": np.full((1, 1, 1), 4, np.uint8)}  # fmt: skip
    inputs = prepare_inputs([group], [loaded(group, arrays)], ["red", "nir", "nir08"], rules=RULES)
    comp = composite(inputs, **composite_options(inputs, IDX, wet=False)).compute()
    assert comp["red"].values[0, 0] == 0.0 and comp.attrs["reflectance_in_range"] is True
    assert float(indices.ndvi(comp).values[0, 0]) == 1.0  # red 0, NIR (B8A) 0.31
    _rho, mixed = _mixed(bandpass=True)
    assert mixed.attrs["reflectance_in_range"] is False  # bandpass lines may leave [0, 1]: rule applies
