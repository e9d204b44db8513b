"""The regional assessment (issue 8): area mosaics + tabular inputs -> EI, EQI, changes, tables.

After the region stage, for an evaluation area and its years (docs/tables.md):

1. regions: the library units (province, prefecture, county) touching the area's mosaics, the
   run's own AOIs, and the configured zone layers (``assess.zones``);
2. zonal statistics from ``OUT/areas/<area>/<year>/<product>.vrt`` with exactextract, **one pass
   per product and year serving every region** (:func:`eqi.io.zonal.zonal_stats`): land-cover
   class areas, NDVI over land (water classes masked, spec §2.3), FVC, RSEI;
3. EI (:func:`eqi.science.ei.compute_ei`) and EQI (:func:`eqi.science.eqi_index.compute_eqi`) per
   region and year, with the tabular inputs (:mod:`eqi.io.tables`) and an optional river layer;
   a 95 % interval from a seeded Monte-Carlo over land-cover error and invalid pixels
   (:mod:`eqi.science.uncertainty`), flagged when it crosses a grade edge;
4. ΔEI / ΔEQI classes for every pair of evaluated years, land-cover transition matrices (km²);
5. tables in ``OUT/areas/<area>/tables/`` (:mod:`eqi.io.region_tables`), ``assessment.json`` last
   (done marker: skipped when its task id — a hash of mosaics, tables, profiles, options — matches).

:func:`check_inputs` validates the tabular inputs and zone specs before any work (exit 2 naming
file, row and column; nothing written).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import box

from eqi.errors import InputError
from eqi.geo.regions import Region, list_library, load_regions
from eqi.geo.zone_layers import is_zone_spec, read_zone_file
from eqi.io import landcover_tables
from eqi.io import tables as tabular
from eqi.io.atomic import atomic_write_json, scratch_dir, sha256_file
from eqi.io.region_tables import LEVELS, write_region_tables
from eqi.io.stac import eqi_version
from eqi.io.zonal import class_areas, line_length_km, transition_matrices, zonal_stats
from eqi.params import Profile
from eqi.pipeline import eq_stage
from eqi.pipeline.eq_stage import EQ, EQ_COLUMNS, EQ_PROFILE, EqOutcome, eq_row
from eqi.pipeline.plan import Plan
from eqi.pipeline.tasks import params_hash
from eqi.resources import load_profile
from eqi.science import uncertainty as unc
from eqi.science.ei import EiInputs, compute_ei, delta_ei_class, ei_grade, habitat_quality
from eqi.science.eqi_index import (
    compute_eqi,
    delta_eqi_class,
    eqi_grade,
    gather_values,
    indicator_registry,
    landcover_quantities,
)

__all__ = ["check_inputs", "assessment_regions", "assess_area", "run_assess", "EI_PROFILE", "EQI_PROFILE"]

EI_PROFILE = "ei-hj192-2015"
EQI_PROFILE = "eqi-2021"
CONTINUOUS = ("fvc", "rsei")  # besides NDVI over land: summarised when their mosaic exists
EI_SUB = ("bri", "vci", "wndi", "lsi", "pli")


# ------------------------------------------------------------------------------ inputs


def library_adcodes() -> set[str]:
    """Every adcode of the built-in library (tables may hold any of them)."""
    return {str(r["adcode"]) for r in list_library()}


def check_inputs(assess: Mapping[str, Any], *, products: Sequence[str] = (), years: Sequence[int] = ()) -> dict[str, pd.DataFrame]:
    """Read and validate the tabular inputs and zone files of ``assess`` (the run's options),
    and, when ``ecosystem_quality`` is among ``products``, its parameter rasters for ``years``.

    Raises :class:`InputError` / :class:`AOIError` (exit 2) naming file, row/feature and column
    (or the config field and the file).
    """
    if EQ in products:
        eq_stage.check_eq_inputs(assess.get("ecosystem_quality") or {}, years, load_profile(EQ_PROFILE))
    for spec in assess.get("zones") or []:
        if is_zone_spec(spec):
            load_regions(spec)
        else:
            read_zone_file(spec)
    rivers = assess.get("rivers")
    if rivers and not Path(rivers).exists():
        raise InputError(f"river layer {rivers} not found (assess.rivers)")
    source = assess.get("tables")
    if not source:
        return {}
    return tabular.read_tables(source, known_adcodes=library_adcodes())


# ------------------------------------------------------------------------------ regions


def _extent_ll(raster: Path) -> Any:
    with rasterio.open(raster) as ds:
        tr = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
        xs, ys = tr.transform([ds.bounds.left, ds.bounds.right, ds.bounds.left, ds.bounds.right],
                              [ds.bounds.bottom, ds.bounds.bottom, ds.bounds.top, ds.bounds.top])  # fmt: skip
    return box(min(xs), min(ys), max(xs), max(ys))


def _zone_regions(spec: str) -> list[Region]:
    if is_zone_spec(spec):
        return load_regions(spec)
    frame = read_zone_file(spec)
    stem = Path(spec).stem.lower()
    return [
        Region(f"{stem}-{rec['id']}", geom, "EPSG:4326",
               {"level": "zone", "adcode": "", "name": rec["name"], "zone_id": rec["id"], "zone_type": rec["type"],
                "zone_layer": stem, "parent_adcode": rec["parent_adcode"]})
        for rec, geom in zip(frame.drop(columns="geometry").to_dict("records"), frame.geometry, strict=True)
    ]  # fmt: skip


def assessment_regions(run_regions: Sequence[Region], extent: Any, levels: Sequence[str], zones: Sequence[str]) -> list[Region]:
    """Regions to assess, in table order: library units of ``levels`` touching ``extent``
    (lon/lat), the run's AOIs (user files as zones of type ``aoi``), the zone layers."""
    out: dict[str, Region] = {}
    specs = {"province": "sichuan", "prefecture": "sichuan:prefectures", "county": "sichuan:counties"}
    for level in ("province", "prefecture", "county"):
        if level not in levels:
            continue
        for r in load_regions(specs[level]):
            if r.geometry.intersects(extent):
                out[r.name] = r
    for r in run_regions:
        if r.name in out:
            continue
        if r.attrs.get("level") in ("province", "prefecture", "county", "zone"):
            out[r.name] = r
        else:
            out[r.name] = Region(r.name, r.geometry, r.crs, {"level": "zone", "adcode": str(r.attrs.get("adcode") or ""),
                                 "name": str(r.attrs.get("name") or r.name), "zone_id": r.name, "zone_type": "aoi",
                                 "zone_layer": "aoi", "parent_adcode": ""})  # fmt: skip
    if "zone" in levels:
        for spec in zones:
            for r in _zone_regions(spec):
                out.setdefault(r.name, r)
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    return sorted(out.values(), key=lambda r: (order.get(str(r.attrs.get("level")), 9), str(r.attrs.get("adcode") or ""), r.name))


def _parent(r: Region) -> str:
    level = r.attrs.get("level")
    if level == "county":
        return str(r.attrs.get("prefecture_adcode") or "")
    if level == "prefecture":
        return "510000"
    return str(r.attrs.get("parent_adcode") or "")


def _key(r: Region) -> dict[str, Any]:
    zone = r.attrs.get("level") == "zone"
    return {
        "region": r.name, "name": str(r.attrs.get("name") or r.name), "adcode": str(r.attrs.get("adcode") or ""),
        "level": str(r.attrs.get("level")), "zone_id": str(r.attrs.get("zone_id") or "") if zone else "",
        "zone_type": str(r.attrs.get("zone_type") or "") if zone else "",
        "zone_layer": str(r.attrs.get("zone_layer") or "") if zone else "", "parent_adcode": _parent(r),
    }  # fmt: skip


# ------------------------------------------------------------------------------ rasters


def _masked_ndvi(ndvi: Path, landcover: Path, exclude: Sequence[int], out: Path, block: int = 1024) -> Path:
    """NDVI with the excluded land-cover classes (permanent water) set to NaN (spec §2.3)."""
    excl = np.asarray(list(exclude), dtype=np.int64)
    with rasterio.open(ndvi) as n, rasterio.open(landcover) as lc:
        if (n.crs, n.transform, n.width, n.height) != (lc.crs, lc.transform, lc.width, lc.height):
            raise InputError(f"{ndvi} and {landcover} are not on one grid")
        profile = {"driver": "GTiff", "width": n.width, "height": n.height, "count": 1, "dtype": "float32",
                   "crs": n.crs, "transform": n.transform, "nodata": float("nan"), "tiled": True,
                   "blockxsize": 512, "blockysize": 512, "compress": "deflate"}  # fmt: skip
        with rasterio.open(out, "w", **profile) as dst:
            for row in range(0, n.height, block):
                for col in range(0, n.width, block):
                    w = Window(col, row, min(block, n.width - col), min(block, n.height - row))
                    v = n.read(1, window=w, masked=True).astype("float32").filled(np.nan)
                    c = lc.read(1, window=w)
                    v[np.isin(c, excl)] = np.nan
                    dst.write(v, 1, window=w)
    return out


def _zonal_year(mosaics: Mapping[str, Path], frame: gpd.GeoDataFrame, exclude: Sequence[int], work: Path) -> dict[str, pd.DataFrame]:
    """One exactextract pass per product over every region."""
    out: dict[str, pd.DataFrame] = {"landcover": zonal_stats(mosaics["landcover"], frame, kind="categorical")}
    if "ndvi" in mosaics:
        land = _masked_ndvi(mosaics["ndvi"], mosaics["landcover"], exclude, work / "ndvi_land.tif")
        out["ndvi"] = zonal_stats(land, frame, kind="continuous")
    for name in CONTINUOUS:
        if name in mosaics:
            out[name] = zonal_stats(mosaics[name], frame, kind="continuous")
    return out


def _confusion(path: Path | None) -> unc.Confusion | None:
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    m = data.get("map_accuracy") or {}
    if not m.get("labels") or not m.get("counts_map_rows"):
        return None
    return unc.Confusion(tuple(int(c) for c in m["labels"]), tuple(tuple(int(v) for v in r) for r in m["counts_map_rows"]))


# ------------------------------------------------------------------------------ indices


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _source(result_sources: Mapping[str, str], keys: Sequence[str]) -> str:
    kinds = sorted({result_sources[k] for k in keys if k in result_sources})
    return "+".join(kinds) if kinds else "missing"


_EI_SOURCES = {"bri": ("land_cover", "biodiversity_index"), "vci": ("ndvi",), "wndi": ("river_length", "land_cover", "water_resources"),
               "lsi": ("erosion", "land_cover"), "pli": ("pollution",), "eri": ("restriction",)}  # fmt: skip


def _ei_inputs(ca: Mapping[int, float], area: float, ndvi: float, river: float | None, tables_kw: Mapping[str, Any]) -> EiInputs:
    kw = dict(tables_kw)
    if river is not None:
        kw["river_length_km"] = river
    return EiInputs(area_km2=area, class_areas_km2=ca, ndvi_mean=None if math.isnan(ndvi) else ndvi, **kw)


def _eqi_values(ca: Mapping[int, float], area: float, fvc: float, ei_p: Profile, eqi_p: Profile, rows: Mapping[str, Any]) -> dict[str, float | None]:
    rs: dict[str, float | None] = dict(landcover_quantities(ca, area, eqi_p))
    rs["habitat_quality"] = habitat_quality(ca, area, ei_p)[0]
    rs["fvc_mean_percent"] = None if math.isnan(fvc) else 100.0 * fvc
    return gather_values(eqi_p, area_km2=area, rs=rs, tables=rows)


def _scaled(ca: Mapping[int, float], factor: float) -> dict[int, float]:
    return {int(c): float(a) * factor for c, a in ca.items() if int(c) != 0}


def assess_area(
    *,
    mosaics: Mapping[int, Mapping[str, Path]],
    regions: Sequence[Region],
    tables: Mapping[str, pd.DataFrame],
    ei_profile: Profile,
    eqi_profile: Profile,
    products: Sequence[str],
    accuracy: Mapping[int, Path | None] | None = None,
    rivers: str | None = None,
    min_coverage: float = 0.9,
    draws: int = 200,
    seed: int = 0,
    level: float = 0.95,
    work: Path,
    eq_profile: Profile | None = None,
    eq_outcome: EqOutcome | None = None,
) -> dict[str, Any]:
    """Rows, changes and transitions of the regional tables (see docs/tables.md).

    ``mosaics``: per year ``{product: raster}`` (``landcover`` required, ``ndvi`` for EI, ``fvc``
    for EQI); ``accuracy``: per year the land-cover accuracy JSON (confusion counts);
    ``eq_outcome``: the ecosystem-quality rasters (:func:`eqi.pipeline.eq_stage.eq_rasters`),
    summarised per region when ``ecosystem_quality`` is among ``products`` (``eq_profile``).
    """
    years = sorted(mosaics)
    want_ei, want_eqi, want_eq = "ei" in products, "eqi" in products, EQ in products
    frame = gpd.GeoDataFrame([{"region": r.name} for r in regions], geometry=[r.geometry for r in regions], crs="EPSG:4326")
    exclude = [int(c) for c in ei_profile.value("vegetation_cover", "exclude_classes")]
    rivers_km = None
    if rivers:
        rivers_km = dict(zip(frame["region"], line_length_km(rivers, frame)["line_length_km"], strict=True))
    reg = indicator_registry(eqi_profile)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    zonal: dict[int, dict[str, pd.DataFrame]] = {}
    with warnings.catch_warnings():  # eqi.io.zonal adds class columns one by one (harmless)
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for year in years:
            zonal[year] = _zonal_year(mosaics[year], frame, exclude, work)
            if want_eq and eq_outcome is not None and year in eq_outcome.rasters:
                zonal[year][EQ] = zonal_stats(eq_outcome.rasters[year], frame, stats=("mean",))
    for i, region in enumerate(regions):
        key = _key(region)
        for year in years:
            z = zonal[year]
            lc = z["landcover"].iloc[i]
            area = float(lc["region_km2"])
            covered = 1.0 - float(lc["outside_fraction"])
            valid = float(lc["valid_km2"]) / area if area > 0 else 0.0
            row: dict[str, Any] = {**key, "year": year, "region_km2": area, "covered_fraction": covered, "valid_fraction": valid}
            mapped = {c: a for c, a in class_areas(lc).items() if c != 0}
            for c, a in sorted(mapped.items()):
                row[f"landcover_class_{c}_km2"] = a
                row[f"landcover_class_{c}_frac"] = float(lc.get(f"class_{c}_frac", math.nan))
            stats: dict[str, tuple[float, float]] = {}
            for name in ("ndvi", *CONTINUOUS):
                if name in z:
                    s = z[name].iloc[i]
                    for st in ("mean", "median", "min", "max", "std", "valid_fraction"):
                        row[f"{name}_{st}"] = _f(s[st])
                    stats[name] = (_f(s["mean"]), _f(s["std"]))
            evaluated = area > 0 and valid >= min_coverage
            row["evaluated"] = evaluated
            adcode = key["adcode"]
            tables_kw = tabular.ei_table_values(tables, adcode, year) if adcode else {}
            eqi_rows = tabular.eqi_table_rows(tables, adcode, year) if adcode else {}
            river = rivers_km.get(region.name) if rivers_km else None
            ndvi_mean, ndvi_std = stats.get("ndvi", (math.nan, math.nan))
            fvc_mean, fvc_std = stats.get("fvc", (math.nan, math.nan))
            scale = 1.0 / valid if valid > 0 else math.nan
            ca = _scaled(mapped, scale) if evaluated else {}
            reason = f"coverage: valid land cover on {100 * valid:.1f} % of the region (< {100 * min_coverage:g} %)"
            note = (f"{100 * (1 - valid):.2f} % of the region without valid land cover: class areas scaled to the region's area"
                    if evaluated and valid < 1 else "")  # fmt: skip
            if want_ei:
                row.update(_ei_row(ei_profile, evaluated, reason, note, ca, area, ndvi_mean, river, tables_kw))
            if want_eqi:
                row.update(_eqi_row(eqi_profile, ei_profile, reg, evaluated, reason, ca, area, fvc_mean, eqi_rows))
            if want_eq and eq_profile is not None:
                eq_z = z[EQ].iloc[i] if EQ in z else None
                row.update(eq_row(eq_profile, eq_outcome, year, evaluated=evaluated, reason=reason, zonal=eq_z))
            if evaluated and draws > 0:
                row.update(_intervals(rng, draws, level, mapped, area, valid, (ndvi_mean, ndvi_std), (fvc_mean, fvc_std),
                                      river, tables_kw, eqi_rows, ei_profile, eqi_profile, row, want_ei, want_eqi,
                                      _confusion((accuracy or {}).get(year))))  # fmt: skip
            rows.append(row)
    changes = _changes(rows, years, ei_profile, eqi_profile, want_ei, want_eqi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        transitions = _transitions(mosaics, years, regions, frame, work)
    return {"rows": rows, "changes": changes, "transitions": transitions, "years": years}


def _ei_row(p: Profile, evaluated: bool, reason: str, note: str, ca: Mapping[int, float], area: float,
            ndvi: float, river: float | None, tables_kw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ei_profile_id": p.get("id"), "ei_profile_version": p.get("version")}
    if not evaluated:
        out.update({"ei_complete": False, "ei_missing": reason, **{f"{k}_source": "missing" for k in (*EI_SUB, "eri")}})
        return out
    res = compute_ei(_ei_inputs(ca, area, ndvi, river, tables_kw), p)
    out.update({"ei": res.ei, "ei_raw": res.ei_raw, "ei_grade": res.grade, "ei_grade_en": res.grade_en,
                "hq": res.hq, **{k: getattr(res, k) for k in EI_SUB}, "restriction_level": res.restriction_level,
                "ei_downgraded": res.downgraded, "ei_complete": res.complete, "ei_missing": ";".join(res.missing),
                "ei_notes": " | ".join([*res.notes, *([note] if note else [])])})  # fmt: skip
    sources = dict(res.sources)
    if river is None and "river_length" in sources:  # river length from the water-resources table
        sources["river_length"] = "table"
    for k, keys in _EI_SOURCES.items():
        value = res.restriction_level if k == "eri" else getattr(res, k)
        present = k == "eri" or not (isinstance(value, float) and math.isnan(value))
        out[f"{k}_source"] = _source(sources, keys) if present else "missing"
    if out["eri_source"] == "missing":
        out["eri_source"] = "none"  # no restriction table row: level 0, noted
    return out


def _eqi_row(p: Profile, ei_p: Profile, reg: Mapping[str, Any], evaluated: bool, reason: str, ca: Mapping[int, float],
             area: float, fvc: float, rows: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"eqi_profile_id": p.get("id"), "eqi_profile_version": p.get("version")}
    if not evaluated:
        out.update({"eqi_complete": False, "eqi_missing": reason, **{f"{i}_source": reg[i].source_kind for i in reg}})
        return out
    res = compute_eqi(_eqi_values(ca, area, fvc, ei_p, p, rows), p)
    out.update({"eqi": res.eqi, "eqi_grade": res.grade, "eqi_grade_en": res.grade_en,
                **{d.lower(): v for d, v in res.dimensions.items()}, "eqi_complete": res.complete,
                "eqi_missing": ";".join(res.missing), "eqi_tags": ";".join(f"{k}={v}" for k, v in res.tags.items())})  # fmt: skip
    for iid in reg:
        out[f"{iid}_raw"] = res.raw.get(iid)
        out[f"{iid}_norm"] = res.normalised.get(iid)
        out[f"{iid}_source"] = res.sources.get(iid)
    return out


def _intervals(rng, draws, level, mapped, area, valid, ndvi, fvc, river, tables_kw, eqi_rows, ei_p, eqi_p, row,
               want_ei, want_eqi, confusion) -> dict[str, Any]:  # noqa: ANN001 - internal helper
    invalid = max(area - sum(mapped.values()), 0.0)
    ca_draws = unc.draw_class_areas(mapped, invalid, confusion, draws, rng)
    ndvi_d = unc.draw_means(ndvi[0], ndvi[1], valid, draws, rng)
    fvc_d = unc.draw_means(fvc[0], fvc[1], valid, draws, rng)
    out: dict[str, Any] = {}
    ei_v, eqi_v = [], []
    for d in range(draws):
        ca = ca_draws.draw(d)
        if want_ei and row.get("ei_complete"):
            ei_v.append(compute_ei(_ei_inputs(ca, area, float(ndvi_d[d]), river, tables_kw), ei_p).ei)
        if want_eqi and row.get("eqi_complete"):
            eqi_v.append(compute_eqi(_eqi_values(ca, area, float(fvc_d[d]), ei_p, eqi_p, eqi_rows), eqi_p).eqi)
    if ei_v:
        lo, hi = unc.interval(ei_v, level)
        out.update(ei_ci_low=lo, ei_ci_high=hi, ei_adjusted=float(np.nanmedian(ei_v)),
                   ei_grade_uncertain=unc.crosses_edge(row["ei"], lo, hi, lambda x: ei_grade(x, ei_p)))  # fmt: skip
    if eqi_v:
        lo, hi = unc.interval(eqi_v, level)
        out.update(eqi_ci_low=lo, eqi_ci_high=hi, eqi_adjusted=float(np.nanmedian(eqi_v)),
                   eqi_grade_uncertain=unc.crosses_edge(row["eqi"], lo, hi, lambda x: eqi_grade(x, eqi_p)))  # fmt: skip
    return out


def _changes(rows, years, ei_p, eqi_p, want_ei, want_eqi) -> list[dict[str, Any]]:  # noqa: ANN001
    by = {(r["region"], r["year"]): r for r in rows}
    out = []
    regions = list(dict.fromkeys(r["region"] for r in rows))
    for name in regions:
        for a_i, y1 in enumerate(years):
            for y2 in years[a_i + 1 :]:
                r1, r2 = by[(name, y1)], by[(name, y2)]
                c = {k: r1[k] for k in ("region", "name", "adcode", "level", "zone_id", "zone_type", "zone_layer", "parent_adcode")}
                c.update(year_from=y1, year_to=y2)
                uncertain = False
                if want_ei:
                    d, cls = delta_ei_class(_nan_none(r1.get("ei")), _nan_none(r2.get("ei")), ei_p, "zh")
                    _, cls_en = delta_ei_class(_nan_none(r1.get("ei")), _nan_none(r2.get("ei")), ei_p, "en")
                    c.update(ei_from=r1.get("ei"), ei_to=r2.get("ei"), delta_ei=d, delta_ei_class=cls, delta_ei_class_en=cls_en)
                    uncertain |= bool(r1.get("ei_grade_uncertain")) or bool(r2.get("ei_grade_uncertain"))
                if want_eqi:
                    d, cls = delta_eqi_class(_nan_none(r1.get("eqi")), _nan_none(r2.get("eqi")), eqi_p, "zh")
                    _, cls_en = delta_eqi_class(_nan_none(r1.get("eqi")), _nan_none(r2.get("eqi")), eqi_p, "en")
                    c.update(eqi_from=r1.get("eqi"), eqi_to=r2.get("eqi"), delta_eqi=d, delta_eqi_class=cls, delta_eqi_class_en=cls_en)
                    uncertain |= bool(r1.get("eqi_grade_uncertain")) or bool(r2.get("eqi_grade_uncertain"))
                c["delta_uncertain"] = uncertain
                out.append(c)
    return out


def _nan_none(x: Any) -> float | None:
    v = _f(x)
    return None if math.isnan(v) else v


def _transitions(mosaics, years, regions, frame, work) -> list[dict[str, Any]]:  # noqa: ANN001
    pairs = list(zip(years, years[1:], strict=False))
    if len(years) > 2:
        pairs.append((years[0], years[-1]))
    table = landcover_tables.load_class_table()

    def label(code: int) -> tuple[str, str]:
        try:
            c = table.get(int(code))
            return c.name_zh, c.name_en
        except KeyError:
            return str(code), str(code)

    out = []
    for y1, y2 in pairs:
        mats = transition_matrices(mosaics[y1]["landcover"], mosaics[y2]["landcover"], frame, workdir=work)
        for r in regions:
            m = mats.get(r.name)
            if m is None:
                continue
            key = _key(r)
            for a in m.index:
                for b in m.columns:
                    km2 = float(m.loc[a, b])
                    if km2 > 0 and int(a) != 0 and int(b) != 0:
                        out.append({"region": r.name, "level": key["level"], "adcode": key["adcode"], "year_from": y1, "year_to": y2,
                                    "from_class": int(a), "from_name": label(a)[0], "to_class": int(b), "to_name": label(b)[0],
                                    "area_km2": km2})  # fmt: skip
    return out


# ------------------------------------------------------------------------------ columns


KEY_COLUMNS = ["region", "name", "adcode", "level", "zone_id", "zone_type", "zone_layer", "parent_adcode", "year",
               "region_km2", "covered_fraction", "valid_fraction", "evaluated", "simulated"]  # fmt: skip
EI_COLUMNS = ["ei_profile_id", "ei_profile_version", "ei", "ei_raw", "ei_grade", "ei_grade_en", "ei_ci_low", "ei_ci_high",
              "ei_adjusted", "ei_grade_uncertain", "hq", *EI_SUB, "restriction_level", "ei_downgraded",
              *[f"{k}_source" for k in (*EI_SUB, "eri")], "ei_complete", "ei_missing", "ei_notes"]  # fmt: skip
CHANGE_COLUMNS = ["region", "name", "adcode", "level", "zone_id", "zone_type", "zone_layer", "parent_adcode", "year_from", "year_to",
                  "ei_from", "ei_to", "delta_ei", "delta_ei_class", "delta_ei_class_en", "eqi_from", "eqi_to", "delta_eqi",
                  "delta_eqi_class", "delta_eqi_class_en", "delta_uncertain"]  # fmt: skip
TRANSITION_COLUMNS = ["region", "level", "adcode", "year_from", "year_to", "from_class", "from_name", "to_class", "to_name", "area_km2"]

_LABELS: dict[str, tuple[str, str]] = {
    "region": ("region", "区域标识"), "name": ("name", "名称"), "adcode": ("adcode", "行政区划代码"),
    "level": ("level", "级别"), "zone_id": ("zone id", "分区编号"), "zone_type": ("zone type", "分区类型"),
    "zone_layer": ("zone layer", "分区图层"), "parent_adcode": ("parent adcode", "上级区划代码"), "year": ("year", "年份"),
    "region_km2": ("region area (km²)", "区域面积 (km²)"), "covered_fraction": ("share inside the mosaics (0-1)", "影像覆盖比例 (0-1)"),
    "valid_fraction": ("share with valid land cover (0-1)", "有效像元比例 (0-1)"), "evaluated": ("evaluated", "是否评价"),
    "simulated": ("simulated data", "模拟数据"),
    "ei_profile_id": ("EI profile id", "EI 方法配置"), "ei_profile_version": ("EI profile version", "EI 配置版本"),
    "ei": ("EI (0-100)", "生态环境状况指数 EI (0-100)"), "ei_raw": ("EI before restriction (0-100)", "限制前 EI (0-100)"),
    "ei_grade": ("EI grade", "EI 等级"), "ei_grade_en": ("EI grade (English)", "EI 等级 (英文)"),
    "ei_ci_low": ("EI 95% interval low (0-100)", "EI 95% 区间下限 (0-100)"), "ei_ci_high": ("EI 95% interval high (0-100)", "EI 95% 区间上限 (0-100)"),
    "ei_grade_uncertain": ("EI interval crosses a grade edge", "EI 区间跨等级"),
    "ei_adjusted": ("EI error-adjusted median (0-100)", "EI 误差校正中位数 (0-100)"),
    "eqi_adjusted": ("EQI error-adjusted median (0-100)", "EQI 误差校正中位数 (0-100)"),
    "hq": ("habitat quality HQ (0-100)", "生境质量指数 (0-100)"), "bri": ("biological abundance BRI (0-100)", "生物丰度指数 (0-100)"),
    "vci": ("vegetation cover VCI (0-100)", "植被覆盖指数 (0-100)"), "wndi": ("water network density WNDI (0-100)", "水网密度指数 (0-100)"),
    "lsi": ("land stress LSI (0-100)", "土地胁迫指数 (0-100)"), "pli": ("pollution load PLI (0-100)", "污染负荷指数 (0-100)"),
    "restriction_level": ("restriction level (0-3)", "环境限制等级 (0-3)"), "ei_downgraded": ("EI downgraded", "EI 是否降级"),
    "bri_source": ("BRI source", "生物丰度指数来源"), "vci_source": ("VCI source", "植被覆盖指数来源"),
    "wndi_source": ("WNDI source", "水网密度指数来源"), "lsi_source": ("LSI source", "土地胁迫指数来源"),
    "pli_source": ("PLI source", "污染负荷指数来源"), "eri_source": ("restriction source", "环境限制指数来源"),
    "ei_complete": ("EI complete", "EI 数据完整"), "ei_missing": ("EI missing inputs", "EI 缺少的输入"), "ei_notes": ("EI notes", "EI 说明"),
    "eqi_profile_id": ("EQI profile id", "EQI 方法配置"), "eqi_profile_version": ("EQI profile version", "EQI 配置版本"),
    "eqi": ("EQI (0-100)", "生态质量指数 EQI (0-100)"), "eqi_grade": ("EQI class", "EQI 类型"), "eqi_grade_en": ("EQI class (English)", "EQI 类型 (英文)"),
    "eqi_ci_low": ("EQI 95% interval low (0-100)", "EQI 95% 区间下限 (0-100)"), "eqi_ci_high": ("EQI 95% interval high (0-100)", "EQI 95% 区间上限 (0-100)"),
    "eqi_grade_uncertain": ("EQI interval crosses a class edge", "EQI 区间跨类型"),
    "ep": ("ecological pattern EP (0-100)", "生态格局指数 (0-100)"), "ef": ("ecological function EF (0-100)", "生态功能指数 (0-100)"),
    "bd": ("biodiversity BD (0-100)", "生物多样性指数 (0-100)"), "es": ("ecological stress ES (0-100)", "生态胁迫指数 (0-100)"),
    "eqi_complete": ("EQI complete", "EQI 数据完整"), "eqi_missing": ("EQI missing indicators", "EQI 缺少的指标"), "eqi_tags": ("EQI verification tags", "EQI 核实标记"),
    "year_from": ("from year", "起始年份"), "year_to": ("to year", "终止年份"), "ei_from": ("EI from (0-100)", "起始 EI (0-100)"),
    "ei_to": ("EI to (0-100)", "终止 EI (0-100)"), "delta_ei": ("ΔEI", "ΔEI"), "delta_ei_class": ("ΔEI class", "ΔEI 变化等级"),
    "delta_ei_class_en": ("ΔEI class (English)", "ΔEI 变化等级 (英文)"), "eqi_from": ("EQI from (0-100)", "起始 EQI (0-100)"),
    "eqi_to": ("EQI to (0-100)", "终止 EQI (0-100)"), "delta_eqi": ("ΔEQI", "ΔEQI"), "delta_eqi_class": ("ΔEQI class", "ΔEQI 变化等级"),
    "delta_eqi_class_en": ("ΔEQI class (English)", "ΔEQI 变化等级 (英文)"), "delta_uncertain": ("change not supported by the intervals", "变化等级不确定"),
    "eq_profile_id": ("ecosystem quality profile id", "生态系统质量方法配置"),
    "eq_profile_version": ("ecosystem quality profile version", "生态系统质量配置版本"),
    "eq_mean": ("ecosystem quality mean (0-100)", "生态系统质量均值 (0-100)"),
    "eq_grade": ("ecosystem quality grade", "生态系统质量等级"), "eq_grade_en": ("ecosystem quality grade (English)", "生态系统质量等级 (英文)"),
    "eq_assessed_fraction": ("share of the region assessed (0-1)", "生态系统质量评价面积比例 (0-1)"),
    "eq_status": ("ecosystem quality status", "生态系统质量评价状态"),
    "eq_missing": ("ecosystem quality missing inputs", "生态系统质量缺少的输入"),
    "eq_tags": ("ecosystem quality verification tags", "生态系统质量核实标记"), "eq_notes": ("ecosystem quality notes", "生态系统质量说明"),
    "from_class": ("from class", "转出类型代码"), "from_name": ("from class name", "转出类型"), "to_class": ("to class", "转入类型代码"),
    "to_name": ("to class name", "转入类型"), "area_km2": ("area (km²)", "面积 (km²)"),
}  # fmt: skip
_STAT_LABELS = {"mean": ("mean", "均值"), "median": ("median", "中位数"), "min": ("min", "最小值"), "max": ("max", "最大值"),
                "std": ("std", "标准差"), "valid_fraction": ("valid share (0-1)", "有效比例 (0-1)")}  # fmt: skip
_PRODUCT_LABELS = {"ndvi": ("NDVI over land", "陆地 NDVI", "-1..1"), "fvc": ("FVC", "植被覆盖度", "0-1"), "rsei": ("RSEI", "遥感生态指数", "0-1")}


def _labels(columns: Sequence[str], reg: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    table = landcover_tables.load_class_table()
    out: dict[str, dict[str, str]] = {}
    for c in columns:
        if c in _LABELS:
            en, zh = _LABELS[c]
        elif c.startswith("landcover_class_"):
            code = int(c.split("_")[2])
            try:
                cls = table.get(code)
                names = (cls.name_en, cls.name_zh)
            except KeyError:
                names = (str(code), str(code))
            if c.endswith("_km2"):
                en, zh = f"{names[0]} {code} area (km²)", f"{names[1]} {code} 面积 (km²)"
            else:
                en, zh = f"{names[0]} {code} share (0-1)", f"{names[1]} {code} 比例 (0-1)"
        elif any(c.startswith(f"{p}_") for p in _PRODUCT_LABELS) and c.split("_", 1)[1] in _STAT_LABELS:
            p, st = c.split("_", 1)
            pe, pz, unit = _PRODUCT_LABELS[p]
            se, sz = _STAT_LABELS[st]
            u = "0-1" if st == "valid_fraction" else unit
            en, zh = f"{pe} {se.split(' (')[0]} ({u})", f"{pz} {sz.split(' (')[0]} ({u})"
        else:
            iid, _, part = c.rpartition("_")
            ind = reg.get(iid)
            if ind is None:
                en, zh = c, c
            elif part == "raw":
                en, zh = f"EQI {ind.name_en} ({ind.unit})", f"EQI {ind.name_zh} ({ind.unit})"
            elif part == "norm":
                en, zh = f"EQI {ind.name_en} normalised (0-100)", f"EQI {ind.name_zh} 标准化值 (0-100)"
            else:
                en, zh = f"EQI {ind.name_en} source", f"EQI {ind.name_zh} 来源"
        out[c] = {"en": en, "zh": zh}
    return out


def _families(rows: Sequence[Mapping[str, Any]], reg: Mapping[str, Any], want_ei: bool, want_eqi: bool,
              want_eq: bool = False) -> dict[str, list[str]]:
    eqi_cols = ["eqi_profile_id", "eqi_profile_version", "eqi", "eqi_grade", "eqi_grade_en", "eqi_ci_low", "eqi_ci_high",
                "eqi_adjusted", "eqi_grade_uncertain", "ep", "ef", "bd", "es",
                *[f"{i}_{s}" for i in reg for s in ("raw", "norm", "source")], "eqi_complete", "eqi_missing", "eqi_tags"]  # fmt: skip
    present = {k for r in rows for k in r}
    zonal_cols = [f"{p}_{s}" for p in ("ndvi", *CONTINUOUS) for s in _STAT_LABELS if f"{p}_{s}" in present]
    codes = sorted({int(k.split("_")[2]) for k in present if k.startswith("landcover_class_")})
    zonal_cols += [f"landcover_class_{c}_{s}" for c in codes for s in ("km2", "frac")]
    fam = {"ei": [*KEY_COLUMNS, *EI_COLUMNS] if want_ei else list(KEY_COLUMNS),
           "eqi": [*KEY_COLUMNS, *eqi_cols] if want_eqi else list(KEY_COLUMNS),
           "zonal": [*KEY_COLUMNS, *zonal_cols]}  # fmt: skip
    if want_eq:
        fam[EQ] = [*KEY_COLUMNS, *EQ_COLUMNS]
    fam["main"] = [*KEY_COLUMNS, *(EI_COLUMNS if want_ei else []), *(eqi_cols if want_eqi else []),
                   *(EQ_COLUMNS if want_eq else []), *zonal_cols]  # fmt: skip
    return fam


# ------------------------------------------------------------------------------ the stage


def _profile_meta(p: Profile, tags: Mapping[str, str]) -> dict[str, Any]:
    return {"id": p.get("id"), "version": p.get("version"), "sha256": p.sha256, "tags": dict(tags)}


def write_assessment(folder: Path, result: Mapping[str, Any], *, regions: Sequence[Region], products: Sequence[str],
                     ei_profile: Profile, eqi_profile: Profile, meta: Mapping[str, Any],
                     eq_profile: Profile | None = None, eq_outcome: EqOutcome | None = None) -> list[Path]:
    """The regional tables of :func:`assess_area`'s result (docs/tables.md)."""
    want_ei, want_eqi = "ei" in products, "eqi" in products
    want_eq = EQ in products and eq_profile is not None
    reg = indicator_registry(eqi_profile)
    rows = [dict(r, simulated=bool(meta.get("simulated"))) for r in result["rows"]]
    fam = _families(rows, reg, want_ei, want_eqi, want_eq)
    change_cols = [c for c in CHANGE_COLUMNS if (want_ei or "ei" not in c.split("_")) and (want_eqi or "eqi" not in c.split("_"))]
    labels = _labels(list(dict.fromkeys([*fam["main"], *change_cols, *TRANSITION_COLUMNS])), reg)
    profiles: dict[str, Any] = {}
    if want_ei:
        profiles["ei"] = _profile_meta(ei_profile, {k: str(ei_profile[k].get("tag", "")) for k in ("grades", "change_classes", "restriction")})
    if want_eqi:
        tags = {f"weight_{d}": str(v["weight"].get("tag", "")) for d, v in eqi_profile["dimensions"].items()}
        tags.update(grades=str(eqi_profile["grades"].get("tag", "")), change_classes=str(eqi_profile["change_classes"].get("tag", "")),
                    indicator_set=str(eqi_profile.get("indicator_set_tag", "")))  # fmt: skip
        profiles["eqi"] = _profile_meta(eqi_profile, tags)
        profiles["eqi"]["indicators"] = [{"id": i.id, "dimension": i.dimension, "name_zh": i.name_zh, "name_en": i.name_en,
                                          "unit": i.unit, "source_kind": i.source_kind, "tag": i.tag} for i in reg.values()]  # fmt: skip
    if want_eq and eq_profile is not None:
        profiles[EQ] = _profile_meta(eq_profile, eq_stage.eq_tags(eq_profile))
        outcome = eq_outcome or EqOutcome()
        profiles[EQ].update(reference_scope=outcome.scope or None, baseline_years=outcome.baseline,
                            references=outcome.references, assessed_years=sorted(outcome.rasters),
                            missing={str(y): m for y, m in sorted(outcome.missing.items()) if m})  # fmt: skip
    doc = {"schema": "eqi-regions/1", **meta, "years": list(result["years"]), "profiles": profiles}
    return write_region_tables(folder, rows=rows, geometries={r.name: r.geometry for r in regions}, families=fam,
                               changes=result["changes"], change_columns=change_cols, transitions=result["transitions"],
                               transition_columns=TRANSITION_COLUMNS, labels=labels, meta=doc)  # fmt: skip


def run_assess(p: Plan, *, overwrite: bool = False, progress: Callable[[str], None] = print) -> list[Path]:
    """The assessment of a plan's area (products ``ei``/``eqi``); [] when none is asked for."""
    products = list(p.options.get("assessments") or [])
    if not products:
        return []
    opts = dict(p.options.get("assess") or {})
    years = [y for y in p.years if (p.area_root / str(y) / "landcover.vrt").is_file()]
    missing = [y for y in p.years if y not in years]
    if missing:
        progress(f"assessment: no land-cover mosaic for {missing}: those years are not assessed")
    if not years:
        return []
    mosaics = {y: {n: p.area_root / str(y) / f"{n}.vrt" for n in ("landcover", "ndvi", *CONTINUOUS)
                   if (p.area_root / str(y) / f"{n}.vrt").is_file()} for y in years}  # fmt: skip
    accuracy = {y: p.model_path("landcover", p.model_years("landcover", y), ".accuracy.json") for y in years}
    tables = check_inputs(opts, products=products, years=years)
    unc_opts = opts.get("uncertainty") or {}
    ei_p, eqi_p = load_profile(EI_PROFILE), load_profile(EQI_PROFILE)
    eq_p = load_profile(EQ_PROFILE) if EQ in products else None
    eq_opts = dict(opts.get("ecosystem_quality") or {})
    folder = p.area_root / "tables"
    inputs = {
        "mosaics": {str(y): {n: sha256_file(f) for n, f in m.items()} for y, m in mosaics.items()},
        "accuracy": {str(y): sha256_file(a) if a.is_file() else None for y, a in accuracy.items()},
        "tables": {f: sha256_file(Path(t.attrs["source"])) for f, t in sorted(tables.items())},
        "rivers": sha256_file(Path(opts["rivers"])) if opts.get("rivers") else None,
        "profiles": [ei_p.sha256, eqi_p.sha256, *([eq_p.sha256] if eq_p else [])], "options": opts, "products": products,
        "eq_inputs": _eq_input_hashes(eq_opts, years, eq_p) if eq_p else None,
        "regions": [r.name for r in p.area.regions], "simulated": bool(p.options.get("simulated")),
        "eqi": eqi_version(),
    }  # fmt: skip
    task_id = "assess_" + params_hash(inputs)
    marker = folder / "assessment.json"
    if not overwrite and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("task_id") == task_id:
                progress(f"skip assessment of {p.area.slug}: done (task {task_id})")
                return []
        except (OSError, ValueError):
            pass
    extent = _extent_ll(mosaics[years[0]]["landcover"])
    regions = assessment_regions(p.area.regions, extent, opts.get("levels") or list(LEVELS), opts.get("zones") or [])
    progress(f"assessment of {p.area.slug}: {len(regions)} region(s) x {len(years)} year(s), products {', '.join(products)}")
    eq_outcome, eq_written = _ecosystem_quality(p, mosaics, eq_opts, eq_p, progress) if eq_p else (None, [])
    with scratch_dir(folder / "work") as work:
        result = assess_area(mosaics=mosaics, regions=regions, tables=tables, ei_profile=ei_p, eqi_profile=eqi_p,
                             products=products, accuracy=accuracy, rivers=opts.get("rivers"),
                             min_coverage=float(opts.get("min_coverage", 0.9)), draws=int(unc_opts.get("draws", 200)),
                             seed=int(unc_opts.get("seed", 0)), level=float(unc_opts.get("level", 0.95)), work=work,
                             eq_profile=eq_p, eq_outcome=eq_outcome)  # fmt: skip
    sources = ["valid_fraction"] + (["landcover_accuracy"] if any(a.is_file() for a in accuracy.values()) else [])
    meta = {"area": p.area.slug, "simulated": bool(p.options.get("simulated")),
            "uncertainty": {"draws": int(unc_opts.get("draws", 200)), "seed": int(unc_opts.get("seed", 0)),
                            "level": float(unc_opts.get("level", 0.95)), "sources": sources},
            "tables": {f: Path(t.attrs["source"]).name for f, t in sorted(tables.items())}}  # fmt: skip
    written = write_assessment(folder, result, regions=regions, products=products, ei_profile=ei_p, eqi_profile=eqi_p,
                               meta=meta, eq_profile=eq_p, eq_outcome=eq_outcome)  # fmt: skip
    written += eq_written
    atomic_write_json(marker, {"task_id": task_id, "files": [str(f.relative_to(folder)) if f.is_relative_to(folder) else
                                                              str(f.relative_to(p.out)) for f in written]})  # fmt: skip
    evaluated = [r for r in result["rows"] if r.get("evaluated")]
    progress(f"assessment tables in {folder} ({len(evaluated)} region-year(s) evaluated)")
    for r in evaluated:
        parts = [f"{r['region']} {r['year']}:"]
        if "ei" in products:
            parts.append(_summary("EI", r.get("ei"), r.get("ei_grade"), r.get("ei_ci_low"), r.get("ei_ci_high"), r.get("ei_missing")))
        if "eqi" in products:
            parts.append(_summary("EQI", r.get("eqi"), r.get("eqi_grade"), r.get("eqi_ci_low"), r.get("eqi_ci_high"), r.get("eqi_missing")))
        if EQ in products and r.get("eq_status") == "assessed":
            parts.append(f"ecosystem quality {_f(r.get('eq_mean')):.2f} {r.get('eq_grade')}")
        progress("  " + "  ".join(parts))
    return [*written, marker]


def _eq_input_hashes(opts: Mapping[str, Any], years: Sequence[int], profile: Profile) -> dict[str, Any]:
    """sha256 of every supplied ecosystem-quality raster (and the reference areas) for the task id."""
    out: dict[str, Any] = {n: {str(y): sha256_file(Path(f)) for y, f in sorted(eq_stage.year_rasters(opts, n, years).items())}
                           for n in eq_stage.supplied_parameters(profile)}  # fmt: skip
    ref = opts.get("reference_areas")
    out["reference_areas"] = sha256_file(Path(ref)) if ref else None
    return out


def _ecosystem_quality(p: Plan, mosaics: Mapping[int, Mapping[str, Path]], opts: Mapping[str, Any], profile: Profile,
                       progress: Callable[[str], None]) -> tuple[EqOutcome, list[Path]]:  # fmt: skip
    """Ecosystem-quality rasters of the area (and per run region); one log line naming what is
    missing for the years that cannot be assessed."""
    simulated = bool(p.options.get("simulated"))
    tags = {"EQI_VERSION": eqi_version(), "EQI_SIMULATED": "true" if simulated else "false",
            "EQI_EQ_PROFILE": f"{profile.id} {profile.version}", "EQI_REGION": p.area.slug}  # fmt: skip
    outcome = eq_stage.eq_rasters(mosaics, opts, profile, p.area_root / EQ, tags=tags, progress=progress)
    lacking = {y: m for y, m in sorted(outcome.missing.items()) if m}
    if lacking:
        by: dict[str, list[int]] = {}
        for y, m in lacking.items():
            by.setdefault("; ".join(m), []).append(y)
        progress("ecosystem quality not assessed (tables: eq_status = not_assessed): "
                 + " | ".join(f"{', '.join(map(str, ys))}: missing {m}" for m, ys in by.items()))  # fmt: skip
    if not outcome.rasters:
        return outcome, []
    area_geobox = p.stack.grid.region_geobox(p.area.geometry)
    written = [*outcome.rasters.values()]
    written += eq_stage.region_rasters(outcome, p.area.regions, p.stack.grid, area_geobox, p.out, tags=tags)
    progress(f"ecosystem quality {', '.join(map(str, sorted(outcome.rasters)))}: reference {outcome.scope}")
    return outcome, written


def _summary(name: str, value: Any, grade: Any, lo: Any, hi: Any, missing: Any) -> str:
    v = _f(value)
    if math.isnan(v):
        return f"{name} incomplete (missing: {missing})"
    ci = f" [{_f(lo):.2f}, {_f(hi):.2f}]" if not math.isnan(_f(lo)) else ""
    return f"{name} {v:.2f} {grade}{ci}"
