"""Monte-Carlo intervals of regional indices from land-cover and valid-pixel uncertainty [D].

What a region's EI/EQI could have been, given that (a) the land-cover map is wrong on some
pixels and (b) some pixels of the region have no valid observation:

* **map error**: the mapped area ``a_i`` of class ``i`` is redistributed over reference classes
  with a draw ``p_i· ~ Dirichlet(n_i· + prior)`` of the confusion row of the accuracy assessment
  (test-sample counts ``n_ij``, rows = map class, Olofsson et al. 2014 orientation); a class
  without a row (unassessed) keeps its area;
* **invalid pixels**: the region's invalid area is given class shares drawn
  ``Dirichlet(concentration × observed shares + 1e-3)`` and a continuous mean drawn
  ``Normal(observed mean, observed std)`` (the whole unobserved block may deviate by up to the
  pixel spread — deliberately conservative).

Pure NumPy, seeded (:func:`numpy.random.default_rng`).  The indices themselves are evaluated by
the caller on each draw; :func:`interval` and :func:`crosses_edge` summarise them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Confusion", "ClassAreaDraws", "draw_class_areas", "draw_means", "interval", "crosses_edge"]


@dataclass(frozen=True)
class Confusion:
    """Test-sample counts ``counts[i][j]`` (map class ``labels[i]``, reference class ``labels[j]``)."""

    labels: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]
    prior: float = 0.5  # Jeffreys-like prior count added to every cell [D]

    def alpha(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=np.float64) + float(self.prior)


@dataclass(frozen=True)
class ClassAreaDraws:
    """``areas[d, k]``: km² of class ``codes[k]`` in draw ``d``."""

    codes: tuple[int, ...]
    areas: np.ndarray

    def draw(self, d: int) -> dict[int, float]:
        return {c: float(a) for c, a in zip(self.codes, self.areas[d], strict=True)}


def draw_class_areas(
    mapped_km2: Mapping[int, float],
    invalid_km2: float,
    confusion: Confusion | None,
    draws: int,
    rng: np.random.Generator,
    *,
    concentration: float = 10.0,
) -> ClassAreaDraws:
    """Plausible class areas of one region (see the module doc); class 0 (nodata) is ignored."""
    mapped = {int(c): float(a) for c, a in mapped_km2.items() if int(c) != 0 and a > 0}
    labels = confusion.labels if confusion is not None else ()
    codes = tuple(sorted(set(mapped) | set(labels)))
    index = {c: k for k, c in enumerate(codes)}
    out = np.zeros((draws, len(codes)), dtype=np.float64)
    alpha = confusion.alpha() if confusion is not None else None
    for code, area in mapped.items():
        if confusion is not None and code in labels:
            row = alpha[labels.index(code)]  # type: ignore[index]
            p = rng.dirichlet(row, size=draws)  # draws x labels
            for j, ref in enumerate(labels):
                out[:, index[ref]] += area * p[:, j]
        else:
            out[:, index[code]] += area
    total = sum(mapped.values())
    if invalid_km2 > 0 and total > 0:
        shares = np.array([mapped.get(c, 0.0) / total for c in codes])
        p = rng.dirichlet(concentration * shares + 1e-3, size=draws)
        out += float(invalid_km2) * p
    return ClassAreaDraws(codes, out)


def draw_means(mean: float, std: float, valid_fraction: float, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Region means when its invalid share may differ: ``v × mean + (1 − v) × Normal(mean, std)``."""
    v = min(max(float(valid_fraction), 0.0), 1.0)
    if not math.isfinite(mean):
        return np.full(draws, math.nan)
    s = float(std) if math.isfinite(std) else 0.0
    return v * float(mean) + (1.0 - v) * rng.normal(float(mean), s, size=draws)


def interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of the finite draws (NaN, NaN when none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(x, [a, 1.0 - a])
    return float(lo), float(hi)


def crosses_edge(point: float, lo: float, hi: float, grade: Callable[[float], str | None]) -> bool:
    """Whether ``[lo, hi]`` (and the point estimate) fall in more than one grade."""
    if not all(math.isfinite(v) for v in (point, lo, hi)):
        return False
    return len({grade(point), grade(lo), grade(hi)}) > 1
