"""The simulated "true" land-cover map of the demo (ESA WorldCover codes) and its pixel grid.

Pure computation: NumPy arrays in, arrays out.  The map is built from seeded smooth noise so that
patches are spatially coherent: a sinuous river and a lake (80 water), an urban core with villages
(50 built-up), sand bars and quarries (60 bare), and an elevation-like field split into forest
(10), shrub (20), grass (30) and cropland (40).  Class shares inside the region are fixed by
quantiles computed over the region's pixels, so every class covers well over 1 % of any region.
Year 2 converts some cropland at the town edge to built-up and some hill cropland to forest
(Grain-for-Green style), so change tables have something to show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from rasterio.transform import Affine
from scipy import ndimage

from eqi.demo.spectra import CLASS_CODES

__all__ = [
    "CLASS_NAMES",
    "TARGET_SHARES",
    "Landscape",
    "smooth_noise",
    "simulate_landscape",
    "class_shares",
    "resample_index",
    "transform_for",
]

CLASS_NAMES: dict[int, str] = {
    10: "Tree cover",
    20: "Shrubland",
    30: "Grassland",
    40: "Cropland",
    50: "Built-up",
    60: "Bare / sparse vegetation",
    80: "Permanent water bodies",
}

#: Target shares inside the region (design choice of the demo).  Forest, shrub and grass take
#: fixed fractions of what is left after water, built-up and bare land; cropland the rest.
TARGET_SHARES: dict[str, float] = {
    "water": 0.045,
    "built": 0.11,
    "bare": 0.03,
    "forest_of_rest": 0.30,
    "shrub_of_rest": 0.10,
    "grass_of_rest": 0.12,
    "crop_to_built": 0.015,  # year-2 change, share of the region
    "crop_to_forest": 0.01,  # year-2 change, share of the region
}


@dataclass(frozen=True)
class Landscape:
    """Simulated land cover for each year plus the fields the scenes are made from."""

    landcover: dict[int, np.ndarray]  # year -> (H, W) uint8 WorldCover codes
    sample_index: np.ndarray  # (H, W) int16: which spectral sample a pixel shows
    patch_mask: np.ndarray  # (H, W) bool: the "always cloudy" patch (incl. its cloud ring)
    patch_center_rc: tuple[int, int]
    patch_radius_px: float


@cache
def _bspline_matrix(n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in) cubic B-spline weights that upsample a coarse axis by ``scale``."""
    n_in = math.ceil(n_out / scale) + 4
    pos = (np.arange(n_out) + 0.5) / scale + 1.5  # coarse coordinate of each output pixel
    x = np.abs(pos[:, None] - np.arange(n_in)[None, :])
    w = np.where(x < 1, 2.0 / 3.0 - x**2 + 0.5 * x**3, np.where(x < 2, (2.0 - x) ** 3 / 6.0, 0.0))
    out = w.astype(np.float32)
    out.setflags(write=False)  # cached: shared between calls
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Spatially smooth noise, zero mean and unit standard deviation, float32.

    White noise on a grid ``scale_px`` times coarser, upsampled with cubic B-spline weights
    (separable, so it costs two small matrix products).
    """
    h, w = shape
    scale = max(float(scale_px), 1.0)
    ry = _bspline_matrix(h, scale)
    rx = _bspline_matrix(w, scale)
    coarse = rng.standard_normal((ry.shape[1], rx.shape[1])).astype(np.float32)
    out = ry @ coarse @ rx.T
    out -= out.mean(dtype=np.float64)
    std = float(out.std(dtype=np.float64))
    return (out / (std if std > 0 else 1.0)).astype(np.float32)


def _top_share(
    score: np.ndarray, eligible: np.ndarray, region: np.ndarray, share: float
) -> np.ndarray:
    """Pixels of ``eligible`` whose score is in the top ``share`` of the region's pixel count."""
    pool = score[eligible & region]
    n_region = int(region.sum())
    k = int(round(share * n_region))
    if k <= 0 or pool.size == 0:
        return np.zeros_like(eligible)
    k = min(k, pool.size)
    thr = np.partition(pool, pool.size - k)[pool.size - k]
    return eligible & (score >= thr)


