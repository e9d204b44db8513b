"""Ecosystem quality (HJ 1172-2021, spec §4.1) in the regional assessment: the product
``ecosystem_quality`` (issue 8 item 5, docs/tables.md "Ecosystem quality").

eqi computes FVC and land cover; the other parameters of the profile
(``configs/methods/eq-hj1172-2021.yaml``: ``parameters`` minus ``computed_parameters``, by
default LAI and NPP) come per year from ``assess.ecosystem_quality.<name>`` in the run config and
are resampled (bilinear) onto the evaluation area's grid.  A year without every parameter is not
assessed and the tables name the missing inputs; nothing is imputed.

Per assessed year: ecosystem types from the land-cover codes, reference values F_ref per type and
parameter (the profile's quantile over the reference pixels of the run's assessed years pooled:
inside ``reference_areas`` when given, else the profile's ``without_reference_areas`` rule),
quality 0-100 per pixel, written as a styled COG ``OUT/areas/<area>/ecosystem_quality/<year>/
ecosystem_quality.tif`` and clipped per run region into ``OUT/<region>/ecosystem_quality/<year>/``.
The per-region columns (``eq_*``) come from :func:`eq_row` over exactextract means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from shapely.ops import unary_union

from eqi.errors import InputError
from eqi.geo.regions import Region
from eqi.io.cog import write_cog
from eqi.io.qml import continuous_qml, write_qml
from eqi.io.raster import check_raster, open_raster, read_layer, read_onto, region_mask
from eqi.palettes import ramp
from eqi.params import Profile, param_value
from eqi.pipeline.trend_stage import clip_to_region
from eqi.products import ECOSYSTEM_QUALITY
from eqi.science import ecosystem_quality as eq

__all__ = ["EQ", "EQ_PROFILE", "EqOutcome", "supplied_parameters", "year_rasters", "check_eq_inputs", "missing_inputs",
           "eq_rasters", "eq_row", "eq_tags", "EQ_COLUMNS"]  # fmt: skip

EQ = ECOSYSTEM_QUALITY  # the product name (eqi.products.ASSESSMENTS)
EQ_PROFILE = "eq-hj1172-2021"
FIELD = "assess.ecosystem_quality"
EQ_COLUMNS = ["eq_profile_id", "eq_profile_version", "eq_mean", "eq_grade", "eq_grade_en", "eq_assessed_fraction",
              "eq_status", "eq_missing", "eq_tags", "eq_notes"]  # fmt: skip


@dataclass(frozen=True)
class EqOutcome:
    """What the ecosystem-quality step produced for an area.

    ``rasters``: area COG per assessed year; ``missing``: per run year the missing inputs (empty
    for assessed years); ``references``: ``{type name_en: {parameter: F_ref}}`` (parameter units);
    ``scope``: which pixels gave the references; ``baseline``: the years pooled for them.
    """

    rasters: dict[int, Path] = field(default_factory=dict)
    missing: dict[int, list[str]] = field(default_factory=dict)
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)
    scope: str = ""
    baseline: list[int] = field(default_factory=list)


def supplied_parameters(profile: Profile) -> list[str]:
    """Parameters of the profile the user supplies (the profile's ``parameters`` minus
    ``computed_parameters``), in profile order."""
    computed = {str(c) for c in param_value(profile["computed_parameters"])}
    return [str(n) for n in param_value(profile["parameters"]) if str(n) not in computed]


def year_rasters(opts: Mapping[str, Any], name: str, years: Sequence[int]) -> dict[int, str]:
    """``{year: path}`` of parameter ``name`` from its template (``{year}``) or mapping."""
    value = opts.get(name)
    if value is None:
        return {}
    if isinstance(value, str):
        return {int(y): value.replace("{year}", str(y)) for y in years}
    by_year = {int(k): str(v) for k, v in value.items()}
    return {int(y): by_year[int(y)] for y in years if int(y) in by_year}


def check_eq_inputs(opts: Mapping[str, Any], years: Sequence[int], profile: Profile) -> None:
    """Every supplied file of ``opts`` (``assess.ecosystem_quality``) for ``years`` exists and
    can be read; else :class:`InputError` (exit 2) naming the field and the file."""
    for name in supplied_parameters(profile):
        for year, path in sorted(year_rasters(opts, name, years).items()):
            check_raster(path, f"{FIELD}.{name} ({year})")
    ref = opts.get("reference_areas")
    if ref:
        _reference_geometry(str(ref))


def _reference_geometry(path: str) -> Any:
    """The union of the protected-area polygons in lon/lat (InputError naming the field)."""
    if "://" not in path and not Path(path).is_file():
        raise InputError(f"{FIELD}.reference_areas: file {path} not found")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types
        raise InputError(f"{FIELD}.reference_areas: cannot read {path}: {exc}") from None
    if frame.crs is None or frame.empty:
        raise InputError(f"{FIELD}.reference_areas: {path} has no CRS or no features")
    return unary_union(frame.to_crs("EPSG:4326").geometry.values)


def missing_inputs(opts: Mapping[str, Any], year: int, profile: Profile) -> list[str]:
    """The inputs ecosystem quality lacks in ``year`` (empty: it can be assessed), each naming
    its config field."""
    out: list[str] = []
    for name in supplied_parameters(profile):
        value = opts.get(name)
        if value is None:
            out.append(f"{name} ({FIELD}.{name} not given)")
        elif year not in year_rasters(opts, name, [year]):
            out.append(f"{name} {year} ({FIELD}.{name} has no {year})")
    rule = str(param_value(profile["reference"]["without_reference_areas"]))
    if not opts.get("reference_areas") and rule == "not_assessed":
        out.append(f"reference areas ({FIELD}.reference_areas; the profile's without_reference_areas is not_assessed)")
    return out


def _scope(opts: Mapping[str, Any]) -> str:
    ref = opts.get("reference_areas")
    if ref:
        return f"pixels inside the reference areas {Path(str(ref)).name}, per ecosystem type, whole evaluation area"
    return ("all pixels of each ecosystem type in the evaluation area (no protected-area layer: "
            "profile rule without_reference_areas = all_pixels, a weaker reference than HJ 1172's least-disturbed pixels)")  # fmt: skip


def _year_parameters(mosaics: Mapping[str, Path], opts: Mapping[str, Any], year: int, profile: Profile,
                     geobox: GeoBox) -> dict[str, np.ndarray]:  # fmt: skip
    """Parameters on the area grid for one year: FVC from eqi's mosaic, the rest supplied."""
    params: dict[str, np.ndarray] = {}
    supplied = supplied_parameters(profile)
    for name in (str(n) for n in param_value(profile["parameters"])):
        if name in supplied:
            params[name] = read_onto(year_rasters(opts, name, [year])[year], geobox)
        else:
            params[name] = np.asarray(read_layer(mosaics[name]).values, dtype=np.float32)
    return params


