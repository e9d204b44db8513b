"""Spectral indices: spyndex as oracle on real Landsat 8 spectra, hand-computed 2x2 pixels (spec §8.1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import spyndex
import xarray as xr

from eqi.errors import BandError, ConfigError, ThermalSourceError
from eqi.resources import load_profile
from eqi.science import indices

IDX = load_profile("indices")

LANDSAT_ALIASES = {
    "SR_B2": "blue",
    "SR_B3": "green",
    "SR_B4": "red",
    "SR_B5": "nir",
    "SR_B6": "swir16",
    "SR_B7": "swir22",
    "ST_B10": "lwir",
}


@pytest.fixture(scope="module")
def spectra(sample_data) -> pd.DataFrame:
    return pd.read_json(sample_data / "spyndex-samples" / "spectral.json")


@pytest.fixture(scope="module")
def spectral_ds(spectra) -> xr.Dataset:
    data = {
        alias: ("pixel", spectra[band].to_numpy(np.float32))
        for band, alias in LANDSAT_ALIASES.items()
    }
    return xr.Dataset(data, attrs={"sensor": "landsat8"})


def _spyndex_params(df: pd.DataFrame) -> dict[str, pd.Series]:
    # oracle in float64 on the same float32 inputs
    f = {
        alias: df[band].astype(np.float32).astype(np.float64)
        for band, alias in LANDSAT_ALIASES.items()
    }
    return {
        "B": f["blue"],
        "G": f["green"],
        "R": f["red"],
        "N": f["nir"],
        "S1": f["swir16"],
        "S2": f["swir22"],
    }


# name in eqi -> (spyndex index, extra constants); EVI uses spyndex's own default constants, so a
# drift of indices.yaml from the catalogue's g, C1, C2, L is caught too.
SPYNDEX_ORACLE = {
    "ndvi": ("NDVI", {}),
    "evi": ("EVI", {k: spyndex.constants[k].default for k in ("g", "C1", "C2", "L")}),
    "savi": ("SAVI", {"L": 0.5}),
    "ndwi": ("NDWI", {}),
    "mndwi": ("MNDWI", {}),
    "ndbi": ("NDBI", {}),
    "si": ("BI", {}),  # spec's SI is spyndex's "Bare Soil Index"
}


@pytest.mark.parametrize("name", sorted(SPYNDEX_ORACLE))
def test_index_matches_spyndex_on_real_spectra(name, spectra, spectral_ds):
    sp_name, consts = SPYNDEX_ORACLE[name]
    expected = spyndex.computeIndex(
        sp_name, params={**_spyndex_params(spectra), **consts}
    ).to_numpy()
    got = indices.compute_index(name, spectral_ds, IDX)
    assert got.dtype == np.float32
    assert got.name == name
    np.testing.assert_allclose(got.values, expected, rtol=0, atol=1e-6)


def test_spyndex_ibi_is_a_different_formula(spectra, spectral_ds):
    # documents why eqi implements IBI itself (spec §6.1 ratio form)
    theirs = spyndex.computeIndex("IBI", params={**_spyndex_params(spectra), "L": 0.5}).to_numpy()
    assert np.nanmax(np.abs(indices.ibi(spectral_ds).values - theirs)) > 0.05


def test_ndvi_orders_vegetation_urban_water(spectra, spectral_ds):
    med = pd.Series(indices.ndvi(spectral_ds).values).groupby(spectra["class"]).median()
    assert med["Vegetation"] > med["Urban"] > med["Water"]


def test_wetness_and_lst_physical_ranges(spectra, spectral_ds):
    w = indices.wet(params=IDX, ds=spectral_ds)
    assert w.attrs["tasseled_cap_set"] == "oli_baig2014"
    assert np.all((w.values > -1) & (w.values < 1))
    med = pd.Series(w.values).groupby(spectra["class"]).median()
    assert med["Urban"] < med["Vegetation"]  # built-up surfaces are dry
    t = indices.lst(spectral_ds)
    assert t.attrs["units"] == "K"
    assert np.all((t.values > 250) & (t.values < 340))


# --------------------------------------------------------------------------- hand-computed 2x2

# pixel (0,0) bright/built, (0,1) vegetation, (1,0) water, (1,1) nodata
HAND = {
    "blue": [[0.10, 0.02], [0.06, np.nan]],
    "green": [[0.20, 0.05], [0.08, np.nan]],
    "red": [[0.30, 0.03], [0.05, np.nan]],
    "nir": [[0.40, 0.45], [0.03, np.nan]],
    "swir16": [[0.50, 0.15], [0.01, np.nan]],
    "swir22": [[0.60, 0.07], [0.005, np.nan]],
}
SI_HAND = [[3 / 13, -29 / 65], [-1 / 5, np.nan]]
IBI_HAND = [[4 / 31, -11 / 27], [-55 / 127, np.nan]]


def _hand_ds(sensor: str = "landsat8", chunks: int | None = None) -> xr.Dataset:
    ds = xr.Dataset(
        {k: (("y", "x"), np.array(v, np.float32)) for k, v in HAND.items()},
        attrs={"sensor": sensor},
    )
    return ds.chunk(chunks) if chunks else ds


def test_si_ibi_ndbsi_hand_computed():
    ds = _hand_ds()
    np.testing.assert_allclose(indices.si(ds).values, SI_HAND, atol=1e-6)
    np.testing.assert_allclose(indices.ibi(ds).values, IBI_HAND, atol=1e-6)
    expected = (np.array(SI_HAND) + np.array(IBI_HAND)) / 2
    np.testing.assert_allclose(indices.ndbsi(ds).values, expected, atol=1e-6)
    assert np.isnan(indices.ndbsi(ds).values[1, 1])


def test_wet_hand_computed_with_spec_coefficients():
    # spec §6.1 coefficients typed here independently of indices.yaml (catches e.g. -0.7171 typos)
    oli = (0.1511, 0.1973, 0.3283, 0.3407, -0.7117, -0.4559)
    tm = (0.0315, 0.2021, 0.3102, 0.1594, -0.6806, -0.6109)
    etm = (0.2626, 0.2141, 0.0926, 0.0656, -0.7629, -0.5388)
    bands = np.array([HAND[b] for b in ("blue", "green", "red", "nir", "swir16", "swir22")])
    assert indices.wet(params=IDX, ds=_hand_ds("landsat8")).values[0, 0] == pytest.approx(-0.34005, abs=1e-6)
    assert indices.wet(params=IDX, ds=_hand_ds("landsat5")).values[0, 0] == pytest.approx(-0.50645, abs=1e-6)
    for sensor, coeffs in (
        ("landsat8", oli),
        ("landsat9", oli),
        ("landsat5", tm),
        ("landsat7", etm),
    ):
        expected = np.tensordot(np.array(coeffs), bands, axes=1)
        np.testing.assert_allclose(indices.wet(params=IDX, ds=_hand_ds(sensor)).values, expected, atol=1e-6)


def test_wet_sentinel2_nedkov_band_mapping():
    nedkov = {  # spec §6.1, S2 band -> coefficient; B10 dropped
        "coastal": 0.0649, "blue": 0.1363, "green": 0.2802, "red": 0.3072, "rededge1": 0.5288,
        "rededge2": 0.1379, "rededge3": -0.0001, "nir": -0.0807, "nir09": -0.0302,
        "swir16": -0.4064, "swir22": -0.5602, "nir08": -0.1389,
    }  # fmt: skip
    values = {alias: 0.01 * (i + 1) for i, alias in enumerate(sorted(nedkov))}  # distinct per band
    ds = xr.Dataset(
        {a: (("y", "x"), np.full((2, 2), v, np.float32)) for a, v in values.items()},
        attrs={"sensor": "sentinel2"},
    )
    expected = sum(nedkov[a] * values[a] for a in nedkov)
    np.testing.assert_allclose(indices.wet(params=IDX, ds=ds).values, expected, atol=1e-6)
    with pytest.raises(BandError, match="rededge1"):
        indices.wet(params=IDX, ds=ds.drop_vars("rededge1"))


def test_dask_input_stays_lazy_and_matches_numpy():
    eager = _hand_ds()
    lazy = _hand_ds(chunks=1)
    for name in indices.INDEX_FUNCTIONS:
        if name == "lst":
            continue
        out = indices.compute_index(name, lazy, IDX)
        assert out.chunks is not None, name
        assert out.dtype == np.float32, name
        np.testing.assert_array_equal(out.values, indices.compute_index(name, eager, IDX).values)


def test_lst_kelvin_celsius_and_missing_thermal():
    ds = xr.Dataset(
        {"lwir": (("y", "x"), np.array([[300.0, 273.15]], np.float32))},
        attrs={"sensor": "landsat8"},
    )
    c = indices.lst_celsius(indices.lst(ds))
    assert c.dtype == np.float32 and c.attrs["units"] == "degC"
    np.testing.assert_allclose(c.values, [[26.85, 0.0]], atol=1e-4)
    with pytest.raises(ThermalSourceError, match="rsei3"):
        indices.lst(_hand_ds("sentinel2"))


def test_required_bands_and_errors():
    assert indices.required_bands("ndvi", "landsat8", IDX) == {"nir", "red"}
    assert indices.required_bands("wet", "landsat5", IDX) == {
        "blue",
        "green",
        "red",
        "nir",
        "swir16",
        "swir22",
    }
    assert {"coastal", "rededge3", "nir08", "nir09"} <= indices.required_bands("wet", "sentinel2", IDX)
    assert "lwir" in indices.required_bands("rsei", "landsat8", IDX)
    assert "lwir" not in indices.required_bands("rsei3", "sentinel2", IDX)
    # + water mask; Sentinel-2's nir composite is made from B8A (indices.yaml nir_band, spec §6.1)
    assert indices.required_bands("fvc", "sentinel2", IDX) == {"nir", "nir08", "red", "green", "swir16"}
    assert indices.required_bands("fvc", "landsat8", IDX) == {"nir", "red", "green", "swir16"}
    with pytest.raises(ConfigError, match="unknown index"):
        indices.required_bands("foo", "landsat8", IDX)
    with pytest.raises(ConfigError, match="unknown sensor"):
        indices.required_bands("ndvi", "modis", IDX)
    with pytest.raises(BandError, match="sensor"):
        indices.wet(params=IDX, ds=_hand_ds("spot"))
    with pytest.raises(BandError, match="swir16"):
        indices.mndwi(_hand_ds().drop_vars("swir16"))


def test_index_info_covers_registry_and_config_is_tagged():
    assert set(indices.INDEX_FUNCTIONS) == set(indices.INDEX_INFO)
    assert indices.INDEX_INFO["ndvi"].attrs()["valid_range"] == [-1.0, 1.0]
    cfg = load_profile("indices")
    for s in cfg["tasseled_cap_wetness"]["sets"].values():
        assert s["tag"] and s["source"]
    assert cfg["tasseled_cap_wetness"]["sensor_sets"]["landsat9"] == "oli_baig2014"


def test_reflectance_outside_0_1_makes_the_index_nan_and_ranges_hold():
    # Liverpool-like water pixel: negative NIR and SWIR1 (DN below 7273); IBI by hand would be huge
    s1, n, r, g, b = -0.0010, 0.0011, 0.02, 0.03, 0.04
    built, vw = 2 * s1 / (s1 + n), n / (n + r) + g / (g + s1)
    assert abs((built - vw) / (built + vw)) > 1  # the formula itself leaves [-1, 1]
    ds = xr.Dataset(
        {k: ("pixel", np.array([v, 0.2], np.float32)) for k, v in
         {"swir16": s1, "nir": n, "red": r, "green": g, "blue": b}.items()},
        attrs={"sensor": "landsat8"},
    )  # second pixel: all 0.2
    for name in ("ibi", "ndbsi", "mndwi", "si", "ndbi"):  # every index using SWIR1
        values = indices.compute_index(name, ds, IDX).values
        assert np.isnan(values[0]) and np.isfinite(values[1]), name
    assert indices.ndvi(ds).values[0] == pytest.approx((n - r) / (n + r), rel=1e-5)  # its inputs are valid
    assert indices.ndvi(ds).values[1] == 0.0
    # reflectance above 1 (saturated / bright cloud residue) is invalid too
    bright = ds.assign(nir=("pixel", np.array([1.2, 0.5], np.float32)))
    assert np.isnan(indices.ndvi(bright).values[0]) and np.isfinite(indices.ndvi(bright).values[1])
    # exhaustive corners of [0, 1]^5: every index stays in [-1, 1] (0/0 -> NaN)
    grid = np.array(np.meshgrid(*[[0.0, 1e-6, 0.5, 1.0]] * 5)).reshape(5, -1).astype(np.float32)
    corner = xr.Dataset({k: ("pixel", grid[i]) for i, k in enumerate(("swir16", "nir", "red", "green", "blue"))})
    for name in ("ibi", "ndbsi", "ndvi", "mndwi", "si", "ndbi", "ndwi"):
        values = indices.compute_index(name, corner, IDX).values
        finite = values[np.isfinite(values)]
        assert finite.min() >= -1 and finite.max() <= 1, name


def test_wet_from_a_composite_whose_nir_is_b8a_is_refused():
    ds = xr.Dataset(
        {k: ("pixel", np.array([0.1], np.float32)) for k in
         ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09", "swir16", "swir22")},
        attrs={"sensor": "sentinel2", "nir_sources": "sentinel2: nir08"},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="per observation"):
        indices.wet(ds, IDX)


def test_bandpass_and_nir_profile_entries_are_tagged():
    assert indices.nir_sources(IDX) == {"sentinel2": "nir08"}
    lines = indices.bandpass_coefficients(IDX)
    assert lines["sentinel-2a"]["red"] == (0.9765, 0.0009) and lines["sentinel-2b"]["nir08"] == (0.9966, 0.0)
    cfg = IDX["bandpass_adjustment"]
    assert all(s["tag"] and s["source"] for s in cfg["sets"].values())
    assert cfg["enabled"]["value"] is False
