"""Aggregating masked observations to a coarser grid: the mean of the clear fine pixels.

Used when a run's pixels are larger than the scenes' (Sentinel-2 10/20 m onto a 30 m grid,
``resampling: average``): scenes are read on a grid ``factor`` times finer that nests in the output
grid, masked there (clouds, shadows, invalid values become nodata), and only then averaged, so a
cloud never smears into the clear pixels around it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["masked_block_mean"]


def masked_block_mean(dn: np.ndarray, *, factor: int, nodata: float | int) -> np.ndarray:
    """Mean of the valid values of each ``factor`` x ``factor`` block of the last two axes.

    Parameters
    ----------
    dn
        ``(..., y, x)`` integer DN with ``nodata`` where an observation is not usable; ``y`` and
        ``x`` multiples of ``factor``.
    factor
        Fine pixels per coarse pixel along each axis (>= 1).
    nodata
        The value that marks unusable fine pixels; coarse pixels with no usable fine pixel get it.

    Returns
    -------
    Array of ``dn``'s dtype, ``(..., y / factor, x / factor)``: the mean rounded to the nearest
    DN (ties to even; at most 0.5 DN, e.g. 1.4e-5 Landsat reflectance, from the exact mean).
    """
    if factor == 1:
        return dn
    *lead, h, w = dn.shape
    if h % factor or w % factor:
        raise ValueError(f"block {h}x{w} is not a multiple of the factor {factor}")
    blocks = dn.reshape(*lead, h // factor, factor, w // factor, factor)
    ok = blocks != nodata
    count = ok.sum(axis=(-3, -1))
    total = np.where(ok, blocks, 0).astype(np.float64).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.rint(total / count)
    out = np.where(count > 0, mean, nodata)
    return out.astype(dn.dtype)
