"""Writing one product: COG with tags and description, QGIS style, from the product registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eqi.io.cog import write_cog
from eqi.io.qml import (
    categorical_qml,
    colormap_from_classes,
    continuous_qml,
    names_from_classes,
    ramp,
    write_qml,
)
from eqi.pipeline.products_stage import rsei_grade_classes
from eqi.products import PRODUCTS, ProductSpec
from eqi.sensors import ALIASES

__all__ = ["spec_for", "write_product"]


def spec_for(name: str) -> ProductSpec:
    """Product spec by name: registry entries, extra bands, percentiles, per-year pooled RSEI."""
    if name in PRODUCTS:
        return PRODUCTS[name]
    if name in ALIASES:
        return replace(PRODUCTS["red"], name=name, description=f"{name} surface reflectance, seasonal median")
    base, _, suffix = name.rpartition("_")
    if suffix.isdigit() and base in PRODUCTS:  # rsei_2022, rsei_grade_2022 (pooled)
        spec = PRODUCTS[base]
        return replace(spec, name=name, description=f"{spec.description}, {suffix}, pooled multi-year model")
    band, _, pct = name.partition("_p")
    if band in PRODUCTS and pct:
        spec = PRODUCTS[band]
        return replace(spec, name=name, description=spec.description.replace("median", f"percentile {pct}"))
    raise KeyError(name)


def write_product(
    name: str,
    da: xr.DataArray,
    paths: Any,
    tags: dict[str, str],
    classes: list[tuple[int, str, str]] | None = None,
) -> Path:
    """Write one product COG and its QGIS style; ``paths.product(name)`` gives the file."""
    spec = spec_for(name)
    path = paths.product(name)
    if spec.kind == "categorical" and classes is None and spec.name.startswith("rsei_grade"):
        classes = rsei_grade_classes()
    if spec.dtype != "float32":
        values = da.fillna(spec.nodata).astype(spec.dtype) if da.dtype.kind == "f" else da.astype(spec.dtype)
    else:
        values = da.astype("float32")
    product_tags = {**tags, "EQI_PRODUCT": name}
    if tags.get("EQI_SIMULATED") == "true":
        spec = replace(spec, description=f"{spec.description} [SIMULATED DATA]")
    if spec.kind == "categorical" and classes:
        write_cog(
            values, path, nodata=spec.nodata, description=spec.description, kind="categorical",
            units=spec.units, tags=product_tags, colormap=colormap_from_classes(classes),
            category_names=names_from_classes(classes),
        )
        write_qml(path, categorical_qml(classes, nodata=int(spec.nodata), label=spec.description))
    else:
        write_cog(
            values, path, nodata=spec.nodata, description=spec.description, kind="continuous",
            units=spec.units, tags=product_tags,
        )
        lo, hi = spec.display_range or display_range(values, None if spec.dtype == "float32" else spec.nodata)
        write_qml(
            path,
            continuous_qml(lo, hi, ramp(spec.ramp or "grey", lo, hi),
                           nodata=None if spec.dtype == "float32" else spec.nodata,
                           label=spec.description),
        )
    return path


def display_range(da: xr.DataArray, nodata: float | None = None) -> tuple[float, float]:
    """QGIS display range: the 2nd and 98th percentiles of the valid values."""
    values = np.asarray(da.values, dtype="float64")
    values = values[np.isfinite(values)]
    if nodata is not None:
        values = values[values != nodata]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, [2, 98])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
