"""Supervised land-cover classification for years and places without a land-cover product.

Stratified pixel samples are drawn from a reference class raster, a scikit-learn model is trained
on part of them and assessed on the held-back rest (overall accuracy, Cohen's kappa, per-class
precision/recall/F1, confusion matrix), then applied block by block to a feature stack.

Features are whatever the caller supplies as an :class:`xarray.Dataset` of 2-D float variables on
the reference grid (e.g. composite bands plus NDVI, MNDWI, NDBSI from several seasons); their names
and order are recorded in the trained model and the report.  Results are deterministic for a
given seed (fixed ``random_state``, ``n_jobs=1``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split

from eqi.errors import ConfigError, InputError

__all__ = [
    "MODELS",
    "ClassScore",
    "AccuracyReport",
    "TrainedClassifier",
    "draw_samples",
    "train_classifier",
    "assess_accuracy",
    "predict",
]

#: model name → scikit-learn estimator class
MODELS: dict[str, type[ClassifierMixin]] = {"random_forest": RandomForestClassifier}


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
# accuracy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """Accuracy of one class on the test samples (precision = user's, recall = producer's)."""

    code: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of a classification on held-back samples.

    ``confusion_matrix[i][j]`` counts test samples of reference class ``labels[i]`` predicted as
    ``labels[j]``.
    """

    overall_accuracy: float
    kappa: float
    labels: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    per_class: tuple[ClassScore, ...]
    n_train: int
    n_test: int
    feature_names: tuple[str, ...] = ()
    model: str = ""
    model_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    test_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists, str keys, Python scalars)."""
        return {
            "overall_accuracy": self.overall_accuracy,
            "kappa": self.kappa,
            "labels": list(self.labels),
            "confusion_matrix": [list(r) for r in self.confusion_matrix],
            "per_class": [
                {
                    "code": s.code,
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for s in self.per_class
            ],
            "n_train": self.n_train,
            "n_test": self.n_test,
            "feature_names": list(self.feature_names),
            "model": self.model,
            "model_params": dict(self.model_params),
            "seed": self.seed,
            "test_fraction": self.test_fraction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccuracyReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            overall_accuracy=float(data["overall_accuracy"]),
            kappa=float(data["kappa"]),
            labels=tuple(int(v) for v in data["labels"]),
            confusion_matrix=tuple(tuple(int(v) for v in r) for r in data["confusion_matrix"]),
            per_class=tuple(ClassScore(**s) for s in data["per_class"]),
            n_train=int(data["n_train"]),
            n_test=int(data["n_test"]),
            feature_names=tuple(data.get("feature_names", ())),
            model=str(data.get("model", "")),
            model_params=dict(data.get("model_params", {})),
            seed=data.get("seed"),
            test_fraction=data.get("test_fraction"),
        )

    def to_markdown(self, class_names: Mapping[int, str] | None = None) -> str:
        """Markdown summary: headline figures, per-class table, confusion matrix."""
        names = dict(class_names or {})

        def label(code: int) -> str:
            return f"{code} {names[code]}" if code in names else str(code)

        lines = [
            f"Overall accuracy: {self.overall_accuracy:.4f}  ",
            f"Cohen's kappa: {self.kappa:.4f}  ",
            f"Samples: {self.n_train} train, {self.n_test} test"
            + (
                f" (test fraction {self.test_fraction}, seed {self.seed})"
                if self.seed is not None
                else ""
            )
            + "  ",
        ]
        if self.model:
            lines.append(f"Model: {self.model}  ")
        if self.feature_names:
            lines.append(f"Features: {', '.join(self.feature_names)}")
        lines += [
            "",
            "| class | precision (user's) | recall (producer's) | F1 | test samples |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {label(s.code)} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.support} |"
            for s in self.per_class
        ]
        lines += [
            "",
            "Confusion matrix (rows: reference, columns: predicted)",
            "",
            "| reference \\ predicted | " + " | ".join(label(c) for c in self.labels) + " |",
            "|---|" + "---:|" * len(self.labels),
        ]
        lines += [
            f"| {label(c)} | " + " | ".join(str(v) for v in row) + " |"
            for c, row in zip(self.labels, self.confusion_matrix, strict=True)
        ]
        return "\n".join(lines) + "\n"


def _json_safe(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keep JSON-representable parameter values; others become their ``repr``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[str(key)] = (
            value if value is None or isinstance(value, bool | int | float | str) else repr(value)
        )
    return out


def assess_accuracy(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    labels: Sequence[int] | None = None,
    n_train: int = 0,
    feature_names: Sequence[str] = (),
    model: str = "",
    model_params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    test_fraction: float | None = None,
) -> AccuracyReport:
    """Accuracy of predictions ``y_pred`` against reference ``y_true`` (sklearn.metrics)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise InputError("y_true and y_pred must be non-empty 1-D arrays of the same length")
    codes = np.asarray(labels) if labels is not None else np.union1d(y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred, labels=codes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=codes, zero_division=0.0
    )
    return AccuracyReport(
        overall_accuracy=float(accuracy_score(y_true, y_pred)),
        kappa=float(cohen_kappa_score(y_true, y_pred, labels=codes)),
        labels=tuple(int(c) for c in codes),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in cm),
        per_class=tuple(
            ClassScore(int(c), float(p), float(r), float(f), int(s))
            for c, p, r, f, s in zip(codes, precision, recall, f1, support, strict=True)
        ),
        n_train=int(n_train),
        n_test=int(y_true.size),
        feature_names=tuple(str(n) for n in feature_names),
        model=model,
        model_params=_json_safe(model_params or {}),
        seed=seed,
        test_fraction=test_fraction,
    )


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
    model: str = "random_forest",
    n_estimators: int = 200,
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
        Share of samples held back for the accuracy report (stratified by class).
    model
        A key of :data:`MODELS`.
    n_estimators
        Number of trees.
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

    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    estimator = MODELS[model](
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
