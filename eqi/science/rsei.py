"""Remote Sensing Ecological Index (RSEI, 遥感生态指数; Xu 2013) — spec §6.

Pipeline: components (NDVI, WET, LST, NDBSI; variant ``rsei3`` drops LST) → water / min-obs mask →
per-component normalisation to [0, 1] (``minmax`` or ``robust``) → PCA on the covariance of the
mean-centred normalised components → PC1 oriented so that greenness + wetness load positively →
RSEI_0 = PC1 projection → min-max to [0, 1] → grades in 0.2 steps.

Determinism (same bytes for any chunking and any number of Dask workers):

* the PCA sample is drawn by a seeded NumPy RNG over the row-major index of valid pixels (the
  ``k``-th valid pixel, counted over the whole grid), then gathered by position;
* min / max reductions (``minmax`` bounds, RSEI_0 bounds) are exact whatever the reduction order;
* mean and covariance are computed in the calling process from the sample with fixed-order
  NumPy sums (no BLAS), the eigenvectors with ``numpy.linalg.eigh``;
* the projection is applied per pixel, blockwise (``xarray.apply_ufunc`` over Dask blocks), in
  float64 with a fixed operation order, and stored as float32.

Pooled mode (several years, spec §6.5): each year contributes up to ``sample_size`` pixels (its
own RNG stream ``(seed, year index)``); normalisation bounds, eigenvector and final bounds are
shared.  Per-year mode is a fit on one year alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr

from eqi.errors import ConfigError, InputError, ThermalSourceError
from eqi.params import param_value
from eqi.science import indices

__all__ = [
    "VARIANTS",
    "RseiComponents",
    "RseiModel",
    "water_mask_from_mndwi",
    "profile_water_mask",
    "require_thermal",
    "min_observations_mask",
    "components_from_indices",
    "fit_rsei_model",
    "apply_rsei_model",
    "compute_rsei",
    "grade_rsei",
]

VARIANTS: dict[str, tuple[str, ...]] = {
    "rsei": ("ndvi", "wet", "lst", "ndbsi"),
    "rsei3": ("ndvi", "wet", "ndbsi"),
}
VARIANT_LABELS = {
    "rsei": "RSEI (4 components: NDVI, WET, LST, NDBSI)",
    "rsei3": "RSEI-3 (3 components: NDVI, WET, NDBSI; not comparable with 4-component RSEI)",
}
_POSITIVE = ("ndvi", "wet")  # ecologically positive factors (spec §6.3-4)
_NEGATIVE = ("lst", "ndbsi")
_ROW_BLOCK = 1024  # rows per step when locating sampled pixels (bounds temporary memory)
_KEPT_MASK_BYTES = 64 * 2**20  # bit-packed valid masks kept between the fit passes (bytes)


def _nothing() -> None:
    """The default ``after_part`` hook of the fit passes."""


# ------------------------------------------------------------------------------------ parameters


def _params(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if params is None:
        raise TypeError("pass the 'rsei' method profile (eqi.resources.load_profile('rsei'))")
    return params


# ------------------------------------------------------------------------------------ components


@dataclass(frozen=True)
class RseiComponents:
    """Component layers of one year on one grid, plus the pixels allowed into RSEI.

    ``layers`` maps component names (``VARIANTS[variant]``, in that order) to float DataArrays;
    ``usable`` is a boolean DataArray, True where the pixel is not water and has enough
    observations.  Pixels where any component is NaN are excluded as well.
    """

    variant: str
    layers: Mapping[str, xr.DataArray]
    usable: xr.DataArray
    sensor: str | None = None
    label: str = ""
    # (setting, hint, kept pixels) of every rule folded into ``usable``, in the order applied:
    # names the rule when a year is left without valid pixels
    rules: tuple[tuple[str, str, xr.DataArray], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return VARIANTS[self.variant]

    def valid(self) -> xr.DataArray:
        """Lazy boolean mask of pixels entering RSEI (usable and every component finite)."""
        ok = self.usable.astype(bool)
        for name in self.names:
            ok = ok & np.isfinite(self.layers[name])
        return ok


def _dilate_block(block: np.ndarray, iterations: int) -> np.ndarray:
    """``iterations`` binary dilations by a 3x3 square (zero outside the block): the pixels within
    ``iterations`` pixels (Chebyshev distance) of a True one.  The same pixels as
    ``scipy.ndimage.binary_dilation(block, np.ones((3, 3)), iterations, border_value=0)`` (tested),
    as two running sums, one per axis: no 18 MiB scipy.ndimage import in every RSEI run and
    one pass whatever the buffer."""
    out = np.asarray(block, dtype=bool)
    n = int(iterations)
    if n <= 0:
        return out.copy()
    for axis in (0, 1):
        out = _any_within(out, n, axis)
    return out


def _any_within(mask: np.ndarray, n: int, axis: int) -> np.ndarray:
    """True where ``mask`` has a True within ``n`` positions along ``axis`` (False outside)."""
    size = mask.shape[axis]
    shape = list(mask.shape)
    shape[axis] = 1
    sums = np.concatenate([np.zeros(shape, np.int32), np.cumsum(mask, axis=axis, dtype=np.int32)], axis=axis)
    idx = np.arange(size)
    upper = np.take(sums, np.minimum(idx + n + 1, size), axis=axis)
    lower = np.take(sums, np.maximum(idx - n, 0), axis=axis)
    return upper > lower


def water_mask_from_mndwi(
    mndwi: xr.DataArray,
    threshold: float = 0.0,
    buffer_pixels: int = 0,
    extra: xr.DataArray | None = None,
) -> xr.DataArray:
    """Boolean water mask: MNDWI > ``threshold`` OR ``extra`` (e.g. JRC occurrence >= 50 %),
    dilated by ``buffer_pixels`` (3x3 square steps) — spec §6.2 buffers the combined mask.

    NaN MNDWI is not water.  On Dask the dilation runs blockwise with an overlap equal to the
    buffer, so it matches the whole-array result exactly.
    """
    water = (mndwi > threshold).fillna(False).astype(bool)
    if extra is not None:
        water = water | extra.astype(bool)
    n = int(buffer_pixels)
    if n < 0:
        raise ConfigError(f"rsei water buffer_pixels must be >= 0, got {n}")
    if n == 0:
        return water.rename("water")
    data = water.data
    if hasattr(data, "map_overlap"):
        dilated = data.map_overlap(
            _dilate_block, depth=n, boundary="none", dtype=bool, iterations=n
        )
    else:
        dilated = _dilate_block(np.asarray(data), n)
    return water.copy(data=dilated).rename("water")


def require_thermal(ds: xr.Dataset) -> None:
    """Raise :class:`ThermalSourceError` naming the options when ``ds`` has no ``lwir`` band."""
    if "lwir" not in ds.data_vars:
        raise ThermalSourceError(
            f"RSEI needs land-surface temperature, but the {ds.attrs.get('sensor') or 'given'} "
            f"composite has no thermal band 'lwir' and no LST layer was given. "
            f"{indices.THERMAL_OPTIONS}"
        )


def min_observations_mask(
    obs_count: xr.DataArray, observed: xr.DataArray | None, params: Mapping[str, Any]
) -> tuple[xr.DataArray, str, str]:
    """Pixels kept by the ``min_observations`` rule of ``rsei.yaml``: (mask, setting, hint).

    Scope ``multi-scene`` (the profile's default): a pixel needs ``min(value, observed)`` clear
    observations, where ``observed`` is the number of scenes with data at the pixel; so a pixel
    seen by one scene keeps its one clear observation (one-scene RSEI, the usual case in RSEI
    studies), while a pixel the season saw several times needs ``value`` clear ones.  Scope
    ``strict`` (a value set in the run config; or ``observed`` unknown): ``value`` everywhere.
    """
    entry = params["min_observations"]
    need = int(param_value(entry))
    scope = str(entry.get("scope", "strict")) if isinstance(entry, Mapping) else "strict"
    if scope not in ("multi-scene", "strict"):
        raise ConfigError(f"rsei.min_observations.scope must be 'multi-scene' or 'strict', got {scope!r}")
    if scope == "multi-scene" and observed is not None:
        required = np.minimum(observed.astype(np.int32), need)
        setting = f"rsei.min_observations = {need} (scope multi-scene: where a pixel was observed more than once)"
    else:
        required = need
        setting = f"rsei.min_observations = {need}"
    hint = (
        "set 'rsei: {min_observations: 1}' in the run config to accept pixels with a single clear "
        "observation, or widen the season so more clear scenes enter the composite"
    )
    return (obs_count >= required).rename("min_observations"), setting, hint


def profile_water_mask(
    mndwi: xr.DataArray, params: Mapping[str, Any] | None = None, extra: xr.DataArray | None = None
) -> xr.DataArray:
    """The profile's water mask (MNDWI threshold and buffer of ``rsei.yaml``, spec §6.2).

    One definition of water for RSEI and for the FVC percentiles (spec §5.1 excludes water).
    """
    p = _params(params)
    return water_mask_from_mndwi(
        mndwi,
        float(param_value(p["water"]["mndwi_threshold"])),
        int(param_value(p["water"]["buffer_pixels"])),
        extra,
    )


def components_from_indices(
    layers: Mapping[str, xr.DataArray],
    mndwi: xr.DataArray,
    *,
    variant: str,
    water_mask: xr.DataArray | None = None,
    obs_count: xr.DataArray | None = None,
    observed: xr.DataArray | None = None,
    sensor: str | None = None,
    label: str = "",
    params: Mapping[str, Any] | None = None,
) -> RseiComponents:
    """RSEI components of one year from its index layers (the pipeline's path).

    ``layers`` holds the variant's components (``ndvi, wet, lst, ndbsi`` or the ``rsei3`` set),
    e.g. :func:`eqi.science.indices.compute_index` of the composite (LST may come from another
    composite on the same grid, spec §6.1 Heat option 2); water (MNDWI above the profile
    threshold, buffered, OR ``water_mask``) and pixels with too few clear observations
    (``obs_count``; :func:`min_observations_mask`, with ``observed`` = scenes with data at the
    pixel for its multi-scene scope) are excluded.

    Raises :class:`InputError` when the layers are not on one grid (same coordinates).
    """
    p = _params(params)
    if variant not in VARIANTS:
        raise ConfigError(f"RSEI variant {variant!r} is unknown; use one of {', '.join(VARIANTS)}")
    missing = [n for n in VARIANTS[variant] if n not in layers]
    if missing:
        raise InputError(f"RSEI components missing: {', '.join(missing)}")
    grids = [layers[n] for n in VARIANTS[variant]] + [mndwi]
    grids += [g for g in (water_mask, obs_count, observed) if g is not None]
    try:
        xr.align(*grids, join="exact")
    except ValueError as exc:
        raise InputError(
            f"the RSEI component layers are not on one grid ({exc}); resample every layer "
            "(e.g. a Landsat LST composite) to the composite grid first"
        ) from None
    land = ~profile_water_mask(mndwi, p, water_mask)
    water_setting = (
        f"the RSEI water mask (rsei.water.mndwi_threshold = {param_value(p['water']['mndwi_threshold'])}, "
        f"buffer_pixels = {param_value(p['water']['buffer_pixels'])})"
    )
    rules = [(water_setting, "check the region: RSEI needs land pixels", land)]
    usable = land
    if obs_count is not None:
        keep, setting, hint = min_observations_mask(obs_count, observed, p)
        rules.append((setting, hint, keep))
        usable = usable & keep
    ordered = {name: layers[name] for name in VARIANTS[variant]}
    return RseiComponents(variant, ordered, usable.rename("usable"), sensor, label, tuple(rules))


def _empty_year_error(parts: Sequence[RseiComponents], n_valid: int, k: int) -> InputError:
    """An error naming the rule that left a year (its parts: tiles) with fewer than ``k + 1``
    valid pixels: the first rule, in the order applied, after which too few pixels remain."""
    c = parts[0]
    lazy: list[Any] = []
    for part in parts:
        finite = None
        for name in part.names:
            f = np.isfinite(part.layers[name])
            finite = f if finite is None else finite & f
        assert finite is not None
        steps = [finite, *(finite & keep for keep in _cumulative([r[2] for r in part.rules]))]
        lazy.append([s.sum().data for s in steps])
    computed = dask.compute(*lazy)
    n_steps = min(len(v) for v in computed)
    counts = [sum(int(v[i]) for v in computed) for i in range(n_steps)]
    year = c.label or "?"
    if counts[0] < k + 1:
        return InputError(
            f"RSEI year {year} has only {counts[0]} pixel(s) where all components "
            f"({', '.join(c.names)}) are valid (clouds, the valid-range mask or missing data "
            "elsewhere); check the composite and the region"
        )
    for (setting, hint, _), before, after in zip(c.rules, counts[:-1], counts[1:], strict=False):
        if after < k + 1:
            return InputError(
                f"{setting} leaves no valid pixel for RSEI year {year}: {after} of {before} "
                f"pixels with valid components remain (at least {k + 1} needed); {hint}"
            )
    return InputError(
        f"RSEI year {year} has only {n_valid} valid pixels (water, masked or NaN elsewhere); "
        "check the composite, the water mask and the region"
    )


def _cumulative(masks: Sequence[xr.DataArray]) -> list[xr.DataArray]:
    out: list[xr.DataArray] = []
    for m in masks:
        out.append(m.astype(bool) if not out else out[-1] & m.astype(bool))
    return out


# ------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class RseiModel:
    """A fitted RSEI: normalisation, PCA and final bounds (apply with :func:`apply_rsei_model`).

    ``eigenvector`` holds the oriented PC1 loadings in the order of ``components``;
    ``eigenvalues`` are in descending order; ``rsei0_min/max`` are the final min-max bounds.
    """

    variant: str
    mode: str
    components: tuple[str, ...]
    normalisation: str
    norm_percentiles: tuple[float, float] | None
    norm_min: tuple[float, ...]
    norm_max: tuple[float, ...]
    mean: tuple[float, ...]
    eigenvector: tuple[float, ...]
    eigenvalues: tuple[float, ...]
    pc1_share: float
    rsei0_min: float
    rsei0_max: float
    sample_size: int
    sample_size_requested: int
    seed: int
    labels: tuple[str, ...]
    sensors: tuple[str | None, ...]
    n_valid: tuple[int, ...]
    grade_edges: tuple[float, ...]
    qa: tuple[str, ...]

    @property
    def loadings(self) -> dict[str, float]:
        """PC1 loadings by component name (after orientation)."""
        return dict(zip(self.components, self.eigenvector, strict=True))

    def to_metadata(self) -> dict[str, Any]:
        """Plain, JSON-ready dict for the product's metadata (spec §7)."""
        bounds = {
            n: [lo, hi]
            for n, lo, hi in zip(self.components, self.norm_min, self.norm_max, strict=True)
        }
        return {
            "variant": self.variant,
            "variant_label": VARIANT_LABELS[self.variant],
            "mode": self.mode,
            "components": list(self.components),
            "loadings": self.loadings,
            "eigenvalues": list(self.eigenvalues),
            "pc1_share": self.pc1_share,
            "normalisation": {
                "method": self.normalisation,
                "percentiles": list(self.norm_percentiles) if self.norm_percentiles else None,
                "bounds": bounds,
            },
            "mean": dict(zip(self.components, self.mean, strict=True)),
            "rsei0_bounds": [self.rsei0_min, self.rsei0_max],
            "sample_size": self.sample_size,
            "sample_size_requested": self.sample_size_requested,
            "seed": self.seed,
            "years": list(self.labels),
            "sensors": list(self.sensors),
            "n_valid_pixels": list(self.n_valid),
            "grade_edges": list(self.grade_edges),
            "qa": list(self.qa),
        }


# ------------------------------------------------------------------------------------ sampling


def _sample_positions(
    mask: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``size`` valid pixels chosen by rank among all valid pixels (row-major).

    All valid pixels (in row-major order) when there are at most ``size`` of them.
    """
    n_valid = int(mask.sum())
    if n_valid <= size:
        ranks = None
    else:
        ranks = np.sort(rng.choice(n_valid, size=size, replace=False))
    rows, cols = [], []
    width = mask.shape[1]
    seen = 0
    for r0 in range(0, mask.shape[0], _ROW_BLOCK):
        flat = np.flatnonzero(mask[r0 : r0 + _ROW_BLOCK])
        if ranks is None:
            pick = flat
        else:
            lo, hi = np.searchsorted(ranks, [seen, seen + flat.size])
            pick = flat[ranks[lo:hi] - seen]
        rows.append(pick // width + r0)
        cols.append(pick % width)
        seen += flat.size
    return np.concatenate(rows), np.concatenate(cols)


def _allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` samples over parts in proportion to ``weights`` (largest remainder, exact)."""
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.sum() == 0:
        return [0] * len(weights)
    share = w / w.sum() * total
    base = np.floor(share).astype(int)
    rest = total - int(base.sum())
    order = np.argsort(-(share - base), kind="stable")[:rest]
    base[order] += 1
    return [int(min(b, wi)) for b, wi in zip(base, weights, strict=True)]


def _gather(layer: xr.DataArray, rows: np.ndarray, cols: np.ndarray) -> Any:
    ydim, xdim = layer.dims
    return layer.isel(
        {ydim: xr.DataArray(rows, dims="sample"), xdim: xr.DataArray(cols, dims="sample")}
    ).data


# ------------------------------------------------------------------------------------ blockwise


def _rsei0_block(
    *arrays: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    mean: np.ndarray,
    vec: np.ndarray,
) -> np.ndarray:
    """RSEI_0 (float64) of one block; the last array is the usable mask.  NaN outside valid."""
    *layers, usable = arrays
    valid = np.asarray(usable, dtype=bool).copy()
    total = np.zeros(np.shape(usable), dtype=np.float64)
    for j, layer in enumerate(layers):  # fixed order of operations on every pixel
        norm = np.array(layer, dtype=np.float64)  # a fresh buffer, worked on in place
        valid &= np.isfinite(norm)
        norm -= lo[j]
        norm /= hi[j] - lo[j]
        np.clip(norm, 0.0, 1.0, out=norm)
        norm -= mean[j]
        norm *= vec[j]  # = vec * (clip((x - lo) / (hi - lo)) - mean), bit for bit
        total += norm
    total[~valid] = np.nan
    return total


def _rsei0(comps: RseiComponents, lo, hi, mean, vec) -> xr.DataArray:
    arrays = [comps.layers[n] for n in comps.names] + [comps.usable]
    return xr.apply_ufunc(
        _rsei0_block,
        *arrays,
        kwargs={"lo": lo, "hi": hi, "mean": mean, "vec": vec},
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def _final_block(rsei0: np.ndarray, rmin: float, rmax: float) -> np.ndarray:
    out = np.clip((rsei0 - rmin) / (rmax - rmin), 0.0, 1.0)
    return out.astype(np.float32)


def _grade_block(rsei: np.ndarray, edges: np.ndarray) -> np.ndarray:
    grade = np.ones(rsei.shape, dtype=np.uint8)
    for edge in edges:  # compare float32 values with float32 edges: 0.2 -> grade 2
        grade += (rsei >= edge).astype(np.uint8)
    grade[~np.isfinite(rsei)] = 0
    return grade


# ------------------------------------------------------------------------------------ orientation


def _orient(vec: np.ndarray, names: tuple[str, ...], tol: float) -> np.ndarray:
    """Flip PC1 so that NDVI + WET load positively (spec §6.3-4, with tie rules)."""
    idx = {n: i for i, n in enumerate(names)}
    pos = sum(vec[idx[n]] for n in _POSITIVE)
    if abs(pos) >= tol:
        return -vec if pos < 0 else vec
    neg = sum(vec[idx[n]] for n in _NEGATIVE if n in idx)
    if abs(neg) >= tol:
        return -vec if neg > 0 else vec
    big = int(np.argmax(np.abs(vec)))  # last resort: largest loading positive
    return -vec if vec[big] < 0 else vec


def _covariance(x: np.ndarray) -> np.ndarray:
    """Covariance of mean-centred columns with fixed-order NumPy sums (no BLAS)."""
    n, k = x.shape
    cov = np.empty((k, k), dtype=np.float64)
    for i in range(k):
        for j in range(i, k):
            cov[i, j] = cov[j, i] = float(np.sum(x[:, i] * x[:, j])) / (n - 1)
    return cov


# ------------------------------------------------------------------------------------ fit / apply


# ------------------------------------------------------------------------------------ fit passes


def _valid_counts(
    groups: Sequence[Sequence[RseiComponents]], names: tuple[str, ...], *, minmax: bool,
    after_part: Callable[[], None] = _nothing,
) -> tuple[list[list[int]], list[tuple[Any, ...]], dict[tuple[int, int], np.ndarray]]:
    """Pass 1: valid pixels of every part, their masks, and (``minmax``) each component's min/max.

    Returns the valid-pixel counts per year and part, the extremes per part (min, max of each
    component in order), and the masks kept for the sample (pass 2): in-memory parts always (they
    cost no more than the data); Dask-backed parts (tiles read from files) bit-packed while the
    kept masks stay under ``_KEPT_MASK_BYTES``, so memory stays bounded however many tiles an area
    has, and a kept mask is not computed twice.
    """
    counts: list[list[int]] = []
    extremes: list[tuple[Any, ...]] = []
    kept: dict[tuple[int, int], np.ndarray] = {}
    budget = _KEPT_MASK_BYTES
    for gi, g in enumerate(groups):
        counts.append([])
        for ci, c in enumerate(g):
            v = c.valid()
            inside = [c.layers[n].where(v) for n in names] if minmax else []
            ext = [a for layer in inside for a in (layer.min().data, layer.max().data)]
            mask, *values = dask.compute(v.data, *ext)
            mask = np.asarray(mask, dtype=bool)
            counts[-1].append(int(np.count_nonzero(mask)))
            extremes.append(tuple(values))
            if not hasattr(v.data, "dask"):
                kept[(gi, ci)] = mask
            elif mask.size // 8 <= budget:
                kept[(gi, ci)] = np.packbits(mask, axis=None)
                budget -= kept[(gi, ci)].nbytes
            after_part()
    return counts, extremes, kept


def _kept_mask(kept: Mapping[tuple[int, int], np.ndarray], key: tuple[int, int], part: RseiComponents) -> np.ndarray:
    """The valid mask of a part from pass 1 (unpacked), or computed again when it was not kept."""
    if key not in kept:
        return np.asarray(dask.compute(part.valid().data)[0], dtype=bool)
    mask = kept[key]
    if mask.dtype == bool:
        return mask
    shape = part.usable.shape
    return np.unpackbits(mask, count=int(np.prod(shape))).astype(bool).reshape(shape)


def _draw_sample(
    groups: Sequence[Sequence[RseiComponents]], counts: Sequence[Sequence[int]],
    kept: Mapping[tuple[int, int], np.ndarray], names: tuple[str, ...], *, size: int, seed: int,
    after_part: Callable[[], None] = _nothing,
) -> np.ndarray:
    """Pass 2: a seeded sample of ``size`` pixels per year, spread over its parts in proportion to
    their valid pixels; (n, k) float64 component values."""
    blocks: list[np.ndarray] = []
    for i, (g, part_counts) in enumerate(zip(groups, counts, strict=True)):
        quotas = _allocate(min(size, sum(part_counts)), part_counts)
        for j, (c, quota) in enumerate(zip(g, quotas, strict=True)):
            if quota == 0:
                continue
            rng = np.random.default_rng([seed, i] if len(g) == 1 else [seed, i, j])
            rows, cols = _sample_positions(_kept_mask(kept, (i, j), c), quota, rng)
            values = dask.compute(*[_gather(c.layers[n], rows, cols) for n in names])
            blocks.append(np.stack([np.asarray(v, np.float64) for v in values], axis=1))
            after_part()
    return np.concatenate(blocks)


def _normalisation_bounds(
    sample: np.ndarray, extremes: Sequence[tuple[Any, ...]], names: tuple[str, ...], method: str,
    norm_cfg: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """Each component's normalisation bounds: exact min/max over all valid pixels (``minmax``) or
    the sample's ``p_low``/``p_high`` percentiles (``robust``); and those percentiles."""
    k = len(names)
    percentiles: tuple[float, float] | None = None
    if method == "minmax":
        ext = np.asarray(extremes, dtype=np.float64).reshape(len(extremes), k, 2)
        lo, hi = np.nanmin(ext[:, :, 0], axis=0), np.nanmax(ext[:, :, 1], axis=0)
    else:
        percentiles = (float(norm_cfg["p_low"]), float(norm_cfg["p_high"]))
        lo = np.array([np.percentile(sample[:, j], percentiles[0]) for j in range(k)])
        hi = np.array([np.percentile(sample[:, j], percentiles[1]) for j in range(k)])
    for j, n in enumerate(names):
        if not hi[j] > lo[j]:
            raise InputError(
                f"RSEI component {n} is constant over the valid pixels ({lo[j]}); "
                "check the inputs (a band may be empty or saturated)"
            )
    return lo, hi, percentiles


def _principal_component(
    sample: np.ndarray, lo: np.ndarray, hi: np.ndarray, names: tuple[str, ...], *, tol: float, solver_sign: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """PCA of the normalised, mean-centred sample: (mean, oriented PC1, eigenvalues, PC1 share)."""
    k = len(names)
    norm = np.clip((sample - lo) / (hi - lo), 0.0, 1.0)
    mean = np.array([float(np.mean(norm[:, j])) for j in range(k)])
    eigval, eigvec = np.linalg.eigh(_covariance(norm - mean))
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 0.0, None)
    vec = _orient(eigvec[:, order[0]] * float(solver_sign), names, tol)
    total = float(eigval.sum())
    return mean, vec, eigval, float(eigval[0] / total) if total > 0 else 0.0


def _rsei0_bounds(
    rsei0: Sequence[Sequence[xr.DataArray]], after_part: Callable[[], None] = _nothing
) -> tuple[float, float]:
    """Pass 3: min and max of RSEI_0 over all valid pixels of all years and parts (part by part)."""
    ext: list[Any] = []
    for r in (r for g in rsei0 for r in g):
        ext += dask.compute(r.min().data, r.max().data)
        after_part()
    ext0 = np.asarray(ext, dtype=np.float64)
    rmin, rmax = float(np.nanmin(ext0[0::2])), float(np.nanmax(ext0[1::2]))
    if not rmax > rmin:
        raise InputError("RSEI_0 is constant over the valid pixels; the components carry no contrast")
    return rmin, rmax


def fit_rsei_model(
    years: Sequence[RseiComponents | Sequence[RseiComponents]],
    *,
    normalisation: str | None = None,
    sample_size: int | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    after_part: Callable[[], None] = _nothing,
    _solver_sign: int = 1,
) -> RseiModel:
    """Fit normalisation, PCA and final bounds; see :func:`_fit` (which also returns RSEI_0)."""
    return _fit(
        years, normalisation=normalisation, sample_size=sample_size, seed=seed, params=params,
        after_part=after_part, _solver_sign=_solver_sign,
    )[0]


def _fit(
    years: Sequence[RseiComponents | Sequence[RseiComponents]],
    *,
    normalisation: str | None = None,
    sample_size: int | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    after_part: Callable[[], None] = _nothing,
    _solver_sign: int = 1,
) -> tuple[RseiModel, list[xr.DataArray]]:
    """Fit normalisation, PCA and final bounds on one year (per-year) or several (pooled).

    Parameters
    ----------
    years
        Components of each year, all of the same variant (grids may differ between years).
    normalisation
        ``"minmax"`` (exact min/max over valid pixels) or ``"robust"`` (``p_low``/``p_high``
        percentiles of the PCA sample, then clip); default from ``rsei.yaml``.
    sample_size, seed
        PCA sample per year and RNG seed; defaults from ``rsei.yaml``.
    after_part
        Called after each part's (tile's) computation in each pass, e.g. to hand freed heap back
        to the system between tiles (the pipeline's ``release_memory``); it must not change data.
    _solver_sign
        Test hook: multiplies the solver's eigenvector before orientation (must not change output).
    """
    if not years:
        raise InputError("fit_rsei_model needs the components of at least one year")
    p = _params(params)
    groups = [[y] if isinstance(y, RseiComponents) else list(y) for y in years]
    if any(not g for g in groups):
        raise InputError("every year of an RSEI fit needs at least one part (tile)")
    first = [g[0] for g in groups]
    variant = first[0].variant
    if any(c.variant != variant for g in groups for c in g):
        raise ConfigError("all years of a pooled RSEI must use the same variant (rsei or rsei3)")
    names = VARIANTS[variant]
    k = len(names)
    norm_cfg = p["normalisation"]
    method = normalisation or str(norm_cfg["method"])
    if method not in ("minmax", "robust"):
        raise ConfigError(f"RSEI normalisation {method!r} is unknown; use 'minmax' or 'robust'")
    pca_cfg = p["pca"]
    size = int(sample_size if sample_size is not None else param_value(pca_cfg["sample_size"]))
    seed = int(seed if seed is not None else param_value(pca_cfg["seed"]))
    if size < k + 1:
        raise ConfigError(f"RSEI sample_size must be at least {k + 1}, got {size}")

    n_valid_parts, extremes, kept = _valid_counts(groups, names, minmax=method == "minmax", after_part=after_part)
    n_valid = tuple(sum(v) for v in n_valid_parts)
    for g, n in zip(groups, n_valid, strict=True):
        if n < k + 1:
            raise _empty_year_error(g, n, k)
    sample = _draw_sample(groups, n_valid_parts, kept, names, size=size, seed=seed, after_part=after_part)
    lo, hi, percentiles = _normalisation_bounds(sample, extremes, names, method, norm_cfg)
    mean, vec, eigval, share = _principal_component(
        sample, lo, hi, names, tol=float(param_value(pca_cfg["orientation_tie_tolerance"])), solver_sign=_solver_sign
    )
    rsei0 = [[_rsei0(c, lo, hi, mean, vec) for c in g] for g in groups]
    rmin, rmax = _rsei0_bounds(rsei0, after_part)

    qa: list[str] = []
    min_share = float(param_value(pca_cfg["qa_min_pc1_share"]))
    if share < min_share:
        qa.append(f"pc1_share_below_{min_share:.2f}")
    idx = {n: i for i, n in enumerate(names)}
    if vec[idx["ndvi"]] * vec[idx["wet"]] < 0:
        qa.append("ndvi_wet_loadings_opposite_sign")

    model = RseiModel(
        variant=variant,
        mode="per-year" if len(groups) == 1 else "pooled",
        components=names,
        normalisation=method,
        norm_percentiles=percentiles,
        norm_min=tuple(float(x) for x in lo),
        norm_max=tuple(float(x) for x in hi),
        mean=tuple(float(x) for x in mean),
        eigenvector=tuple(float(x) for x in vec),
        eigenvalues=tuple(float(x) for x in eigval),
        pc1_share=share,
        rsei0_min=rmin,
        rsei0_max=rmax,
        sample_size=int(sample.shape[0]),
        sample_size_requested=size,
        seed=seed,
        labels=tuple(c.label for c in first),
        sensors=tuple(c.sensor for c in first),
        n_valid=n_valid,
        grade_edges=tuple(float(e) for e in p["grading"]["edges"]),
        qa=tuple(qa),
    )
    # RSEI_0 of each year (a list of parts where a year had several): applying need not recompute it
    return model, [r[0] if isinstance(y, RseiComponents) else r for y, r in zip(years, rsei0, strict=True)]


def grade_rsei(rsei: xr.DataArray, edges: Sequence[float]) -> xr.DataArray:
    """Grades (uint8): 1 below ``edges[0]`` ... ``len(edges)+1`` from ``edges[-1]``; 0 = nodata.

    Values are compared as float32, so an RSEI of 0.2 falls in grade 2 and 1.0 in the top grade.
    """
    edges32 = np.asarray(edges, dtype=np.float32)
    out = xr.apply_ufunc(
        _grade_block, rsei, kwargs={"edges": edges32}, dask="parallelized", output_dtypes=[np.uint8]
    )
    out.name = "rsei_grade"
    out.attrs = {
        "long_name": "RSEI grade",
        "units": "1",
        "nodata": 0,
        "edges": [float(e) for e in edges],
    }
    return out


def apply_rsei_model(
    model: RseiModel, components: RseiComponents, *, rsei0: xr.DataArray | None = None
) -> tuple[xr.DataArray, xr.DataArray]:
    """Apply a fitted model to one year: ``(rsei float32 in [0, 1] / NaN, grade uint8 / 0)``.

    ``rsei0`` is that year's PC1 projection when the caller already has it (from the fit).
    """
    if components.variant != model.variant:
        raise ConfigError(
            f"RSEI model variant {model.variant!r} does not match components {components.variant!r}"
        )
    lo, hi = np.asarray(model.norm_min), np.asarray(model.norm_max)
    mean, vec = np.asarray(model.mean), np.asarray(model.eigenvector)
    if rsei0 is None:
        rsei0 = _rsei0(components, lo, hi, mean, vec)
    rsei = xr.apply_ufunc(
        _final_block,
        rsei0,
        kwargs={"rmin": model.rsei0_min, "rmax": model.rsei0_max},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    rsei.name = model.variant
    rsei.attrs = {
        "long_name": VARIANT_LABELS[model.variant],
        "units": "1",
        "valid_range": [0.0, 1.0],
        "mode": model.mode,
        "pc1_share": model.pc1_share,
    }
    return rsei, grade_rsei(rsei, model.grade_edges)


def compute_rsei(
    components: RseiComponents,
    *,
    normalisation: str | None = None,
    sample_size: int | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    _solver_sign: int = 1,
) -> tuple[xr.DataArray, xr.DataArray, RseiModel]:
    """Per-year RSEI: fit on this year alone and apply; returns ``(rsei, grade, model)``."""
    model, (rsei0,) = _fit(
        [components],
        normalisation=normalisation,
        sample_size=sample_size,
        seed=seed,
        params=params,
        _solver_sign=_solver_sign,
    )
    rsei, grade = apply_rsei_model(model, components, rsei0=rsei0)
    return rsei, grade, model
