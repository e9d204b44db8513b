"""RSEI (spec §6, §8): orientation, sign flip, pooled vs per-year, masking, grading, determinism."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import xarray as xr

from eqi.errors import ConfigError, InputError, ThermalSourceError
from eqi.params import Param
from eqi.resources import load_profile
from eqi.science import indices
from eqi.science import rsei as _rsei

P = load_profile("rsei")


class _RseiWithProfile:
    """The RSEI module with the shipped profile passed to every function that takes ``params``."""

    def __getattr__(self, name):
        obj = getattr(_rsei, name)
        if not inspect.isfunction(obj):
            return obj
        names = inspect.signature(obj).parameters
        defaults = {"params": P, "index_params": load_profile("indices")}
        return functools.partial(obj, **{k: v for k, v in defaults.items() if k in names})


R = _RseiWithProfile()


def _scene(seed: int = 0, shape=(60, 50), noise: float = 0.02, greenness=None):
    """Components driven by one latent 'greenness': NDVI, WET up; LST, NDBSI down."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(0, 1, shape) if greenness is None else greenness

    def layer(a, b):
        return (a + b * g + noise * rng.standard_normal(shape)).astype(np.float32)

    return g, {
        "ndvi": layer(0.1, 0.7),
        "wet": layer(-0.15, 0.12),
        "lst": layer(305.0, -12.0),
        "ndbsi": layer(0.1, -0.4),
    }


def _components(layers, usable=None, chunks=None, variant="rsei", label="") -> R.RseiComponents:
    das = {}
    for name in R.VARIANTS[variant]:
        da = xr.DataArray(layers[name], dims=("y", "x"))
        das[name] = da.chunk(chunks) if chunks else da
    shape = layers["ndvi"].shape
    mask = xr.DataArray(np.ones(shape, bool) if usable is None else usable, dims=("y", "x"))
    return R.RseiComponents(variant, das, mask.chunk(chunks) if chunks else mask, "landsat8", label)


@pytest.mark.parametrize("normalisation", ["robust", "minmax"])
def test_orientation_rsei_increases_with_ndvi(normalisation):
    g, layers = _scene()
    rsei, grade, model = R.compute_rsei(_components(layers), normalisation=normalisation)
    load = model.loadings
    assert load["ndvi"] > 0 and load["wet"] > 0 and load["lst"] < 0 and load["ndbsi"] < 0
    assert np.corrcoef(rsei.values.ravel(), layers["ndvi"].ravel())[0, 1] > 0.95
    assert np.corrcoef(rsei.values.ravel(), layers["lst"].ravel())[0, 1] < -0.9
    assert rsei.dtype == np.float32 and grade.dtype == np.uint8
    assert float(rsei.min()) == 0.0 and float(rsei.max()) == 1.0
    assert model.pc1_share > 0.9 and model.qa == ()


@pytest.mark.parametrize("normalisation", ["robust", "minmax"])
def test_solver_sign_flip_is_byte_identical(normalisation):
    _, layers = _scene(seed=3)
    comps = _components(layers)
    a, ga, ma = R.compute_rsei(comps, normalisation=normalisation, sample_size=500)
    b, gb, mb = R.compute_rsei(comps, normalisation=normalisation, sample_size=500, _solver_sign=-1)
    assert a.values.tobytes() == b.values.tobytes()
    assert ga.values.tobytes() == gb.values.tobytes()
    assert ma == mb


def test_orientation_tie_rules():
    names = R.VARIANTS["rsei"]
    v = np.array([0.5, -0.5, 0.3, 0.2])  # NDVI + WET = 0 -> LST + NDBSI > 0 -> flip
    np.testing.assert_array_equal(R._orient(v, names, 1e-6), -v)
    np.testing.assert_array_equal(R._orient(-v, names, 1e-6), -v)
    v = np.array([-0.6, 0.1, 0.5, 0.6])  # NDVI + WET < 0 -> flip
    np.testing.assert_array_equal(R._orient(v, names, 1e-6), -v)


