"""Project-scale impact statistics (spec §4.5, HJ 1175-2021): BACI differences with bootstrap
confidence intervals, land-change rates, fragmentation, disturbance and matched controls.

Pure NumPy/SciPy: arrays and parameters in, numbers out.  Every parameter (thresholds, bootstrap
settings, strata) comes from the method profile ``configs/methods/impact-hj1175-2021.yaml``.

Conventions: ``before``/``after`` are co-registered float arrays with NaN for invalid pixels;
``Δ = mean(after − before)`` over the pixels valid in both years (paired differences); the impact
statistic is ``Δ_impact − Δ_control`` (spec §4.5).  Intervals are two-sided percentile bootstrap
intervals.  Neighbouring pixels are not independent, so by default the resampled units are
spatial blocks (``block_px`` × ``block_px`` pixels; a cluster bootstrap of the weighted mean;
zones with more than ``max_blocks`` blocks resample a random subset of them: a wider interval);
with ``block_px = 0`` single pixels are resampled after subsampling each zone to ``max_pixels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = [
    "Interval",
    "BootstrapSettings",
    "replicate_means",
    "delta_interval",
    "baci",
    "dynamic_degree",
    "conversion_out_intensity",
    "fragmentation",
    "disturbance_mask",
    "slope_degrees",
    "strata",
    "match_weights",
    "iou",
]


@dataclass(frozen=True)
class BootstrapSettings:
    """Bootstrap parameters (method profile ``bootstrap``)."""

    replicates: int = 1000
    confidence: float = 0.95
    max_pixels: int = 2000
    seed: int = 0
    block_px: int = 0  # > 0: spatial block bootstrap with blocks of block_px x block_px pixels
    max_blocks: int = 5000  # more blocks in a zone: a random subset of them is resampled


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval and the pixels behind it."""

    value: float
    low: float
    high: float
    n: int  # pixels (valid in both years)
    n_resampled: int  # pixels entering the bootstrap after subsampling

    def excludes_zero(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "n_resampled": self.n_resampled}


