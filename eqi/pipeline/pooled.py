"""Pooled multi-year RSEI of a region (spec §6.5): one normalisation and one PCA for all years.

Runs after the annual tasks of a region, from the components they wrote (``ndvi, wet, lst, ndbsi,
mndwi, count``), so it also works when some years were finished by an earlier run.  Outputs go to
``OUT/<region>/rsei-pooled-<first>-<last>/`` with ``rsei_<year>.tif``, ``rsei_grade_<year>.tif``,
``metadata.json`` and ``item.json`` (written last, the done marker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from eqi.config import RunConfig, config_hash
from eqi.errors import InputError
from eqi.io.atomic import atomic_write_json
from eqi.io.stac import AssetInfo, product_item, write_item_atomic
from eqi.pipeline.products_stage import rsei_params
from eqi.pipeline.tasks import TaskPaths, check_done, params_hash
from eqi.resources import method_profiles
from eqi.science import rsei

__all__ = ["POOLED_INPUTS", "PooledPaths", "run_pooled"]

POOLED_INPUTS = ("ndvi", "wet", "lst", "ndbsi", "mndwi", "count")


@dataclass(frozen=True)
class PooledPaths:
    """Output paths of a region's pooled RSEI (same interface as :class:`eqi.pipeline.tasks.TaskPaths`)."""

    out_root: Path
    region: str
    years: tuple[int, ...]

    @property
    def dir(self) -> Path:
        return self.out_root / self.region / f"rsei-pooled-{self.years[0]}-{self.years[-1]}"

    @property
    def item(self) -> Path:
        return self.dir / "item.json"

    def product(self, name: str) -> Path:
        return self.dir / f"{name}.tif"


def _read(path: Path) -> xr.DataArray:
    if not path.is_file():
        raise InputError(f"pooled RSEI needs {path}, which the annual task did not write")
    with rasterio.open(path) as src:
        data = src.read(1)
        gbox = GeoBox(src.shape, src.transform, src.crs)
        nodata = src.nodata
    if data.dtype.kind != "f" and nodata is not None:
        data = np.where(data == nodata, 0, data)
    return xr.DataArray(data, dims=("y", "x"), coords=xr_coords(gbox))


def _components(year_dir: Path, variant: str, label: str, params: dict) -> rsei.RseiComponents:
    layers = {name: _read(year_dir / f"{name}.tif") for name in ("ndvi", "wet", "lst", "ndbsi")}
    return rsei.components_from_indices(
        layers,
        _read(year_dir / "mndwi.tif"),
        variant=variant,
        obs_count=_read(year_dir / "count.tif"),
        label=label,
        params=params,
    )


def run_pooled(
    config: RunConfig,
    region: Any,
    task_ids: Sequence[str],
    *,
    write: Callable[..., Path],
    tags: dict[str, str],
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> Path | None:
    """Fit one RSEI model on all years of ``region`` and write each year's pooled RSEI and grade."""
    years = tuple(config.years)
    paths = PooledPaths(config.out, region.name, years)
    pooled_id = f"{region.name}_rsei-pooled_{years[0]}-{years[-1]}_{params_hash({'tasks': list(task_ids)})}"
    if not overwrite and check_done(paths, pooled_id) is None:  # type: ignore[arg-type]
        progress(f"skip {region.name} pooled RSEI {years[0]}-{years[-1]}: done")
        return None
    variant = config.rsei.variant
    params = rsei_params(config)
    comps = [_components(TaskPaths(config.out, region.name, y).dir, variant, str(y), params) for y in years]
    model = rsei.fit_rsei_model(comps, params=params)
    paths.dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, AssetInfo] = {}
    for year, comp in zip(years, comps, strict=True):
        value, grade = rsei.apply_rsei_model(model, comp)
        for name, da in ((f"rsei_{year}", value), (f"rsei_grade_{year}", grade)):
            path = write(name, da, paths, tags)
            written[name] = AssetInfo(path=path, title=f"{name} (pooled {years[0]}-{years[-1]})")
    meta_path = paths.dir / "metadata.json"
    atomic_write_json(meta_path, {"task_id": pooled_id, "annual_tasks": list(task_ids), "rsei": model.to_metadata()})
    written["metadata"] = AssetInfo(path=meta_path, title="Pooled RSEI model", roles=("metadata",), media_type="application/json")
    item = product_item(
        pooled_id, region.name, years[-1], region.geometry, list(region.geometry.bounds), written,
        properties={
            "eqi:products": [k for k in written if k != "metadata"],
            "eqi:years": list(years),
            "start_datetime": f"{years[0]}-01-01T00:00:00Z",
            "end_datetime": f"{years[-1]}-12-31T23:59:59Z",
        },
        method={"rsei": model.to_metadata(), "profiles": method_profiles(("indices", "rsei"))},
        config_hash=config_hash(config),
        simulated=tags.get("EQI_SIMULATED") == "true",
    )
    write_item_atomic(item, paths.item)
    progress(f"done {region.name} pooled RSEI {years[0]}-{years[-1]} (PC1 {model.to_metadata()['pc1_share']:.1%})")
    return paths.item
