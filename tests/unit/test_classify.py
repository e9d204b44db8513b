"""Supervised classification: sampling, training, accuracy report, prediction (eqi.science.classify)."""

from __future__ import annotations

import json
import warnings

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eqi.errors import ConfigError, InputError
from eqi.science.classify import (
    AccuracyReport,
    assess_accuracy,
    draw_samples,
    predict,
    train_classifier,
)

# four classes with distinct 4-band "spectra" (blue, green, red, nir reflectance)
SPECTRA = {
    1: (0.03, 0.06, 0.04, 0.40),  # forest
    3: (0.05, 0.09, 0.07, 0.28),  # grass
    4: (0.06, 0.05, 0.03, 0.02),  # water
    5: (0.15, 0.16, 0.18, 0.22),  # built-up
}
BANDS = ("blue", "green", "red", "nir")
FIT = {"seed": 0, "test_fraction": 0.3, "n_estimators": 10}


def _synthetic_scene(seed: int = 42, size: int = 200, noise: float = 0.03):
    """Reference classes in 20×20 blocks, band values = class spectrum + Gaussian noise."""
    rng = np.random.default_rng(seed)
    codes = np.array(sorted(SPECTRA), dtype=np.uint8)
    blocks = rng.choice(codes, size=(size // 20, size // 20))
    ref = np.kron(blocks, np.ones((20, 20), dtype=np.uint8)).astype(np.uint8)
    ref[:5, :] = 0  # reference nodata stripe
    spectra = np.array([SPECTRA.get(c, (0.1,) * 4) for c in range(256)], dtype=np.float32)
    bands = spectra[ref] + rng.normal(0.0, noise, size=(size, size, 4)).astype(np.float32)
    bands[100:103, 50:60, :] = np.nan  # invalid features
    features = xr.Dataset({b: (("y", "x"), bands[..., i]) for i, b in enumerate(BANDS)})
    features["ndvi"] = (features.nir - features.red) / (features.nir + features.red)
    return xr.DataArray(ref, dims=("y", "x")), features


@pytest.fixture(scope="module")
def scene():
    return _synthetic_scene()


@pytest.fixture(scope="module")
def trained(scene):
    ref, features = scene
    X, y, _, _ = draw_samples(ref, features, n_per_class=150, seed=7)
    return train_classifier(
        X, y, seed=7, test_fraction=0.3, n_estimators=50, feature_names=list(features.data_vars)
    )


def test_draw_samples_is_stratified_and_valid(scene):
    ref, features = scene
    X, y, rows, cols = draw_samples(ref, features, n_per_class=150, seed=1)
    assert X.dtype == np.float32 and X.shape == (600, 5) and y.dtype == np.uint8
    assert dict(zip(*np.unique(y, return_counts=True), strict=True)) == {
        1: 150,
        3: 150,
        4: 150,
        5: 150,
    }
    assert np.isfinite(X).all() and (ref.values[rows, cols] == y).all()
    np.testing.assert_array_equal(X[:, 3], features["nir"].values[rows, cols])
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 600  # no repeats
    # a class smaller than n_per_class is taken whole; dask-backed inputs give the same draw
    X2, y2, r2, c2 = draw_samples(ref.chunk(64), features.chunk(64), n_per_class=10**6, seed=1)
    valid = (ref.values != 0) & np.isfinite(features.to_dataarray().values).all(axis=0)
    assert len(y2) == valid.sum()
    Xd, yd, rd, cd = draw_samples(ref.chunk(64), features.chunk(64), n_per_class=150, seed=1)
    np.testing.assert_array_equal(Xd, X)
    np.testing.assert_array_equal(rd, rows)


def test_classifier_accuracy_and_report_consistency(trained):
    rep = trained.report
    assert rep.overall_accuracy >= 0.9
    cm = np.array(rep.confusion_matrix)
    n = cm.sum()
    assert n == rep.n_test == 180 and rep.n_train == 420
    assert rep.overall_accuracy == pytest.approx(np.trace(cm) / n)
    p_e = (cm.sum(axis=0) * cm.sum(axis=1)).sum() / n**2
    assert rep.kappa == pytest.approx((np.trace(cm) / n - p_e) / (1 - p_e))
    for i, score in enumerate(rep.per_class):
        assert score.code == rep.labels[i]
        assert score.recall == pytest.approx(cm[i, i] / cm[i].sum())
        assert score.precision == pytest.approx(cm[i, i] / cm[:, i].sum())
        assert score.support == cm[i].sum()
    assert rep.feature_names == ("blue", "green", "red", "nir", "ndvi")
    assert rep.model_params["random_state"] == 7 and rep.model_params["n_jobs"] == 1


def test_report_round_trips_through_json(trained):
    d = trained.report.to_dict()
    text = json.dumps(d)
    assert json.loads(text) == d
    assert AccuracyReport.from_dict(json.loads(text)) == trained.report
    md = trained.report.to_markdown({1: "林地"})
    assert "Sample overall accuracy:" in md and "| 1 林地 |" in md
    assert "not map accuracy" in md and "Map accuracy" not in md  # no map counts given
    assert md.count("\n| ") >= 2 * len(trained.report.labels)


def test_assess_accuracy_by_hand():
    rep = assess_accuracy(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2]))
    assert rep.confusion_matrix == ((1, 1), (0, 2))
    assert rep.overall_accuracy == 0.75
    assert rep.kappa == pytest.approx(0.5)  # p_o 0.75, p_e 0.5