def replicate_means(
    values: NDArray[np.floating],
    settings: BootstrapSettings,
    *,
    weights: NDArray[np.floating] | None = None,
    blocks: NDArray[np.integer] | None = None,
    stream: int = 0,
) -> tuple[float, NDArray[np.float64], int]:
    """(weighted mean of all values, bootstrap replicate means, resampling units).

    NaN values are dropped.  ``weights`` (≥ 0, e.g. matching weights) weight the mean.  With
    ``blocks`` (a spatial block id per value) the units resampled are blocks (cluster bootstrap of
    the ratio Σ w v / Σ w: spatial autocorrelation inside a block is kept); without, pixels, first
    subsampled without replacement to ``settings.max_pixels``.  ``stream`` separates the random
    streams of zones.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    ok = np.isfinite(v) & (w > 0)
    v, w = v[ok], w[ok]
    reps = np.full(settings.replicates, np.nan)
    if v.size == 0:
        return float("nan"), reps, 0
    mean = float(np.average(v, weights=w))
    rng = np.random.default_rng([settings.seed, stream])
    if blocks is not None:
        b = np.asarray(blocks, dtype=np.int64).ravel()[ok]
        b -= b.min()
        sums = np.bincount(b, weights=w * v)
        tots = np.bincount(b, weights=w)
        keep = tots > 0
        sums, tots = sums[keep], tots[keep]
        if sums.size > settings.max_blocks:  # subsample blocks: a wider (conservative) interval
            pick = rng.choice(sums.size, settings.max_blocks, replace=False)
            sums, tots = sums[pick], tots[pick]
        units = sums.size
        chunk = max(1, 4_000_000 // max(units, 1))
        for start in range(0, settings.replicates, chunk):
            n = min(chunk, settings.replicates - start)
            idx = rng.integers(0, units, (n, units))
            reps[start : start + n] = sums[idx].sum(axis=1) / tots[idx].sum(axis=1)
        return mean, reps, int(units)
    if v.size > settings.max_pixels:
        keep = rng.choice(v.size, settings.max_pixels, replace=False)
        v, w = v[keep], w[keep]
    p = None if weights is None else w / w.sum()
    idx = rng.choice(v.size, (settings.replicates, v.size), replace=True, p=p)
    return mean, v[idx].mean(axis=1), int(v.size)


def _interval(value: float, reps: NDArray[np.float64], n: int, n_res: int, confidence: float) -> Interval:
    if not np.isfinite(value) or n_res < 2:
        return Interval(value, float("nan"), float("nan"), n, n_res)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a])
    return Interval(value, float(lo), float(hi), n, n_res)


def delta_interval(
    before: NDArray[np.floating],
    after: NDArray[np.floating],
    settings: BootstrapSettings,
    *,
    weights: NDArray[np.floating] | None = None,
    blocks: NDArray[np.integer] | None = None,
    stream: int = 0,
) -> tuple[Interval, NDArray[np.float64]]:
    """Δ = mean(after − before) over pixels valid in both years, its interval, and replicates."""
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    n = int(np.isfinite(d).sum() if weights is None else (np.isfinite(d) & (np.asarray(weights) > 0)).sum())
    mean, reps, n_res = replicate_means(d, settings, weights=weights, blocks=blocks, stream=stream)
    return _interval(mean, reps, n, n_res, settings.confidence), reps


def baci(
    impact: tuple[Interval, NDArray[np.float64]],
    control: tuple[Interval, NDArray[np.float64]],
    confidence: float,
) -> Interval:
    """Δ_impact − Δ_control with the percentile interval of the difference of replicates."""
    (ii, ir), (ci, cr) = impact, control
    value = ii.value - ci.value
    return _interval(value, ir - cr, min(ii.n, ci.n), min(ii.n_resampled, ci.n_resampled), confidence)


# ------------------------------------------------------------------------------ land change


def dynamic_degree(area_before: float, area_after: float, years: float) -> float:
    """Single-type dynamic degree K = (U_b − U_a) / U_a / T × 100 (% per year; spec §4.5 [U])."""
    if area_before <= 0 or years <= 0:
        return float("nan")
    return (area_after - area_before) / area_before / years * 100.0


def conversion_out_intensity(matrix: Mapping[int, Mapping[int, float]], years: float) -> dict[int, float]:
    """Conversion-out intensity CI_k = (area of k turned to other types) / U_a,k / T × 100
    (% per year; spec §4.5 [U]).  ``matrix[from][to]`` in km²."""
    out: dict[int, float] = {}
    for k, row in matrix.items():
        total = float(sum(row.values()))
        lost = total - float(row.get(k, 0.0))
        out[int(k)] = lost / total / years * 100.0 if total > 0 and years > 0 else float("nan")
    return out


def fragmentation(
    classes: NDArray[np.integer],
    zone: NDArray[np.bool_],
    natural: Iterable[int],
    pixel_km2: float,
    *,
    connectivity: int = 8,
) -> dict[str, float]:
    """Patch density and effective mesh size of the natural classes inside ``zone``.

    Patches are connected pixels of any natural class (cut by the zone boundary, the CUT
    procedure of Jaeger 2000).  ``patch_density`` = patches per 100 km² of the zone;
    ``mesh_km2`` = m_eff = Σ a_i² / A_zone (km²); ``natural_km2`` = Σ a_i.
    """
    nat = zone & np.isin(classes, list(natural))
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    labels, n = ndimage.label(nat, structure=structure)
    zone_km2 = float(zone.sum()) * pixel_km2
    if zone_km2 <= 0:
        return {"patches": 0, "patch_density": float("nan"), "mesh_km2": float("nan"), "natural_km2": 0.0}
    sizes = np.bincount(labels.ravel())[1:].astype(np.float64) * pixel_km2
    return {
        "patches": int(n),
        "patch_density": n / zone_km2 * 100.0,
        "mesh_km2": float((sizes**2).sum() / zone_km2),
        "natural_km2": float(sizes.sum()),
    }


# ------------------------------------------------------------------------------ disturbance


def disturbance_mask(
    ndvi_before: NDArray[np.floating],
    ndvi_after: NDArray[np.floating],
    *,
    ndvi_drop: float,
    relative_drop: float,
    min_ndvi_before: float,
) -> NDArray[np.bool_]:
    """Pixels vegetated before (NDVI ≥ ``min_ndvi_before``) whose NDVI dropped by at least
    ``ndvi_drop`` and by at least ``relative_drop`` × NDVI(before).  NaN in either year → False."""
    b = np.asarray(ndvi_before, dtype=np.float32)
    a = np.asarray(ndvi_after, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        drop = b - a
        return (b >= min_ndvi_before) & (drop >= ndvi_drop) & (drop >= relative_drop * b)


def remove_small(mask: NDArray[np.bool_], min_px: int, connectivity: int = 8) -> NDArray[np.bool_]:
    """``mask`` without the connected groups of fewer than ``min_px`` pixels."""
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


__all__.append("remove_small")


# ------------------------------------------------------------------------------ matching


def slope_degrees(dem: NDArray[np.floating], dx: float, dy: float) -> NDArray[np.float32]:
    """Slope (degrees) from a DEM with pixel sizes ``dx``, ``dy`` (m); NaN propagates."""
    gy, gx = np.gradient(np.asarray(dem, dtype=np.float64), abs(dy), abs(dx))
    return np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)


def strata(
    covariates: Sequence[tuple[NDArray[np.floating], Sequence[float] | float]],
) -> NDArray[np.int64]:
    """Stratum code per pixel from covariates, each cut by explicit breaks (a sequence) or into
    bands of a width (a float).  A pixel with a NaN covariate gets −1."""
    code = None
    bad = None
    for values, cut in covariates:
        v = np.asarray(values, dtype=np.float64)
        if isinstance(cut, int | float):
            k = np.floor(np.where(np.isfinite(v), v, 0) / float(cut)).astype(np.int64)
            k -= k.min() if k.size else 0
        else:
            k = np.digitize(np.where(np.isfinite(v), v, 0), np.asarray(cut, dtype=np.float64)).astype(np.int64)
        nb = int(k.max()) + 1 if k.size else 1
        code = k if code is None else code * nb + k
        bad = ~np.isfinite(v) if bad is None else bad | ~np.isfinite(v)
    if code is None:
        raise ValueError("strata needs at least one covariate")
    return np.where(bad, -1, code)


def match_weights(
    impact_strata: NDArray[np.int64],
    control_strata: NDArray[np.int64],
    *,
    min_stratum_px: int,
) -> tuple[NDArray[np.float64], dict[str, float]]:
    """Weights of control pixels so that the control's stratum mix equals the impact zone's.

    A control pixel's weight is share_impact(s) / share_control(s) of its stratum s; strata with
    fewer than ``min_stratum_px`` control pixels (or absent from the impact zone) get 0.  Report:
    ``impact_matched_share`` (share of impact pixels whose stratum has controls),
    ``control_used_share`` and ``strata``.
    """
    imp = impact_strata[impact_strata >= 0]
    ctl = control_strata
    if imp.size == 0 or (ctl >= 0).sum() == 0:
        return np.zeros(ctl.shape, dtype=np.float64), {"impact_matched_share": 0.0, "control_used_share": 0.0, "strata": 0}
    codes_i, counts_i = np.unique(imp, return_counts=True)
    codes_c, counts_c = np.unique(ctl[ctl >= 0], return_counts=True)
    n_c = dict(zip(codes_c.tolist(), counts_c.tolist(), strict=True))
    ok = {c: n for c, n in zip(codes_i.tolist(), counts_i.tolist(), strict=True) if n_c.get(c, 0) >= min_stratum_px}
    matched_imp = float(sum(ok.values()))
    w_of = {c: (n / matched_imp) / n_c[c] for c, n in ok.items()} if matched_imp else {}
    lut_codes = np.array(sorted(w_of), dtype=np.int64)
    weights = np.zeros(ctl.shape, dtype=np.float64)
    if lut_codes.size:
        pos = np.searchsorted(lut_codes, ctl)
        pos = np.clip(pos, 0, lut_codes.size - 1)
        hit = (ctl >= 0) & (lut_codes[pos] == ctl)
        vals = np.array([w_of[c] for c in lut_codes.tolist()])
        weights[hit] = vals[pos[hit]]
    return weights, {
        "impact_matched_share": matched_imp / imp.size,
        "control_used_share": float((weights > 0).sum()) / float((ctl >= 0).sum()),
        "strata": len(ok),
    }


def standardized_difference(
    impact: NDArray[np.floating], control: NDArray[np.floating], weights: NDArray[np.floating] | None = None
) -> float:
    """Standardised mean difference (mean_i − mean_c) / sqrt((var_i + var_c) / 2) of a covariate,
    the control weighted; |SMD| < 0.1 is the usual "well balanced"."""
    i = np.asarray(impact, dtype=np.float64)
    c = np.asarray(control, dtype=np.float64)
    w = np.ones_like(c) if weights is None else np.asarray(weights, dtype=np.float64)
    oi, oc = np.isfinite(i), np.isfinite(c) & (w > 0)
    if oi.sum() < 2 or oc.sum() < 2:
        return float("nan")
    mi, vi = i[oi].mean(), i[oi].var()
    mc = np.average(c[oc], weights=w[oc])
    vc = np.average((c[oc] - mc) ** 2, weights=w[oc])
    pooled = np.sqrt((vi + vc) / 2.0)
    return float((mi - mc) / pooled) if pooled > 0 else 0.0


__all__.append("standardized_difference")


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union of two masks (NaN when both are empty)."""
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else float("nan")
