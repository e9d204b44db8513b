"""Classes on the number line (grades, change classes) and land-cover transitions between years.

* :class:`Interval`, :func:`intervals` and :func:`classify` — the grade tables of EI/EQI and the
  ΔEI/ΔEQI change tables of the method profiles (``[{lower, upper, closed, label_zh, label_en}]``,
  ``closed`` = which ends belong to the interval, as in :class:`pandas.Interval`).  A table is
  checked once: its intervals must not overlap and must leave no gap.
* :func:`exact_delta` — ``v2 - v1`` computed in decimal on the values as printed, so
  ``75.3 - 74.3`` is exactly ``1.0`` (binary floating point gives 0.99999...) and a change class
  never flips on representation noise.
* :func:`transition_matrix` — the land-cover transition matrix (km²) of two class rasters
  (pure NumPy, any array shape);  :func:`transition_code` / :func:`matrix_from_code_areas` —
  the same through a combined "before x base + after" class raster, the form zonal statistics
  (exactextract, one pass for all regions) can summarise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from eqi.errors import ConfigError
from eqi.params import param_value

__all__ = [
    "Interval",
    "intervals",
    "classify",
    "classify_label",
    "exact_delta",
    "change_class",
    "transition_matrix",
    "transition_code",
    "matrix_from_code_areas",
    "TRANSITION_BASE",
]

Closed = Literal["left", "right", "both", "neither"]
TRANSITION_BASE = 100  # code = before * 100 + after: CAS 二级 codes are < 100


@dataclass(frozen=True)
class Interval:
    """One class of a table: values in (lower, upper) with the ends given by ``closed``."""

    label_zh: str
    label_en: str
    lower: float = -math.inf
    upper: float = math.inf
    closed: Closed = "left"

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in this interval (NaN never does)."""
        if math.isnan(x):
            return False
        lo_ok = x >= self.lower if self.closed in ("left", "both") else x > self.lower
        hi_ok = x <= self.upper if self.closed in ("right", "both") else x < self.upper
        return lo_ok and hi_ok

    @property
    def label(self) -> str:
        """Chinese label (the bulletin's wording)."""
        return self.label_zh


def _bound(value: Any, default: float) -> float:
    return default if value is None else float(value)


def intervals(table: Mapping[str, Any] | Sequence[Mapping[str, Any]], what: str = "class table") -> tuple[Interval, ...]:
    """Parse and check a profile's class table (``{classes: [...]}`` or the list itself).

    Raises :class:`ConfigError` when two intervals overlap or a gap is left between them.
    """
    entries = table.get("classes") if isinstance(table, Mapping) else table
    if not entries:
        raise ConfigError(f"{what}: no classes")
    out = []
    for e in entries:
        closed = str(e.get("closed", "left"))
        if closed not in ("left", "right", "both", "neither"):
            raise ConfigError(f"{what}: closed must be left/right/both/neither, not {closed!r}")
        out.append(
            Interval(
                label_zh=str(e["label_zh"]),
                label_en=str(e.get("label_en", e["label_zh"])),
                lower=_bound(e.get("lower"), -math.inf),
                upper=_bound(e.get("upper"), math.inf),
                closed=closed,  # type: ignore[arg-type]
            )
        )
    ordered = sorted(out, key=lambda iv: (iv.lower, iv.upper))
    if ordered[0].lower != -math.inf or ordered[-1].upper != math.inf:
        raise ConfigError(f"{what}: the classes must cover the whole number line (use null ends)")
    for a, b in zip(ordered, ordered[1:], strict=False):
        a_hi = a.closed in ("right", "both")
        b_lo = b.closed in ("left", "both")
        if a.upper != b.lower or (a_hi and b_lo) or (not a_hi and not b_lo):
            raise ConfigError(
                f"{what}: classes '{a.label_zh}' and '{b.label_zh}' overlap or leave a gap at "
                f"{a.upper:g} / {b.lower:g} (exactly one of them must include the edge)"
            )
    return tuple(out)


def classify(value: float | None, table: Sequence[Interval]) -> Interval | None:
    """The interval holding ``value``; None for None/NaN."""
    if value is None:
        return None
    x = float(value)
    if math.isnan(x):
        return None
    for iv in table:
        if iv.contains(x):
            return iv
    raise AssertionError(f"class table does not cover {x}")  # intervals() rules this out


def classify_label(value: float | None, table: Sequence[Interval], lang: str = "zh") -> str | None:
    """The label (``zh`` or ``en``) of the class holding ``value``; None for None/NaN."""
    iv = classify(value, table)
    if iv is None:
        return None
    return iv.label_zh if lang == "zh" else iv.label_en


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def exact_delta(v1: float | None, v2: float | None) -> float:
    """``v2 - v1`` in decimal arithmetic on the printed values (NaN if either is missing)."""
    if v1 is None or v2 is None or math.isnan(float(v1)) or math.isnan(float(v2)):
        return math.nan
    return float(_decimal(v2) - _decimal(v1))


