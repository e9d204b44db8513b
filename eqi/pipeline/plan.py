"""The run config resolved once into a plan: the evaluation area on a tile grid, and its tasks.

Everything below the pipeline receives values from here, never the whole :class:`RunConfig`:

* a :class:`StackSpec` says what a tile composite is made of (source, collections, season, mask
  rules, composite settings, grid); equal specs give equal tiles, so neighbouring runs share them;
* the evaluation area is the union of the run's regions; its tiles are those it touches;
* tasks: tile x year (composites and per-pixel products, the tile store), model fits once per area
  and period (FVC end-members, RSEI, land-cover classifier), apply per tile x year (fitted
  products), and region x year (mosaic, clipped COGs, the region's item).

Output layout::

    OUT/tiles/<stack key>/<year>/<tile>/      per-tile products + item.json (done marker)
    OUT/areas/<area>/models/                  fitted models (JSON, classifier pickle)
    OUT/areas/<area>/<year>/<tile>/           fitted products per tile + item.json
    OUT/areas/<area>/<year>/<product>.vrt     the area mosaic of each product
    OUT/areas/<area>/tables/                  regional tables (ei/eqi; docs/tables.md), assessment.json
    OUT/<region>/<year>/<product>.tif|.vrt    clipped COG (+ .qml) and mosaic per region, item.json
    OUT/areas/<area>/trends/<first>-<last>/   per-pixel trends (eqi.pipeline.trend_stage), summary.json
    OUT/<region>/trends/<first>-<last>/       trends clipped per region, summary.json (km² per class)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pystac
import shapely
from shapely.geometry.base import BaseGeometry

from eqi.config import RunConfig, SeasonWindow, config_hash
from eqi.errors import ConfigError
from eqi.geo.crs import parse_crs
from eqi.geo.grid import TileGrid, TileId
from eqi.geo.regions import Region, load_regions
from eqi.io.catalog import resolve_collections
from eqi.io.stac import eqi_version
from eqi.params import Param, Profile
from eqi.pipeline.masking import mask_profile
from eqi.pipeline.tasks import params_hash
from eqi.products import REGISTRY, assessments, expand_products, requirements
from eqi.resources import PROFILE_NAMES, load_profile
from eqi.science.mask import MaskRules

__all__ = ["StackSpec", "Area", "Plan", "build_plan", "native_anchor", "profiles_for"]


@dataclass(frozen=True)
class StackSpec:
    """What a tile composite is made of; :meth:`key` names the tile store."""

    source: str
    collections: tuple[str, ...]
    season: str
    grid: TileGrid
    mask: MaskRules
    max_cloud_cover: float | None = None
    s2_boa_offset: int | None = None
    require_mask: bool = True
    percentiles: tuple[float, ...] = ()
    min_clear: int = 1
    resampling: str = "nearest"
    chunk: int = 512
    dates_per_chunk: int = 4  # native-grid reads; the pixels do not depend on it (not in describe)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "collections": list(self.collections),
            "season": self.season,
            "grid": self.grid.describe(),
            "mask": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.mask).items()},
            "max_cloud_cover": self.max_cloud_cover,
            "s2_boa_offset": self.s2_boa_offset,
            "require_mask": self.require_mask,
            "percentiles": list(self.percentiles),
            "min_clear": self.min_clear,
            "resampling": self.resampling,
        }  # fmt: skip

    def key(self) -> str:
        return params_hash(self.describe(), length=10)

    def window(self, year: int, season: str | None = None) -> str:
        return SeasonWindow.parse(season or self.season).datetime_range(year)


@dataclass(frozen=True)
class Area:
    """The evaluation area: the union of the run's regions, fitted together."""

    slug: str
    regions: tuple[Region, ...]
    geometry: BaseGeometry

    @classmethod
    def of(cls, regions: Sequence[Region]) -> Area:
        if len(regions) == 1:
            slug = regions[0].name
        else:
            slug = "area-" + params_hash({"regions": sorted(r.name for r in regions)}, length=8)
        return cls(slug, tuple(regions), shapely.union_all([r.geometry for r in regions]))


