"""Typed run configuration: YAML in, validation errors that name the field.

A run is "these regions x these years, from this source, on this grid, producing these products".
Command-line flags override values from a YAML file (:func:`merge_overrides`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eqi.errors import ConfigError
from eqi.geo.crs import crs_string, parse_crs
from eqi.products import expand_products
from eqi.science.mask import QA_PIXEL_BITS
from eqi.sensors import check_bands, check_collections

__all__ = [
    "SeasonWindow",
    "MaskConfig",
    "CompositeConfig",
    "RseiOptions",
    "LandcoverOptions",
    "UncertaintyOptions",
    "AssessOptions",
    "LogConfig",
    "PlanChecks",
    "RunConfig",
    "load_config",
    "merge_overrides",
    "config_hash",
]


_SEASON = re.compile(r"^(\d{2})-(\d{2})/(\d{2})-(\d{2})$")


class SeasonWindow(BaseModel):
    """A within-year window ``MM-DD/MM-DD`` (inclusive); may wrap the new year (11-01/02-28)."""

    model_config = ConfigDict(frozen=True)
    start: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> SeasonWindow:
        match = _SEASON.match(text.strip())
        if not match:
            raise ValueError(f"season '{text}' must look like MM-DD/MM-DD, e.g. 06-01/09-30")
        m1, d1, m2, d2 = (int(g) for g in match.groups())
        for m, d in ((m1, d1), (m2, d2)):
            if not (1 <= m <= 12 and 1 <= d <= 31):
                raise ValueError(f"season '{text}' has an invalid month/day")
        return cls(start=(m1, d1), end=(m2, d2))

    def datetime_range(self, year: int) -> str:
        """STAC datetime interval for ``year`` (the window starts in ``year``)."""
        end_year = year if self.end >= self.start else year + 1
        return (
            f"{year:04d}-{self.start[0]:02d}-{self.start[1]:02d}T00:00:00Z/"
            f"{end_year:04d}-{self.end[0]:02d}-{self.end[1]:02d}T23:59:59Z"
        )

    def __str__(self) -> str:
        return f"{self.start[0]:02d}-{self.start[1]:02d}/{self.end[0]:02d}-{self.end[1]:02d}"


class MaskConfig(BaseModel):
    """Overrides of the ``mask`` method profile (``configs/methods/mask.yaml``); None = the profile's value.

    ``qa_pixel_bad`` QA_PIXEL flags and ``scl_bad`` SCL classes that count as not clear;
    ``buffer_px`` buffer in pixels; ``valid_range`` masks reflectance outside [0, 1];
    ``radsat`` masks saturated pixels (QA_RADSAT); ``s2_offset_check`` what a disagreement
    between a Sentinel-2 scene's metadata and its pixels about the BOA offset does.
    """

    model_config = ConfigDict(extra="forbid")
    qa_pixel_bad: list[str] | None = None
    scl_bad: list[int] | None = None
    buffer_px: int | None = Field(None, ge=0, le=20)
    valid_range: bool | None = None
    radsat: bool | None = None
    s2_offset_check: Literal["error", "use-data", "off"] | None = None

    @field_validator("qa_pixel_bad")
    @classmethod
    def _known_bits(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or [] if v not in QA_PIXEL_BITS or v in {"fill", "clear"}]
        if unknown:
            raise ValueError(
                f"unknown QA_PIXEL flag(s) {unknown}; choose from dilated_cloud, cirrus, cloud, "
                "cloud_shadow, snow, water"
            )
        return value

    @field_validator("scl_bad")
    @classmethod
    def _known_classes(cls, value: list[int] | None) -> list[int] | None:
        bad = [v for v in value or [] if not 1 <= v <= 11]
        if bad:
            raise ValueError(f"SCL classes must be 1..11 (0 is always nodata); got {bad}")
        return value


class CompositeConfig(BaseModel):
    """Per-pixel statistic over the clear observations of the season."""

    model_config = ConfigDict(extra="forbid")
    statistic: Literal["median"] = "median"
    percentiles: list[float] = Field(default_factory=list)
    min_clear: int = Field(1, ge=1, description="fewer clear observations -> nodata")

    @field_validator("percentiles")
    @classmethod
    def _in_range(cls, value: list[float]) -> list[float]:
        if any(not 0 <= p <= 100 for p in value):
            raise ValueError("percentiles must be within 0..100")
        return value


class RseiOptions(BaseModel):
    """How RSEI gets its heat component and how it is normalised (see configs/methods/rsei.yaml)."""

    model_config = ConfigDict(extra="forbid")
    variant: Literal["rsei", "rsei3"] = "rsei"
    heat: Literal["landsat", "landsat-lst"] = Field(
        "landsat",
        description="mixed Sentinel-2 + Landsat runs: 'landsat' = all four components from Landsat "
        "(spec §6.1 heat option 1); 'landsat-lst' = Sentinel-2 components with the Landsat ST_B10 "
        "composite on the same grid (option 2, mixed resolution, documented in the metadata)",
    )
    min_observations: int | None = Field(
        None,
        ge=1,
        description="minimum clear observations per pixel, applied to every pixel (strict); "
        "unset = the rsei profile's rule, which only applies where a pixel was observed more "
        "than once (configs/methods/rsei.yaml)",
    )
    mode: Literal["per-year", "pooled"] = "pooled"  # pooled adds a multi-year product per region


class LandcoverOptions(BaseModel):
    """Where land cover comes from: a product raster reclassified, or a classifier trained on it.

    ``reference`` is a raster file of a land-cover product (``{year}`` is replaced by the task
    year); ``mode: classify`` samples it to train a model on the composite features, for years and
    places the product does not cover.
    """

    model_config = ConfigDict(extra="forbid")
    reference: str | None = Field(
        None, description="raster file, STAC Item/ItemCollection JSON, or catalog (URL/.parquet)"
    )
    collection: str | None = Field(None, description="collection id when searching a catalog")
    asset: str = Field("map", description="asset key of the class raster in the items")
    product: Literal["esa-worldcover", "esri-lulc", "dynamic-world", "clcd"] = "esa-worldcover"
    mode: Literal["reclassify", "classify"] = "reclassify"
    level: Literal[1, 2] = 1
    samples_per_class: int = Field(400, ge=20)
    extra_seasons: list[str] = Field(
        default_factory=list, description="more MM-DD/MM-DD windows whose composites add classifier features"
    )
    seed: int = 42
    water_bodies: str | None = Field(
        None, description="raster of national water codes (41 rivers, 42 lakes, 43 reservoirs ...) or a "
        "0/1 river mask, on any grid: splits the water classes of level-2 maps (default without it: "
        "rivers, spec §1.3 and configs/landcover/)",
    )


    @field_validator("extra_seasons")
    @classmethod
    def _seasons(cls, value: list[str]) -> list[str]:
        for window in value:
            SeasonWindow.parse(window)
        return value


class DaskOptions(BaseModel):
    """Where the run computes: ``scheduler`` (``tcp://host:8786``) spreads tiles over that cluster's
    workers; none (the default) computes here.  ``--scheduler`` on the command line wins."""

    model_config = ConfigDict(extra="forbid")
    scheduler: str | None = Field(None, description="address of a running Dask scheduler, tcp://host:port")


class UncertaintyOptions(BaseModel):
    """Monte-Carlo of the regional EI/EQI intervals (docs/tables.md, Uncertainty)."""

    model_config = ConfigDict(extra="forbid")
    draws: int = Field(200, ge=0, le=100_000, description="Monte-Carlo draws (0: no intervals; ~1.5 ms per region, year and draw)")
    seed: int = 0
    level: float = Field(0.95, gt=0, lt=1, description="coverage of the interval")


YearRasters = str | dict[int, str]


class EcosystemQualityInputs(BaseModel):
    """Supplied per-year parameter rasters for ecosystem quality (HJ 1172-2021, docs/tables.md).

    Each parameter is a path template with ``{year}`` (``lai/lai_{year}.tif``) or a mapping
    ``{year: path}``; any CRS and resolution (resampled bilinearly onto the area's grid).  Which
    parameters the method uses comes from ``configs/methods/eq-hj1172-2021.yaml``
    (``parameters``); FVC is eqi's own.  ``reference_areas``: protected areas (polygons) whose
    pixels give the reference values; without it the profile's ``without_reference_areas`` rule.
    """

    model_config = ConfigDict(extra="forbid")
    lai: YearRasters | None = Field(None, description="leaf area index LAI (m²/m²) per year")
    npp: YearRasters | None = Field(None, description="net primary productivity NPP (e.g. g C m⁻² a⁻¹) per year")
    gpp: YearRasters | None = Field(None, description="gross primary productivity GPP per year (if the profile uses it)")
    reference_areas: str | None = Field(None, description="protected-area polygons (least-disturbed reference pixels)")

    @field_validator("lai", "npp", "gpp")
    @classmethod
    def _template(cls, value: YearRasters | None) -> YearRasters | None:
        if isinstance(value, str) and "{year}" not in value:
            raise ValueError(f"{value!r}: give a path template with {{year}} or a mapping year: path")
        return value


class AssessOptions(BaseModel):
    """The regional assessment (products ``ei``, ``eqi``; issue 8, docs/tables.md)."""

    model_config = ConfigDict(extra="forbid")
    tables: str | None = Field(
        None, description="folder of CSV/XLSX tabular inputs or one workbook (docs/tabular-inputs.md)"
    )
    rivers: str | None = Field(None, description="river centreline layer (WNDI river length)")
    zones: list[str] = Field(default_factory=list, description="zone layers (zones:<layer>[:sel]) or files")
    levels: list[Literal["province", "prefecture", "county", "zone"]] = Field(
        default_factory=lambda: ["province", "prefecture", "county", "zone"]
    )
    min_coverage: float = Field(
        0.9, ge=0, le=1, description="share of a region with valid land cover needed to evaluate it"
    )
    uncertainty: UncertaintyOptions = Field(default_factory=UncertaintyOptions)
    ecosystem_quality: EcosystemQualityInputs = Field(
        default_factory=EcosystemQualityInputs, description="parameter rasters for the ecosystem_quality product"
    )


class LogConfig(BaseModel):
    """Where the run logs (flags ``--log-file`` / ``--log-format`` override these)."""

    model_config = ConfigDict(extra="forbid")
    file: Path | None = Field(None, description="log file, appended to (relative: to the config file)")
    format: Literal["text", "json"] = Field("text", description="'json': one JSON object a line")
    level: Literal["debug", "info", "warning", "error"] = "info"


class PlanChecks(BaseModel):
    """Limits the plan is checked against before anything is computed (docs/operations.md);
    ``eqi run --force`` accepts a plan beyond ``max_pixels`` / ``max_upsampling`` / free disk."""

    model_config = ConfigDict(extra="forbid")
    max_pixels: float = Field(
        2e10, gt=0, description="pixels of the area's tiles per year (Sichuan at 10 m: about 5e9)"
    )
    max_upsampling: float = Field(
        4.0, ge=1, description="largest ratio of the finest native pixel size of the collections "
        "to the run's pixel size (Landsat 30 m at 7.5 m = 4)",
    )
    disk_factor: float = Field(
        1.0, gt=0, description="multiplies the uncompressed size estimate of the outputs (COGs "
        "are DEFLATE-compressed, so 1.0 is an upper bound for most products)",
    )
    disk_reserve_gb: float = Field(1.0, ge=0, description="GB to leave free beyond the estimate")


class RunConfig(BaseModel):
    """Everything a run needs.  Paths are resolved relative to the config file."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., description="STAC API URL or stac-geoparquet archive file")
    collections: list[str] | None = Field(
        None,
        min_length=1,
        description="collections to search; None = every scene collection the source offers "
        "(an archive's; a STAC API needs them named, see eqi.io.catalog.resolve_collections)",
    )
    aoi: str = Field(..., description="vector file or library name such as sichuan:510117")
    aoi_name_field: str | None = None
    years: list[int] = Field(..., min_length=1)
    season: str = "06-01/09-30"
    crs: str = "albers-china"
    resolution: float = Field(30.0, gt=0, le=10000)
    products: list[str] = Field(default_factory=lambda: ["composite", "count", "ndvi"])
    bands: list[str] = Field(default_factory=list, description="extra bands to composite and write")
    out: Path
    mask: MaskConfig = Field(default_factory=MaskConfig)
    composite: CompositeConfig = Field(default_factory=CompositeConfig)
    rsei: RseiOptions = Field(default_factory=RseiOptions)
    landcover: LandcoverOptions = Field(default_factory=LandcoverOptions)
    resampling: Literal["nearest", "bilinear", "cubic", "average"] = "nearest"
    max_cloud_cover: float | None = Field(None, ge=0, le=100)
    s2_boa_offset: Literal[0, -1000] | None = None
    require_mask: bool = True
    chunk: int = Field(512, description="Dask chunk size in pixels, a multiple of 512")
    dates_per_chunk: int = Field(
        4, ge=1, le=64, description="dates per Dask chunk of the bands read by windows on their own grid: "
        "fewer, larger tasks (4: about 12 % faster than 1 for 16 and 64 dates); outputs do not depend on it",
    )
    tile_size: int = Field(
        1024, ge=512, le=8192, description="tile width/height in pixels, a multiple of 512; tiles are "
        "the unit of work, anchored on the CRS origin so neighbouring runs share them",
    )
    fit_scope: Literal["area", "region"] = Field(
        "area", description="'area': FVC end-members, RSEI and the land-cover classifier are fitted "
        "once for all the run's regions (comparable across them); 'region': each region on its own",
    )
    grid_anchor: Literal["auto", "origin"] = Field(
        "auto", description="'auto': on the scenes' own pixel grid when the run's CRS and resolution "
        "are theirs (nothing resampled); 'origin': pixel edges on multiples of the resolution",
    )
    simulated: bool = False
    title: str | None = None
    dask: DaskOptions = Field(default_factory=DaskOptions)
    assess: AssessOptions = Field(default_factory=AssessOptions)
    log: LogConfig = Field(default_factory=LogConfig)
    plan_checks: PlanChecks = Field(default_factory=PlanChecks)

    @field_validator("years")
    @classmethod
    def _years(cls, value: list[int]) -> list[int]:
        bad = [y for y in value if not 1972 <= y <= 2100]
        if bad:
            raise ValueError(f"years out of range: {bad}")
        return sorted(set(value))

    @field_validator("bands")
    @classmethod
    def _bands(cls, value: list[str]) -> list[str]:
        try:
            return check_bands(value)
        except Exception as exc:  # BandError -> a field error naming the band
            raise ValueError(str(exc)) from None

    @field_validator("products")
    @classmethod
    def _products(cls, value: list[str]) -> list[str]:
        try:
            expand_products(value)
        except Exception as exc:  # ConfigError -> a field error naming the product
            raise ValueError(str(exc)) from None
        return value

    @field_validator("collections")
    @classmethod
    def _collections(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            return check_collections(value)
        except Exception as exc:
            raise ValueError(str(exc)) from None

    @field_validator("season")
    @classmethod
    def _season(cls, value: str) -> str:
        SeasonWindow.parse(value)
        return value

    @field_validator("chunk")
    @classmethod
    def _chunk(cls, value: int) -> int:
        if value <= 0 or value % 512:
            raise ValueError("chunk must be a multiple of 512")
        return value

    @field_validator("tile_size")
    @classmethod
    def _tile_size(cls, value: int) -> int:
        if value % 512:
            raise ValueError("tile_size must be a multiple of 512")
        return value

    @field_validator("crs")
    @classmethod
    def _crs_known(cls, value: str) -> str:
        try:
            parse_crs(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def season_window(self) -> SeasonWindow:
        return SeasonWindow.parse(self.season)

    @property
    def crs_string(self) -> str:
        return crs_string(self.crs)


def _format_validation(
    exc: ValidationError, origin: str, lines_of: dict[tuple[Any, ...], int] | None = None,
    flags: set[str] | None = None,
) -> str:
    """One line per error: the field's dotted path, where it was set (the YAML line, or the
    command line), and pydantic's message."""
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}{_where_set(loc, lines_of, flags, err['type'])}: {msg}")
    return "\n".join(lines)


def _where_set(loc: tuple[Any, ...], lines_of: dict[tuple[Any, ...], int] | None,
               flags: set[str] | None, kind: str) -> str:
    if loc and flags and loc[0] in flags:
        return " (from the command line)"
    if lines_of is None:
        return ""
    for n in range(len(loc), 0, -1):  # the deepest node the file has (a missing key: its parent)
        line = lines_of.get(loc[:n])
        if line is not None:
            return f" (line {line})" if n == len(loc) or kind != "missing" else f" (missing in the mapping at line {line})"
    return " (not in the file)" if kind == "missing" else ""


def yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every key and value of a YAML document, by its path (``("mask",
    "buffer_px")``, ``("years", 0)``); the root mapping is ``()``.  Keys give their own line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, key.value)
                out[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    if root is not None:
        walk(root, ())
    return out


def _is_path_like(key: str, value: str) -> bool:
    if "://" in value:
        return False  # a URL
    if key == "aoi" and not Path(value).suffix:
        return False  # a library name such as "sichuan:510117"
    return True


def _relative_to(base: Path, value: Any) -> Any:
    """A path (or each path of a ``{year: path}`` mapping) resolved against ``base``; URLs kept."""
    if isinstance(value, dict):
        return {k: _relative_to(base, v) for k, v in value.items()}
    if isinstance(value, str) and "://" not in value and not Path(value).expanduser().is_absolute():
        return str((base / Path(value).expanduser()).resolve())
    return value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    data = dict(data)
    landcover = data.get("landcover")
    if isinstance(landcover, dict):
        data["landcover"] = {**landcover, **{k: _relative_to(base, landcover[k]) for k in ("reference", "water_bodies")
                                             if isinstance(landcover.get(k), str)}}  # fmt: skip
    assess = data.get("assess")
    if isinstance(assess, dict):  # tabular inputs, rivers and zone files: relative to the config
        assess = dict(assess)
        for key in ("tables", "rivers"):
            if key in assess:
                assess[key] = _relative_to(base, assess[key])
        eq = assess.get("ecosystem_quality")
        if isinstance(eq, dict):  # parameter rasters: templates, {year: path} mappings, reference areas
            assess["ecosystem_quality"] = {k: _relative_to(base, v) for k, v in eq.items()}
        if isinstance(assess.get("zones"), list):
            assess["zones"] = [str((base / z).resolve()) if isinstance(z, str) and not z.startswith("zones") and Path(z).suffix and not Path(z).is_absolute() else z
                               for z in assess["zones"]]  # fmt: skip
        data["assess"] = assess
    log = data.get("log")
    if isinstance(log, dict) and isinstance(log.get("file"), str) and not Path(log["file"]).expanduser().is_absolute():
        data["log"] = {**log, "file": str((base / Path(log["file"]).expanduser()).resolve())}
    for key in ("source", "aoi", "out"):
        value = data.get(key)
        if isinstance(value, str) and value and _is_path_like(key, value):
            candidate = Path(value).expanduser()
            if not candidate.is_absolute():
                data[key] = str((base / candidate).resolve())
    return data


def build_config(
    data: dict[str, Any], origin: str = "flags", *, lines: dict[tuple[Any, ...], int] | None = None,
    flags: set[str] | None = None,
) -> RunConfig:
    """Validate a mapping into a :class:`RunConfig`, raising :class:`ConfigError`.

    ``lines`` (:func:`yaml_lines`) lets each error name the YAML line of its field; ``flags``
    are the top-level keys set on the command line (named as such instead).
    """
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, origin, lines, flags)) from None


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config; relative paths are taken relative to the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    data = _resolve_paths(data, path.parent.resolve())
    data = merge_overrides(data, overrides or {})
    flags = {k for k, v in (overrides or {}).items() if v is not None}
    return build_config(data, origin=str(path), lines=yaml_lines(text), flags=flags)


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` with every non-None override applied (flags beat the file)."""
    merged = dict(data)
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
    return merged


def config_hash(config: RunConfig) -> str:
    """Short stable hash of the settings that change results (not the output folder)."""
    payload = config.model_dump(mode="json", exclude={"out", "title", "dask", "assess", "log", "plan_checks"})  # where it runs, logs, checks: no result
    # the regional assessment (products ei/eqi, assess options) has its own task id: asking for it,
    # or changing its tables, does not redo the region rasters
    payload["products"] = [p for p in payload["products"] if str(p).strip().lower() not in ("ei", "eqi", "ecosystem_quality")]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