def _blocks(rng: np.random.Generator, shape: tuple[int, int], block: int, n: int) -> np.ndarray:
    """Random integers 0..n-1 constant over square blocks of ``block`` pixels."""
    h, w = shape
    coarse = rng.integers(0, n, size=(h // block + 1, w // block + 1), dtype=np.int16)
    return np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]


def _pick_inside(
    rng: np.random.Generator, region: np.ndarray, margin_px: float, avoid: np.ndarray | None = None
) -> tuple[int, int]:
    """A seeded pixel (row, col) well inside the region (and outside ``avoid`` if possible)."""
    inside = ndimage.distance_transform_edt(region)
    candidates = inside >= margin_px
    if avoid is not None and (candidates & ~avoid).any():
        candidates &= ~avoid
    if not candidates.any():
        r, c = np.unravel_index(int(np.argmax(inside)), inside.shape)
        return int(r), int(c)
    rows, cols = np.nonzero(candidates)
    i = int(rng.integers(0, rows.size))
    return int(rows[i]), int(cols[i])


def simulate_landscape(
    region: np.ndarray,
    years: tuple[int, ...],
    seed: int,
    resolution_m: float,
    quiet: np.ndarray | None = None,
) -> Landscape:
    """Build the simulated land-cover maps on the grid of ``region``.

    Parameters
    ----------
    region : (H, W) bool, True inside the region polygon.
    years : the simulated years; the first gets the base map, later ones the changed map.
    seed : random seed; same seed -> identical maps.
    resolution_m : pixel size in metres (sets the physical size of rivers, towns, fields).
    quiet : (H, W) bool or None; the year-2 changes are planted outside it (the same shares of the
        region, on the next best-scoring pixels), e.g. around a planted corridor.  The base map
        and every random draw are the same with or without it.
    """
    shape = region.shape
    h, w = shape
    px_per_km = 1000.0 / resolution_m
    rng = np.random.default_rng([seed, 1])
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]

    # elevation-like field: a regional slope (mountains on one side) plus hills
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * cols + np.sin(angle) * rows) / max(h, w)
    elevation = (
        2.5 * ramp
        + smooth_noise(rng, shape, 2.0 * px_per_km)
        + 0.4 * smooth_noise(rng, shape, 0.6 * px_per_km)
    )

    # river: a meandering line through a point inside the region
    r0, c0 = _pick_inside(rng, region, 2)
    theta = rng.uniform(0, np.pi)
    along = (cols - c0) * np.cos(theta) + (rows - r0) * np.sin(theta)
    across = -(cols - c0) * np.sin(theta) + (rows - r0) * np.cos(theta)
    wavelength = 4.0 * px_per_km
    meander = 0.35 * px_per_km * np.sin(2 * np.pi * along / wavelength + rng.uniform(0, 2 * np.pi))
    meander = meander + 0.15 * px_per_km * smooth_noise(rng, shape, 1.5 * px_per_km)
    river_dist = np.abs(across - meander)
    half_width = float(np.clip(0.004 * min(h, w), 1.6, 4.0))
    river = river_dist <= half_width

    # lake / reservoir: a noisy bump filling the rest of the water share
    lr, lc = _pick_inside(rng, region, 0.3 * px_per_km, avoid=river_dist < 0.6 * px_per_km)
    lake_score = -np.hypot(rows - lr, cols - lc) / px_per_km + 0.15 * smooth_noise(
        rng, shape, 0.3 * px_per_km
    )
    river_share = float((river & region).sum()) / max(int(region.sum()), 1)
    lake = _top_share(lake_score, ~river, region, max(TARGET_SHARES["water"] - river_share, 0.0))
    water = river | lake

    # town: an urban core with a ragged edge (70 % of built-up) plus scattered villages
    ur, uc = _pick_inside(rng, region, 0.5 * px_per_km, avoid=water)
    core = -np.hypot(rows - ur, cols - uc) / (2.0 * px_per_km)
    town_score = core + 0.25 * smooth_noise(rng, shape, 0.4 * px_per_km)
    town = _top_share(town_score, ~water, region, 0.7 * TARGET_SHARES["built"])
    village_score = smooth_noise(rng, shape, 0.3 * px_per_km) + 0.5 * smooth_noise(
        rng, shape, 2.0 * px_per_km
    )
    villages = _top_share(village_score, ~(water | town), region, 0.3 * TARGET_SHARES["built"])
    built = town | villages

    # bare land: sand and gravel bars along the river, a few quarries / landslide scars elsewhere
    bar = np.exp(-np.maximum(river_dist - half_width, 0) / (0.1 * px_per_km))
    bare_score = (
        3.0 * bar
        + smooth_noise(rng, shape, 0.5 * px_per_km)
        + 0.3 * smooth_noise(rng, shape, 0.1 * px_per_km)
    )
    bare = _top_share(bare_score, ~(water | built), region, TARGET_SHARES["bare"])

    # vegetation by "elevation": forest on top, then shrub, grass, cropland in the lowlands
    rest = ~(water | built | bare)
    n_rest = float((rest & region).sum()) / max(int(region.sum()), 1)
    forest = _top_share(elevation, rest, region, TARGET_SHARES["forest_of_rest"] * n_rest)
    shrub = _top_share(elevation, rest & ~forest, region, TARGET_SHARES["shrub_of_rest"] * n_rest)
    grass = _top_share(
        elevation, rest & ~(forest | shrub), region, TARGET_SHARES["grass_of_rest"] * n_rest
    )

    base = np.full(shape, 40, dtype=np.uint8)
    for mask, code in (
        (grass, 30),
        (shrub, 20),
        (forest, 10),
        (bare, 60),
        (built, 50),
        (water, 80),
    ):
        base[mask] = code

    # year-2 change: town growth into cropland, hill cropland to forest
    crop = (base == 40) if quiet is None else (base == 40) & ~quiet
    to_built = _top_share(town_score, crop, region, TARGET_SHARES["crop_to_built"])
    to_forest = _top_share(elevation, crop & ~to_built, region, TARGET_SHARES["crop_to_forest"])
    changed = base.copy()
    changed[to_built] = 50
    changed[to_forest] = 10
    landcover = {y: (base if i == 0 else changed) for i, y in enumerate(years)}

    # which real sample each pixel shows: fields (~150 m) for cropland, small stands elsewhere
    n = 46  # sample-table length of spectra.build_class_tables (largest spyndex class)
    fields = _blocks(rng, shape, max(int(round(0.15 * px_per_km)), 1), n)
    lots = _blocks(rng, shape, max(int(round(0.06 * px_per_km)), 1), n)
    sample_index = np.where(np.isin(base, (40, 10, 20, 30)), fields, lots).astype(np.int16)

    # the patch that is cloudy on every growing-season date of the first year
    radius = float(np.clip(0.15 * px_per_km, 2.5, 6.0))
    pr, pc = _pick_inside(rng, region, 3 * radius, avoid=water | built)
    patch = np.hypot(rows - pr, cols - pc) <= radius + 3.0  # + the dilated-cloud ring
    return Landscape(
        landcover=landcover,
        sample_index=sample_index,
        patch_mask=patch,
        patch_center_rc=(pr, pc),
        patch_radius_px=radius,
    )


def class_shares(landcover: np.ndarray, region: np.ndarray) -> dict[int, float]:
    """Share (0-1) of each WorldCover class among the region's pixels."""
    values = landcover[region]
    total = max(values.size, 1)
    return {code: float((values == code).sum()) / total for code in CLASS_CODES}


def resample_index(n_out: int, res_out: float, res_in: float) -> np.ndarray:
    """Nearest-neighbour source index for each of ``n_out`` output pixels on a co-registered grid."""
    centres = (np.arange(n_out) + 0.5) * res_out
    return np.floor(centres / res_in).astype(np.intp)


def transform_for(bounds: tuple[float, float, float, float], resolution_m: float) -> Affine:
    """North-up affine transform for ``bounds`` (minx, miny, maxx, maxy) and a square pixel size."""
    return Affine(resolution_m, 0.0, bounds[0], 0.0, -resolution_m, bounds[3])