@dataclass(frozen=True)
class Plan:
    """A resolved run: what to compute where, with every parameter its stages need."""

    out: Path
    area: Area
    stack: StackSpec
    years: tuple[int, ...]
    outputs: tuple[str, ...]  # products written per region
    tile_products: tuple[str, ...]  # computed per tile (no model), incl. what fitted ones need
    fitted_products: tuple[str, ...]  # applied per tile from an area model
    models: tuple[str, ...]  # area models to fit
    tiles: tuple[TileId, ...]
    region_tiles: Mapping[str, tuple[TileId, ...]]
    profiles: Mapping[str, Profile]
    options: Mapping[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    config_dump: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ paths
    @property
    def tile_root(self) -> Path:
        return self.out / "tiles" / self.stack.key()

    def tile_dir(self, year: int, tile: TileId) -> Path:
        return self.tile_root / str(year) / str(tile)

    @property
    def area_root(self) -> Path:
        return self.out / "areas" / self.area.slug

    def model_path(self, model: str, years: Sequence[int], suffix: str = ".json") -> Path:
        return self.area_root / "models" / f"{model}-{years[0]}-{years[-1]}{suffix}"

    def apply_dir(self, year: int, tile: TileId) -> Path:
        return self.area_root / str(year) / str(tile)

    def region_dir(self, region: Region, year: int) -> Path:
        return self.out / region.name / str(year)

    # ------------------------------------------------------------------ ids
    def tile_task_id(self, year: int, tile: TileId) -> str:
        """Id of a tile task; which products a finished tile holds is checked separately, so a run
        needing fewer products than an earlier one reuses its tiles."""
        return f"tile_{self.stack.key()}_{year}_{tile}_" + params_hash(
            {"extra_seasons": self.options.get("extra_seasons", []),
             "landcover": self.options.get("landcover_tile"), "eqi": eqi_version(),
             "profiles": {k: p.sha256 for k, p in self.profiles.items()}}
        )  # fmt: skip

    def model_years(self, model: str, year: int) -> tuple[int, ...]:
        """The years a model serving ``year`` is fitted on (its period)."""
        if model == "landcover" or (model == "rsei" and self.options.get("rsei_mode") == "per-year"):
            return (year,)
        return self.years

    def model_task_id(self, model: str, years: Sequence[int]) -> str:
        return f"{model}_{self.area.slug}_{years[0]}-{years[-1]}_" + params_hash(
            {"tiles": [self.tile_task_id(y, t) for y in years for t in self.tiles],
             "options": {k: v for k, v in self.options.items() if k.startswith(model)},
             "config": self.config_hash}
        )  # fmt: skip

    def apply_task_id(self, year: int, tile: TileId) -> str:
        models = sorted({REGISTRY[p].model for p in self.fitted_products if REGISTRY[p].model})
        return f"apply_{self.area.slug}_{year}_{tile}_" + params_hash(
            {"tile": self.tile_task_id(year, tile), "products": sorted(self.fitted_products),
             "models": [self.model_task_id(m, self.model_years(m, year)) for m in models]}
        )  # fmt: skip

    def region_task_id(self, region: Region, year: int) -> str:
        return f"{region.name}_{year}_" + params_hash(
            {"config": self.config_hash, "region_bounds": [round(v, 6) for v in region.geometry.bounds],
             "area": self.area.slug, "eqi": eqi_version(), "grid": self.stack.grid.describe()}
        )  # fmt: skip


def profiles_for(config: RunConfig) -> dict[str, Profile]:
    """The method profiles of a run, with its overrides applied (loaded once, immutable)."""
    profiles = {name: load_profile(name) for name in PROFILE_NAMES if _exists(name)}
    if config.rsei.min_observations is not None:
        profiles["rsei"] = profiles["rsei"].with_overrides({"min_observations": Param(
            config.rsei.min_observations, "[D]", "run configuration override (rsei.min_observations)"
        )})  # fmt: skip
    profiles["mask"] = mask_profile(config, profiles["mask"])  # the run config's mask: overrides
    return profiles


def _exists(name: str) -> bool:
    try:
        load_profile(name)
    except ConfigError:
        return False
    return True


def native_anchor(items: Sequence[pystac.Item], crs: str, resolution: float) -> tuple[float, float] | None:
    """The scenes' pixel-corner anchor when the run's grid is their native grid, else None.

    Native means: every item declares ``proj:epsg`` (or ``proj:code``) equal to the run's CRS and a
    red/NIR asset whose ``proj:transform`` has the run's resolution, all with the same pixel phase.
    """
    target = parse_crs(crs)
    phases = set()
    for item in items:
        code = item.properties.get("proj:epsg") or item.properties.get("proj:code")
        transform = None
        for asset in item.assets.values():
            code = code or asset.extra_fields.get("proj:epsg") or asset.extra_fields.get("proj:code")
            t = asset.extra_fields.get("proj:transform")
            if t and abs(abs(float(t[0])) - resolution) < 1e-9 and abs(abs(float(t[4])) - resolution) < 1e-9:
                transform = t
                break
        if code is None or transform is None:
            return None
        try:
            if parse_crs(f"EPSG:{code}" if str(code).isdigit() else str(code)) != target:
                return None
        except ConfigError:
            return None
        phases.add((round(float(transform[2]) % resolution, 6), round(float(transform[5]) % resolution, 6)))
    if len(phases) != 1:
        return None
    return phases.pop()


def _resampling_note(resampling: str, native: bool) -> str:
    """What the metadata says about resampling (issue: masks must not smear clouds)."""
    if native:
        return "none: the run's grid is the scenes' own (same CRS, resolution and pixel corners)"
    if resampling == "nearest":
        return ("nearest: scenes reprojected onto the run's grid; each pixel's bands and mask come "
                "from the same source pixel, so clouds do not smear into clear pixels")
    return (f"{resampling}: scenes reprojected onto the run's grid; the not-clear mask is grown by "
            f"{SMEAR_BUFFER_PX[resampling]} px so no masked source pixel enters the kernel of a pixel "
            "kept as clear (clouds do not smear)")


# Pixels a resampling kernel reaches beyond the output pixel (run's pixels no finer than the
# scenes'): the mask is grown by this much, so a kept pixel's kernel holds no masked source pixel.
SMEAR_BUFFER_PX = {"nearest": 0, "average": 1, "bilinear": 1, "cubic": 2}


def _with_smear_buffer(rules: MaskRules, resampling: str) -> MaskRules:
    """The mask buffer grown to what a non-nearest resampling needs (clouds must not smear)."""
    return replace(rules, buffer_px=max(rules.buffer_px, SMEAR_BUFFER_PX[resampling]))


def build_plan(config: RunConfig, *, regions: Sequence[Region] | None = None,
               anchor: tuple[float, float] | None = None, native: bool = False) -> Plan:
    """Resolve ``config`` into a :class:`Plan` (no search, no raster I/O).

    ``anchor`` puts pixel corners on the scenes' own; ``native`` says the grid *is* the scenes'
    (same CRS and resolution: nothing is resampled), which the metadata records.
    """
    regions = list(regions) if regions is not None else load_regions(config.aoi, name_field=config.aoi_name_field)
    profiles = profiles_for(config)
    outputs = expand_products(config.products) + [b for b in config.bands if b not in config.products]
    outputs = list(dict.fromkeys(outputs))
    needed = requirements(outputs, {"rsei_variant": config.rsei.variant})
    fitted = tuple(p for p in needed if p in REGISTRY and REGISTRY[p].model)
    tile_products = tuple(p for p in needed if p not in fitted)
    models = tuple(dict.fromkeys(REGISTRY[p].model for p in fitted))
    grid = TileGrid(config.crs_string, config.resolution, config.tile_size, anchor or (0.0, 0.0))
    stack = StackSpec(
        source=config.source, collections=tuple(resolve_collections(config.source, config.collections)),
        season=config.season, grid=grid,
        mask=_with_smear_buffer(MaskRules.from_profile(profiles["mask"]), config.resampling),
        max_cloud_cover=config.max_cloud_cover, s2_boa_offset=config.s2_boa_offset,
        require_mask=config.require_mask, percentiles=tuple(config.composite.percentiles),
        min_clear=config.composite.min_clear, resampling=config.resampling, chunk=config.chunk,
        dates_per_chunk=config.dates_per_chunk,
    )  # fmt: skip
    area = Area.of(regions)
    tiles = tuple(grid.tiles_for(area.geometry))
    region_tiles = {r.name: tuple(grid.tiles_for(r.geometry)) for r in regions}
    lc = config.landcover
    options = {
        "heat": config.rsei.heat,
        "rsei_variant": config.rsei.variant,
        "rsei_mode": config.rsei.mode,
        "extra_seasons": list(lc.extra_seasons) if "landcover" in models and lc.mode == "classify" else [],
        "landcover_mode": lc.mode,
        "landcover_tile": lc.model_dump(mode="json") if "landcover" in needed else None,
        "simulated": config.simulated,
        "title": config.title or "eqi outputs",
        "resampling": _resampling_note(config.resampling, native),
        "assessments": assessments(config.products),  # regional indices (eqi.pipeline.assess_stage)
        "assess": config.assess.model_dump(mode="json"),
    }
    return Plan(
        out=Path(config.out), area=area, stack=stack, years=tuple(config.years), outputs=tuple(outputs),
        tile_products=tile_products, fitted_products=fitted, models=models, tiles=tiles,
        region_tiles=region_tiles, profiles=profiles, options=options, config_hash=config_hash(config),
        config_dump=config.model_dump(mode="json"),
    )  # fmt: skip
