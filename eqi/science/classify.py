"""Supervised land-cover classification for years and places without a land-cover product.

Two ways in:

* **per region** (:func:`draw_samples`, :func:`train_classifier`, :func:`predict`): stratified
  pixel samples from a reference class raster, a random train/test split, prediction where every
  feature is finite.  Kept for the per-region product stage.
* **per evaluation area, tile by tile** (:func:`draw_tile_samples`, :func:`fit_two_forests`,
  :func:`predict_pixels`): candidate pixels are drawn from every tile with the *spatial block*
  they fall in; whole blocks are held out for testing (a seeded hash of the block decides), so no
  test pixel shares a block with a training pixel.  Two random forests are fitted once for the
  area: one on the main- and extra-season features, a fallback on the main-season features only,
  so every pixel with valid main-season features gets a class.  The test sample is stratified by
  *map* class, the design the Olofsson et al. (2014) estimator of :mod:`eqi.science.accuracy`
  assumes.

Features are whatever the caller supplies as an :class:`xarray.Dataset` of 2-D float variables on
the reference grid (main season ``blue, green, red, nir, swir16, swir22, ndvi, mndwi, ndbsi``;
extra seasons the same names with ``_s1``, ``_s2``, … and NaN where that season had no clear
observation); their names and order are recorded in the trained model and the report.  Results
are deterministic for a given seed (fixed ``random_state``, ``n_jobs=1``, seed streams derived
from the seed and the tile key, never from the order in which tiles are processed).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

from eqi.errors import ConfigError, InputError
from eqi.params import param_value
from eqi.science.accuracy import AccuracyReport, ClassScore, assess_accuracy

__all__ = [
    "MODELS",
    "ClassScore",
    "AccuracyReport",
    "TrainedClassifier",
    "draw_samples",
    "train_classifier",
    "assess_accuracy",
    "predict",
    "SERVED_BY",
    "LandcoverParams",
    "landcover_params",
    "Samples",
    "Forest",
    "LandcoverModel",
    "feature_columns",
    "held_out_blocks",
    "draw_tile_samples",
    "fit_two_forests",
    "predict_pixels",
    "served_codes",
    "test_sample_design",
]

#: model name → scikit-learn estimator class
# Estimators by name, imported when a model is trained: scikit-learn takes ~0.6 s to import, and a
# run that classifies nothing (NDVI, RSEI) should not pay it.  A fitted model unpickles its own.
MODELS: dict[str, str] = {"random_forest": "sklearn.ensemble:RandomForestClassifier"}


def estimator_class(name: str) -> type[ClassifierMixin]:
    """The scikit-learn estimator class registered as ``name`` in :data:`MODELS`."""
    module, _, attr = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def _check_features(reference: xr.DataArray, features: xr.Dataset) -> list[str]:
    if reference.ndim != 2:
        raise InputError(f"reference classes must be a 2-D (y, x) array, got dims {reference.dims}")
    names = [str(n) for n in features.data_vars]
    if not names:
        raise InputError("the feature Dataset has no variables; give at least one feature layer")
    for name in names:
        var = features[name]
        if var.dims != reference.dims or var.shape != reference.shape:
            raise InputError(
                f"feature '{name}' has dims {dict(var.sizes)}, the reference {dict(reference.sizes)}; "
                "put every feature on the reference grid (same dims, same order)"
            )
    return names


def draw_samples(
    reference: xr.DataArray,
    features: xr.Dataset,
    n_per_class: int,
    seed: int,
    nodata: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified random sample of pixels with a reference class and finite features.

    Parameters
    ----------
    reference
        2-D integer class codes (uint8), ``nodata`` where unknown.
    features
        Float variables on the same grid; NaN marks an invalid feature value.
    n_per_class
        Pixels drawn per class (all of them where a class has fewer).
    seed
        Seed of the NumPy random generator.
    nodata
        Reference code that is not a class.

    Returns
    -------
    X, y, rows, cols
        ``X`` float32 (n, n_features) in the order of ``features.data_vars``; ``y`` uint8 classes;
        ``rows``/``cols`` int64 pixel indices, sorted by class then position.
    """
    if n_per_class < 1:
        raise ConfigError(f"n_per_class must be ≥ 1, got {n_per_class}")
    if not np.issubdtype(reference.dtype, np.integer):
        raise InputError(f"reference classes must be integers, got dtype {reference.dtype}")
    names = _check_features(reference, features)
    finite = [np.isfinite(features[n].data) for n in names]
    valid_lazy = (reference.data != nodata) & np.logical_and.reduce(finite)
    ref, valid = dask.compute(reference.data, valid_lazy)
    ref, valid = np.asarray(ref), np.asarray(valid)
    if not valid.any():
        raise InputError("no pixel has both a reference class and finite values of every feature")

    rng = np.random.default_rng(seed)
    picked = []
    for code in np.unique(ref[valid]):
        idx = np.flatnonzero(valid & (ref == code))
        if idx.size > n_per_class:
            idx = np.sort(rng.choice(idx, size=n_per_class, replace=False))
        picked.append(idx)
    flat = np.concatenate(picked)
    rows, cols = np.unravel_index(flat, ref.shape)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)

    columns = []
    for name in names:
        data = features[name].data
        columns.append(data.vindex[rows, cols] if isinstance(data, dsa.Array) else data[rows, cols])
    X = np.column_stack([np.asarray(c) for c in dask.compute(*columns)]).astype(np.float32)
    y = ref[rows, cols].astype(np.uint8)
    return X, y, rows, cols


