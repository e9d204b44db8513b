"""Models fitted once over the evaluation area and period, from the tile store, saved, reused.

* ``fvc``: NDVI end-members from the NDVI histogram of every land pixel of every tile and year
  (water excluded by the RSEI profile's water mask), spec §5.1 "fixed or pooled bounds";
* ``rsei``: normalisation, PCA and final bounds from a seeded sample spread over all tiles, pooled
  over the years (``rsei.mode: pooled``, default) or per year (spec §6.5);
* ``landcover``: the mapping of the reference product (``reclassify``) or a classifier trained on
  samples from all tiles of the year (``classify``).

Each model is written to ``OUT/areas/<area>/models/`` with its task id (the done marker), the
scope it was fitted on (area, regions, years, tiles) and its parameters.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from odc.geo.xr import xr_coords

from eqi.errors import InputError
from eqi.geo.grid import TileId
from eqi.io.atomic import atomic_path, atomic_write_json, atomic_write_text
from eqi.io.raster import open_raster, region_mask
from eqi.pipeline.plan import Plan
from eqi.pipeline.tile_stage import LANDCOVER_FEATURE_INDICES
from eqi.products import COMPOSITE_BANDS, ClassEntry, ProductContext
from eqi.science import classify
from eqi.science import fvc as fvc_science
from eqi.science import rsei as rsei_science
from eqi.science.fvc import FvcBounds
from eqi.science.rsei import RseiModel

__all__ = ["TileFiles", "fit_model", "load_model", "model_done", "LandcoverModel"]

TileFiles = Mapping[tuple[int, TileId], Mapping[str, Path]]  # (year, tile) -> product -> file


def _read(path: Path, chunk: int) -> xr.DataArray:
    da = open_raster(path, chunk=chunk)
    nodata = da.attrs.get("nodata")
    if np.issubdtype(da.dtype, np.floating):
        if nodata is not None and not np.isnan(nodata):
            da = da.where(da != nodata)
        return da.astype(np.float32)
    return da


def _parts(files: TileFiles, years: Sequence[int], names: Sequence[str]) -> dict[int, list[tuple[TileId, dict[str, Path]]]]:
    """Per year, the tiles that hold every product in ``names``."""
    out: dict[int, list[tuple[TileId, dict[str, Path]]]] = {y: [] for y in years}
    for (year, tile), products in sorted(files.items()):
        if year in out and all(n in products for n in names):
            out[year].append((tile, {n: products[n] for n in names}))
    return out


def _inside(plan: Plan, tile: TileId) -> xr.DataArray:
    """Pixels of ``tile`` inside the evaluation area: a model is fitted on the area, not the tiles."""
    geobox = plan.stack.grid.tile_geobox(tile)
    return xr.DataArray(region_mask(plan.area.geometry, geobox), dims=("y", "x"), coords=xr_coords(geobox))


def _scope(plan: Plan, years: Sequence[int], tiles: Sequence[TileId]) -> dict[str, Any]:
    return {
        "area": plan.area.slug,
        "regions": [r.name for r in plan.area.regions],
        "years": [int(y) for y in years],
        "tiles": len(tiles),
        "note": "fitted once for the evaluation area and period; every region and year of it uses this model",
    }


# ---------------------------------------------------------------------------------------- FVC


def _fit_fvc(plan: Plan, years: Sequence[int], files: TileFiles) -> tuple[FvcBounds, dict[str, Any]]:
    parts = _parts(files, years, ("ndvi", "mndwi"))
    counts = np.zeros(fvc_science.NDVI_BINS, dtype=np.int64)
    tiles: list[TileId] = []
    for year in years:
        for tile, paths in parts[year]:
            ndvi = _read(paths["ndvi"], plan.stack.chunk)
            water = rsei_science.profile_water_mask(_read(paths["mndwi"], plan.stack.chunk), plan.profiles["rsei"])
            n, w = dask.compute(ndvi.data, water.data)
            counts += fvc_science.ndvi_histogram(n, np.asarray(w) | ~_inside(plan, tile).values)
            tiles.append(tile)
    bounds = fvc_science.fvc_bounds_from_histogram(counts, params=plan.profiles["fvc"])
    meta = {**bounds.to_metadata(), "scope": _scope(plan, years, sorted(set(tiles))),
            "histogram_bin_width": 2.0 / fvc_science.NDVI_BINS}
    return bounds, meta


# ---------------------------------------------------------------------------------------- RSEI


_RSEI_FILES = {"ndvi": "rsei_ndvi", "mndwi": "rsei_mndwi", "count": "rsei_count"}


def rsei_components_from_files(plan: Plan, paths: Mapping[str, Path], variant: str, label: str) -> rsei_science.RseiComponents:
    """RSEI components of one tile and year read back from the tile store."""
    layers = {n: _read(paths[_RSEI_FILES.get(n, n)], plan.stack.chunk) for n in rsei_science.VARIANTS[variant]}
    return rsei_science.components_from_indices(
        layers, _read(paths["rsei_mndwi"], plan.stack.chunk), variant=variant,
        obs_count=_read(paths["rsei_count"], plan.stack.chunk), label=label, params=plan.profiles["rsei"],
    )  # fmt: skip


def _fit_rsei(plan: Plan, years: Sequence[int], files: TileFiles) -> tuple[RseiModel, dict[str, Any]]:
    variant = plan.options.get("rsei_variant", "rsei")
    names = [_RSEI_FILES.get(n, n) for n in rsei_science.VARIANTS[variant]] + ["rsei_mndwi", "rsei_count"]
    parts = _parts(files, years, names)
    groups, tiles = [], []
    for year in years:
        comps = [
            replace(c, usable=c.usable & _inside(plan, tile))
            for tile, paths in parts[year]
            for c in [rsei_components_from_files(plan, paths, variant, str(year))]
        ]
        if not comps:
            raise InputError(f"RSEI {year}: no tile of the area has scenes; nothing to fit")
        groups.append(comps)
        tiles += [t for t, _ in parts[year]]
    model = rsei_science.fit_rsei_model(groups, params=plan.profiles["rsei"])
    meta = {**model.to_metadata(), "scope": _scope(plan, years, sorted(set(tiles)))}
    meta["mode"] = "pooled" if len(years) > 1 else "per-year"
    meta["source_composite"] = _specific_sensor(files, years)
    if plan.options.get("heat") == "landsat-lst" and meta["source_composite"] == "sentinel2":
        meta["heat_source"] = (
            "Landsat C2 L2 ST_B10 seasonal composite on the run's grid, the grid of the Sentinel-2 "
            f"components (spec §6.1 heat option 2; loaded with {plan.stack.resampling} resampling)"
        )
    return model, meta


def _specific_sensor(files: TileFiles, years: Sequence[int]) -> str | None:
    """The sensor of the composite the RSEI components came from (recorded by the tile stage)."""
    import json

    labels = set()
    for (year, _tile), paths in files.items():
        meta = Path(paths["_dir"]) / "metadata.json" if "_dir" in paths else None
        if year in years and meta is not None and meta.is_file():
            label = (json.loads(meta.read_text(encoding="utf-8")).get("composites") or {}).get("specific")
            if label:
                labels.add(label)
    return labels.pop() if len(labels) == 1 else ("mixed" if labels else None)


# ---------------------------------------------------------------------------------- land cover


@dataclass
class LandcoverModel:
    """How land cover is made on a tile: the reference reclassified, or a trained classifier."""

    mode: str
    level: int
    classes_table: tuple[ClassEntry, ...]
    trained: classify.TrainedClassifier | None = None

    def classes(self) -> list[ClassEntry]:
        return list(self.classes_table)

    def apply(self, ctx: ProductContext) -> xr.DataArray:
        reference = ctx.get("lc_reference")
        if self.trained is None:
            return reference
        features = xr.Dataset({n: ctx.get(n) for n in self.trained.feature_names})
        return classify.predict(self.trained, features).astype("uint8")


def landcover_features(paths: Mapping[str, Path], names: Sequence[str], chunk: int) -> xr.Dataset:
    return xr.Dataset({n: _read(paths[n], chunk) for n in names})


def _feature_names(plan: Plan, files: TileFiles, year: int) -> list[str]:
    names = [*COMPOSITE_BANDS, *LANDCOVER_FEATURE_INDICES]
    for k, _ in enumerate(plan.options.get("extra_seasons", []), start=1):
        season = [f"{n}_s{k}" for n in (*COMPOSITE_BANDS, *LANDCOVER_FEATURE_INDICES)]
        if any(all(s in p for s in season) for (y, _t), p in files.items() if y == year):
            names += season
    return names


def _fit_landcover(plan: Plan, years: Sequence[int], files: TileFiles, classes: Sequence[ClassEntry]) -> tuple[LandcoverModel, dict[str, Any]]:
    opts = plan.options.get("landcover_tile") or {}
    level = int(opts.get("level", 1))
    meta: dict[str, Any] = {"mode": opts.get("mode"), "product": opts.get("product"), "level": level,
                            "reference": opts.get("reference")}  # fmt: skip
    if opts.get("mode") != "classify":
        return LandcoverModel("reclassify", level, tuple(classes)), meta
    (year,) = years
    names = _feature_names(plan, files, year)
    parts = _parts(files, [year], [*names, "lc_reference"])[year]
    if not parts:
        raise InputError(f"land cover {year}: no tile has the classifier features and the reference")
    n_per_class = int(opts.get("samples_per_class", 400))
    seed = int(opts.get("seed", 42))
    xs, ys = [], []
    for j, (tile, paths) in enumerate(parts):
        features = landcover_features(paths, names, plan.stack.chunk)
        reference = _read(paths["lc_reference"], plan.stack.chunk).where(_inside(plan, tile), 0)
        try:
            x, y, _r, _c = classify.draw_samples(reference, features, n_per_class=n_per_class, seed=seed + j)
        except InputError:
            continue  # a tile with no usable reference pixel
        xs.append(x)
        ys.append(y)
    if not xs:
        raise InputError(f"land cover {year}: no pixel has both a reference class and every feature")
    X, y = np.concatenate(xs), np.concatenate(ys)
    rng = np.random.default_rng(seed)
    keep = []
    for code in np.unique(y):  # the same number per class over the whole area as in one tile
        idx = np.flatnonzero(y == code)
        keep.append(np.sort(rng.choice(idx, size=n_per_class, replace=False)) if idx.size > n_per_class else idx)
    pick = np.concatenate(keep)
    if len(np.unique(y[pick])) < 2:
        raise InputError("the land-cover reference has fewer than two classes inside the area")
    trained = classify.train_classifier(X[pick], y[pick], seed=seed, feature_names=names)
    meta.update(features=names, seasons=[plan.stack.season, *plan.options.get("extra_seasons", [])],
                accuracy={"overall_accuracy": trained.report.overall_accuracy, "kappa": trained.report.kappa})
    return LandcoverModel("classify", level, tuple(classes), trained), meta


# ---------------------------------------------------------------------------------- I/O


def model_done(plan: Plan, model: str, years: Sequence[int], task_id: str) -> bool:
    path = plan.model_path(model, years)
    try:
        import json

        recorded = json.loads(path.read_text(encoding="utf-8")).get("task_id")
    except (OSError, ValueError):
        return False
    if model == "landcover" and not plan.model_path(model, years, ".pkl").is_file():
        return False
    return recorded == task_id


def fit_model(
    plan: Plan, model: str, years: Sequence[int], files: TileFiles, *, task_id: str,
    classes: Callable[[], Sequence[ClassEntry]] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit ``model`` for ``years`` from the tile store and save it; returns ``(model, metadata)``."""
    if model == "fvc":
        fitted, meta = _fit_fvc(plan, years, files)
    elif model == "rsei":
        fitted, meta = _fit_rsei(plan, years, files)
    elif model == "landcover":
        fitted, meta = _fit_landcover(plan, years, files, classes() if classes else ())
    else:  # pragma: no cover - the registry names only these
        raise InputError(f"no fitting procedure for model {model!r}")
    meta = {"task_id": task_id, "model": model, **meta}
    path = plan.model_path(model, years)
    if model == "landcover":
        with atomic_path(plan.model_path(model, years, ".pkl")) as tmp:
            tmp.write_bytes(pickle.dumps(fitted, protocol=pickle.HIGHEST_PROTOCOL))
        if fitted.trained is not None:
            report = fitted.trained.report
            names = {c: label for c, _, label in fitted.classes()}
            atomic_write_json(plan.model_path(model, years, ".accuracy.json"), report.to_dict())
            atomic_write_text(plan.model_path(model, years, ".accuracy.md"), report.to_markdown(names))
    elif model == "rsei":
        meta["state"] = asdict(fitted)
    elif model == "fvc":
        meta["state"] = asdict(fitted)
    atomic_write_json(path, meta)  # last: the done marker
    return fitted, meta


def load_model(plan: Plan, model: str, years: Sequence[int]) -> tuple[Any, dict[str, Any]]:
    """A saved model and its metadata."""
    import json

    meta = json.loads(plan.model_path(model, years).read_text(encoding="utf-8"))
    if model == "landcover":
        fitted = pickle.loads(plan.model_path(model, years, ".pkl").read_bytes())
    elif model == "rsei":
        state = dict(meta["state"])
        fitted = RseiModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in state.items()})
    else:
        fitted = FvcBounds(**meta["state"])
    return fitted, meta

