"""Product stage of the annual run: from an in-memory composite to named product arrays.

Pure composition of :mod:`eqi.science.indices`, :mod:`eqi.science.fvc`, :mod:`eqi.science.rsei`, :mod:`eqi.science.landcover` and
:mod:`eqi.science.classify`; the only I/O is reading a land-cover reference raster onto the grid
(:func:`read_reference`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr

from eqi.config import RunConfig
from eqi.errors import ConfigError, InputError
from eqi.io import landcover_reference as landcover_io
from eqi.io import landcover_tables
from eqi.io.atomic import atomic_write_json, atomic_write_text
from eqi.io.load import ItemGroup
from eqi.params import Param, Profile
from eqi.products import COMPOSITE_BANDS, PRODUCTS, bands_for
from eqi.resources import load_profile
from eqi.science import classify, fvc, indices, landcover, rsei
from eqi.sensors import ALIASES, identify_sensor

__all__ = [
    "bands_needed",
    "needs_thermal_composite",
    "landsat_bands",
    "compute_products",
]

_SENSOR_SPECIFIC = {"wet", "lst", "rsei", "rsei_grade"}
_S2_ONLY = {"coastal", "rededge1", "rededge2", "rededge3", "nir08", "nir09"}


def bands_needed(
    products: Sequence[str], items: Sequence[pystac.Item], heat: str = "landsat"
) -> list[str]:
    """Bands to load: what the products need, plus the sensor-specific WET bands.

    With Landsat present, sensor-specific products come from Landsat (:func:`needs_thermal_
    composite`), so Sentinel-2's extra WET bands are loaded only for Sentinel-2-only runs.
    """
    bands = bands_for(products)
    bands += [p for p in products if p in ALIASES and p not in bands]
    sensors = {identify_sensor(i).id for i in items}
    has_landsat = any(s.startswith("landsat") for s in sensors)
    if {"wet", "rsei", "rsei_grade"} & set(products):
        for sensor in sensors:
            if sensor == "sentinel2" and has_landsat and heat != "landsat-lst":
                continue
            for band in sorted(indices.required_bands("wet", sensor, load_profile("indices"))):
                if band not in bands:
                    bands.append(band)
    return bands


def needs_thermal_composite(products: Sequence[str], groups: Sequence[ItemGroup], config: RunConfig) -> bool:
    """True when sensor-specific products must come from a Landsat-only composite.

    The spec's first option for mixed Sentinel-2 + Landsat runs (§6.1 Heat): RSEI, WET and LST on
    Landsat for all components; Sentinel-2 serves the other products.
    """
    families = {g.sensor.family for g in groups}
    return bool(_SENSOR_SPECIFIC & set(products)) and len(families) > 1 and "landsat-c2l2" in families


def needs_sentinel2_composite(products: Sequence[str], groups: Sequence[ItemGroup], config: RunConfig) -> bool:
    """True for heat option 2: Sentinel-2 components, Landsat LST (mixed runs only)."""
    return config.rsei.heat == "landsat-lst" and needs_thermal_composite(products, groups, config)


def landsat_bands(bands: Sequence[str]) -> list[str]:
    return [b for b in bands if b not in _S2_ONLY]


def _index(name: str, ds: xr.Dataset) -> xr.DataArray:
    return indices.compute_index(name, ds, load_profile("indices"))


def _classes_level(level: int) -> list[tuple[int, str, str]]:
    table = landcover_tables.load_class_table()
    return [(c.code, c.color, f"{c.name_zh} {c.name_en}") for c in table.of_level(level)]


def rsei_grade_classes() -> list[tuple[int, str, str]]:
    """RSEI grade classes (value, colour, "zh en" label) from the profile's grade table."""
    from eqi.io.qml import ramp

    classes = load_profile("rsei")["grading"]["classes"]
    colours = ramp("rsei", 1, len(classes))
    return [
        (int(c["value"]), colour, f"{c['zh']} {c['en']}")
        for c, (_, colour) in zip(classes, colours, strict=True)
    ]


def rsei_params(config: RunConfig) -> Profile:
    """The RSEI method profile with the run's overrides applied (recorded in the metadata)."""
    params = load_profile("rsei")
    if config.rsei.min_observations is not None:
        params = params.with_overrides({"min_observations": Param(
            config.rsei.min_observations, "[D]", "run configuration override (rsei.min_observations)"
        )})
    return params


