"""Regional Ecological Quality Index EQI (生态质量指数), MEE 2021 method profile (spec §3).

The official indicator table was not available, so the index is driven by an *indicator
registry* in the method profile (``configs/methods/eqi-2021.yaml``, profile "EQI-2021-proxy"):
each indicator has an id, a dimension (EP 生态格局, EF 生态功能, BD 生物多样性, ES 生态胁迫), a unit,
a direction, a source kind (remote sensing or table), where its value comes from, a weight
within its dimension and fixed reference bounds.  Dimension weights, grade cut points and ΔEQI
classes come from the same file with their verification tags (mostly [U]/[D]).

    x_norm = 100 × clip((x − ref_min) / (ref_max − ref_min), 0, 1)
    D      = Σ_i w_i × (x_norm_i, or 100 − x_norm_i when the indicator's direction is opposite
             to the dimension's orientation)
    EQI    = Σ_d W_d × (D_d, or 100 − D_d for a negatively oriented dimension such as ES)

Every enabled indicator is required: a region lacking one gets ``eqi = NaN``, ``complete =
False`` and ``missing`` naming the indicator — nothing is imputed or re-weighted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from eqi.errors import ConfigError
from eqi.params import param_value
from eqi.science.change import change_class, classify, intervals

__all__ = [
    "Indicator",
    "Dimension",
    "indicator_registry",
    "dimensions",
    "normalise",
    "landcover_quantities",
    "gather_values",
    "EqiResult",
    "compute_eqi",
    "eqi_grade",
    "delta_eqi_class",
]

SourceKind = Literal["remote_sensing", "table"]
Direction = Literal["positive", "negative"]


@dataclass(frozen=True)
class Dimension:
    """A first-level dimension (EP/EF/BD/ES) with its weight in EQI and its tag."""

    id: str
    name_zh: str
    name_en: str
    orientation: Direction
    weight: float
    tag: str


@dataclass(frozen=True)
class Indicator:
    """One registry entry (see the profile's comment for each field)."""

    id: str
    dimension: str
    name_zh: str
    name_en: str
    unit: str
    direction: Direction
    source_kind: SourceKind
    input: str
    weight: float
    ref_min: float
    ref_max: float
    tag: str
    weight_tag: str = ""
    reference_tag: str = ""
    per_area_percent: bool = False
    enabled: bool = True


def dimensions(profile: Mapping[str, Any]) -> dict[str, Dimension]:
    """The profile's dimensions; ConfigError unless their weights sum to 1."""
    out = {}
    for did, d in profile["dimensions"].items():
        orient = str(d["orientation"])
        if orient not in ("positive", "negative"):
            raise ConfigError(f"EQI dimension {did}: orientation must be positive or negative")
        w = profile_param(d["weight"])
        out[str(did)] = Dimension(str(did), str(d["name_zh"]), str(d["name_en"]), orient, float(w[0]), w[1])  # type: ignore[arg-type]
    total = sum(d.weight for d in out.values())
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"EQI dimension weights sum to {total:g}, not 1 (profile {profile.get('id')})")
    return out


def profile_param(entry: Any) -> tuple[Any, str]:
    """``(value, tag)`` of a profile entry (``{value, tag}`` or a plain value)."""
    if isinstance(entry, Mapping) and "value" in entry:
        return entry["value"], str(entry.get("tag", ""))
    return entry, ""


