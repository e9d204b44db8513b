"""Land cover over an evaluation area, tile by tile: sample, fit once, apply per tile, assess.

The four steps the tiled pipeline calls (science in :mod:`eqi.science.classify` and
:mod:`eqi.science.accuracy`; parameters from the ``landcover`` method profile)::

    samples = [sample_tile(features_t, reference_t, params=profile, seed=seed, tile_key=key_t)
               for each tile t of the area and period]
    model = fit_landcover(samples, params=profile, seed=seed)       # once; picklable: save_model
    classes_t, confidence_t = apply_landcover(model, features_t)    # per tile
    counts = sum of mapped_pixel_counts(classes_t) over the tiles
    report = map_accuracy(model, counts, pixel_area_m2)              # .to_dict() / .to_markdown()

``features`` hold the main-season layers ``blue, green, red, nir, swir16, swir22, ndvi, mndwi,
ndbsi`` (``features.main`` of the profile) and optionally the same names with ``_s1``, ``_s2`` …
for extra seasons (NaN where that season had no clear observation; a missing variable counts as
all NaN).  ``reference`` is the land-cover product reclassified to national classes (uint8,
0 = nodata).  Every pixel whose main-season features are all finite gets a class: from the full
model where every extra-season feature is finite too, from the main-season fallback model
elsewhere (:func:`served_by` tells which).
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr

from eqi.errors import InputError
from eqi.io.atomic import atomic_write_bytes
from eqi.params import Profile
from eqi.science import accuracy, classify
from eqi.science.accuracy import AccuracyReport
from eqi.science.classify import SERVED_BY, LandcoverModel, Samples
from eqi.science.landcover import class_pixel_counts

__all__ = [
    "SERVED_BY",
    "Samples",
    "LandcoverModel",
    "sample_tile",
    "fit_landcover",
    "apply_landcover",
    "served_by",
    "mapped_pixel_counts",
    "map_accuracy",
    "save_model",
    "load_model",
]


def sample_tile(
    features: xr.Dataset,
    reference: xr.DataArray,
    *,
    params: Profile,
    seed: int,
    tile_key: str,
) -> Samples:
    """Candidate training and test pixels of one tile, each with its spatial block.

    ``tile_key`` must be unique and stable per tile of the area (e.g. ``"x012y034"``): with the
    seed it decides which blocks (``sampling.block_size_px``) are held out for testing.  Computes
    the tile's features once (pass them persisted if they are expensive).
    """
    return classify.draw_tile_samples(
        features, reference, params=classify.landcover_params(params), seed=seed, tile_key=tile_key
    )


def fit_landcover(samples: Sequence[Samples], *, params: Profile, seed: int) -> LandcoverModel:
    """Fit the area's land-cover model once from the samples of all its tiles.

    A random forest on main- and extra-season features and a fallback forest on the main-season
    features, trained on pixels of training blocks only; the test sample is drawn from held-out
    blocks, stratified by map class.  The samples must come from :func:`sample_tile` with the
    same ``params`` and ``seed``.
    """
    return classify.fit_two_forests(samples, params=classify.landcover_params(params), seed=seed)


def _stack(model: LandcoverModel, features: xr.Dataset) -> xr.DataArray:
    """Features in the model's order along a last ``feature`` dim (missing extras as NaN)."""
    missing = [n for n in model.main_features if n not in features.data_vars]
    if missing:
        raise InputError(
            f"the features lack the main-season layers {missing}; the model needs "
            f"{list(model.main_features)}"
        )
    first = features[model.main_features[0]]
    if first.ndim != 2:
        raise InputError(f"features must be 2-D (y, x) layers, got dims {first.dims}")
    layers = []
    for name in model.feature_names:
        if name in features.data_vars:
            layer = features[name]
            if layer.dims != first.dims or layer.shape != first.shape:
                raise InputError(
                    f"feature '{name}' has dims {dict(layer.sizes)}, '{first.name}' "
                    f"{dict(first.sizes)}; put every feature on the same grid"
                )
            layers.append(layer.astype(np.float32))
        else:
            layers.append(xr.full_like(first, np.nan, dtype=np.float32))
    stack = xr.concat(layers, dim="feature", coords="minimal", compat="override", join="exact")
    stack = stack.transpose(*first.dims, "feature")
    if isinstance(stack.data, dsa.Array):
        stack = stack.chunk({"feature": -1})
    return stack


def _apply_block(stack: np.ndarray, *, model: LandcoverModel) -> tuple[np.ndarray, ...]:
    flat = stack.reshape(-1, stack.shape[-1])
    classes, confidence, served = classify.predict_pixels(model, flat)
    shape = stack.shape[:-1]
    return classes.reshape(shape), confidence.reshape(shape), served.reshape(shape)


