"""Project definitions for ``eqi assess`` (YAML): projects, their geometry, zones and years.

One file holds the inputs (an ``eqi run`` output root or explicit rasters) and one or more
projects.  Relative paths are taken relative to the file.  Every user mistake becomes a
:class:`~eqi.errors.ConfigError` naming the field (``projects[<name>].rings_m``), before anything
is written.  Geometry: a vector file (optionally one feature by name), WKT or coordinates, in any
CRS (``crs``); ``datum: gcj02`` converts Amap/GCJ-02 lon/lat to WGS 84 (eqi.geo.gcj02).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eqi.errors import ConfigError

__all__ = ["GeometrySpec", "ControlSpec", "SensitiveSpec", "ProjectSpec", "InputsSpec", "AssessConfig", "load_assess_config", "build_assess_config"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeometrySpec(_Model):
    """Where a geometry comes from: ``file`` (+ ``feature`` name / ``layer``), ``library`` (eqi's
    boundary library, WGS 84), ``wkt`` or ``coordinates`` ([lon, lat] for a point, [[lon, lat], …]
    for a line/ring)."""

    file: Path | None = None
    library: str | None = Field(None, description="a feature of eqi's boundary library, e.g. sichuan:511524")
    layer: str | None = None
    feature: str | None = Field(None, description="value of the name field selecting one feature")
    name_field: str = "name"
    wkt: str | None = None
    coordinates: list[Any] | None = None
    crs: str = "EPSG:4326"
    datum: Literal["wgs84", "gcj02"] = "wgs84"
    provenance: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GeometrySpec:
        given = [k for k in ("file", "library", "wkt", "coordinates") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file, library, wkt or coordinates (got {given or 'none'})")
        return self


class ControlSpec(_Model):
    """Control zone: an annulus ``distance_m: [inner, outer]`` (m from the footprint edge) or an
    explicit ``geometry`` (e.g. upstream tributary valleys); matched in both cases."""

    distance_m: tuple[float, float] | None = None
    geometry: GeometrySpec | None = None

    @field_validator("distance_m")
    @classmethod
    def _order(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (0 < v[0] < v[1]):
            raise ValueError(f"control distances must satisfy 0 < inner < outer (m), got {list(v)}")
        return v


class SensitiveSpec(_Model):
    """A sensitive-target layer (protected area, red line, water source) for distances/overlaps."""

    name: str
    geometry: GeometrySpec


class ProjectSpec(_Model):
    name: str
    type: Literal["linear", "point", "area"]
    geometry: GeometrySpec
    footprint: GeometrySpec | None = None
    footprint_m: float | None = Field(None, description="half-width (linear) / radius (point) of the footprint, m")
    rings_m: list[float] | None = None
    control: ControlSpec | None = None
    before: int
    after: int
    chainage_km: float | None = None
    sensitive: list[SensitiveSpec] = []
    approximate: bool = True
    provenance: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"project name {v!r} becomes a folder name: use letters, digits, '.', '_' or '-'")
        return v

    @field_validator("rings_m")
    @classmethod
    def _rings(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one ring distance (m)")
        for d in v:
            if not d > 0:
                raise ValueError(f"ring distance {d} m is not positive; ring distances are outer edges in m (> 0)")
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"ring distances must increase, got {v}")
        return v

    @field_validator("footprint_m", "chainage_km")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"must be > 0, got {v}")
        return v

    @model_validator(mode="after")
    def _years(self) -> ProjectSpec:
        if self.before >= self.after:
            raise ValueError(f"before ({self.before}) must be earlier than after ({self.after})")
        return self


class InputsSpec(_Model):
    """Rasters the assessment reads: the area mosaics of an ``eqi run`` output root (``run``,
    optionally ``area``) and/or explicit files per product (``files``, ``{year}`` substituted),
    which take precedence; ``dem``: an elevation raster (m) for matching — a file, or the URL of a
    cloud-optimised GeoTIFF (e.g. the ``data`` asset of a Copernicus DEM GLO-30 STAC item)."""

    run: Path | None = None
    area: str | None = None
    files: dict[str, str] = {}
    dem: str | None = Field(None, description="elevation raster (m): a file or a URL rasterio opens, e.g. a Copernicus DEM COG")

    @model_validator(mode="after")
    def _some(self) -> InputsSpec:
        if self.run is None and "ndvi" not in self.files:
            raise ValueError("give run (an eqi run output folder) or files with at least ndvi")
        return self


class AssessConfig(_Model):
    title: str = "eqi project assessment"
    out: Path
    inputs: InputsSpec
    method: str = "impact-hj1175-2021"
    simulated: bool = False
    projects: list[ProjectSpec]

    @model_validator(mode="after")
    def _unique(self) -> AssessConfig:
        names = [p.name for p in self.projects]
        if not names:
            raise ValueError("no projects defined")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"project names must be unique, repeated: {dup}")
        return self

    def select(self, name: str | None) -> list[ProjectSpec]:
        if name is None:
            return list(self.projects)
        for p in self.projects:
            if p.name == name:
                return [p]
        raise ConfigError(f"--project {name!r}: no such project; defined: {[p.name for p in self.projects]}")


def _format(exc: ValidationError, origin: str, data: dict[str, Any]) -> str:
    lines = [f"invalid project configuration ({origin}):"]
    projects = data.get("projects") if isinstance(data.get("projects"), list) else []
    for err in exc.errors():
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "projects" and isinstance(loc[1], int):
            p = projects[loc[1]] if loc[1] < len(projects) else {}
            label = p.get("name", loc[1]) if isinstance(p, dict) else loc[1]
            loc = [f"projects[{label}]", *loc[2:]]
        where = ".".join(str(x) for x in loc) or "(top level)"
        lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _resolve(value: Any, base: Path, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, base, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, base, key) for v in value]
    if isinstance(value, str) and key in ("file", "run", "dem", "out", "_file") and "://" not in value:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    return value


def build_assess_config(data: dict[str, Any], origin: str = "mapping", base: Path | None = None) -> AssessConfig:
    """Validate a mapping (paths relative to ``base``) into an :class:`AssessConfig`."""
    if base is not None:
        data = _resolve(data, base)
        inputs = data.get("inputs")
        if isinstance(inputs, dict) and isinstance(inputs.get("files"), dict):
            files = {k: str(_resolve(v, base, "_file")) for k, v in inputs["files"].items()}
            data = {**data, "inputs": {**inputs, "files": files}}
    try:
        return AssessConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin, data)) from None


def load_assess_config(path: Path, overrides: dict[str, Any] | None = None) -> AssessConfig:
    """Read a project YAML (relative paths from the file's folder); ``overrides`` top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"project config {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"project config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"project config {path} must hold a mapping")
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    data.setdefault("out", ".")
    return build_assess_config(data, origin=str(path), base=path.parent.resolve())
