"""Ecological Environment Status Index EI (生态环境状况指数) per HJ 192-2015 (spec §2).

Pure functions of per-region numbers (areas in km², lengths in km, loads in t, precipitation in
mm); every weight and normalisation coefficient comes from the method profile
``configs/methods/ei-hj192-2015.yaml`` (pass ``eqi.resources.load_profile("ei-hj192-2015")``),
each with its verification tag — several are [U] and must be checked against the official text.

    EI_raw = 0.35 BRI + 0.25 VCI + 0.15 WNDI + 0.15 (100 - LSI) + 0.10 (100 - PLI)
    EI     = restriction downgrade of EI_raw (ERI level 2 / 3, spec §2.7)

Conventions (spec §2.1, §7): each sub-index is clipped to [0, 100], then rounded to 1 decimal
(half-up on the printed decimal value) before weighting; the composite is computed in exact
decimal arithmetic; grades and change classes are decided on the unrounded EI; EI is reported
to 2 decimals.  Missing inputs are never replaced: :func:`compute_ei` returns NaN and names
what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any, Literal

import numpy as np

from eqi.params import param_value
from eqi.science.change import Interval, change_class, classify, intervals

__all__ = [
    "EiInputs",
    "EiResult",
    "round_decimal",
    "habitat_quality",
    "biological_abundance",
    "vegetation_cover",
    "fit_ndvi_calibration",
    "capped_water_resources",
    "water_network_density",
    "land_stress",
    "pollution_load",
    "restriction_downgrade",
    "composite",
    "ei_grade",
    "delta_ei_class",
    "compute_ei",
    "POLLUTANTS",
]

POLLUTANTS: tuple[str, ...] = ("cod", "nh3n", "so2", "dust", "nox", "solid_waste")
SUBINDICES: tuple[str, ...] = ("bri", "vci", "wndi", "lsi", "pli")


def _v(profile: Mapping[str, Any], *path: str) -> Any:
    node: Any = profile
    for key in path:
        node = node[key]
    return param_value(node)


def _clip(x: float, profile: Mapping[str, Any]) -> float:
    lo, hi = _v(profile, "composite", "clip")
    return min(max(float(x), float(lo)), float(hi))


def round_decimal(x: float, decimals: int, mode: str = "half_up") -> Decimal:
    """``x`` rounded to ``decimals`` on its printed decimal value (``repr``), as a Decimal."""
    rounding = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}[mode]
    return Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-int(decimals)), rounding=rounding)


def _area_of(class_areas: Mapping[int, float], codes: Sequence[int]) -> float:
    return float(sum(float(class_areas.get(int(c), 0.0)) for c in codes))


# ------------------------------------------------------------------------------------ sub-indices


def habitat_quality(
    class_areas_km2: Mapping[int, float],
    area_km2: float,
    profile: Mapping[str, Any],
    *,
    clip: bool = True,
) -> tuple[float, tuple[str, ...]]:
    """Habitat quality HQ = A_bio Σ_k W_k Σ_j w_kj Area_kj / Area (spec §2.2), and notes.

    ``class_areas_km2``: area per CAS LUCC 二级 code (km²) in the region; ``area_km2``: the
    region's area.  Notes name the classes with area that no habitat group weights (code 0 =
    nodata is ignored) and the sub-weights applied whose tag is in ``flag_tags`` (e.g. the [U]
    glacier weight).
    """
    hq = profile["habitat_quality"]
    a_bio = float(_v(hq, "a_bio"))
    flag_tags = set(_v(hq, "flag_tags"))
    weighted = 0.0
    seen: set[int] = set()
    notes: list[str] = []
    for gname, group in hq["groups"].items():
        w_k = float(_v(group, "weight"))
        for sub in group["classes"]:
            codes = [int(c) for c in sub["codes"]]
            seen.update(codes)
            area = _area_of(class_areas_km2, codes)
            weighted += w_k * float(sub["weight"]) * area
            if area > 0 and str(sub.get("tag", "")) in flag_tags:
                notes.append(
                    f"habitat weight {gname}/{sub.get('name_zh', codes)} = {sub['weight']} is "
                    f"{sub.get('tag')} ({area:.3f} km² of codes {codes})"
                )
    unweighted = {c: a for c, a in class_areas_km2.items() if int(c) not in seen and int(c) != 0 and a > 0}
    if unweighted:
        notes.append(f"classes without a habitat weight (area left out of HQ): {dict(sorted(unweighted.items()))}")
    value = a_bio * weighted / float(area_km2)
    return (_clip(value, profile) if clip else value), tuple(notes)


def biological_abundance(hq: float, bi: float | None, profile: Mapping[str, Any]) -> float:
    """BRI = (BI + HQ) / 2, or HQ when the biodiversity index BI is missing (spec §2.2, [U])."""
    if bi is None or math.isnan(float(bi)):
        rule = _v(profile, "biological_abundance", "without_bi")
        if rule != "hq":
            raise ValueError(f"unknown biological_abundance.without_bi rule {rule!r}")
        return _clip(hq, profile)
    rule = _v(profile, "biological_abundance", "with_bi")
    if rule != "mean":
        raise ValueError(f"unknown biological_abundance.with_bi rule {rule!r}")
    return _clip((float(bi) + float(hq)) / 2.0, profile)


def vegetation_cover(
    ndvi_mean: float,
    profile: Mapping[str, Any],
    *,
    scale: Literal["float", "int10000"] = "float",
    calibration: tuple[float, float] | None = None,
) -> float:
    """VCI = A_veg × mean NDVI (spec §2.3), clipped to [0, 100].

    ``ndvi_mean``: the region's mean growing-season NDVI over land pixels (float in [-1, 1]
    with ``scale="float"``: A_veg × 10000 is used; integer × 10000 with ``"int10000"``).
    ``calibration``: optional ``(gain, offset)`` of a Landsat/Sentinel-2 → MODIS NDVI transfer
    fitted on overlapping pixels (applied to the float mean before scaling).
    """
    a_veg = float(_v(profile, "vegetation_cover", "a_veg"))
    x = float(ndvi_mean)
    if scale == "float":
        if calibration is not None:
            x = calibration[0] * x + calibration[1]
        x *= float(_v(profile, "vegetation_cover", "int_scale"))
    elif scale == "int10000":
        if calibration is not None:
            k = float(_v(profile, "vegetation_cover", "int_scale"))
            x = (calibration[0] * x / k + calibration[1]) * k
    else:
        raise ValueError(f"scale must be 'float' or 'int10000', not {scale!r}")
    return _clip(a_veg * x, profile)


def fit_ndvi_calibration(ndvi: Any, ndvi_modis: Any) -> tuple[float, float]:
    """Least-squares ``(gain, offset)`` with ``ndvi_modis ≈ gain × ndvi + offset`` over pixels
    finite in both (e.g. Landsat/Sentinel-2 NDVI aggregated to the MODIS grid), for
    :func:`vegetation_cover`'s ``calibration`` (spec §2.3: comparability with national EI)."""
    x = np.asarray(ndvi, dtype=np.float64).ravel()
    y = np.asarray(ndvi_modis, dtype=np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        raise ValueError("NDVI calibration needs at least two distinct overlapping pixels")
    gain, offset = np.polyfit(x[ok], y[ok], 1)
    return float(gain), float(offset)


def capped_water_resources(
    water_resources: float, history: Sequence[float], profile: Mapping[str, Any]
) -> tuple[float, str | None]:
    """Water resources after the wet-year cap rule (spec §2.4, [V-impl] S11), and a note.

    r = W / mean(history): r ≤ low → W; low < r ≤ high → mean × (high − r); r > high → 0.
    Without past years the rule cannot apply: W is returned with a note saying so.
    """
    w = float(water_resources)
    past = [float(h) for h in history if h is not None and not math.isnan(float(h))]
    if not past:
        return w, "wet-year cap not applied: no past water-resources years given"
    mean = sum(past) / len(past)
    if mean <= 0:
        return w, "wet-year cap not applied: mean of past years is 0"
    low = float(_v(profile, "water_network", "wet_year_cap", "low"))
    high = float(_v(profile, "water_network", "wet_year_cap", "high"))
    r = w / mean
    if r <= low:
        return w, None
    if r <= high:
        return mean * (high - r), f"wet-year cap: r = {r:.3f} in ({low}, {high}] -> mean x ({high} - r)"
    return 0.0, f"wet-year cap: r = {r:.3f} > {high} -> 0"


def water_network_density(
    river_length_km: float,
    lake_area_km2: float,
    water_resources: float,
    area_km2: float,
    profile: Mapping[str, Any],
) -> float:
    """WNDI = (A_riv L/Area + A_lak Area_lake/Area + A_res W/Area) / 3 (spec §2.4), clipped.

    ``water_resources`` in the profile's unit (10⁶ m³, [U]), already through
    :func:`capped_water_resources` when past years exist.
    """
    p = profile["water_network"]
    area = float(area_km2)
    value = (
        float(_v(p, "a_riv")) * float(river_length_km) / area
        + float(_v(p, "a_lak")) * float(lake_area_km2) / area
        + float(_v(p, "a_res")) * float(water_resources) / area
    ) / 3.0
    return _clip(value, profile)


def land_stress(
    severe_erosion_km2: float,
    moderate_erosion_km2: float,
    construction_km2: float,
    other_stress_km2: float,
    area_km2: float,
    profile: Mapping[str, Any],
) -> float:
    """LSI = A_ero (0.4 severe + 0.2 moderate + 0.2 construction + 0.2 other) / Area (§2.5)."""
    p = profile["land_stress"]
    w = {k: float(_v(p, "weights", k)) for k in ("severe_erosion", "moderate_erosion", "construction", "other_stress")}
    s = (
        w["severe_erosion"] * float(severe_erosion_km2)
        + w["moderate_erosion"] * float(moderate_erosion_km2)
        + w["construction"] * float(construction_km2)
        + w["other_stress"] * float(other_stress_km2)
    )
    return _clip(float(_v(p, "a_ero")) * s / float(area_km2), profile)


def pollution_load(
    loads_t: Mapping[str, float],
    precipitation_mm: float,
    area_km2: float,
    profile: Mapping[str, Any],
) -> float:
    """PLI (spec §2.6): Σ weight × A × load / (precipitation × area) for water-borne loads
    (COD, NH3-N), Σ weight × A × load / area for SO2, dust, NOx and solid waste; clipped.

    ``loads_t``: annual loads (t) keyed ``cod, nh3n, so2, dust, nox, solid_waste``.
    """
    p = profile["pollution_load"]
    per_precip = set(_v(p, "per_precipitation"))
    area = float(area_km2)
    p_total = float(precipitation_mm) * area
    value = 0.0
    for key in POLLUTANTS:
        denom = p_total if key in per_precip else area
        value += float(_v(p, "weights", key)) * float(_v(p, "coefficients", key)) * float(loads_t[key]) / denom
    return _clip(value, profile)


def restriction_downgrade(ei: float, level: int | None, profile: Mapping[str, Any]) -> float:
    """EI after the environmental-restriction constraint (spec §2.7, [V-impl] S11).

    Level 0/1 (or None): unchanged.  Each configured level lists rules "EI in [lower, upper) →
    value" (e.g. level 2: 优 → 74.9, 良 → 54.9, 一般 → 34.9, 较差 → 19.9; level 3: 优/良 → 54.9 …).
    """
    if level is None:
        return float(ei)
    lvl = int(level)
    max_level = int(_v(profile, "restriction", "max_level"))
    if not 0 <= lvl <= max_level:
        raise ValueError(f"restriction level must be 0..{max_level}, not {level}")
    rules = profile["restriction"]["levels"].get(lvl) or profile["restriction"]["levels"].get(str(lvl))
    if not rules:
        return float(ei)
    x = float(ei)
    for rule in rules:
        lo = -math.inf if rule.get("lower") is None else float(rule["lower"])
        hi = math.inf if rule.get("upper") is None else float(rule["upper"])
        if lo <= x < hi:
            return float(rule["value"])
    return x


def _rounded(x: float, profile: Mapping[str, Any]) -> Decimal:
    return round_decimal(
        x, int(_v(profile, "rounding", "subindex_decimals")), str(_v(profile, "rounding", "mode"))
    )


def composite(subindices: Mapping[str, float], profile: Mapping[str, Any]) -> float:
    """EI_raw from the five sub-indices (``bri, vci, wndi, lsi, pli``, each 0-100).

    Each is rounded to the profile's decimals (1) first; LSI and PLI enter as 100 - x; the sum
    is exact decimal arithmetic, returned as float.
    """
    negative = set(_v(profile, "composite", "negative"))
    total = Decimal(0)
    for key in SUBINDICES:
        w = Decimal(repr(float(_v(profile, "composite", "weights", key))))
        r = _rounded(subindices[key], profile)
        total += w * ((Decimal(100) - r) if key in negative else r)
    return float(total)


def _grade_table(profile: Mapping[str, Any]) -> tuple[Interval, ...]:
    return intervals(profile["grades"], "EI grades")


def ei_grade(ei: float | None, profile: Mapping[str, Any], lang: str = "zh") -> str | None:
    """EI grade (优/良/一般/较差/差; lower edges inclusive: 75.0 → 优, 74.99 → 良)."""
    iv = classify(ei, _grade_table(profile))
    if iv is None:
        return None
    return iv.label_zh if lang == "zh" else iv.label_en


def delta_ei_class(
    ei_t1: float | None, ei_t2: float | None, profile: Mapping[str, Any], lang: str = "zh"
) -> tuple[float, str | None]:
    """``(ΔEI, class)`` with ΔEI = EI_t2 − EI_t1 (exact decimal difference; spec §2.8)."""
    return change_class(ei_t1, ei_t2, intervals(profile["change_classes"], "ΔEI classes"), lang)


# ------------------------------------------------------------------------------------ one region


@dataclass(frozen=True)
class EiInputs:
    """Everything EI needs for one region and year.  None = not available (never imputed).

    Remote sensing: ``class_areas_km2`` (CAS 二级 code → km², zonal class areas of the land
    cover), ``ndvi_mean`` (growing-season NDVI over land pixels).  Vector: ``river_length_km``.
    Tables (eqi.io.tables): water resources (+ past years for the wet-year cap), erosion and
    other-stress areas, pollutant loads and precipitation, the biodiversity index BI (optional:
    BRI = HQ without it), the restriction level (None: no event recorded → level 0, noted).
    ``lake_area_km2`` / ``construction_km2`` default to the profile's land-cover classes.
    """

    area_km2: float
    class_areas_km2: Mapping[int, float] | None = None
    ndvi_mean: float | None = None
    ndvi_scale: Literal["float", "int10000"] = "float"
    ndvi_calibration: tuple[float, float] | None = None
    river_length_km: float | None = None
    lake_area_km2: float | None = None
    water_resources: float | None = None
    water_resources_history: Sequence[float] = ()
    severe_erosion_km2: float | None = None
    moderate_erosion_km2: float | None = None
    other_stress_km2: float | None = None
    construction_km2: float | None = None
    pollution_t: Mapping[str, float] | None = None
    precipitation_mm: float | None = None
    biodiversity_index: float | None = None
    restriction_level: int | None = None


@dataclass(frozen=True)
class EiResult:
    """EI of one region and year with its sub-indices, grade and provenance.

    Sub-index values are those entering the composite (clipped, rounded to 1 decimal);
    ``ei_raw`` is the composite before the restriction constraint; ``ei`` after it (NaN when
    ``complete`` is False, with ``missing`` naming the inputs).  ``sources`` says per input
    whether it came from remote sensing, a vector layer or a table.
    """

    profile_id: str
    profile_version: str
    hq: float = math.nan
    bri: float = math.nan
    vci: float = math.nan
    wndi: float = math.nan
    lsi: float = math.nan
    pli: float = math.nan
    ei_raw: float = math.nan
    ei: float = math.nan
    grade: str | None = None
    grade_en: str | None = None
    restriction_level: int = 0
    downgraded: bool = False
    complete: bool = False
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flat dict for tables (EI to the profile's report decimals is left to the writer)."""
        row = asdict(self)
        row["missing"] = ";".join(self.missing)
        row["notes"] = " | ".join(self.notes)
        row["sources"] = ";".join(f"{k}={v}" for k, v in sorted(self.sources.items()))
        return row


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def compute_ei(inputs: EiInputs, profile: Mapping[str, Any]) -> EiResult:
    """EI for one region: sub-indices, composite, restriction downgrade, grade (spec §2)."""
    pid = str(profile.get("id", "ei-hj192-2015"))
    pver = str(profile.get("version", ""))
    missing: list[str] = []
    notes: list[str] = []
    sources: dict[str, str] = {}
    area = float(inputs.area_km2)
    if not area > 0:
        raise ValueError(f"region area must be > 0 km², not {inputs.area_km2}")
    ca = inputs.class_areas_km2
    sub: dict[str, float] = {}

    # BRI (HQ from land cover, BI from the biodiversity table)
    hq = math.nan
    if ca is None:
        missing.append("land cover class areas (HQ)")
    else:
        sources["land_cover"] = "remote_sensing"
        hq, hq_notes = habitat_quality(ca, area, profile)
        notes.extend(hq_notes)
        bi = inputs.biodiversity_index
        if _missing(bi):
            notes.append("BRI = HQ: no biodiversity index BI (HJ 623) supplied")
        else:
            sources["biodiversity_index"] = "table"
        sub["bri"] = biological_abundance(hq, None if _missing(bi) else bi, profile)

    # VCI
    if _missing(inputs.ndvi_mean):
        missing.append("mean NDVI (VCI)")
    else:
        sources["ndvi"] = "remote_sensing"
        sub["vci"] = vegetation_cover(
            float(inputs.ndvi_mean), profile, scale=inputs.ndvi_scale, calibration=inputs.ndvi_calibration
        )
        if inputs.ndvi_calibration is not None:
            notes.append(f"NDVI calibrated to MODIS with gain/offset {inputs.ndvi_calibration}")

    # WNDI
    lake = inputs.lake_area_km2
    if _missing(lake) and ca is not None:
        lake = _area_of(ca, _v(profile, "water_network", "lake_classes"))
    wndi_missing = [
        name
        for name, value in (
            ("river length (WNDI)", inputs.river_length_km),
            ("lake/reservoir area (WNDI)", lake),
            ("water resources (WNDI)", inputs.water_resources),
        )
        if _missing(value)
    ]
    if wndi_missing:
        missing.extend(wndi_missing)
    else:
        sources.update(river_length="vector", water_resources="table")
        w, note = capped_water_resources(float(inputs.water_resources), inputs.water_resources_history, profile)
        if note:
            notes.append(note)
        sub["wndi"] = water_network_density(float(inputs.river_length_km), float(lake), w, area, profile)

    # LSI
    construction = inputs.construction_km2
    if _missing(construction) and ca is not None:
        construction = _area_of(ca, _v(profile, "land_stress", "construction_classes"))
    lsi_missing = [
        name
        for name, value in (
            ("severe erosion area (LSI)", inputs.severe_erosion_km2),
            ("moderate erosion area (LSI)", inputs.moderate_erosion_km2),
            ("other land stress area (LSI)", inputs.other_stress_km2),
            ("construction area (LSI)", construction),
        )
        if _missing(value)
    ]
    if lsi_missing:
        missing.extend(lsi_missing)
    else:
        sources["erosion"] = "table"
        sub["lsi"] = land_stress(
            float(inputs.severe_erosion_km2),
            float(inputs.moderate_erosion_km2),
            float(construction),
            float(inputs.other_stress_km2),
            area,
            profile,
        )

    # PLI
    loads = inputs.pollution_t
    pli_missing = [f"{k} load (PLI)" for k in POLLUTANTS if loads is None or _missing(loads.get(k))]
    if _missing(inputs.precipitation_mm):
        pli_missing.append("precipitation (PLI)")
    if pli_missing:
        missing.extend(pli_missing)
    else:
        sources["pollution"] = "table"
        sub["pli"] = pollution_load(loads, float(inputs.precipitation_mm), area, profile)  # type: ignore[arg-type]

    level = inputs.restriction_level
    if level is None:
        notes.append("no restriction event recorded: restriction level 0")
        level = 0
    else:
        sources["restriction"] = "table"
    decimals = int(_v(profile, "rounding", "subindex_decimals"))
    rounded = {k: float(_rounded(v, profile)) for k, v in sub.items()}
    fields_ = {k: rounded.get(k, math.nan) for k in SUBINDICES}
    hq_r = float(round_decimal(hq, decimals, str(_v(profile, "rounding", "mode")))) if not math.isnan(hq) else math.nan
    if missing:
        return EiResult(
            pid, pver, hq=hq_r, **fields_, restriction_level=int(level), complete=False,
            missing=tuple(missing), notes=tuple(notes), sources=sources,
        )  # fmt: skip
    ei_raw = composite(sub, profile)
    ei = restriction_downgrade(ei_raw, level, profile)
    return EiResult(
        pid,
        pver,
        hq=hq_r,
        **fields_,
        ei_raw=ei_raw,
        ei=ei,
        grade=ei_grade(ei, profile, "zh"),
        grade_en=ei_grade(ei, profile, "en"),
        restriction_level=int(level),
        downgraded=ei != ei_raw,
        complete=True,
        notes=tuple(notes),
        sources=sources,
    )