def test_independent_of_chunking_with_sampling():
    _, layers = _scene(seed=5, shape=(90, 70))
    usable = np.ones((90, 70), bool)
    usable[10:30, 20:40] = False
    ref, gref, mref = R.compute_rsei(_components(layers, usable), sample_size=1000)
    assert mref.sample_size == 1000 and mref.n_valid == (90 * 70 - 400,)
    for chunks in (7, {"y": 32, "x": 64}, 90):
        out, gout, mout = R.compute_rsei(
            _components(layers, usable, chunks=chunks), sample_size=1000
        )
        assert out.chunks is not None
        assert out.values.tobytes() == ref.values.tobytes()
        assert gout.values.tobytes() == gref.values.tobytes()
        assert mout == mref
    assert np.all(np.isnan(ref.values[10:30, 20:40])) and np.all(gref.values[10:30, 20:40] == 0)
    other = R.compute_rsei(_components(layers, usable), sample_size=1000, seed=7)[2]
    assert other.mean != mref.mean  # the seed does pick the sample


def test_pooled_and_per_year_consistent_on_stable_scenes():
    g, y1 = _scene(seed=11, noise=0.01)
    _, y2 = _scene(seed=12, noise=0.01, greenness=g)  # same landscape, new noise
    c1, c2 = _components(y1, label="2019"), _components(y2, label="2020")
    pooled = R.fit_rsei_model([c1, c2])
    assert pooled.mode == "pooled" and pooled.labels == ("2019", "2020")
    assert pooled.sample_size == 2 * 60 * 50
    r1, _ = R.apply_rsei_model(pooled, c1)
    r2, _ = R.apply_rsei_model(pooled, c2)
    delta = r2.values - r1.values
    assert abs(float(np.mean(delta))) < 0.005 and float(np.mean(np.abs(delta))) < 0.03
    per_year, _, m1 = R.compute_rsei(c1)
    assert m1.mode == "per-year"
    assert float(np.mean(np.abs(per_year.values - r1.values))) < 0.02
    # pooling a year with itself (all pixels, exact min-max) reproduces the per-year fit
    same = R.fit_rsei_model([c1, c1], normalisation="minmax")
    alone = R.fit_rsei_model([c1], normalisation="minmax")
    np.testing.assert_allclose(same.eigenvector, alone.eigenvector, atol=1e-9)
    np.testing.assert_allclose(
        R.apply_rsei_model(same, c1)[0].values, R.apply_rsei_model(alone, c1)[0].values, atol=1e-6
    )


def test_grade_boundaries():
    values = np.array([0.0, 0.19999, 0.2, 0.4, 0.6, 0.79999, 0.8, 1.0, np.nan], np.float32)
    grade = R.grade_rsei(xr.DataArray(values, dims="i"), [0.2, 0.4, 0.6, 0.8])
    assert grade.values.tolist() == [1, 1, 2, 3, 4, 4, 5, 5, 0]


def test_qa_flags_low_pc1_share():
    rng = np.random.default_rng(2)
    layers = {n: rng.uniform(0, 1, (40, 40)).astype(np.float32) for n in R.VARIANTS["rsei"]}
    model = R.fit_rsei_model([_components(layers)])
    assert model.pc1_share < 0.6
    assert "pc1_share_below_0.60" in model.qa


def test_metadata_contents():
    _, layers = _scene()
    model = R.fit_rsei_model([_components(layers, label="2020")], sample_size=700, seed=42)
    meta = model.to_metadata()
    assert set(meta["loadings"]) == {"ndvi", "wet", "lst", "ndbsi"}
    assert meta["sample_size"] == 700 and meta["seed"] == 42 and meta["mode"] == "per-year"
    assert meta["variant"] == "rsei" and len(meta["eigenvalues"]) == 4
    assert meta["eigenvalues"] == sorted(meta["eigenvalues"], reverse=True)
    assert meta["pc1_share"] == pytest.approx(meta["eigenvalues"][0] / sum(meta["eigenvalues"]))
    assert set(meta["normalisation"]["bounds"]) == set(meta["loadings"])


def test_constant_component_and_empty_year_raise():
    _, layers = _scene()
    layers["wet"] = np.full_like(layers["wet"], 0.1)
    with pytest.raises(InputError, match="wet is constant"):
        R.fit_rsei_model([_components(layers)])
    _, layers = _scene()
    with pytest.raises(InputError, match="valid pixels"):
        R.fit_rsei_model([_components(layers, usable=np.zeros((60, 50), bool), label="2021")])
    with pytest.raises(ConfigError, match="normalisation"):
        R.fit_rsei_model([_components(layers)], normalisation="zscore")


