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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from odc.geo.xr import xr_coords

from eqi.errors import InputError
from eqi.geo.grid import TileId
from eqi.io.atomic import atomic_path, atomic_write_json, atomic_write_text
from eqi.io.landcover_tables import load_water_split
from eqi.io.raster import read_layer, region_mask
from eqi.pipeline import landcover_stage
from eqi.pipeline.memory import release_memory
from eqi.pipeline.plan import Plan
from eqi.pipeline.tile_stage import LANDCOVER_FEATURE_INDICES
from eqi.products import COMPOSITE_BANDS, ClassEntry, ProductContext
from eqi.science import fvc as fvc_science
from eqi.science import rsei as rsei_science
from eqi.science.fvc import FvcBounds
from eqi.science.landcover import WaterSplit, split_water
from eqi.science.rsei import RseiModel

__all__ = ["TileFiles", "fit_model", "load_model", "model_done", "LandcoverMaker", "landcover_map_accuracy"]

TileFiles = Mapping[tuple[int, TileId], Mapping[str, Path]]  # (year, tile) -> product -> file


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
            ndvi = read_layer(paths["ndvi"], chunk=plan.stack.chunk)
            water = rsei_science.profile_water_mask(read_layer(paths["mndwi"], chunk=plan.stack.chunk), plan.profiles["rsei"])
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
    layers = {n: read_layer(paths[_RSEI_FILES.get(n, n)], chunk=plan.stack.chunk) for n in rsei_science.VARIANTS[variant]}
    return rsei_science.components_from_indices(
        layers, read_layer(paths["rsei_mndwi"], chunk=plan.stack.chunk), variant=variant,
        obs_count=read_layer(paths["rsei_count"], chunk=plan.stack.chunk),
        observed=read_layer(paths["rsei_observed"], chunk=plan.stack.chunk), label=label, params=plan.profiles["rsei"],
    )  # fmt: skip


def _fit_rsei(plan: Plan, years: Sequence[int], files: TileFiles) -> tuple[RseiModel, dict[str, Any]]:
    variant = plan.options.get("rsei_variant", "rsei")
    names = [_RSEI_FILES.get(n, n) for n in rsei_science.VARIANTS[variant]] + ["rsei_mndwi", "rsei_count", "rsei_observed"]
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
    # each tile's pass leaves ~20 MiB of freed chunk heap that glibc keeps: handed back between tiles
    model = rsei_science.fit_rsei_model(groups, params=plan.profiles["rsei"],
                                        after_part=lambda: release_memory(collect=False))  # fmt: skip
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
class LandcoverMaker:
    """How land cover is made on a tile: the reference reclassified, or the area's classifier
    (:mod:`eqi.pipeline.landcover_stage`: a full model and a main-season fallback)."""

    mode: str
    level: int
    classes_table: tuple[ClassEntry, ...]
    model: landcover_stage.LandcoverModel | None = None
    water: WaterSplit | None = None  # rivers vs lakes/reservoirs from a water-body layer (level 2)
    _last: tuple[Any, xr.DataArray, xr.DataArray] | None = field(default=None, repr=False, compare=False)

    def classes(self) -> list[ClassEntry]:
        return list(self.classes_table)

    def _features(self, ctx: ProductContext) -> xr.Dataset:
        assert self.model is not None
        layers = {}
        for name in self.model.feature_names:
            try:
                layers[name] = ctx.get(name)
            except KeyError:  # an extra season this tile has no scene for: the fallback serves
                continue
        return xr.Dataset(layers)

    def _predict(self, ctx: ProductContext) -> tuple[xr.DataArray, xr.DataArray]:
        """Classes and confidence of the tile behind ``ctx``, predicted once per tile."""
        assert self.model is not None
        if self._last is None or self._last[0] is not ctx:
            classes, confidence = landcover_stage.apply_landcover(self.model, self._features(ctx))
            (classes, confidence) = dask.persist(classes, confidence)
            self._last = (ctx, classes.astype("uint8"), confidence)
        return self._last[1], self._last[2]

    def apply(self, ctx: ProductContext) -> xr.DataArray:
        classes = ctx.get("lc_reference") if self.model is None else self._predict(ctx)[0]
        if self.water is not None and self.level == 2:
            split = split_water(classes, ctx.reference("water_bodies"), water=self.water)
            classes = classes.copy(data=split.data)  # keep the grid's coordinates (and CRS)
        return classes

    def confidence(self, ctx: ProductContext) -> xr.DataArray:
        if self.model is None:  # a reclassified product carries no confidence of its own
            return xr.full_like(ctx.get("lc_reference"), np.nan, dtype=np.float32)
        return self._predict(ctx)[1]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last": None}