def change_class(
    v1: float | None, v2: float | None, table: Sequence[Interval], lang: str = "zh"
) -> tuple[float, str | None]:
    """``(delta, label)`` of the change from ``v1`` (earlier year) to ``v2`` (later year)."""
    d = exact_delta(v1, v2)
    return d, classify_label(d, table, lang)


# ------------------------------------------------------------------------------------ transitions


def _codes(classes: Iterable[int] | None, *arrays: np.ndarray, nodata: int | None) -> list[int]:
    if classes is not None:
        return [int(c) for c in classes]
    found: set[int] = set()
    for a in arrays:
        found.update(int(v) for v in np.unique(a))
    if nodata is not None:
        found.discard(nodata)
    return sorted(found)


def transition_matrix(
    before: np.ndarray,
    after: np.ndarray,
    *,
    pixel_area_km2: float,
    classes: Iterable[int] | None = None,
    nodata: int | None = 0,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Land-cover transition matrix in km²: rows = class in the earlier year, columns = later.

    Parameters
    ----------
    before, after
        Integer class arrays of one shape on one (equal-area) grid.
    pixel_area_km2
        Area of one pixel (km²).
    classes
        Row/column codes (default: every code found, ``nodata`` excluded).  Pixels whose code is
        not listed in either year are left out (their area is in neither row nor column).
    nodata
        Code of "no data" in either year; such pixels are left out.
    weights
        Optional per-pixel weight (e.g. fractional coverage of a region, 0-1).

    Returns
    -------
    DataFrame indexed by ``from`` code, columns ``to`` code, values km²; the diagonal is the
    unchanged area.
    """
    b = np.asarray(before)
    a = np.asarray(after)
    if b.shape != a.shape:
        raise ValueError(f"before {b.shape} and after {a.shape} differ in shape")
    codes = _codes(classes, b, a, nodata=nodata)
    index = {c: i for i, c in enumerate(codes)}
    lut_size = max([*codes, int(b.max(initial=0)), int(a.max(initial=0))]) + 1
    lut = np.full(lut_size, -1, dtype=np.int64)
    for c, i in index.items():
        lut[c] = i
    bi = lut[b.astype(np.int64).ravel()]
    ai = lut[a.astype(np.int64).ravel()]
    ok = (bi >= 0) & (ai >= 0)
    if nodata is not None:
        ok &= (b.ravel() != nodata) & (a.ravel() != nodata)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()[ok]
    n = len(codes)
    flat = np.bincount(bi[ok] * n + ai[ok], weights=w, minlength=n * n).astype(np.float64)
    matrix = flat.reshape(n, n) * float(pixel_area_km2)
    return pd.DataFrame(
        matrix,
        index=pd.Index(codes, name="from"),
        columns=pd.Index(codes, name="to"),
    )


def transition_code(
    before: np.ndarray, after: np.ndarray, *, nodata: int = 0, base: int = TRANSITION_BASE
) -> np.ndarray:
    """Combined class raster ``before * base + after`` (uint16; ``nodata`` where either is nodata).

    Summarised per region as a class raster (class areas), it gives every region's transition
    matrix in one pass (:func:`matrix_from_code_areas`).  Works on NumPy blocks (use it with
    ``dask.array.map_blocks`` or a windowed writer).
    """
    b = np.asarray(before).astype(np.uint16)
    a = np.asarray(after).astype(np.uint16)
    if int(max(b.max(initial=0), a.max(initial=0))) >= base:
        raise ValueError(f"class codes must be < {base} to combine them")
    out = b * np.uint16(base) + a
    bad = (b == nodata) | (a == nodata)
    out[bad] = nodata
    return out


def matrix_from_code_areas(
    code_areas_km2: Mapping[int, float],
    *,
    classes: Iterable[int] | None = None,
    base: int = TRANSITION_BASE,
    nodata: int = 0,
) -> pd.DataFrame:
    """Transition matrix (km², rows from / columns to) from the class areas of a combined raster."""
    pairs = {}
    for code, area in code_areas_km2.items():
        code = int(code)
        if code == nodata:
            continue
        pairs[(code // base, code % base)] = float(param_value(area))
    codes = (
        [int(c) for c in classes]
        if classes is not None
        else sorted({c for pair in pairs for c in pair})
    )
    m = pd.DataFrame(
        0.0, index=pd.Index(codes, name="from"), columns=pd.Index(codes, name="to")
    )
    for (f, t), area in pairs.items():
        if f in m.index and t in m.columns:
            m.loc[f, t] += area
    return m