# ---------------------------------------------------------------------- from a composite Dataset


def _composite(sensor="landsat8", thermal=True, chunks=None) -> xr.Dataset:
    """8x8 land scene with a water pixel at (1, 1) and a gradient of greenness."""
    g = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    bands = {
        "blue": 0.08 - 0.05 * g, "green": 0.10 - 0.03 * g, "red": 0.12 - 0.09 * g,
        "nir": 0.20 + 0.25 * g, "swir16": 0.25 - 0.12 * g, "swir22": 0.20 - 0.14 * g,
    }  # fmt: skip
    if sensor == "sentinel2":
        bands |= {"coastal": 0.07 - 0.04 * g, "rededge1": 0.14 - 0.05 * g, "rededge2": 0.2 + 0.1 * g,
                  "rededge3": 0.22 + 0.2 * g, "nir08": 0.21 + 0.25 * g, "nir09": 0.1 + 0.1 * g}  # fmt: skip
    if thermal:
        bands["lwir"] = 310.0 - 15.0 * g
    ds = xr.Dataset(
        {k: (("y", "x"), np.asarray(v, np.float32)) for k, v in bands.items()},
        coords={"y": 1000.0 - 30.0 * np.arange(8), "x": 30.0 * np.arange(8)},
    )
    for k in ("green", "swir16"):
        ds[k][1, 1] = {"green": 0.3, "swir16": 0.02}[k]  # MNDWI > 0: water
    ds.attrs["sensor"] = sensor
    return ds.chunk(chunks) if chunks else ds


def _pipeline_components(ds, *, variant="rsei", obs_count=None, lst_from=None, observed=None, params=P, label=""):
    """RSEI components of a composite built the pipeline's way (eqi/pipeline/tile_stage.py,
    eqi/products.py): each component by indices.compute_index, LST from ``lst_from`` when given
    (heat option 2), the thermal check first, then rsei.components_from_indices with MNDWI."""
    profile = load_profile("indices")
    heat = ds if lst_from is None else lst_from
    if variant == "rsei":
        _rsei.require_thermal(heat)

    def index(name, source=ds):
        return indices.compute_index(name, source, profile)

    layers = {n: index(n, heat if n == "lst" else ds) for n in _rsei.VARIANTS.get(variant, ())}
    return _rsei.components_from_indices(
        layers, index("mndwi"), variant=variant, obs_count=obs_count, observed=observed,
        sensor=ds.attrs.get("sensor"), params=params, label=label,
    )  # fmt: skip


def test_water_is_masked_with_buffer_and_rsei_on_composite():
    comps = _pipeline_components(_composite())
    rsei, grade, model = R.compute_rsei(comps)
    nan = np.isnan(rsei.values)
    assert nan[0:3, 0:3].all() and nan.sum() == 9  # water pixel + 1-pixel buffer
    assert (grade.values[nan] == 0).all() and (grade.values[~nan] >= 1).all()
    assert model.loadings["ndvi"] > 0 and model.n_valid == (64 - 9,)
    assert rsei.values[7, 7] > rsei.values[3, 3]  # greener -> higher RSEI
    lazy = R.compute_rsei(_pipeline_components(_composite(chunks=3)))[0]
    assert lazy.values.tobytes() == rsei.values.tobytes()


def test_water_buffer_dask_matches_numpy():
    m = np.random.default_rng(0).uniform(-1, 1, (20, 23)) > 0.9
    mndwi = xr.DataArray(np.where(m, 0.5, -0.5).astype(np.float32), dims=("y", "x"))
    for n in (0, 1, 2):
        ref = R.water_mask_from_mndwi(mndwi, 0.0, n).values
        assert ref.sum() > m.sum() if n else ref.sum() == m.sum()  # the buffer grows water
        got = R.water_mask_from_mndwi(mndwi.chunk(4), 0.0, n).values
        np.testing.assert_array_equal(got, ref)