def compute_products(
    products: Sequence[str],
    comp: xr.Dataset,
    thermal: xr.Dataset | None,
    *,
    config: RunConfig,
    task: Any,
    inside: xr.DataArray,
    season_composite: Callable[[str], xr.Dataset | None] | None = None,
    sentinel2: xr.Dataset | None = None,
) -> tuple[dict[str, tuple[xr.DataArray, list | None]], dict[str, Any]]:
    """Compute every requested product; returns ``({name: (array, classes)}, metadata)``.

    ``thermal`` is the Landsat-only composite of a mixed run; with ``sentinel2`` (heat option 2)
    RSEI and WET come from the Sentinel-2 composite and LST from ``thermal``.
    """
    out: dict[str, tuple[xr.DataArray, list | None]] = {}
    meta: dict[str, Any] = {"method": {}, "_files": []}
    specific = thermal if thermal is not None else comp
    optical = sentinel2 if sentinel2 is not None else specific
    cache: dict[str, xr.DataArray] = {}

    def index(name: str, ds: xr.Dataset = comp) -> xr.DataArray:
        key = f"{name}@{id(ds)}"
        if key not in cache:
            cache[key] = _index(name, ds).astype("float32")
        return cache[key]

    for name in products:
        if name in COMPOSITE_BANDS or name in ALIASES:
            out[name] = (comp[name], None)
            for p in config.composite.percentiles:
                key = f"{name}_p{p:g}"
                if key in comp:
                    out[key] = (comp[key], None)
        elif name == "count":
            out[name] = (comp["count"], None)
        elif name == "wet":
            out[name] = (index(name, optical), None)
        elif name == "lst":
            out[name] = (index(name, specific), None)
        elif name in ("ndvi", "evi", "savi", "ndwi", "mndwi", "ndbi", "ndbsi"):
            out[name] = (index(name), None)
        elif name == "fvc":
            water = rsei.profile_water_mask(index("mndwi"), rsei_params(config))
            result, bounds = fvc.fvc(index("ndvi"), water, params=load_profile("fvc"))
            out[name] = (result.where(inside), None)
            meta["method"]["fvc"] = bounds.to_metadata()
        elif name in ("rsei", "rsei_grade"):
            if "rsei" in out:
                continue
            params = rsei_params(config)
            variant = config.rsei.variant
            if variant == "rsei":
                rsei.require_thermal(specific)
            # the components are the indices already computed for the products (one pass each);
            # LST comes from the Landsat composite (== optical unless heat option 2)
            layers = {n: index(n, specific if n == "lst" else optical) for n in rsei.VARIANTS[variant]}
            components = rsei.components_from_indices(
                layers, index("mndwi", optical), variant=variant, obs_count=optical["count"],
                sensor=optical.attrs.get("sensor"), label=str(task.year), params=params,
            )
            value, grade, model = rsei.compute_rsei(components, params=params)
            out["rsei"] = (value, None)
            if "rsei_grade" in products:
                out["rsei_grade"] = (grade, rsei_grade_classes())
            meta["method"]["rsei"] = model.to_metadata()
            meta["method"]["rsei"]["source_composite"] = optical.attrs.get("sensor")
            if sentinel2 is not None and variant == "rsei":
                meta["method"]["rsei"]["heat_source"] = (
                    "Landsat C2 L2 ST_B10 seasonal composite on the run's grid, the grid of the "
                    f"Sentinel-2 components (spec §6.1 heat option 2; loaded with "
                    f"{config.resampling} resampling)"
                )
        elif name == "landcover":
            out[name], lc_meta, files = _landcover(comp, config, task, index, inside, season_composite)
            meta["method"]["landcover"] = lc_meta
            meta["_files"].extend(files)
        else:  # pragma: no cover - expand_products validated names
            raise ConfigError(f"product '{name}' is not implemented")
    for name, (da, classes) in list(out.items()):
        if PRODUCTS.get(name, PRODUCTS["red"]).dtype == "float32":
            out[name] = (da.where(inside), classes)
    return out, meta


def _landcover(comp, config: RunConfig, task, index, inside, season_composite=None):
    opts = config.landcover
    if not opts.reference:
        raise ConfigError(
            "product 'landcover' needs a land-cover reference raster: set landcover.reference "
            "(e.g. an ESA WorldCover tile) and landcover.mode (reclassify or classify)"
        )
    reference_spec = opts.reference.replace("{year}", str(task.year))
    mapping = landcover_tables.load_mapping(opts.product)
    items = landcover_io.reference_items(
        reference_spec, year=task.year, bbox=tuple(task.region.geometry.bounds),
        collection=opts.collection, asset=opts.asset,
    )
    reference = landcover_io.load_reference(items, comp.odc.geobox, opts.asset)
    national = landcover.reclassify(reference, mapping, level=opts.level, table=landcover_tables.load_class_table()).where(inside, 0).astype("uint8")
    classes = _classes_level(opts.level)
    meta: dict[str, Any] = {
        "mode": opts.mode,
        "reference": Path(reference_spec).name if "://" not in reference_spec else reference_spec,
        "reference_items": [i.id for i in items],
        "product": opts.product,
        "mapping_source": getattr(mapping, "source", ""),
        "level": opts.level,
    }
    files: list[Path] = []
    if opts.mode == "reclassify":
        return (national, classes), meta, files
    features = xr.Dataset({b: comp[b] for b in COMPOSITE_BANDS if b in comp})
    for name in ("ndvi", "mndwi", "ndbsi"):
        features[name] = index(name)
    meta["seasons"] = [config.season]
    for number, window in enumerate(opts.extra_seasons, start=1):
        other = season_composite(window) if season_composite else None
        if other is None:
            meta.setdefault("seasons_without_scenes", []).append(window)
            continue
        meta["seasons"].append(window)
        for band in COMPOSITE_BANDS:
            if band in other:
                features[f"{band}_s{number}"] = other[band]
        for name in ("ndvi", "mndwi", "ndbsi"):
            features[f"{name}_s{number}"] = _index(name, other).astype("float32")
    X, y, _rows, _cols = classify.draw_samples(
        national, features, n_per_class=opts.samples_per_class, seed=opts.seed
    )
    if len(np.unique(y)) < 2:
        raise InputError("the land-cover reference has fewer than two classes inside the region")
    trained = classify.train_classifier(X, y, seed=opts.seed, feature_names=list(features.data_vars))
    predicted = classify.predict(trained, features).where(inside, 0).astype("uint8")
    report = trained.report
    names = {c: label for c, _, label in classes}
    json_path = task.paths.dir / "landcover_accuracy.json"
    md_path = task.paths.dir / "landcover_accuracy.md"
    atomic_write_json(json_path, report.to_dict())
    atomic_write_text(md_path, report.to_markdown(names))
    files.extend([json_path, md_path])
    meta["accuracy"] = {"overall_accuracy": report.to_dict().get("overall_accuracy"), "kappa": report.to_dict().get("kappa")}
    meta["features"] = list(features.data_vars)
    return (predicted, classes), meta, files