def test_prediction_is_deterministic_and_masks_nan(scene, trained):
    ref, features = scene
    pred = predict(trained, features)
    assert pred.dtype == np.uint8 and pred.dims == ("y", "x")
    assert (pred.values[100:103, 50:60] == 0).all()
    assert set(np.unique(pred.values)) == {0, 1, 3, 4, 5}
    inside = ref.values != 0
    assert (pred.values[inside] == ref.values[inside]).mean() >= 0.9
    # same seed → identical model and predictions; dask blocks give the same bytes
    X, y, _, _ = draw_samples(ref, features, n_per_class=150, seed=7)
    again = train_classifier(
        X, y, seed=7, test_fraction=0.3, n_estimators=50, feature_names=list(features.data_vars)
    )
    lazy = predict(again, features.chunk({"y": 64, "x": 128}))
    assert isinstance(lazy.data, dsa.Array)
    np.testing.assert_array_equal(lazy.values, pred.values)
    assert again.report == trained.report


def test_user_errors_are_typed(scene, trained):
    ref, features = scene
    with pytest.raises(InputError, match="lacks"):
        predict(trained, features.drop_vars("ndvi"))
    with pytest.raises(InputError, match="reference grid"):
        draw_samples(ref, features.isel(x=slice(0, 100)), 10, seed=0)
    with pytest.raises(InputError, match="at least two classes"):
        train_classifier(np.zeros((10, 2)), np.ones(10, dtype=np.uint8), **FIT)
    with pytest.raises(InputError, match="fewer than 2 samples"):
        train_classifier(np.zeros((11, 2)), np.array([1] * 10 + [2], dtype=np.uint8), **FIT)
    with pytest.raises(ConfigError, match="unknown classifier model"):
        train_classifier(
            np.zeros((10, 2)), np.array([1, 2] * 5, dtype=np.uint8), **FIT, model="svm"
        )
    with pytest.raises(ConfigError, match="nodata"):
        predict(trained, features, nodata=1)


# ------------------------------------------------------------------ real data: Slovenia patch


def _slovenia_features(root) -> tuple[xr.DataArray, xr.Dataset]:
    """Seasonal medians (Mar–May, Jun–Aug, Sep–Nov of 2016 and 2017) of valid-only NDVI."""
    ndvi = np.load(root / "data" / "NDVI.npy")[..., 0]
    valid = np.load(root / "mask" / "IS_VALID.npy")[..., 0]
    lulc = np.load(root / "mask_timeless" / "LULC.npy")[..., 0].astype(np.uint8)
    times = pd.to_datetime(json.loads((root / "timestamps.json").read_text()))
    series = xr.DataArray(
        np.where(valid, ndvi, np.nan), dims=("time", "y", "x"), coords={"time": times}
    )
    seasons = {
        "spring": ("03-01", "05-31"),
        "summer": ("06-01", "08-31"),
        "autumn": ("09-01", "11-30"),
    }
    feats = {}
    for year in (2016, 2017):
        for name, (start, end) in seasons.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
                median = series.sel(time=slice(f"{year}-{start}", f"{year}-{end}")).median("time")
            feats[f"ndvi_{name}_{year}"] = median.astype(np.float32)
    return xr.DataArray(lulc, dims=("y", "x")), xr.Dataset(feats)


def test_slovenia_ndvi_season_classifier(sample_data):
    """Measured: OA 0.688, kappa 0.583 on 333 held-back pixels (5 classes, chance ≈ 0.25)."""
    ref, features = _slovenia_features(
        sample_data / "eolearn-s2-timeseries-slovenia" / "TestEOPatch"
    )
    X, y, _, _ = draw_samples(ref, features, n_per_class=300, seed=0)
    assert sorted(np.unique(y).tolist()) == [1, 2, 3, 4, 8]
    model = train_classifier(
        X, y, seed=0, test_fraction=0.3, n_estimators=100, feature_names=list(features.data_vars)
    )
    rep = model.report
    assert rep.n_test == 333
    assert rep.overall_accuracy >= 0.6
    assert rep.kappa >= 0.45
    pred = predict(model, features)
    assert pred.shape == ref.shape and set(np.unique(pred.values)) <= {0, 1, 2, 3, 4, 8}
