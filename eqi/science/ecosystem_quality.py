"""Ecosystem quality (生态系统质量) per HJ 1172-2021 where inputs allow (spec §4.1) — [P]/[U].

Per pixel and year, parameters F_j (LAI, FVC, a productivity variable — which one is [U]) are
compared with an "ideal reference" F_ref,j of their ecosystem type (forest, shrub, grassland):

    RD_ij = clip(F_ij / F_ref,j, 0, 1)                 relative density          [U]
    Q_i   = 100 × Σ_j w_j RD_ij                        ecosystem quality (0-100) [U]

F_ref,j = a high quantile (95th [U]) of F_j over least-disturbed pixels (protected areas) of the
type, preferably over a multi-year baseline.  Grades 优/良/中/低/差 at 75/55/35/20 [D].  All
numbers come from ``configs/methods/eq-hj1172-2021.yaml``.  Pixels of other ecosystem types, or
with a parameter missing, are NaN (never filled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from eqi.params import param_value
from eqi.science.change import intervals

__all__ = ["ecosystem_type", "reference_values", "relative_density", "ecosystem_quality", "quality_grade"]


def ecosystem_type(landcover: np.ndarray, profile: Mapping[str, Any]) -> np.ndarray:
    """uint8 ecosystem type per pixel from CAS 二级 land-cover codes (0 = not assessed)."""
    lc = np.asarray(landcover)
    out = np.zeros(lc.shape, dtype=np.uint8)
    for t in profile["ecosystem_types"]["types"]:
        out[np.isin(lc, [int(c) for c in t["codes"]])] = int(t["value"])
    return out


def reference_values(
    parameters: Mapping[str, np.ndarray],
    etype: np.ndarray,
    reference_mask: np.ndarray,
    profile: Mapping[str, Any],
) -> dict[int, dict[str, float]]:
    """F_ref per ecosystem type and parameter: the profile's quantile over reference pixels.

    ``parameters``: ``{name: array}`` (one year or a stacked baseline with the same leading
    shape as ``etype``); ``reference_mask``: True on least-disturbed pixels.  A type with fewer
    than ``min_pixels`` finite reference values gets NaN for that parameter.
    """
    q = float(param_value(profile["reference"]["quantile"]))
    min_px = int(param_value(profile["reference"]["min_pixels"]))
    et = np.asarray(etype)
    ref = np.asarray(reference_mask, dtype=bool)
    out: dict[int, dict[str, float]] = {}
    for t in profile["ecosystem_types"]["types"]:
        code = int(t["value"])
        sel = ref & (et == code)
        out[code] = {}
        for name, arr in parameters.items():
            vals = np.asarray(arr, dtype=np.float64)[sel]
            vals = vals[np.isfinite(vals)]
            out[code][name] = float(np.percentile(vals, q)) if vals.size >= min_px else math.nan
    return out


def relative_density(value: np.ndarray, reference: float | np.ndarray, profile: Mapping[str, Any]) -> np.ndarray:
    """RD = clip(F / F_ref, lo, hi) (profile ``relative_density_clip``); NaN where F_ref ≤ 0/NaN."""
    lo, hi = param_value(profile["relative_density_clip"])
    v = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rd = np.where(r > 0, v / r, np.nan)
    return np.clip(rd, float(lo), float(hi))


def ecosystem_quality(
    parameters: Mapping[str, np.ndarray],
    etype: np.ndarray,
    references: Mapping[int, Mapping[str, float]],
    profile: Mapping[str, Any],
) -> np.ndarray:
    """Ecosystem quality 0-100 per pixel (float32, NaN outside assessed types or where a
    parameter or its reference is missing)."""
    weights = {k: float(v) for k, v in param_value(profile["weights"]).items()}
    names = [str(n) for n in param_value(profile["parameters"])]
    missing = [n for n in names if n not in parameters]
    if missing:
        raise KeyError(f"ecosystem quality needs parameters {missing}")
    et = np.asarray(etype)
    q = np.zeros(et.shape, dtype=np.float64)
    for name in names:
        ref = np.full(et.shape, np.nan)
        for code, refs in references.items():
            ref[et == int(code)] = refs.get(name, math.nan)
        q += weights[name] * relative_density(parameters[name], ref, profile)
    q = 100.0 * q
    q[et == 0] = np.nan
    return q.astype(np.float32)


def quality_grade(quality: np.ndarray, profile: Mapping[str, Any]) -> np.ndarray:
    """uint8 grade per pixel: the profile's class ``value`` (1 优 … 5 差), nodata 0 for NaN."""
    table = profile["grades"]
    ivs = intervals(table, "ecosystem quality grades")
    q = np.asarray(quality, dtype=np.float64)
    out = np.full(q.shape, int(table.get("nodata", 0)), dtype=np.uint8)
    for entry, iv in zip(table["classes"], ivs, strict=True):
        lo_ok = q >= iv.lower if iv.closed in ("left", "both") else q > iv.lower
        hi_ok = q <= iv.upper if iv.closed in ("right", "both") else q < iv.upper
        out[lo_ok & hi_ok & np.isfinite(q)] = int(entry["value"])
    return out