def indicator_registry(profile: Mapping[str, Any], *, enabled_only: bool = True) -> dict[str, Indicator]:
    """The indicator registry of a profile (enabled indicators by default), checked.

    Raises ConfigError for an unknown dimension, direction or source kind, reference bounds
    with max <= min, or enabled weights of a dimension not summing to 1.
    """
    dims = dimensions(profile)
    out: dict[str, Indicator] = {}
    for iid, e in profile["indicators"].items():
        if str(e.get("dimension")) not in dims:
            raise ConfigError(f"EQI indicator {iid}: unknown dimension {e.get('dimension')!r}")
        if e.get("direction") not in ("positive", "negative"):
            raise ConfigError(f"EQI indicator {iid}: direction must be positive or negative")
        if e.get("source_kind") not in ("remote_sensing", "table"):
            raise ConfigError(f"EQI indicator {iid}: source_kind must be remote_sensing or table")
        ref = e["reference"]
        w, wtag = profile_param(e["weight"])
        ind = Indicator(
            id=str(iid),
            dimension=str(e["dimension"]),
            name_zh=str(e["name_zh"]),
            name_en=str(e.get("name_en", e["name_zh"])),
            unit=str(e.get("unit", "")),
            direction=e["direction"],
            source_kind=e["source_kind"],
            input=str(e["input"]),
            weight=float(w),
            ref_min=float(ref["min"]),
            ref_max=float(ref["max"]),
            tag=str(e.get("tag", "")),
            weight_tag=wtag,
            reference_tag=str(ref.get("tag", "")),
            per_area_percent=bool(e.get("per_area_percent", False)),
            enabled=bool(e.get("enabled", True)),
        )
        if not ind.ref_max > ind.ref_min:
            raise ConfigError(f"EQI indicator {iid}: reference max must exceed min")
        if ind.enabled or not enabled_only:
            out[ind.id] = ind
    for did in dims:
        ws = [i.weight for i in out.values() if i.dimension == did and i.enabled]
        if not ws:
            raise ConfigError(f"EQI dimension {did} has no enabled indicator")
        if abs(sum(ws) - 1.0) > 1e-9:
            raise ConfigError(
                f"EQI dimension {did}: enabled indicator weights sum to {sum(ws):g}, not 1"
            )
    return out


def normalise(x: float, ind: Indicator) -> float:
    """``100 × clip((x − ref_min) / (ref_max − ref_min), 0, 1)`` with the fixed reference bounds."""
    t = (float(x) - ind.ref_min) / (ind.ref_max - ind.ref_min)
    return 100.0 * min(max(t, 0.0), 1.0)


def landcover_quantities(
    class_areas_km2: Mapping[int, float], area_km2: float, profile: Mapping[str, Any]
) -> dict[str, float]:
    """``rs.ecoland_ratio`` and ``rs.land_development`` (both % of the region) from class areas.

    ecoland_ratio = ecological-land classes / area × 100; land_development = (construction +
    α × cropland) / area × 100 (spec §3.5, α = 0.5 [D]).
    """
    lc = profile["landcover_inputs"]

    def total(key: str) -> float:
        return float(sum(float(class_areas_km2.get(int(c), 0.0)) for c in param_value(lc[key])))

    area = float(area_km2)
    alpha = float(param_value(lc["cropland_alpha"]))
    return {
        "ecoland_ratio": 100.0 * total("ecoland_classes") / area,
        "land_development": 100.0 * (total("construction_classes") + alpha * total("cropland_classes")) / area,
    }


def _denoise(x: float) -> float:
    """Round to 1e-9: a weighted sum of exact inputs (0.35 × 70 + …) lands on its grade edge
    (70.0, not 69.99999999999999); far below the 2 reported decimals."""
    return x if math.isnan(x) else round(x, 9)