def _served_block(stack: np.ndarray, *, model: LandcoverModel) -> np.ndarray:
    flat = stack.reshape(-1, stack.shape[-1])
    return classify.served_codes(model, flat).reshape(stack.shape[:-1])


def _apply(model: LandcoverModel, features: xr.Dataset) -> tuple[xr.DataArray, ...]:
    return xr.apply_ufunc(
        _apply_block,
        _stack(model, features),
        input_core_dims=[["feature"]],
        output_core_dims=[[], [], []],
        kwargs={"model": model},
        dask="parallelized",
        output_dtypes=[np.uint8, np.float32, np.uint8],
    )


def apply_landcover(model: LandcoverModel, features: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Classify one tile: ``(classes, confidence)``, lazy and block-wise on Dask-backed features.

    ``classes`` uint8 national classes, 0 only where a main-season feature is not finite;
    ``confidence`` float32 0–1, the winning class's probability (NaN where no class).  Which
    model served a pixel: :func:`served_by` (the rule is in ``classes.attrs["fallback_rule"]``).
    """
    classes, confidence, _ = _apply(model, features)
    classes.name = "landcover"
    classes.attrs = {
        "long_name": "land cover, supervised classification (full + main-season fallback model)",
        "nodata": 0,
        "model": model.params.model,
        "classes": ", ".join(str(c) for c in model.classes),
        "features": ", ".join(model.feature_names),
        "fallback_features": ", ".join(model.main_features),
        "fallback_rule": (
            f"{model.params.fallback_rule}: pixels with finite main-season features and a "
            "non-finite extra-season feature are classified from the main-season features"
        ),
        "seed": model.seed,
    }
    confidence.name = "landcover_confidence"
    confidence.attrs = {
        "long_name": "land-cover confidence: probability of the winning class (mean over trees)",
        "units": "1",
        "valid_range": [0.0, 1.0],
        "nodata": float("nan"),
    }
    return classes, confidence


def served_by(model: LandcoverModel, features: xr.Dataset) -> xr.DataArray:
    """uint8 per pixel: which model classified it (:data:`SERVED_BY`: 0 none, 1 full, 2 fallback).

    Cheap: only finiteness is checked, no prediction (the same rule as :func:`apply_landcover`).
    """
    served = xr.apply_ufunc(
        _served_block, _stack(model, features), input_core_dims=[["feature"]],
        kwargs={"model": model}, dask="parallelized", output_dtypes=[np.uint8],
    )  # fmt: skip
    served.name = "landcover_model"
    served.attrs = {
        "long_name": "land-cover model that classified the pixel",
        "flag_values": list(SERVED_BY),
        "flag_meanings": " ".join(("none", "full_model", "main_season_fallback")),
        "nodata": 0,
    }
    return served


def mapped_pixel_counts(classes: xr.DataArray) -> dict[int, int]:
    """``{class: pixels}`` of one tile's classes (nodata 0 left out); sum them over the tiles.

    Count only pixels inside the evaluation area, once (tiles must not overlap).
    """
    return class_pixel_counts(classes, nodata=0)


def map_accuracy(
    model: LandcoverModel, mapped_pixel_counts: Mapping[int, int], pixel_area_m2: float
) -> AccuracyReport:
    """Map accuracy (Olofsson et al. 2014) of the area's map, with the sample metrics.

    ``mapped_pixel_counts``: pixels per class of the whole mapped area (summed over its tiles),
    which weight the map-class strata of the model's held-out test sample; ``pixel_area_m2``: one
    pixel's area in the run's (equal-area) CRS.  Areas in the report are km².
    """
    params = model.params
    result = accuracy.map_accuracy_from_samples(
        model.test_map,
        model.test_reference,
        mapped_pixel_counts,
        pixel_area_m2,
        z=params.z,
        design=classify.test_sample_design(params),
    )
    result = dataclasses.replace(result, notes=(*result.notes, *model.notes))
    return dataclasses.replace(model.sample_report, map_accuracy=result)


def save_model(model: LandcoverModel, path: Path) -> Path:
    """Pickle the model atomically to ``path`` (load it with :func:`load_model`)."""
    return atomic_write_bytes(path, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def load_model(path: Path) -> LandcoverModel:
    """A model saved by :func:`save_model` (trusted files only: pickle runs code)."""
    try:
        model = pickle.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputError(f"land-cover model {path} not found; fit it first (fit_landcover)") from None
    if not isinstance(model, LandcoverModel):
        raise InputError(f"{path} does not hold a land-cover model")
    return model