def _style(path: Path, label: str) -> Path:
    """The 0-100 QGIS style beside ``path`` (area and region rasters alike)."""
    write_qml(path, continuous_qml(0.0, 100.0, ramp("rsei", 0.0, 100.0), nodata=None, label=label, precision=1))
    return path


def _write_quality(q: np.ndarray, geobox: GeoBox, path: Path, tags: Mapping[str, str], label: str) -> Path:
    """The styled 0-100 COG (float32, NaN nodata) and its .qml."""
    arr = xr.DataArray(q, dims=("y", "x")).assign_coords(xr_coords(geobox))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cog(arr, path, nodata=float("nan"), description=label, kind="continuous", units="0-100",
              tags={**tags, "EQI_PRODUCT": EQ})  # fmt: skip
    return _style(path, label)


def eq_rasters(
    mosaics: Mapping[int, Mapping[str, Path]],
    opts: Mapping[str, Any],
    profile: Profile,
    out_dir: Path,
    *,
    tags: Mapping[str, str],
    progress: Callable[[str], None] = print,
) -> EqOutcome:
    """Ecosystem quality of every year with all inputs: area COGs in ``out_dir/<year>/``.

    ``mosaics``: per year ``{product: raster}`` with ``landcover`` and ``fvc`` on one grid.
    References pool the assessed years (profile ``reference.baseline`` = run_years).
    """
    years = sorted(mosaics)
    missing = {y: missing_inputs(opts, y, profile) for y in years}
    computed = [str(c) for c in param_value(profile["computed_parameters"])]
    for y in years:
        missing[y] += [f"{c} (no {c} mosaic for the year)" for c in computed if c not in mosaics[y]]
    ok = [y for y in years if not missing[y]]
    if not ok:
        return EqOutcome(missing=missing)
    geobox = open_raster(mosaics[ok[0]]["landcover"]).odc.geobox
    etypes = {y: eq.ecosystem_type(np.asarray(open_raster(mosaics[y]["landcover"]).values), profile) for y in ok}
    params = {y: _year_parameters(mosaics[y], opts, y, profile, geobox) for y in ok}
    ref = opts.get("reference_areas")
    inside = region_mask(_reference_geometry(str(ref)), geobox) if ref else np.ones(geobox.shape, dtype=bool)
    names = list(params[ok[0]])
    pooled = {n: np.concatenate([params[y][n] for y in ok]) for n in names}
    refs = eq.reference_values(pooled, np.concatenate([etypes[y] for y in ok]), np.concatenate([inside] * len(ok)), profile)
    type_names = {int(t["value"]): str(t["name_en"]) for t in profile["ecosystem_types"]["types"]}
    scope = _scope(opts)
    out = EqOutcome(missing=missing, scope=scope, baseline=ok,
                    references={type_names[c]: {n: (None if math.isnan(v) else v) for n, v in r.items()} for c, r in refs.items()})  # fmt: skip
    for c, r in refs.items():
        lacking = [n for n, v in r.items() if math.isnan(v)]
        if lacking:
            progress(f"ecosystem quality: no reference for {type_names[c]} ({', '.join(lacking)}): fewer than "
                     f"{param_value(profile['reference']['min_pixels'])} reference pixels; its pixels are NaN")  # fmt: skip
    for y in ok:
        q = eq.ecosystem_quality(params[y], etypes[y], refs, profile)
        label = f"Ecosystem quality (HJ 1172-2021, {profile.id} {profile.version}) {y}"
        out.rasters[y] = _write_quality(q, geobox, out_dir / str(y) / f"{EQ}.tif",
                                        {**tags, "EQI_YEAR": str(y), "EQI_EQ_REFERENCE_SCOPE": scope}, label)  # fmt: skip
    return out