# --------------------------------------------------------------------------------------------
# training and prediction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedClassifier:
    """A fitted model, the feature names it expects (in order), its classes and its accuracy."""

    estimator: ClassifierMixin
    feature_names: tuple[str, ...]
    classes: tuple[int, ...]
    report: AccuracyReport


def train_classifier(
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    test_fraction: float = 0.3,
    n_estimators: int = 200,
    model: str = "random_forest",
    feature_names: Sequence[str] | None = None,
    **model_params: Any,
) -> TrainedClassifier:
    """Train on a stratified part of the samples and assess on the held-back rest.

    Parameters
    ----------
    X, y
        Samples (n, n_features) and integer classes 1..255 (e.g. from :func:`draw_samples`).
    seed
        ``random_state`` of the split and of the model (deterministic, ``n_jobs=1``).
    test_fraction
        Share of samples held back for the accuracy report (stratified by class).  Pass the
        profile's ``sampling.test_fraction``; the default (0.3, the same value) only keeps
        existing callers working.
    n_estimators
        Number of trees.  Pass the profile's ``classifier.n_estimators``; the default (200, the
        same value) only keeps existing callers working.
    model
        A key of :data:`MODELS`.
    feature_names
        Names of the columns of ``X`` (default ``f0, f1, …``); :func:`predict` selects them.
    **model_params
        Further keyword arguments of the estimator (e.g. ``max_depth``, ``min_samples_leaf``).
    """
    if model not in MODELS:
        raise ConfigError(f"unknown classifier model '{model}'; choose one of {sorted(MODELS)}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise InputError(f"X must be (n, n_features) and y (n,), got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise InputError("training samples contain NaN/inf features; draw them with draw_samples")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 1 or y.max() > 255:
        raise InputError("class codes y must be integers in 1..255 (0 is nodata)")
    names = (
        tuple(feature_names)
        if feature_names is not None
        else tuple(f"f{i}" for i in range(X.shape[1]))
    )
    if len(names) != X.shape[1]:
        raise InputError(f"{len(names)} feature names for {X.shape[1]} feature columns")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InputError(f"need at least two classes to train a classifier, got {classes.tolist()}")
    few = classes[counts < 2].tolist()
    if few:
        raise InputError(f"classes {few} have fewer than 2 samples; a stratified split needs ≥ 2")
    n_test = math.ceil(test_fraction * len(y))
    if n_test < classes.size or len(y) - n_test < classes.size:
        raise InputError(
            f"{len(y)} samples with test_fraction {test_fraction} leave too few for {classes.size} "
            "classes in the train or test part; draw more samples"
        )

    from sklearn.model_selection import train_test_split

    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    estimator = estimator_class(model)(
        n_estimators=n_estimators, random_state=seed, n_jobs=1, **model_params
    )
    estimator.fit(X_tr, y_tr)
    report = assess_accuracy(
        y_te,
        estimator.predict(X_te),
        labels=classes,
        n_train=len(y_tr),
        feature_names=names,
        model=model,
        model_params=estimator.get_params(),
        seed=seed,
        test_fraction=test_fraction,
    )
    return TrainedClassifier(
        estimator=estimator,
        feature_names=names,
        classes=tuple(int(c) for c in classes),
        report=report,
    )


def _predict_block(stack: np.ndarray, *, estimator: ClassifierMixin, nodata: int) -> np.ndarray:
    """Classify one block (..., n_features); pixels with any non-finite feature → nodata."""
    flat = stack.reshape(-1, stack.shape[-1])
    valid = np.isfinite(flat).all(axis=1)
    out = np.full(flat.shape[0], nodata, dtype=np.uint8)
    if valid.any():
        out[valid] = estimator.predict(flat[valid].astype(np.float32, copy=False))
    return out.reshape(stack.shape[:-1])


def predict(trained: TrainedClassifier, features: xr.Dataset, *, nodata: int = 0) -> xr.DataArray:
    """Classify every pixel of ``features`` (uint8 classes, ``nodata`` where a feature is NaN).

    Lazy and block-wise on Dask-backed features (one model call per spatial chunk).
    """
    missing = [n for n in trained.feature_names if n not in features.data_vars]
    if missing:
        raise InputError(
            f"the feature Dataset lacks {missing}; the model was trained on {list(trained.feature_names)}"
        )
    if nodata in trained.classes:
        raise ConfigError(f"nodata={nodata} is one of the trained classes {list(trained.classes)}")
    stack = features[list(trained.feature_names)].to_dataarray(dim="feature")
    if isinstance(stack.data, dsa.Array):
        stack = stack.chunk({"feature": -1})
    out = xr.apply_ufunc(
        _predict_block,
        stack,
        input_core_dims=[["feature"]],
        kwargs={"estimator": trained.estimator, "nodata": nodata},
        dask="parallelized",
        output_dtypes=[np.uint8],
    )
    out.name = "landcover_classified"
    out.attrs = {
        "long_name": "land cover, supervised classification",
        "nodata": nodata,
        "model": trained.report.model,
        "overall_accuracy": trained.report.overall_accuracy,
        "kappa": trained.report.kappa,
        "features": ", ".join(trained.feature_names),
    }
    return out


# --------------------------------------------------------------------------------------------
# tile workflow: parameters
# --------------------------------------------------------------------------------------------

#: codes of the "served by" layer: which model classified a pixel
SERVED_BY: dict[int, str] = {
    0: "no class (main-season features not all finite)",
    1: "full model (main- and extra-season features)",
    2: "fallback model (main-season features only)",
}

_EXTRA = re.compile(r"^(?P<base>.+)_s(?P<n>[1-9][0-9]*)$")
_FALLBACK_RULES = ("main_season_model",)
_BATCH_ROWS = 1 << 18  # rows per predict_proba call: bounds memory, does not change results


@dataclass(frozen=True)
class LandcoverParams:
    """Parameters of the tile-wise land-cover classifier (``configs/methods/landcover.yaml``).

    ``model_params`` are keyword arguments of the estimator (``n_estimators``, ``max_depth``,
    ``min_samples_leaf``, ``max_features``); ``block_size`` is in pixels; ``test_fraction`` is the
    share of blocks held out; ``test_pool_rate`` the inclusion probability of an eligible pixel of
    a held-out block in the test pool (capped per tile at ``test_pool_max_per_tile``).
    """

    main_features: tuple[str, ...]
    model: str
    model_params: Mapping[str, Any]
    block_size: int
    test_fraction: float
    train_candidates_per_class: int
    samples_per_class: int
    test_pool_rate: float
    test_pool_max_per_tile: int
    test_per_class: int
    fallback_rule: str
    z: float
    min_stratum_samples: int
    profile: Mapping[str, str] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "main_features": list(self.main_features),
            "model": self.model,
            "model_params": dict(self.model_params),
            "block_size_px": self.block_size,
            "test_fraction": self.test_fraction,
            "train_candidates_per_class_per_tile": self.train_candidates_per_class,
            "samples_per_class": self.samples_per_class,
            "test_pool_rate": self.test_pool_rate,
            "test_pool_max_per_tile": self.test_pool_max_per_tile,
            "test_per_class": self.test_per_class,
            "fallback_rule": self.fallback_rule,
            "confidence_z": self.z,
            "min_stratum_samples": self.min_stratum_samples,
            "profile": dict(self.profile),
        }


