"""Accuracy of a classification: sample metrics and map accuracy with area estimates.

Two kinds of figure, kept apart on purpose:

* **sample metrics** (:func:`assess_accuracy`): overall accuracy, Cohen's kappa, per-class
  precision/recall/F1 and the confusion matrix of the test sample as drawn.  They describe the
  sample, not the map: a sample stratified by class over-weights rare classes.
* **map accuracy** (:func:`stratified_map_accuracy`): the stratified estimator of Olofsson et al.
  (2014, Remote Sens. Environ. 148: 42-57, §4-5) for a sample that is *stratified by map class*
  (stratified random sampling within each mapped class).  Each stratum is weighted by its mapped
  area share ``W_i``; it gives area-weighted overall accuracy, user's and producer's accuracy with
  confidence intervals and error-adjusted class areas with confidence intervals.

Orientation: the sample :class:`AccuracyReport.confusion_matrix` has reference classes in rows
(scikit-learn); the map-accuracy matrices follow Olofsson (rows = map class = stratum, columns =
reference class).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eqi.errors import InputError

__all__ = [
    "ClassScore",
    "Estimate",
    "ClassMapAccuracy",
    "MapAccuracy",
    "AccuracyReport",
    "assess_accuracy",
    "stratified_map_accuracy",
    "map_accuracy_from_samples",
]

_NAN = float("nan")


def _num(value: float) -> float | None:
    """JSON-safe float: NaN → None."""
    return None if value is None or not math.isfinite(value) else float(value)


def _float(value: Any) -> float:
    return _NAN if value is None else float(value)


# --------------------------------------------------------------------------------------------
# sample metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """Accuracy of one class on the test samples (precision = user's, recall = producer's)."""

    code: int
    precision: float
    recall: float
    f1: float
    support: int


# --------------------------------------------------------------------------------------------
# map accuracy (Olofsson et al. 2014)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """An estimate with its standard error and the half-width of its confidence interval."""

    value: float
    se: float
    half_width: float

    def __post_init__(self) -> None:
        for name in ("value", "se", "half_width"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _num(self.value), "se": _num(self.se), "half_width": _num(self.half_width)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        return cls(_float(data["value"]), _float(data["se"]), _float(data["half_width"]))

    def text(self, digits: int = 3) -> str:
        """``"0.880 ± 0.074"`` (``"—"`` when undefined)."""
        if not math.isfinite(self.value):
            return "—"
        return f"{self.value:.{digits}f} ± {self.half_width:.{digits}f}"


@dataclass(frozen=True)
class ClassMapAccuracy:
    """Map accuracy and area of one class.

    ``weight`` is the class's share ``W_i`` of the assessed mapped area; ``n_test`` the test
    samples mapped as this class (``n_i.``).  ``users`` is NaN for a class that is not an assessed
    stratum (never mapped, or fewer than 2 test samples).  Areas in km².
    """

    code: int
    mapped_pixels: int
    weight: float
    n_test: int
    users: Estimate
    producers: Estimate
    area_proportion: Estimate
    mapped_area_km2: float
    area_km2: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "mapped_pixels": self.mapped_pixels,
            "weight": _num(self.weight),
            "n_test": self.n_test,
            "users_accuracy": self.users.to_dict(),
            "producers_accuracy": self.producers.to_dict(),
            "area_proportion": self.area_proportion.to_dict(),
            "mapped_area_km2": _num(self.mapped_area_km2),
            "area_km2": self.area_km2.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassMapAccuracy:
        return cls(
            code=int(data["code"]),
            mapped_pixels=int(data["mapped_pixels"]),
            weight=_float(data["weight"]),
            n_test=int(data["n_test"]),
            users=Estimate.from_dict(data["users_accuracy"]),
            producers=Estimate.from_dict(data["producers_accuracy"]),
            area_proportion=Estimate.from_dict(data["area_proportion"]),
            mapped_area_km2=_float(data["mapped_area_km2"]),
            area_km2=Estimate.from_dict(data["area_km2"]),
        )


@dataclass(frozen=True)
class MapAccuracy:
    """Map accuracy and error-adjusted areas by the stratified estimator (Olofsson et al. 2014).

    ``labels`` index both axes of ``counts`` (sample counts ``n_ij``) and ``proportions``
    (estimated area proportions ``p̂_ij``): rows = map class, columns = reference class.
    ``unassessed`` holds mapped classes (``{code: mapped pixels}``) with fewer than 2 test samples:
    they cannot be estimated, so every figure refers to the rest of the map
    (``assessed_area_km2``).
    """

    estimator: str
    design: str
    z: float
    pixel_area_m2: float
    labels: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]
    proportions: tuple[tuple[float, ...], ...]
    overall: Estimate
    per_class: tuple[ClassMapAccuracy, ...]
    assessed_area_km2: float
    unassessed: dict[int, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def get(self, code: int) -> ClassMapAccuracy:
        """The entry of one class."""
        for entry in self.per_class:
            if entry.code == code:
                return entry
        raise KeyError(code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "design": self.design,
            "z": self.z,
            "pixel_area_m2": self.pixel_area_m2,
            "labels": list(self.labels),
            "counts_map_rows": [list(r) for r in self.counts],
            "proportions_map_rows": [[_num(v) for v in r] for r in self.proportions],
            "overall_accuracy": self.overall.to_dict(),
            "per_class": [c.to_dict() for c in self.per_class],
            "assessed_area_km2": _num(self.assessed_area_km2),
            "unassessed_mapped_pixels": {str(k): v for k, v in self.unassessed.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MapAccuracy:
        return cls(
            estimator=str(data["estimator"]),
            design=str(data["design"]),
            z=float(data["z"]),
            pixel_area_m2=float(data["pixel_area_m2"]),
            labels=tuple(int(v) for v in data["labels"]),
            counts=tuple(tuple(int(v) for v in r) for r in data["counts_map_rows"]),
            proportions=tuple(tuple(_float(v) for v in r) for r in data["proportions_map_rows"]),
            overall=Estimate.from_dict(data["overall_accuracy"]),
            per_class=tuple(ClassMapAccuracy.from_dict(c) for c in data["per_class"]),
            assessed_area_km2=_float(data["assessed_area_km2"]),
            unassessed={int(k): int(v) for k, v in data.get("unassessed_mapped_pixels", {}).items()},
            notes=tuple(str(n) for n in data.get("notes", ())),
        )

    def to_markdown(self, label: Any = str) -> str:
        """Markdown section: overall accuracy, per-class table, design statement."""
        z_pct = f"{_coverage(self.z):.0f} %"
        lines = [
            "## Map accuracy and error-adjusted areas",
            "",
            f"Estimator: {self.estimator}  ",
            f"Sampling design: {self.design}  ",
            f"Area-weighted overall accuracy: {self.overall.text()} ({z_pct} CI, z = {self.z:g})  ",
            f"Assessed map area: {self.assessed_area_km2:.3f} km²",
        ]
        if self.unassessed:
            lines.append(
                "  \nNot assessed (fewer than 2 test samples in the stratum): "
                + ", ".join(f"{label(c)} ({n} px)" for c, n in self.unassessed.items())
            )
        lines += [
            "",
            f"| class | mapped km² | test samples | user's accuracy | producer's accuracy "
            f"| adjusted area km² ({z_pct} CI) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for c in self.per_class:
            lines.append(
                f"| {label(c.code)} | {c.mapped_area_km2:.3f} | {c.n_test} | {c.users.text()} "
                f"| {c.producers.text()} | {c.area_km2.text(3)} |"
            )
        lines += [
            "",
            "Estimated area proportions p̂_ij (rows: map class, columns: reference class)",
            "",
            "| map \\ reference | " + " | ".join(label(c) for c in self.labels) + " |",
            "|---|" + "---:|" * len(self.labels),
        ]
        lines += [
            f"| {label(c)} | " + " | ".join(f"{v:.4f}" for v in row) + " |"
            for c, row in zip(self.labels, self.proportions, strict=True)
        ]
        if self.notes:
            lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"


def _coverage(z: float) -> float:
    """Two-sided coverage (%) of a normal interval of half-width ``z`` standard errors."""
    return 100.0 * math.erf(z / math.sqrt(2.0))


def stratified_map_accuracy(
    counts: np.ndarray,
    labels: Sequence[int],
    mapped_pixels: Mapping[int, int],
    pixel_area_m2: float,
    *,
    z: float,
    design: str = "stratified random sample by map class",
) -> MapAccuracy:
    """Olofsson et al. (2014) stratified estimator from a map-stratified sample.

    Parameters
    ----------
    counts
        Sample counts ``n_ij`` (k, k): test units mapped as ``labels[i]`` whose reference class is
        ``labels[j]`` (rows = map class = stratum).
    labels
        Class codes of the rows and columns.
    mapped_pixels
        Pixels mapped per class over the whole mapped area, ``{code: count}`` (defines the strata
        weights ``W_i = N_i / N``); codes not in ``labels`` are unsampled strata.
    pixel_area_m2
        Area of one pixel (m², equal-area grid).
    z
        Normal quantile of the confidence intervals (1.96 for 95 %).
    design
        Description of the sampling design, recorded in the result.

    Notes
    -----
    With ``q_ij = n_ij / n_i.`` and ``p̂_ij = W_i q_ij``: overall accuracy ``Σ p̂_ii``, user's
    accuracy ``q_ii``, producer's accuracy ``p̂_jj / p̂_.j``, area ``A p̂_.j``; variances: overall
    ``Σ W_i² q_ii (1 − q_ii) / (n_i. − 1)``; user's ``q_ii (1 − q_ii) / (n_i. − 1)``; producer's
    per Olofsson et al. (2014) (after Olofsson et al. 2013); area proportion
    ``Σ_i W_i² q_ij (1 − q_ij) / (n_i. − 1)``.  Strata with fewer than 2 samples cannot be
    estimated: they are reported in ``unassessed`` and the estimates refer to the remaining map.
    """
    counts = np.asarray(counts, dtype=np.int64)
    codes = [int(c) for c in labels]
    k = len(codes)
    if counts.shape != (k, k):
        raise InputError(f"counts must be a {k}x{k} matrix for {k} labels, got {counts.shape}")
    if (counts < 0).any():
        raise InputError("sample counts must be non-negative")
    if len(set(codes)) != k:
        raise InputError(f"duplicate class labels {codes}")
    if not pixel_area_m2 > 0:
        raise InputError(f"pixel_area_m2 must be positive, got {pixel_area_m2}")
    if not z > 0:
        raise InputError(f"z must be positive, got {z}")
    bad = {c: n for c, n in mapped_pixels.items() if int(n) < 0}
    if bad:
        raise InputError(f"mapped pixel counts must be non-negative, got {bad}")

    mapped = np.array([int(mapped_pixels.get(c, 0)) for c in codes], dtype=np.float64)
    n_i = counts.sum(axis=1).astype(np.float64)
    assessed = (mapped > 0) & (n_i >= 2)
    unassessed = {int(c): int(n) for c, n in sorted(mapped_pixels.items()) if int(n) > 0 and int(c) != 0}
    unassessed = {c: n for c, n in unassessed.items() if c not in codes or not assessed[codes.index(c)]}
    notes: list[str] = []
    orphan = [codes[i] for i in range(k) if n_i[i] > 0 and mapped[i] == 0]
    if orphan:
        notes.append(
            f"test samples mapped as {orphan}, classes with no mapped pixels, carry no weight"
        )
    if not assessed.any():
        raise InputError(
            "no mapped class has 2 or more test samples; the map accuracy cannot be estimated"
        )

    N = mapped.sum(where=assessed)
    W = np.where(assessed, mapped / N, 0.0)
    safe_n = np.where(assessed, n_i, 1.0)
    q = np.where(assessed[:, None], counts / safe_n[:, None], 0.0)
    p = W[:, None] * q
    p_col = p.sum(axis=0)
    denom = np.where(assessed, n_i - 1.0, 1.0)
    # per-stratum variance term q(1-q)/(n-1), zero for unassessed strata
    v = np.where(assessed[:, None], q * (1.0 - q) / denom[:, None], 0.0)

    diag = np.diag(q)
    overall = float(np.trace(p))
    overall_var = float((W**2 * np.diag(v)).sum())

    area_total_km2 = N * pixel_area_m2 / 1e6
    per_class = []
    for j, code in enumerate(codes):
        if assessed[j]:
            u = float(diag[j])
            u_se = math.sqrt(float(v[j, j]))
        else:
            u, u_se = _NAN, _NAN
        if p_col[j] > 0:
            prod = float(p[j, j] / p_col[j])
            n_hat = float((mapped * q[:, j]).sum(where=assessed))
            term1 = mapped[j] ** 2 * (1 - prod) ** 2 * v[j, j] if assessed[j] else 0.0
            others = [i for i in range(k) if i != j and assessed[i]]
            term2 = prod**2 * sum(mapped[i] ** 2 * v[i, j] for i in others)
            prod_se = math.sqrt((term1 + term2) / n_hat**2)
        else:
            prod, prod_se = _NAN, _NAN
        prop_se = math.sqrt(float((W**2 * v[:, j]).sum()))
        per_class.append(
            ClassMapAccuracy(
                code=code,
                mapped_pixels=int(mapped[j]),
                weight=float(W[j]),
                n_test=int(n_i[j]),
                users=Estimate(u, u_se, z * u_se),
                producers=Estimate(prod, prod_se, z * prod_se),
                area_proportion=Estimate(float(p_col[j]), prop_se, z * prop_se),
                mapped_area_km2=float(mapped[j] * pixel_area_m2 / 1e6),
                area_km2=Estimate(
                    float(p_col[j] * area_total_km2),
                    prop_se * area_total_km2,
                    z * prop_se * area_total_km2,
                ),
            )
        )
    overall_se = math.sqrt(overall_var)
    return MapAccuracy(
        estimator="stratified estimator, Olofsson et al. (2014) Remote Sens. Environ. 148: 42-57",
        design=design,
        z=float(z),
        pixel_area_m2=float(pixel_area_m2),
        labels=tuple(codes),
        counts=tuple(tuple(int(x) for x in row) for row in counts),
        proportions=tuple(tuple(float(x) for x in row) for row in p),
        overall=Estimate(overall, overall_se, z * overall_se),
        per_class=tuple(per_class),
        assessed_area_km2=float(area_total_km2),
        unassessed=unassessed,
        notes=tuple(notes),
    )


def map_accuracy_from_samples(
    map_class: np.ndarray,
    reference: np.ndarray,
    mapped_pixels: Mapping[int, int],
    pixel_area_m2: float,
    *,
    z: float,
    design: str = "stratified random sample by map class",
) -> MapAccuracy:
    """:func:`stratified_map_accuracy` from per-unit map and reference classes (1-D arrays)."""
    map_class, reference = np.asarray(map_class), np.asarray(reference)
    if map_class.shape != reference.shape or map_class.ndim != 1 or map_class.size == 0:
        raise InputError("map_class and reference must be non-empty 1-D arrays of the same length")
    mapped_codes = [int(c) for c, n in mapped_pixels.items() if int(n) > 0 and int(c) != 0]
    codes = sorted(set(np.unique(map_class).tolist()) | set(np.unique(reference).tolist()) | set(mapped_codes))
    index = {c: i for i, c in enumerate(codes)}
    counts = np.zeros((len(codes), len(codes)), dtype=np.int64)
    np.add.at(counts, ([index[int(m)] for m in map_class], [index[int(r)] for r in reference]), 1)
    return stratified_map_accuracy(counts, codes, mapped_pixels, pixel_area_m2, z=z, design=design)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of a classification: sample metrics and, when known, map accuracy.

    ``confusion_matrix[i][j]`` counts test samples of reference class ``labels[i]`` predicted as
    ``labels[j]`` (sample counts, unweighted).  ``map_accuracy`` holds the area-weighted map
    accuracy and error-adjusted areas (:func:`stratified_map_accuracy`).
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
    map_accuracy: MapAccuracy | None = None
    sample_design: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists, str keys, Python scalars; NaN as null)."""
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
            "sample_design": self.sample_design,
            "map_accuracy": None if self.map_accuracy is None else self.map_accuracy.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccuracyReport:
        """Inverse of :meth:`to_dict`."""
        mapped = data.get("map_accuracy")
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
            map_accuracy=None if mapped is None else MapAccuracy.from_dict(mapped),
            sample_design=str(data.get("sample_design", "")),
        )

    def to_markdown(self, class_names: Mapping[int, str] | None = None) -> str:
        """Markdown summary: map accuracy (if known), sample figures, per-class table, matrix."""
        names = dict(class_names or {})

        def label(code: int) -> str:
            return f"{code} {names[code]}" if code in names else str(code)

        lines: list[str] = []
        if self.map_accuracy is not None:
            lines += [self.map_accuracy.to_markdown(label), ""]
        lines += [
            "## Sample metrics (unweighted test sample: not map accuracy)",
            "",
            f"Sample overall accuracy: {self.overall_accuracy:.4f}  ",
            f"Cohen's kappa: {self.kappa:.4f}  ",
            f"Samples: {self.n_train} train, {self.n_test} test"
            + (
                f" (test fraction {self.test_fraction}, seed {self.seed})"
                if self.seed is not None
                else ""
            )
            + "  ",
        ]
        if self.sample_design:
            lines.append(f"Test sample: {self.sample_design}  ")
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
            "Confusion matrix of the sample (rows: reference, columns: predicted)",
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
    sample_design: str = "",
) -> AccuracyReport:
    """Sample metrics of predictions ``y_pred`` against reference ``y_true`` (sklearn.metrics)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise InputError("y_true and y_pred must be non-empty 1-D arrays of the same length")
    codes = np.asarray(labels) if labels is not None else np.union1d(y_true, y_pred)
    # imported here: only a classification run needs scikit-learn (see eqi.science.classify.MODELS)
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

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
        sample_design=sample_design,
    )
