"""Writing one product: COG with tags and description, and its QGIS style, from the registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    write_qml,
)
from eqi.io.stac import eqi_version
from eqi.palettes import ramp
from eqi.products import ClassEntry, spec_for

__all__ = ["write_product", "output_tags", "display_range"]


def output_tags(plan: Any, label: str, year: int, *, simulated: bool) -> dict[str, str]:
    """Dataset tags every output carries (version, region or tile, year, simulated flag)."""
    tags = {
        "EQI_VERSION": eqi_version(),
        "EQI_REGION": label,
        "EQI_YEAR": str(year),
        "EQI_SEASON": plan.stack.season,
        "EQI_SIMULATED": "true" if simulated else "false",
    }
    if simulated:
        tags["EQI_NOTE"] = "SIMULATED DATA - produced by the eqi offline demo, not an observation"
    return tags


def write_product(
    name: str,
    da: xr.DataArray,
    path: Path,
    tags: Mapping[str, str],
    classes: Sequence[ClassEntry] | None = None,
    *,
    style: bool = True,
    output_name: str | None = None,
    intermediate: bool = False,
) -> Path:
    """Write product ``name`` (registry spec) as a COG at ``path``; with ``style`` also its .qml.

    ``intermediate`` files (the tile store) are tiled GeoTIFFs without overviews, never styled.

    ``output_name`` labels the file when it differs from the product (``ndvi_s1``).
    """
    spec = spec_for(name)
    label = output_name or name
    if spec.dtype != "float32":
        values = da.fillna(spec.nodata).astype(spec.dtype) if da.dtype.kind == "f" else da.astype(spec.dtype)
    else:
        values = da.astype("float32")
    product_tags = {**tags, "EQI_PRODUCT": label}
    description = spec.description if output_name is None else f"{spec.description} ({label})"
    if tags.get("EQI_SIMULATED") == "true":
        description = f"{description} [SIMULATED DATA]"
    if tags.get("EQI_CLOUD_MASK", "applied") != "applied":
        description = f"{description} [CLOUDS NOT MASKED]"
    spec = replace(spec, description=description)
    categorical = spec.kind == "categorical" and bool(classes)
    write_cog(
        values, path, nodata=spec.nodata, description=spec.description,
        kind="categorical" if spec.kind == "categorical" else "continuous", units=spec.units,
        tags=product_tags, colormap=colormap_from_classes(classes) if categorical else None,
        category_names=names_from_classes(classes) if categorical else None, intermediate=intermediate,
    )  # fmt: skip
    if not style or intermediate:
        return path
    if categorical:
        write_qml(path, categorical_qml(list(classes or ()), nodata=int(spec.nodata), label=spec.description))
    else:
        lo, hi = spec.display_range or display_range(values, None if spec.dtype == "float32" else spec.nodata)
        write_qml(
            path,
            continuous_qml(lo, hi, ramp(spec.ramp or "grey", lo, hi),
                           nodata=None if spec.dtype == "float32" else spec.nodata, label=spec.description),
        )  # fmt: skip
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