def _landcover_features(plan: Plan, paths: Mapping[str, Path]) -> xr.Dataset:
    """Main-season features and whichever extra-season features a tile has (``<name>_s<k>``)."""
    main = (*COMPOSITE_BANDS, *LANDCOVER_FEATURE_INDICES)
    names = [n for n in paths if n in main or (n.rsplit("_s", 1)[0] in main and n.rsplit("_s", 1)[-1].isdigit())]
    return xr.Dataset({n: read_layer(paths[n], chunk=plan.stack.chunk) for n in names})


def _fit_landcover(plan: Plan, years: Sequence[int], files: TileFiles, classes: Sequence[ClassEntry]) -> tuple[LandcoverMaker, dict[str, Any]]:
    opts = plan.options.get("landcover_tile") or {}
    level = int(opts.get("level", 1))
    meta: dict[str, Any] = {"mode": opts.get("mode"), "product": opts.get("product"), "level": level,
                            "reference": opts.get("reference")}  # fmt: skip
    water = load_water_split() if opts.get("water_bodies") else None
    if water is not None:
        meta["water_bodies"] = opts["water_bodies"]
    if opts.get("mode") != "classify":
        return LandcoverMaker("reclassify", level, tuple(classes), water=water), meta
    (year,) = years
    profile = plan.profiles["landcover"]
    seed = int(opts.get("seed", 42))
    samples, tiles = [], []
    for (y, tile), paths in sorted(files.items()):
        if y != year or "lc_reference" not in paths:
            continue
        inside = _inside(plan, tile)
        features = _landcover_features(plan, paths).where(inside)
        reference = read_layer(paths["lc_reference"], chunk=plan.stack.chunk).where(inside, 0).astype("uint8")
        samples.append(landcover_stage.sample_tile(features, reference, params=profile, seed=seed, tile_key=str(tile)))
        tiles.append(tile)
    if not samples:
        raise InputError(f"land cover {year}: no tile has the classifier features and the reference")
    model = landcover_stage.fit_landcover(samples, params=profile, seed=seed)
    meta.update(model.to_metadata())
    meta.update(seasons=[plan.stack.season, *plan.options.get("extra_seasons", [])],
                scope=_scope(plan, years, tiles))
    return LandcoverMaker("classify", level, tuple(classes), model, water=water), meta


def landcover_map_accuracy(
    plan: Plan, maker: LandcoverMaker, years: Sequence[int], classified: Mapping[TileId, Path]
) -> dict[str, Any] | None:
    """Map accuracy (Olofsson et al. 2014) of the area's classified map; reports written beside
    the model (``.accuracy.json`` / ``.accuracy.md``).  ``classified``: the tiles' land-cover files."""
    if maker.model is None:
        return None
    counts: dict[int, int] = {}
    for tile, path in classified.items():
        classes = read_layer(path, chunk=plan.stack.chunk).where(_inside(plan, tile), 0)
        for code, n in landcover_stage.mapped_pixel_counts(classes).items():
            counts[code] = counts.get(code, 0) + n
    report = landcover_stage.map_accuracy(maker.model, counts, plan.stack.grid.resolution ** 2)
    names = {c: label for c, _, label in maker.classes()}
    atomic_write_json(plan.model_path("landcover", years, ".accuracy.json"), report.to_dict())
    atomic_write_text(plan.model_path("landcover", years, ".accuracy.md"), report.to_markdown(names))
    return report.to_dict()


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