def _is_missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def gather_values(
    profile: Mapping[str, Any],
    *,
    area_km2: float,
    rs: Mapping[str, float | None] | None = None,
    tables: Mapping[str, Mapping[str, float | None] | None] | None = None,
) -> dict[str, float | None]:
    """Raw indicator values of one region and year from their declared inputs (None = missing).

    ``rs``: remote-sensing quantities by key (``ecoland_ratio``, ``habitat_quality``,
    ``fvc_mean_percent``, ``land_development`` …); ``tables``: per family, the region-year's
    row as ``{column: value}`` (None or absent = no row / no file).
    """
    rs = rs or {}
    tables = tables or {}
    out: dict[str, float | None] = {}
    for ind in indicator_registry(profile).values():
        kind, _, rest = ind.input.partition(".")
        if kind == "rs":
            value = rs.get(rest)
        elif kind == "table":
            family, _, column = rest.partition(".")
            row = tables.get(family)
            value = None if row is None else row.get(column)
        else:
            raise ConfigError(f"EQI indicator {ind.id}: input must start with rs. or table., not {ind.input!r}")
        if not _is_missing(value) and ind.per_area_percent:
            value = 100.0 * float(value) / float(area_km2)  # type: ignore[arg-type]
        out[ind.id] = None if _is_missing(value) else float(value)  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class EqiResult:
    """EQI of one region and year: indicators raw and normalised, dimensions, grade, provenance."""

    profile_id: str
    profile_version: str
    eqi: float = math.nan
    grade: str | None = None
    grade_en: str | None = None
    dimensions: Mapping[str, float] = field(default_factory=dict)
    raw: Mapping[str, float | None] = field(default_factory=dict)
    normalised: Mapping[str, float | None] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    complete: bool = False
    missing: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flat dict for tables: ``eqi, grade, EP..ES, <id>_raw, <id>_norm, <id>_source …``."""
        row: dict[str, Any] = {
            "profile_id": self.profile_id,
            "profile_version": self.profile_version,
            "eqi": self.eqi,
            "grade": self.grade,
            "grade_en": self.grade_en,
            "complete": self.complete,
            "missing": ";".join(self.missing),
        }
        row.update(self.dimensions)
        for iid in self.raw:
            row[f"{iid}_raw"] = self.raw[iid]
            row[f"{iid}_norm"] = self.normalised.get(iid)
            row[f"{iid}_source"] = self.sources.get(iid)
        row["tags"] = ";".join(f"{k}={v}" for k, v in self.tags.items())
        return row

    def as_dict(self) -> dict[str, Any]:
        """Nested plain dict (metadata JSON)."""
        return asdict(self)


def compute_eqi(values: Mapping[str, float | None], profile: Mapping[str, Any]) -> EqiResult:
    """EQI from raw indicator values (``{indicator id: value or None}``; spec §3).

    A missing enabled indicator makes its dimension and the EQI NaN and is named in ``missing``
    as ``"<id> (<name_zh>, <source kind>)"``.
    """
    dims = dimensions(profile)
    reg = indicator_registry(profile)
    normed: dict[str, float | None] = {}
    raw: dict[str, float | None] = {}
    missing: list[str] = []
    for ind in reg.values():
        x = values.get(ind.id)
        raw[ind.id] = None if _is_missing(x) else float(x)  # type: ignore[arg-type]
        if raw[ind.id] is None:
            normed[ind.id] = None
            missing.append(f"{ind.id} ({ind.name_zh}, {ind.source_kind})")
        else:
            normed[ind.id] = normalise(raw[ind.id], ind)  # type: ignore[arg-type]
    dim_values: dict[str, float] = {}
    for did, d in dims.items():
        total = 0.0
        for ind in (i for i in reg.values() if i.dimension == did):
            n = normed[ind.id]
            if n is None:
                total = math.nan
                break
            total += ind.weight * (n if ind.direction == d.orientation else 100.0 - n)
        dim_values[did] = _denoise(total)
    eqi = math.nan
    if not missing:
        eqi = _denoise(
            math.fsum(
                d.weight * (dim_values[did] if d.orientation == "positive" else 100.0 - dim_values[did])
                for did, d in dims.items()
            )
        )
    tags = {f"weight_{did}": d.tag for did, d in dims.items()}
    tags["grades"] = str(profile["grades"].get("tag", ""))
    tags["change_classes"] = str(profile["change_classes"].get("tag", ""))
    tags["indicator_set"] = str(profile.get("indicator_set_tag", ""))
    return EqiResult(
        profile_id=str(profile.get("id", "")),
        profile_version=str(profile.get("version", "")),
        eqi=eqi,
        grade=eqi_grade(eqi, profile, "zh"),
        grade_en=eqi_grade(eqi, profile, "en"),
        dimensions=dim_values,
        raw=raw,
        normalised=normed,
        sources={i.id: i.source_kind for i in reg.values()},
        complete=not missing,
        missing=tuple(missing),
        tags=tags,
    )


def eqi_grade(value: float | None, profile: Mapping[str, Any], lang: str = "zh") -> str | None:
    """EQI class (一类 … 五类; lower edges inclusive, e.g. 70.0 → 一类, 69.99 → 二类)."""
    iv = classify(value, intervals(profile["grades"], "EQI grades"))
    if iv is None:
        return None
    return iv.label_zh if lang == "zh" else iv.label_en


def delta_eqi_class(
    eqi_t1: float | None, eqi_t2: float | None, profile: Mapping[str, Any], lang: str = "zh"
) -> tuple[float, str | None]:
    """``(ΔEQI, class)`` with ΔEQI = EQI_t2 − EQI_t1 (exact decimal difference; spec §3.4)."""
    return change_class(eqi_t1, eqi_t2, intervals(profile["change_classes"], "ΔEQI classes"), lang)
