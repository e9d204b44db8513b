"""Tile-wise land cover: sample per tile, fit once, apply per tile, map accuracy (landcover_stage).

Synthetic tiles with a planted truth: classes in 16-px patches, per-class spectra plus noise.
Classes 2 and 3 differ little in the main season and clearly in the extra season (phenology), so
the full model beats the main-season fallback and the map has errors the accuracy must see.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr

from eqi.errors import ConfigError, InputError
from eqi.params import Profile
from eqi.pipeline import landcover_stage as stage
from eqi.resources import load_profile
from eqi.science import classify

MAIN = ("blue", "green", "red", "nir", "swir16", "swir22", "ndvi", "mndwi", "ndbsi")
CODES = np.array([1, 2, 3, 4, 5], dtype=np.uint8)
SHARE = [0.15, 0.35, 0.30, 0.05, 0.15]
SEED = 11


def _spectra() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(123)
    main = {int(c): rng.uniform(0.1, 0.9, len(MAIN)) for c in CODES}
    main[3] = main[2] + 0.06  # 2 and 3 nearly alike in the main season …
    extra = {c: v.copy() for c, v in main.items()}
    extra[3] = main[2] + 0.5  # … and far apart in the extra season
    return {c: (main[c], extra[c]) for c in main}


SPECTRA = _spectra()


def make_tile(seed: int, size: int = 256, *, extra: bool = True, noise: float = 0.08):
    """(features, reference) of one tile; reference = the planted truth (0 in a nodata stripe)."""
    rng = np.random.default_rng(seed)
    patches = rng.choice(CODES, size=(size // 16, size // 16), p=SHARE)
    truth = np.kron(patches, np.ones((16, 16), dtype=np.uint8)).astype(np.uint8)
    data = {}
    for k, name in enumerate(MAIN):
        main = np.array([SPECTRA.get(c, (np.zeros(9),) * 2)[0][k] for c in range(6)], np.float32)
        data[name] = main[truth] + rng.normal(0, noise, truth.shape).astype(np.float32)
        if extra:
            ext = np.array([SPECTRA.get(c, (np.zeros(9),) * 2)[1][k] for c in range(6)], np.float32)
            data[f"{name}_s1"] = ext[truth] + rng.normal(0, noise, truth.shape).astype(np.float32)
    features = xr.Dataset({n: (("y", "x"), v) for n, v in data.items()})
    reference = truth.copy()
    reference[:, :8] = 0  # a reference nodata stripe: still classified, never sampled
    return features, xr.DataArray(reference, dims=("y", "x")), truth


def make_profile(**sections) -> Profile:
    """The shipped landcover profile with a few values replaced (``section=dict(key=value)``)."""
    data = load_profile("landcover").to_dict()
    data["classifier"]["n_estimators"]["value"] = 40  # fast; not what the tests check
    for section, values in sections.items():
        for key, value in values.items():
            data[section][key]["value"] = value
    return Profile("landcover", data)


PROFILE = make_profile()


@pytest.fixture(scope="module")
def area():
    """Two tiles; in tile b the top 96 rows have no extra season, and a few pixels no main one."""
    fa, ra, ta = make_tile(1)
    fb, rb, tb = make_tile(2)
    for name in MAIN:
        fb[f"{name}_s1"][:96] = np.nan
    fa["ndvi"][200:203, 100:110] = np.nan  # main composite invalid
    tiles = {"x000y000": (fa, ra, ta), "x001y000": (fb, rb, tb)}
    samples = [stage.sample_tile(f, r, params=PROFILE, seed=SEED, tile_key=k) for k, (f, r, _) in tiles.items()]
    model = stage.fit_landcover(samples, params=PROFILE, seed=SEED)
    maps = {k: stage.apply_landcover(model, f) for k, (f, _, _) in tiles.items()}
    return {"tiles": tiles, "samples": samples, "model": model, "maps": maps}


def test_pixel_without_extra_season_gets_a_class_from_the_fallback(area):
    model = area["model"]
    fb, _, truth = area["tiles"]["x001y000"]
    classes, confidence = area["maps"]["x001y000"]
    served = stage.served_by(model, fb).values
    assert model.full is not None and model.full.feature_names == classify.feature_columns(fb.data_vars, MAIN)
    assert model.fallback.feature_names == MAIN
    lacking = np.zeros(truth.shape, dtype=bool)
    lacking[:96] = True
    assert (served[lacking] == 2).all() and (served[~lacking] == 1).all()
    assert (classes.values[lacking] != 0).all()
    # the fallback's classes: its own forest on the main-season features (routing check) …
    X_main = np.stack([fb[n].values[:96].ravel() for n in MAIN], axis=1)
    np.testing.assert_array_equal(classes.values[:96].ravel(), model.fallback.estimator.predict(X_main))
    # … and right against the planted truth, though less so than the full model (2 vs 3)
    assert (classes.values[lacking] == truth[lacking]).mean() >= 0.85
    assert (classes.values[~lacking] == truth[~lacking]).mean() >= 0.97
    conf = confidence.values
    assert conf.dtype == np.float32 and np.isfinite(conf).all()
    assert (conf > 0).all() and (conf <= 1).all()
    assert classes.dtype == np.uint8 and classes.attrs["nodata"] == 0


def test_coverage_every_finite_main_pixel_gets_a_class(area):
    """≥ 99 % required; the old per-region predict() covers only pixels with every season."""
    fa, _, _ = area["tiles"]["x000y000"]
    fb, _, _ = area["tiles"]["x001y000"]
    rng = np.random.default_rng(5)
    scene = fa.copy(deep=True)
    for name in MAIN:  # extra season missing at random on half the pixels (clouds)
        scene[f"{name}_s1"] = scene[f"{name}_s1"].where(rng.random(scene.ndvi.shape) > 0.5)
    for features in (scene, fb):
        classes, confidence = stage.apply_landcover(area["model"], features)
        main_ok = np.logical_and.reduce([np.isfinite(features[n].values) for n in MAIN])
        coverage = (classes.values[main_ok] != 0).mean()
        assert coverage >= 0.99 and coverage == 1.0
        assert (classes.values[~main_ok] == 0).all() and np.isnan(confidence.values[~main_ok]).all()
    old = classify.predict(
        classify.TrainedClassifier(
            area["model"].full.estimator,
            area["model"].feature_names,
            area["model"].classes,
            area["model"].sample_report,
        ),
        scene,
    )
    assert (old.values != 0).mean() < 0.6  # the defect of issue 7 item 5


def test_test_pixels_are_spatially_separated_from_training_pixels(area):
    model, nb = area["model"], PROFILE.value("sampling", "block_size_px")
    train = {
        (model.tile_keys[t], r // nb, c // nb)
        for t, r, c in zip(model.train_tile, model.train_rows, model.train_cols, strict=True)
    }
    test = {
        (model.tile_keys[t], r // nb, c // nb)
        for t, r, c in zip(model.test_tile, model.test_rows, model.test_cols, strict=True)
    }
    assert len(train) > 20 and len(test) > 5 and not (train & test)
    # stronger: no held-out block holds even a training candidate of the samples
    for s in area["samples"]:
        blocks = list(zip((s.rows // nb).tolist(), (s.cols // nb).tolist(), strict=True))
        held = {b for b, t in zip(blocks, s.is_test, strict=True) if t}
        train_blocks = {b for b, t in zip(blocks, s.is_test, strict=True) if not t}
        assert held and train_blocks and not (held & train_blocks)
        assert (s.reference != 0).all() and (s.cols >= 8).all()  # never from reference nodata


def test_test_sample_is_stratified_by_map_class_and_matches_the_map(area):
    model = area["model"]
    per_class = PROFILE.value("sampling", "test_per_class")
    codes, counts = np.unique(model.test_map, return_counts=True)
    for code, n in zip(codes, counts, strict=True):
        assert n == min(per_class, model.test_pool_per_class[int(code)])
    assert set(codes.tolist()) == set(model.test_pool_per_class)
    # the map class of a test pixel is the class the map shows there (same two-model rule)
    for t, r, c, m, served in zip(
        model.test_tile, model.test_rows, model.test_cols, model.test_map, model.test_served_by, strict=True
    ):
        classes, _ = area["maps"][model.tile_keys[t]]
        assert classes.values[r, c] == m
        if model.tile_keys[t] == "x001y000" and r < 96:
            assert served == 2
    # the reference class of a test pixel is the tile's reference there
    for t, r, c, ref in zip(model.test_tile, model.test_rows, model.test_cols, model.test_reference, strict=True):
        assert area["tiles"][model.tile_keys[t]][1].values[r, c] == ref


def test_map_accuracy_estimates_the_true_map_accuracy(area):
    """Truth known everywhere: the Olofsson estimates must cover the true figures of the map."""
    counts: dict[int, int] = {}
    agree = total = 0
    true_area = np.zeros(6)
    for key, (classes, _) in area["maps"].items():
        truth = area["tiles"][key][2]
        for code, n in stage.mapped_pixel_counts(classes).items():
            counts[code] = counts.get(code, 0) + n
        valid = classes.values != 0
        agree += int((classes.values[valid] == truth[valid]).sum())
        total += int(valid.sum())
        true_area += np.bincount(truth[valid], minlength=6)
    report = stage.map_accuracy(area["model"], counts, 900.0)
    ma = report.map_accuracy
    true_oa = agree / total
    assert abs(ma.overall.value - true_oa) <= ma.overall.half_width + 1e-9
    assert ma.assessed_area_km2 == pytest.approx(total * 900 / 1e6)
    # Class areas: within 2 half-widths (≈ 4 SE) wherever the sample saw errors. A class whose
    # test samples show none has a zero-width interval although a few of its pixels may be
    # omitted in other strata (a property of the estimator), so it is checked to 0.5 % only.
    checked = 0
    for entry in ma.per_class:
        truth_km2 = true_area[entry.code] * 900 / 1e6
        if entry.area_km2.se > 0:
            assert abs(entry.area_km2.value - truth_km2) <= 2 * entry.area_km2.half_width, entry.code
            checked += 1
        else:
            assert entry.area_km2.value == pytest.approx(truth_km2, rel=5e-3), entry.code
    assert checked >= 2
    assert ma.get(2).users.value < 1.0 or ma.get(3).users.value < 1.0  # the planted confusion is seen
    md = report.to_markdown()
    assert "Area-weighted overall accuracy" in md and "stratified random sample by MAP class" in md
    assert report.n_test == area["model"].test_map.size
    import json

    assert json.loads(json.dumps(report.to_dict()))["map_accuracy"]["z"] == 1.96


def test_deterministic_order_independent_and_picklable(area, tmp_path):
    model = area["model"]
    again = stage.fit_landcover(list(reversed(area["samples"])), params=PROFILE, seed=SEED)
    np.testing.assert_array_equal(again.test_map, model.test_map)
    np.testing.assert_array_equal(again.test_rows, model.test_rows)
    fa, ra, _ = area["tiles"]["x000y000"]
    redrawn = stage.sample_tile(fa, ra, params=PROFILE, seed=SEED, tile_key="x000y000")
    np.testing.assert_array_equal(redrawn.X, area["samples"][0].X)
    path = stage.save_model(model, tmp_path / "landcover-model.pkl")
    loaded = stage.load_model(path)
    for features in (fa, fa.chunk({"y": 64, "x": 128})):
        classes, confidence = stage.apply_landcover(loaded, features)
        np.testing.assert_array_equal(classes.values, area["maps"]["x000y000"][0].values)
        np.testing.assert_array_equal(confidence.values, area["maps"]["x000y000"][1].values)
    assert pickle.loads(pickle.dumps(model)).to_metadata() == model.to_metadata()
    meta = model.to_metadata()
    assert meta["n_train"]["fallback"] > 0 and meta["blocks_with_samples"]["test"] > 0
    assert meta["params"]["block_size_px"] == 32 and meta["seed"] == SEED


def test_tile_lacking_the_extra_season_variables_and_dask_inputs(area):
    """A tile whose season had no scenes at all: the variables are absent → fallback everywhere."""
    fa, ra, truth = area["tiles"]["x000y000"]
    main_only = fa[list(MAIN)]
    classes, _ = stage.apply_landcover(area["model"], main_only.chunk(100))
    assert (stage.served_by(area["model"], main_only).values[np.isfinite(fa.ndvi.values)] == 2).all()
    assert (classes.values != 0).sum() == np.isfinite(fa.ndvi.values).sum()
    s = stage.sample_tile(main_only.chunk(100), ra.chunk(100), params=PROFILE, seed=SEED, tile_key="z")
    assert s.feature_names == MAIN and len(s) > 0


def test_equal_inclusion_probability_across_tiles():
    """A tile over the pool cap gets a lower rate; the fit thins every tile to the lowest rate."""
    profile = make_profile(sampling={"test_pool_rate": 0.5, "test_pool_max_per_tile": 2000})
    fa, ra, _ = make_tile(3)
    fs, rs, _ = make_tile(4, size=64)
    big = stage.sample_tile(fa, ra, params=profile, seed=SEED, tile_key="big")
    small = stage.sample_tile(fs, rs, params=profile, seed=SEED, tile_key="small")
    assert big.n_test_eligible > 4000
    assert np.all(big.inclusion_prob[big.is_test] == 2000 / big.n_test_eligible)
    assert np.all(small.inclusion_prob[small.is_test] == 0.5)  # far below the cap
    assert np.all(np.isnan(big.inclusion_prob[~big.is_test]))
    n_big = big.is_test.sum()
    assert abs(n_big - 2000) < 5 * np.sqrt(2000)  # Bernoulli draws: 2000 expected


def test_user_errors_are_typed(area):
    fa, ra, _ = area["tiles"]["x000y000"]
    samples = area["samples"]
    with pytest.raises(InputError, match="drawn with seed 11"):
        stage.fit_landcover(samples, params=PROFILE, seed=12)
    with pytest.raises(InputError, match="more than once"):
        stage.fit_landcover([samples[0], samples[0]], params=PROFILE, seed=SEED)
    with pytest.raises(InputError, match=r"lack the main-season layers \['swir22'\]"):
        stage.sample_tile(fa.drop_vars("swir22"), ra, params=PROFILE, seed=SEED, tile_key="a")
    with pytest.raises(InputError, match="main-season layers"):
        stage.apply_landcover(area["model"], fa.drop_vars("ndvi"))
    with pytest.raises(InputError, match="at least two"):
        one = xr.DataArray(np.where(ra.values > 0, 2, 0).astype(np.uint8), dims=("y", "x"))
        s = stage.sample_tile(fa, one, params=PROFILE, seed=SEED, tile_key="a")
        stage.fit_landcover([s], params=PROFILE, seed=SEED)
    with pytest.raises(InputError, match="integers"):
        stage.sample_tile(fa, ra.astype("float32"), params=PROFILE, seed=SEED, tile_key="a")
    with pytest.raises(ConfigError, match="test_fraction"):
        stage.sample_tile(fa, ra, params=make_profile(sampling={"test_fraction": 1.5}), seed=SEED, tile_key="a")
    with pytest.raises(ConfigError, match="non-negative"):
        stage.sample_tile(fa, ra, params=PROFILE, seed=-1, tile_key="a")