def _get(profile: Mapping[str, Any], *path: str) -> Any:
    node: Any = profile
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(
                f"configs/methods/landcover.yaml lacks '{'.'.join(path)}'; see the shipped profile"
            )
        node = node[key]
    return param_value(node)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"configs/methods/landcover.yaml {name} must be an integer ≥ 1, got {value!r}")
    return value


def _fraction(value: Any, name: str, *, closed_high: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and 0.0 < float(value) and (float(value) <= 1.0 if closed_high else float(value) < 1.0)
    if not ok:
        bound = "(0, 1]" if closed_high else "(0, 1)"
        raise ConfigError(f"configs/methods/landcover.yaml {name} must lie in {bound}, got {value!r}")
    return float(value)


def landcover_params(profile: Mapping[str, Any]) -> LandcoverParams:
    """Typed classifier parameters from the ``landcover`` method profile (ConfigError if bad)."""
    main = _get(profile, "features", "main")
    if not isinstance(main, Sequence) or isinstance(main, str) or not main:
        raise ConfigError("configs/methods/landcover.yaml features.main must be a list of names")
    main = tuple(str(n) for n in main)
    if len(set(main)) != len(main) or any(_EXTRA.match(n) for n in main):
        raise ConfigError(
            f"configs/methods/landcover.yaml features.main {list(main)}: names must be unique and "
            "not end in _s<number> (the suffix of extra seasons)"
        )
    model = str(_get(profile, "classifier", "model"))
    if model not in MODELS:
        raise ConfigError(f"unknown classifier model '{model}'; choose one of {sorted(MODELS)}")
    max_depth = _get(profile, "classifier", "max_depth")
    if max_depth is not None:
        max_depth = _positive_int(max_depth, "classifier.max_depth")
    model_params = {
        "n_estimators": _positive_int(_get(profile, "classifier", "n_estimators"), "classifier.n_estimators"),
        "max_depth": max_depth,
        "min_samples_leaf": _positive_int(
            _get(profile, "classifier", "min_samples_leaf"), "classifier.min_samples_leaf"
        ),
        "max_features": _get(profile, "classifier", "max_features"),
    }
    rule = str(_get(profile, "fallback", "rule"))
    if rule not in _FALLBACK_RULES:
        raise ConfigError(f"configs/methods/landcover.yaml fallback.rule must be one of {_FALLBACK_RULES}")
    z = _get(profile, "accuracy", "confidence_z")
    if not isinstance(z, int | float) or not z > 0:
        raise ConfigError(f"configs/methods/landcover.yaml accuracy.confidence_z must be > 0, got {z!r}")
    provenance = {}
    if hasattr(profile, "provenance"):
        provenance = dict(profile.provenance())  # type: ignore[attr-defined]
    return LandcoverParams(
        main_features=main,
        model=model,
        model_params=model_params,
        block_size=_positive_int(_get(profile, "sampling", "block_size_px"), "sampling.block_size_px"),
        test_fraction=_fraction(_get(profile, "sampling", "test_fraction"), "sampling.test_fraction"),
        train_candidates_per_class=_positive_int(
            _get(profile, "sampling", "train_candidates_per_class_per_tile"),
            "sampling.train_candidates_per_class_per_tile",
        ),
        samples_per_class=_positive_int(
            _get(profile, "sampling", "samples_per_class"), "sampling.samples_per_class"
        ),
        test_pool_rate=_fraction(
            _get(profile, "sampling", "test_pool_rate"), "sampling.test_pool_rate", closed_high=True
        ),
        test_pool_max_per_tile=_positive_int(
            _get(profile, "sampling", "test_pool_max_per_tile"), "sampling.test_pool_max_per_tile"
        ),
        test_per_class=_positive_int(_get(profile, "sampling", "test_per_class"), "sampling.test_per_class"),
        fallback_rule=rule,
        z=float(z),
        min_stratum_samples=_positive_int(
            _get(profile, "accuracy", "min_stratum_samples"), "accuracy.min_stratum_samples"
        ),
        profile=provenance,
    )


def test_sample_design(params: LandcoverParams) -> str:
    """The test-sample design in words (recorded in reports and metadata)."""
    return (
        f"spatial blocks of {params.block_size}x{params.block_size} px, a share "
        f"{params.test_fraction:g} of them held out (seeded hash of seed, tile and block); in held-out "
        "blocks an equal-probability pool of pixels with valid main-season features and a reference "
        f"class (rate {params.test_pool_rate:g}, thinned to one rate over all tiles), then a "
        f"stratified random sample by MAP class (up to {params.test_per_class} per class, map class "
        "from the same two-model rule as the map); no training pixel lies in a held-out block. "
        "Strata weights are the mapped class shares of the whole area. Reference = the reclassified "
        "land-cover product. Variances treat the sample as stratified random over the map, ignoring "
        "clustering within blocks."
    )


# --------------------------------------------------------------------------------------------
# tile workflow: features, blocks, seeds
# --------------------------------------------------------------------------------------------


def feature_columns(names: Iterable[str], main: Sequence[str]) -> tuple[str, ...]:
    """Model feature order: ``main`` in order, then each extra season (``_s1``, ``_s2``, …).

    Only extra-season variables whose base name is a main feature are used; other variables
    (e.g. observation counts) are ignored.  InputError when a main feature is missing.
    """
    names = [str(n) for n in names]
    missing = [n for n in main if n not in names]
    if missing:
        raise InputError(
            f"the features lack the main-season layers {missing}; the land-cover classifier needs "
            f"{list(main)} (configs/methods/landcover.yaml features.main)"
        )
    seasons: set[int] = set()
    for name in names:
        m = _EXTRA.match(name)
        if m and m["base"] in main:
            seasons.add(int(m["n"]))
    extras = [f"{b}_s{s}" for s in sorted(seasons) for b in main if f"{b}_s{s}" in names]
    return (*main, *extras)


def _unit_hash(*parts: object) -> float:
    """A number in [0, 1) from a stable hash of ``parts`` (same on every machine and run)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _key_int(tile_key: str) -> int:
    return int.from_bytes(hashlib.blake2b(tile_key.encode(), digest_size=8).digest(), "big")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"the land-cover seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def held_out_blocks(
    seed: int, tile_key: str, n_block_rows: int, n_block_cols: int, test_fraction: float
) -> np.ndarray:
    """Bool (n_block_rows, n_block_cols): True for blocks held out for testing.

    A block is held out when a stable hash of ``(seed, tile_key, block row, block column)`` falls
    below ``test_fraction``: the split does not depend on the other tiles nor on their order.
    """
    out = np.zeros((n_block_rows, n_block_cols), dtype=bool)
    for r in range(n_block_rows):
        for c in range(n_block_cols):
            out[r, c] = _unit_hash(seed, tile_key, r, c) < test_fraction
    return out


# --------------------------------------------------------------------------------------------
# tile workflow: samples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Samples:
    """Candidate training and test pixels of one tile.

    ``X`` float32 (n, n_features) in the order of ``feature_names`` (NaN where an extra season is
    missing); ``reference`` uint8 classes; ``rows``/``cols`` pixel indices in the tile;
    ``is_test`` True for candidates from held-out blocks; ``inclusion_prob`` the probability with
    which a test candidate entered the pool (NaN for training candidates).  The block of a pixel
    is ``(rows // block_size, cols // block_size)`` in tile ``tile_key``.
    """

    tile_key: str
    feature_names: tuple[str, ...]
    X: np.ndarray
    reference: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    is_test: np.ndarray
    inclusion_prob: np.ndarray
    block_size: int
    test_fraction: float
    seed: int
    tile_shape: tuple[int, int]
    n_test_eligible: int

    def __len__(self) -> int:
        return int(self.reference.size)

    @property
    def block_rows(self) -> np.ndarray:
        return self.rows // self.block_size

    @property
    def block_cols(self) -> np.ndarray:
        return self.cols // self.block_size


def draw_tile_samples(
    features: xr.Dataset,
    reference: xr.DataArray,
    *,
    params: LandcoverParams,
    seed: int,
    tile_key: str,
) -> Samples:
    """Candidate pixels of one tile (computes the tile's features once).

    Eligible pixels have finite main-season features and a reference class (``reference`` != 0).
    In training blocks, up to ``params.train_candidates_per_class`` pixels per reference class are
    drawn at random; in held-out blocks, each eligible pixel enters the test pool with one
    probability (``test_pool_rate``, lowered for this tile so that at most
    ``test_pool_max_per_tile`` are expected), independently of its class.
    """
    seed = _check_seed(seed)
    if not tile_key:
        raise InputError("sample_tile needs a non-empty tile_key (unique per tile of the area)")
    if not np.issubdtype(reference.dtype, np.integer):
        raise InputError(f"reference classes must be integers (uint8), got dtype {reference.dtype}")
    _check_features(reference, features)
    names = feature_columns(features.data_vars, params.main_features)
    stack = dask.compute(*[features[n].data for n in names], reference.data)
    ref = np.asarray(stack[-1])
    if ref.size and (ref.min() < 0 or ref.max() > 255):
        raise InputError("reference classes must lie in 0..255 (0 = nodata)")
    ref = ref.astype(np.uint8)
    arrays = [np.asarray(a, dtype=np.float32) for a in stack[:-1]]
    n_main = len(params.main_features)
    main_ok = np.logical_and.reduce([np.isfinite(a) for a in arrays[:n_main]])
    eligible = main_ok & (ref != 0)

    h, w = ref.shape
    nb = params.block_size
    blocks = held_out_blocks(seed, tile_key, -(-h // nb), -(-w // nb), params.test_fraction)
    in_test = np.repeat(np.repeat(blocks, nb, axis=0), nb, axis=1)[:h, :w]

    rng = np.random.default_rng(np.random.SeedSequence([seed, _key_int(tile_key)]))
    train_eligible = eligible & ~in_test
    picked = []
    for code in np.unique(ref[train_eligible]):
        idx = np.flatnonzero(train_eligible & (ref == code))
        if idx.size > params.train_candidates_per_class:
            idx = np.sort(rng.choice(idx, size=params.train_candidates_per_class, replace=False))
        picked.append(idx)
    train_idx = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)

    test_eligible = np.flatnonzero(eligible & in_test)
    n_el = int(test_eligible.size)
    rate = min(params.test_pool_rate, params.test_pool_max_per_tile / n_el) if n_el else params.test_pool_rate
    test_idx = test_eligible[rng.random(n_el) < rate]

    flat = np.concatenate([train_idx, test_idx]).astype(np.int64)
    rows, cols = np.unravel_index(flat, ref.shape)
    X = np.column_stack([a.ravel()[flat] for a in arrays]).astype(np.float32) if flat.size else (
        np.zeros((0, len(names)), dtype=np.float32)
    )
    is_test = np.zeros(flat.size, dtype=bool)
    is_test[train_idx.size :] = True
    prob = np.full(flat.size, np.nan)
    prob[train_idx.size :] = rate
    return Samples(
        tile_key=str(tile_key),
        feature_names=names,
        X=X,
        reference=ref.ravel()[flat],
        rows=rows.astype(np.int32),
        cols=cols.astype(np.int32),
        is_test=is_test,
        inclusion_prob=prob,
        block_size=nb,
        test_fraction=params.test_fraction,
        seed=seed,
        tile_shape=(int(h), int(w)),
        n_test_eligible=n_el,
    )


# --------------------------------------------------------------------------------------------
# tile workflow: models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Forest:
    """One fitted estimator, the feature names it expects (in order) and its training classes."""

    estimator: ClassifierMixin
    feature_names: tuple[str, ...]
    classes: tuple[int, ...]
    class_counts: Mapping[int, int]

    @property
    def n_train(self) -> int:
        return int(sum(self.class_counts.values()))


@dataclass(frozen=True, eq=False)
class LandcoverModel:
    """Land-cover classifier of an evaluation area and period: two forests and a test sample.

    ``full`` uses ``feature_names`` (main then extra seasons; ``None`` when there are no extra
    seasons or too few pixels with all of them); ``fallback`` uses ``main_features`` only and
    serves every pixel with finite main features and any non-finite extra feature
    (``fallback_rule``).  ``test_*`` is the held-out sample stratified by map class
    (``test_map``: class given by the model, ``test_reference``: reference class,
    ``test_served_by``: :data:`SERVED_BY` code).  ``tile_keys`` index ``*_tile`` arrays.
    Picklable (save it with :mod:`pickle` or :mod:`joblib`).
    """

    full: Forest | None
    fallback: Forest
    feature_names: tuple[str, ...]
    main_features: tuple[str, ...]
    params: LandcoverParams
    seed: int
    tile_keys: tuple[str, ...]
    train_tile: np.ndarray
    train_rows: np.ndarray
    train_cols: np.ndarray
    test_tile: np.ndarray
    test_rows: np.ndarray
    test_cols: np.ndarray
    test_map: np.ndarray
    test_reference: np.ndarray
    test_served_by: np.ndarray
    test_pool_per_class: Mapping[int, int]
    sample_report: AccuracyReport
    notes: tuple[str, ...] = ()

    @property
    def classes(self) -> tuple[int, ...]:
        full = self.full.classes if self.full is not None else ()
        return tuple(sorted(set(self.fallback.classes) | set(full)))

    def block_ids(self, which: str) -> set[tuple[str, int, int]]:
        """``{(tile_key, block_row, block_col)}`` holding ``"train"`` or ``"test"`` pixels."""
        tiles, rows, cols = (
            (self.train_tile, self.train_rows, self.train_cols)
            if which == "train"
            else (self.test_tile, self.test_rows, self.test_cols)
        )
        nb = self.params.block_size
        return {
            (self.tile_keys[t], int(r) // nb, int(c) // nb)
            for t, r, c in zip(tiles.tolist(), rows.tolist(), cols.tolist(), strict=True)
        }

    def to_metadata(self) -> dict[str, Any]:
        """JSON-friendly description: parameters, features, sample sizes, sample accuracy."""
        strata = {int(c): int(n) for c, n in zip(*np.unique(self.test_map, return_counts=True), strict=True)}
        return {
            "model": self.params.model,
            "seed": self.seed,
            "classes": list(self.classes),
            "fallback_rule": self.params.fallback_rule,
            "served_by_codes": {str(k): v for k, v in SERVED_BY.items()},
            "features": {
                "full": list(self.full.feature_names) if self.full is not None else None,
                "fallback": list(self.fallback.feature_names),
            },
            "n_train": {
                "full": self.full.n_train if self.full is not None else 0,
                "fallback": self.fallback.n_train,
            },
            "train_class_counts": {
                "full": {str(k): v for k, v in self.full.class_counts.items()} if self.full else {},
                "fallback": {str(k): v for k, v in self.fallback.class_counts.items()},
            },
            "tiles": len(self.tile_keys),
            "blocks_with_samples": {
                "train": len(self.block_ids("train")),
                "test": len(self.block_ids("test")),
            },
            "test_sample": {
                "design": test_sample_design(self.params),
                "n": int(self.test_map.size),
                "per_map_class": {str(k): v for k, v in strata.items()},
                "pool_per_map_class": {str(k): int(v) for k, v in self.test_pool_per_class.items()},
                "served_by_fallback": int((self.test_served_by == 2).sum()),
            },
            "sample_accuracy": {
                "overall_accuracy": self.sample_report.overall_accuracy,
                "kappa": self.sample_report.kappa,
            },
            "params": self.params.to_metadata(),
            "notes": list(self.notes),
        }


def _fit_forest(
    X: np.ndarray, y: np.ndarray, names: Sequence[str], params: LandcoverParams, seed: int
) -> Forest:
    estimator = estimator_class(params.model)(random_state=seed, n_jobs=1, **params.model_params)
    estimator.fit(X, y)
    codes, counts = np.unique(y, return_counts=True)
    return Forest(
        estimator=estimator,
        feature_names=tuple(names),
        classes=tuple(int(c) for c in estimator.classes_),
        class_counts={int(c): int(n) for c, n in zip(codes, counts, strict=True)},
    )


def _per_class_subsample(
    idx: np.ndarray, y: np.ndarray, n_per_class: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``n_per_class`` of ``idx`` per class of ``y[idx]``, at random, sorted."""
    out = []
    for code in np.unique(y[idx]):
        members = idx[y[idx] == code]
        if members.size > n_per_class:
            members = rng.choice(members, size=n_per_class, replace=False)
        out.append(np.sort(members))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _predict_forest(forest: Forest, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes (uint8) and winning-class probability (float32) for rows of ``X``, in batches."""
    classes = np.empty(len(X), dtype=np.uint8)
    confidence = np.empty(len(X), dtype=np.float32)
    codes = np.asarray(forest.estimator.classes_)
    for start in range(0, len(X), _BATCH_ROWS):
        part = X[start : start + _BATCH_ROWS]
        proba = forest.estimator.predict_proba(part)
        best = np.argmax(proba, axis=1)
        classes[start : start + len(part)] = codes[best]
        confidence[start : start + len(part)] = proba[np.arange(len(part)), best]
    return classes, confidence


def _route(
    X: np.ndarray, n_main: int, has_full: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rows for the full model and rows for the fallback (``fallback.rule: main_season_model``)."""
    finite = np.isfinite(X)
    main_ok = finite[:, :n_main].all(axis=1)
    full_ok = main_ok & finite.all(axis=1) if has_full else np.zeros(len(X), dtype=bool)
    return full_ok, main_ok & ~full_ok


def _predict_two(
    full: Forest | None, fallback: Forest, n_main: int, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    full_ok, fallback_ok = _route(X, n_main, full is not None)
    classes = np.zeros(len(X), dtype=np.uint8)
    confidence = np.full(len(X), np.nan, dtype=np.float32)
    served = np.zeros(len(X), dtype=np.uint8)
    if full is not None and full_ok.any():
        classes[full_ok], confidence[full_ok] = _predict_forest(full, X[full_ok])
        served[full_ok] = 1
    if fallback_ok.any():
        classes[fallback_ok], confidence[fallback_ok] = _predict_forest(
            fallback, X[fallback_ok][:, :n_main]
        )
        served[fallback_ok] = 2
    return classes, confidence, served


def served_codes(model: LandcoverModel, X: np.ndarray) -> np.ndarray:
    """uint8 :data:`SERVED_BY` code per row of ``X`` (no prediction, finiteness only)."""
    full_ok, fallback_ok = _route(np.asarray(X), len(model.main_features), model.full is not None)
    return np.where(full_ok, 1, np.where(fallback_ok, 2, 0)).astype(np.uint8)


def predict_pixels(model: LandcoverModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify rows of ``X`` (columns = ``model.feature_names``).

    Returns ``(classes uint8, confidence float32, served_by uint8)``: class 0, confidence NaN and
    served_by 0 where a main-season feature is not finite; otherwise the full model where every
    feature is finite and the fallback model elsewhere.  Confidence = the winning class's
    probability (mean over trees of the leaf class shares; the vote fraction for fully grown trees).
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != len(model.feature_names):
        raise InputError(f"X must be (n, {len(model.feature_names)}), got {X.shape}")
    return _predict_two(model.full, model.fallback, len(model.main_features), X)


def _check_samples(samples: Sequence[Samples], params: LandcoverParams, seed: int) -> list[Samples]:
    if not samples:
        raise InputError("fit_landcover needs the samples of at least one tile")
    ordered = sorted(samples, key=lambda s: s.tile_key)
    keys = [s.tile_key for s in ordered]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InputError(f"samples of tiles {dup} were given more than once; give each tile once")
    for s in ordered:
        if s.seed != seed or s.block_size != params.block_size or s.test_fraction != params.test_fraction:
            raise InputError(
                f"the samples of tile {s.tile_key} were drawn with seed {s.seed}, block size "
                f"{s.block_size}, test fraction {s.test_fraction}; the fit uses seed {seed}, block "
                f"size {params.block_size}, test fraction {params.test_fraction}: draw every tile "
                "with the same seed and profile as the fit"
            )
    return ordered


def fit_two_forests(samples: Sequence[Samples], *, params: LandcoverParams, seed: int) -> LandcoverModel:
    """Fit the full and the fallback forest on training blocks; draw the map-stratified test sample.

    Seeds: the forests use ``random_state = seed``; the training subsample, the thinning of the
    test pool and the test draw use independent streams of ``SeedSequence([seed, k])``.
    """
    seed = _check_seed(seed)
    ordered = _check_samples(samples, params, seed)
    names = feature_columns({n for s in ordered for n in s.feature_names}, params.main_features)
    column = {n: i for i, n in enumerate(names)}
    parts = []
    for s in ordered:
        block = np.full((len(s), len(names)), np.nan, dtype=np.float32)
        for j, name in enumerate(s.feature_names):
            if name in column:
                block[:, column[name]] = s.X[:, j]
        parts.append(block)
    X = np.concatenate(parts)
    y = np.concatenate([s.reference for s in ordered]).astype(np.uint8)
    is_test = np.concatenate([s.is_test for s in ordered])
    prob = np.concatenate([s.inclusion_prob for s in ordered])
    tile = np.concatenate([np.full(len(s), i, dtype=np.int32) for i, s in enumerate(ordered)])
    rows = np.concatenate([s.rows for s in ordered])
    cols = np.concatenate([s.cols for s in ordered])
    n_main = len(params.main_features)
    notes: list[str] = []

    rng_train = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    train = np.flatnonzero(~is_test)
    if np.unique(y[train]).size < 2:
        raise InputError(
            f"the training blocks hold {np.unique(y[train]).size} reference class(es); the "
            "classifier needs at least two (a larger area, or a reference with more classes)"
        )
    fb_idx = _per_class_subsample(train, y, params.samples_per_class, rng_train)
    fallback = _fit_forest(X[fb_idx][:, :n_main], y[fb_idx], names[:n_main], params, seed)
    full = None
    full_idx = np.zeros(0, dtype=np.int64)
    if len(names) > n_main:
        complete = train[np.isfinite(X[train]).all(axis=1)]
        if np.unique(y[complete]).size >= 2:
            full_idx = _per_class_subsample(complete, y, params.samples_per_class, rng_train)
            full = _fit_forest(X[full_idx], y[full_idx], names, params, seed)
        else:
            notes.append("too few training pixels with every extra season: fallback model only")

    pool = np.flatnonzero(is_test)
    if pool.size == 0:
        raise InputError(
            "no test candidates: no held-out block has pixels with a reference class and valid "
            "main-season features; use a larger area, a smaller sampling.block_size_px or a larger "
            "sampling.test_pool_rate"
        )
    rng_thin = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    p_min = float(prob[pool].min())
    pool = pool[rng_thin.random(pool.size) < p_min / prob[pool]]

    pool_map, _, pool_served = _predict_two(full, fallback, n_main, X[pool])
    rng_test = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    chosen = []
    pool_sizes: dict[int, int] = {}
    for code in np.unique(pool_map):
        members = np.flatnonzero(pool_map == code)
        pool_sizes[int(code)] = int(members.size)
        if members.size > params.test_per_class:
            members = np.sort(rng_test.choice(members, size=params.test_per_class, replace=False))
        if members.size < params.min_stratum_samples:
            notes.append(
                f"map class {int(code)}: {members.size} test samples, fewer than the "
                f"{params.min_stratum_samples} recommended (accuracy.min_stratum_samples)"
            )
        chosen.append(members)
    pick = np.concatenate(chosen)
    test_idx = pool[pick]
    train_all = np.union1d(fb_idx, full_idx)
    report = assess_accuracy(
        y[test_idx],
        pool_map[pick],
        n_train=int(train_all.size),
        feature_names=names,
        model=params.model,
        model_params=fallback.estimator.get_params(),
        seed=seed,
        test_fraction=params.test_fraction,
        sample_design=test_sample_design(params),
    )
    return LandcoverModel(
        full=full,
        fallback=fallback,
        feature_names=names,
        main_features=params.main_features,
        params=params,
        seed=seed,
        tile_keys=tuple(s.tile_key for s in ordered),
        train_tile=tile[train_all],
        train_rows=rows[train_all],
        train_cols=cols[train_all],
        test_tile=tile[test_idx],
        test_rows=rows[test_idx],
        test_cols=cols[test_idx],
        test_map=pool_map[pick],
        test_reference=y[test_idx],
        test_served_by=pool_served[pick],
        test_pool_per_class=pool_sizes,
        sample_report=report,
        notes=tuple(notes),
    )