def test_water_buffer_is_scipy_binary_dilation():
    """The running-sum dilation against its oracle, scipy.ndimage (3x3 square, iterated, zero
    outside), on random masks with True pixels at the edges and corners."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    for shape, density in (((20, 23), 0.05), ((1, 9), 0.3), ((31, 1), 0.2), ((17, 16), 0.0), ((12, 12), 0.6)):
        m = rng.uniform(size=shape) < density
        m[0, 0] = m[-1, -1] = density > 0
        for n in (0, 1, 2, 3, 7):
            ref = ndimage.binary_dilation(m, structure=np.ones((3, 3), bool), iterations=n, border_value=0) if n else m
            np.testing.assert_array_equal(R._dilate_block(m, n), ref, err_msg=f"{shape} n={n}")


def test_min_observation_mask():
    obs = xr.DataArray(np.full((8, 8), 5), dims=("y", "x"))
    obs[6, 6] = 1
    comps = _pipeline_components(_composite(), obs_count=obs)
    assert not bool(comps.usable[6, 6]) and bool(comps.usable[5, 5])


def test_sentinel2_without_thermal_needs_explicit_choice():
    s2 = _composite("sentinel2", thermal=False)
    with pytest.raises(ThermalSourceError) as err:
        _pipeline_components(s2)
    msg = str(err.value)
    assert "Landsat" in msg and "ST_B10" in msg and "rsei3" in msg
    comps = _pipeline_components(s2, variant="rsei3")
    assert comps.names == ("ndvi", "wet", "ndbsi")
    rsei, _, model = R.compute_rsei(comps)
    assert rsei.name == "rsei3" and model.variant == "rsei3"
    meta = model.to_metadata()
    assert meta["variant"] == "rsei3" and "not comparable" in meta["variant_label"]
    # option 2: an LST layer from Landsat on the same grid
    landsat = _composite()
    assert _pipeline_components(s2, lst_from=landsat).names == R.VARIANTS["rsei"]
    with pytest.raises(InputError, match="grid"):
        _pipeline_components(s2, lst_from=landsat.assign_coords(x=landsat.x + 15.0))
    with pytest.raises(InputError, match="grid"):
        _pipeline_components(s2, lst_from=landsat.isel(x=slice(0, 7)))
    with pytest.raises(ConfigError, match="variant"):
        _pipeline_components(s2, variant="mrsei")


# ------------------------------------------------- minimum observations: multi-scene scope, errors


def _grid(value):
    return xr.DataArray(np.full((8, 8), value), dims=("y", "x"), coords=_composite().coords)


def test_min_observations_applies_where_a_pixel_was_observed_more_than_once():
    # (5,5): one scene, one clear obs -> kept; (6,6): 3 scenes, 1 clear -> out; (4,4): 3 scenes, 2 clear
    count = _grid(2)
    count[5, 5] = 1
    count[6, 6] = 1
    observed = _grid(3)
    observed[5, 5] = 1
    comps = _pipeline_components(_composite(), obs_count=count, observed=observed)
    assert bool(comps.usable[5, 5]) and not bool(comps.usable[6, 6]) and bool(comps.usable[4, 4])
    # a value set in the run config is strict (plan.profiles_for -> Param without scope)
    strict = P.with_overrides({"min_observations": Param(2, "[D]", "run configuration override")})
    comps = _pipeline_components(_composite(), obs_count=count, observed=observed, params=strict)
    assert not bool(comps.usable[5, 5])


def test_one_scene_rsei_runs_with_the_default_profile():
    one = _grid(1)
    rsei, _, model = R.compute_rsei(_pipeline_components(_composite(), obs_count=one, observed=one))
    assert model.n_valid == (64 - 9,)  # only water and its buffer are out


def test_rule_that_empties_rsei_names_itself_and_its_setting():
    one, two = _grid(1), _grid(2)
    comps = _pipeline_components(_composite(), obs_count=one, observed=two, label="2015")
    with pytest.raises(InputError) as err:
        R.compute_rsei(comps)
    msg = str(err.value)
    assert msg.startswith("rsei.min_observations = 2") and "2015" in msg
    assert "min_observations: 1" in msg and "0 of 55" in msg
    with pytest.raises(InputError, match="0 of 110 pixels"):  # two parts (tiles): counts summed
        R.fit_rsei_model([[comps, comps]])
    water = _composite()
    water["green"][:] = 0.3
    water["swir16"][:] = 0.02  # MNDWI > 0 everywhere
    with pytest.raises(InputError, match="RSEI water mask .*mndwi_threshold = 0.0"):
        R.compute_rsei(_pipeline_components(water))