def region_rasters(outcome: EqOutcome, regions: Sequence[Region], grid: Any, area_geobox: GeoBox, out: Path, *,
                   tags: Mapping[str, str]) -> list[Path]:  # fmt: skip
    """The area COGs clipped to each run region (``OUT/<region>/ecosystem_quality/<year>/``),
    restyled 0-100 (the clip styles by the data's own range)."""
    written: list[Path] = []
    for region in regions:
        for year, tif in sorted(outcome.rasters.items()):
            path = clip_to_region(tif, area_geobox, region, grid, out / region.name / EQ / str(year),
                                  tags={**tags, "EQI_REGION": region.name, "EQI_YEAR": str(year)}, classes=None)  # fmt: skip
            written.append(_style(path, f"Ecosystem quality (HJ 1172-2021) {year}"))
    return written


def eq_tags(profile: Profile) -> dict[str, str]:
    """Verification tags of the values ecosystem quality uses (profile entries)."""
    ref = profile["reference"]
    return {"structure": str(profile.get("structure_tag", "")), "parameters": str(profile["parameters"].get("tag", "")),
            "weights": str(profile["weights"].get("tag", "")), "ecosystem_types": str(profile["ecosystem_types"].get("tag", "")),
            "reference_quantile": str(ref["quantile"].get("tag", "")), "reference_min_pixels": str(ref["min_pixels"].get("tag", "")),
            "without_reference_areas": str(ref["without_reference_areas"].get("tag", "")),
            "relative_density_clip": str(profile["relative_density_clip"].get("tag", "")),
            "grades": str(profile["grades"].get("tag", ""))}  # fmt: skip


def _grade(mean: float, profile: Profile) -> tuple[str, str]:
    value = int(eq.quality_grade(np.array([mean]), profile)[0])
    for c in profile["grades"]["classes"]:
        if int(c["value"]) == value:
            return str(c["label_zh"]), str(c["label_en"])
    return "", ""


def eq_row(profile: Profile, outcome: EqOutcome | None, year: int, *, evaluated: bool, reason: str,
           zonal: Mapping[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """The ``eq_*`` columns of one region and year (docs/tables.md).

    ``zonal``: the exactextract row of the year's quality raster (``mean``, ``valid_km2``,
    ``region_km2``) or None when the year was not assessed.
    """
    out: dict[str, Any] = {"eq_profile_id": profile.id, "eq_profile_version": profile.version,
                           "eq_tags": ";".join(f"{k}={v}" for k, v in eq_tags(profile).items())}  # fmt: skip
    missing = (outcome.missing.get(year) if outcome else None) or []
    if missing or zonal is None:
        return {**out, "eq_status": "not_assessed", "eq_missing": ";".join(missing) or "no ecosystem-quality raster"}
    if not evaluated:
        return {**out, "eq_status": "not_assessed", "eq_missing": reason}
    area = float(zonal["region_km2"])
    assessed = float(zonal["valid_km2"]) / area if area > 0 else 0.0
    mean = float(zonal["mean"]) if zonal["mean"] is not None else math.nan
    out.update(eq_assessed_fraction=assessed, eq_notes=f"reference: {outcome.scope if outcome else ''}")
    if not assessed > 0 or not math.isfinite(mean):
        return {**out, "eq_status": "not_assessed", "eq_missing": "no forest, shrub or grassland pixel with a reference value"}
    least = float(param_value(profile["min_assessed_fraction"]))
    if assessed < least:
        return {**out, "eq_status": "not_assessed",
                "eq_missing": f"only {100 * assessed:.1f} % of the region has a quality value "
                              f"(profile min_assessed_fraction {least:g})"}  # fmt: skip
    zh, en = _grade(mean, profile)
    return {**out, "eq_status": "assessed", "eq_missing": "", "eq_mean": mean, "eq_grade": zh, "eq_grade_en": en}
