"""``eqi assess``: project impact assessment (spec §4.5) from the rasters of ``eqi run``.

Inputs (decision, see docs/assess.md): the assessment does not composite scenes itself; it reads
the products ``eqi run`` wrote for the before and after years — the area mosaics
``OUT/areas/<area>/<year>/<product>.vrt`` — or explicit per-year rasters (``inputs.files``).  So
run ``eqi run`` for an AOI covering the project's outer zone first (the demo does both).

Per project (one task, restartable like ``eqi run``: ``OUT/projects/<name>/item.json`` is written
last and names the task id, a hash of the project, the inputs and the method profile):

1. zones in the project's local equal-area CRS (eqi.geo.zones), carried to the raster grid;
2. one window of every raster over the zones, one label raster (pixel-centre rule) — every zone
   statistic is a pass over that label array, not a rasterisation per zone;
3. matched controls (elevation band × slope class × pre-project land cover, or pre-project NDVI
   band when no land cover), indicators per zone and year, BACI with bootstrap intervals;
4. disturbance polygons (NDVI drop) → GeoPackage; chainage segments for linear projects.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from eqi.errors import ConfigError, InputError
from eqi.geo.zones import Zone, build_zones, chainage_segments, local_crs
from eqi.io.atomic import atomic_path, atomic_write_json, atomic_write_text
from eqi.io.zonal import area_model
from eqi.params import Profile
from eqi.pipeline.assess.config import AssessConfig, InputsSpec, ProjectSpec
from eqi.pipeline.assess.geometry import check_kind, resolve_geometry
from eqi.pipeline.lock import RunLock
from eqi.pipeline.tasks import check_done, params_hash
from eqi.resources import load_profile
from eqi.science import impact
from eqi.science.change import TRANSITION_BASE, transition_code, transition_matrix
from eqi.science.ei import habitat_quality

__all__ = ["PreparedProject", "ProjectResult", "prepare", "assess", "assess_project", "zone_pixels", "CONTINUOUS"]

CONTINUOUS = ("ndvi", "fvc", "rsei")
CATEGORICAL = ("landcover",)


@dataclass
class PreparedProject:
    """A validated project: geometry, zones (local CRS and raster CRS), grid and input paths."""

    spec: ProjectSpec
    geometry_ll: BaseGeometry
    local: str
    zones: list[Zone]
    zones_grid: list[BaseGeometry]
    grid_crs: CRS
    transform: Any
    shape: tuple[int, int]
    pixel_km2: float
    paths: dict[str, dict[int, str]]
    dem: str | None
    control_explicit: bool
    sensitive: list[tuple[str, BaseGeometry]] = field(default_factory=list)
    task_id: str = ""


@dataclass(frozen=True)
class ProjectResult:
    name: str
    status: str  # "done" | "skipped"
    folder: Path
    summary: dict[str, Any]


# ------------------------------------------------------------------------------------ inputs


def _area_dir(inputs: InputsSpec) -> Path | None:
    if inputs.run is None:
        return None
    areas = inputs.run / "areas"
    if inputs.area is not None:
        if not (areas / inputs.area).is_dir():
            raise ConfigError(f"inputs.area: {areas / inputs.area} does not exist")
        return areas / inputs.area
    found = sorted(p for p in areas.glob("*") if p.is_dir()) if areas.is_dir() else []
    if len(found) != 1:
        raise ConfigError(
            f"inputs.run: {inputs.run} holds {len(found)} areas ({[p.name for p in found]}); "
            "say which with inputs.area" if found else f"inputs.run: {inputs.run} holds no eqi run outputs (areas/)"
        )
    return found[0]


def _paths(inputs: InputsSpec, years: Sequence[int]) -> dict[str, dict[int, str]]:
    area = _area_dir(inputs)
    out: dict[str, dict[int, str]] = {}
    for product in (*CONTINUOUS, *CATEGORICAL):
        per_year = {}
        for y in years:
            if product in inputs.files:
                p = inputs.files[product].replace("{year}", str(y))
            elif area is not None:
                p = str(area / str(y) / f"{product}.vrt")
            else:
                continue
            if Path(p).is_file():
                per_year[y] = p
            elif product in inputs.files:
                raise ConfigError(f"inputs.files.{product}: {p} not found")
        if len(per_year) == len(years):
            out[product] = per_year
    if "ndvi" not in out:
        where = inputs.files.get("ndvi") or (area and f"{area}/<year>/ndvi.vrt")
        raise InputError(f"inputs: no NDVI raster for every year {list(years)} ({where}); run `eqi run` for those years first")
    return out


def _transformer(src: Any, dst: Any) -> Callable[[BaseGeometry], BaseGeometry]:
    t = Transformer.from_crs(src, dst, always_xy=True)

    def apply(g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))

    return apply


def _densify(g: BaseGeometry, step: float) -> BaseGeometry:
    return shapely.segmentize(g, step) if not g.is_empty else g


def prepare(config: AssessConfig, spec: ProjectSpec, profile: Profile) -> PreparedProject:
    """Validate one project against its inputs (no output written): raises ConfigError/InputError."""
    field_ = f"projects[{spec.name}]"
    geom = check_kind(resolve_geometry(spec.geometry, f"{field_}.geometry"), spec.type, f"{field_}.geometry")
    c = geom.centroid
    local = local_crs(c.x, c.y)
    to_local = _transformer("EPSG:4326", local)
    g_local = to_local(geom)
    zdef = profile["zones"][spec.type]
    fp_m = spec.footprint_m if spec.footprint_m is not None else float(profile.value("zones", spec.type, "footprint_m"))
    rings = spec.rings_m if spec.rings_m is not None else list(profile.value("zones", spec.type, "rings_m"))
    fp_geom = to_local(resolve_geometry(spec.footprint, f"{field_}.footprint")) if spec.footprint else None
    control_geom = None
    control_m: Any = tuple(profile.value("zones", spec.type, "control_m")) if "control_m" in zdef else None
    if spec.control is not None:
        if spec.control.geometry is not None:
            control_geom = to_local(resolve_geometry(spec.control.geometry, f"{field_}.control.geometry"))
        if spec.control.distance_m is not None:
            control_m = spec.control.distance_m
    if control_geom is None and control_m is not None and control_m[0] < rings[-1]:
        raise ConfigError(
            f"{field_}.control.distance_m: the control starts at {control_m[0]} m, inside the last ring ({rings[-1]} m); "
            "start it at or beyond the outermost ring"
        )
    zones = build_zones(
        g_local, spec.type, footprint_m=fp_m, rings_m=rings, control_m=control_m,
        footprint_geometry=fp_geom, control_geometry=control_geom,
    )  # fmt: skip
    years = (spec.before, spec.after)
    paths = _paths(config.inputs, years)
    with rasterio.open(paths["ndvi"][spec.before]) as src:
        if src.crs is None or CRS.from_user_input(src.crs).is_geographic:
            raise InputError(f"inputs: {paths['ndvi'][spec.before]} is not in a projected CRS; run eqi with a metric crs")
        grid_crs = CRS.from_user_input(src.crs)
        ll_bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        outside = InputError(
            f"{field_}.geometry: the project lies outside every input raster "
            f"({paths['ndvi'][spec.before]} covers lon/lat {tuple(round(v, 4) for v in ll_bounds)}); "
            "check the coordinates and their crs, or run eqi run over the project first"
        )
        if not shapely.intersects(geom, shapely.box(*ll_bounds)):
            raise outside
        to_grid = _transformer(local, grid_crs)
        zones_grid = [shapely.make_valid(to_grid(_densify(z.geometry, 100.0))) for z in zones]
        xmin, ymin, xmax, ymax = shapely.total_bounds(np.asarray(zones_grid, dtype=object))
        raw = from_bounds(xmin, ymin, xmax, ymax, src.transform)
        c0, r0 = math.floor(raw.col_off), math.floor(raw.row_off)
        c1, r1 = math.ceil(raw.col_off + raw.width), math.ceil(raw.row_off + raw.height)
        win = Window(c0, r0, c1 - c0, r1 - r0)
        full = Window(0, 0, src.width, src.height)
        try:
            win = win.intersection(full)
        except rasterio.errors.WindowError:
            win = None
        if win is None or win.width < 1 or win.height < 1 or not shapely.intersects(zones_grid[0], shapely.box(*src.bounds)):
            raise outside
        transform = src.window_transform(win)
        shape = (int(win.height), int(win.width))
        model = area_model(grid_crs, src.transform, src.width, src.height)
    pixel_km2 = model.pixel_km2 * model.correction(c.x, c.y)
    _check_valid_data(paths["ndvi"], zones_grid[: 2], grid_crs, outside)
    sensitive = []
    for s in spec.sensitive:
        sensitive.append((s.name, to_local(resolve_geometry(s.geometry, f"{field_}.sensitive[{s.name}].geometry"))))
    dem = config.inputs.dem
    if dem is not None and "://" not in dem and not Path(dem).is_file():
        raise ConfigError(f"inputs.dem: {dem} not found")
    prepared = PreparedProject(
        spec=spec, geometry_ll=geom, local=local, zones=zones, zones_grid=zones_grid, grid_crs=grid_crs,
        transform=transform, shape=shape, pixel_km2=pixel_km2, paths=paths, dem=dem,
        control_explicit=control_geom is not None, sensitive=sensitive,
    )  # fmt: skip
    prepared.task_id = f"{spec.name}_{spec.after}_{params_hash(_task_params(prepared, profile))}"
    return prepared


def _check_valid_data(ndvi: dict[int, str], near: Sequence[BaseGeometry], crs: CRS, outside: InputError) -> None:
    """Raise ``outside`` unless NDVI is valid in both years somewhere in the footprint / first ring
    (a project inside a mosaic's extent but beyond its scenes has only nodata there)."""
    geom = shapely.union_all([g for g in near if not g.is_empty])
    for path in ndvi.values():
        with rasterio.open(path) as src, WarpedVRT(src, crs=crs) as vrt:
            try:
                win = from_bounds(*geom.bounds, vrt.transform).intersection(Window(0, 0, vrt.width, vrt.height))
            except rasterio.errors.WindowError:
                raise outside from None
            win = Window(math.floor(win.col_off), math.floor(win.row_off), math.ceil(win.width) + 1, math.ceil(win.height) + 1)
            data = vrt.read(1, window=win, masked=True, boundless=False)
            if not np.isfinite(np.ma.filled(data.astype(np.float32), np.nan)).any():
                raise outside


def _task_params(p: PreparedProject, profile: Profile) -> dict[str, Any]:
    def stamp(path: str) -> list[Any]:
        st = os.stat(path)
        return [path, st.st_size, int(st.st_mtime)]

    return {
        "project": p.spec.model_dump(mode="json"),
        "inputs": {k: {str(y): stamp(v) for y, v in d.items()} for k, d in p.paths.items()},
        "dem": (stamp(p.dem) if "://" not in p.dem else p.dem) if p.dem else None,
        "profile": profile.provenance(),
        "version": 1,
    }


# ------------------------------------------------------------------------------------ reading


def _aligned_window(src: Any, p: PreparedProject) -> Window | None:
    """The window of ``src`` that is exactly the analysis grid, or None when a warp is needed."""
    if src.crs is None or not CRS.from_user_input(src.crs).equals(p.grid_crs):
        return None
    t, g = src.transform, p.transform
    if (t.a, t.b, t.d, t.e) != (g.a, g.b, g.d, g.e):
        return None
    col, row = (g.c - t.c) / t.a, (g.f - t.f) / t.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(round(col), round(row), p.shape[1], p.shape[0])


def _read(path: str, p: PreparedProject, *, categorical: bool, resampling: Resampling = Resampling.nearest) -> np.ndarray:
    """One band on the analysis grid: a plain window read when the raster is on that grid
    (the usual case: the before-year NDVI defines it), else warped (``resampling``)."""
    with rasterio.open(path) as src:
        win = _aligned_window(src, p)
        if win is not None:
            inside = win.col_off >= 0 and win.row_off >= 0 and win.col_off + win.width <= src.width and win.row_off + win.height <= src.height
            data = src.read(1, window=win, masked=True, boundless=not inside)
        else:
            with WarpedVRT(
                src, crs=p.grid_crs, transform=p.transform, width=p.shape[1], height=p.shape[0], resampling=resampling,
            ) as vrt:  # fmt: skip
                data = vrt.read(1, masked=True)
    if categorical:
        return np.ma.filled(data.astype(np.int32), 0)
    return np.ma.filled(data.astype(np.float32), np.nan)


def zone_pixels(labels: np.ndarray, n: int) -> list[np.ndarray]:
    """Flat indices of the pixels of each label 1..n, from one stable sort of the label raster
    (the single pass behind every zone statistic; ``bench/bench_assess.py`` compares it with
    rasterising each zone separately)."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    edges = np.searchsorted(flat[order], np.arange(n + 2))
    return [order[edges[k] : edges[k + 1]] for k in range(1, n + 1)]


def _label_sums(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Σ values per label 1..n (np.bincount: one pass, no sorting)."""
    return np.bincount(labels.ravel(), weights=np.asarray(values, dtype=np.float64).ravel(), minlength=n + 1)[1 : n + 1]


def _labels(geoms: Sequence[BaseGeometry], p: PreparedProject) -> np.ndarray:
    shapes = [(g, i + 1) for i, g in enumerate(geoms) if not g.is_empty]
    if not shapes:
        return np.zeros(p.shape, dtype=np.uint16)
    return rasterio.features.rasterize(shapes, out_shape=p.shape, transform=p.transform, fill=0, dtype="uint16")


# ------------------------------------------------------------------------------------ computing


def _settings(profile: Profile, pixel_m: float) -> impact.BootstrapSettings:
    block_m = float(profile.value("bootstrap", "block_m"))
    return impact.BootstrapSettings(
        block_px=max(1, round(block_m / pixel_m)) if block_m > 0 else 0,
        replicates=int(profile.value("bootstrap", "replicates")),
        confidence=float(profile.value("bootstrap", "confidence")),
        max_pixels=int(profile.value("bootstrap", "max_pixels")),
        max_blocks=int(profile.value("bootstrap", "max_blocks")),
        seed=int(profile.value("bootstrap", "seed")),
    )


def _block_ids(shape: tuple[int, int], block_px: int) -> np.ndarray | None:
    """Spatial block id of every pixel (blocks of block_px x block_px), None for pixel bootstrap."""
    if block_px <= 0:
        return None
    rows = np.arange(shape[0], dtype=np.int64)[:, None] // block_px
    cols = np.arange(shape[1], dtype=np.int64)[None, :] // block_px
    return rows * ((shape[1] + block_px - 1) // block_px) + cols


def _matching(p: PreparedProject, labels: np.ndarray, data: dict[str, dict[int, np.ndarray]], profile: Profile) -> tuple[np.ndarray, dict[str, Any]]:
    """Control weights (per control pixel, in label order) and the matching report."""
    ctl_id = next(i + 1 for i, z in enumerate(p.zones) if z.role == "control")
    imp = (labels > 0) & (labels != ctl_id)
    ctl = labels == ctl_id
    covs: list[tuple[str, np.ndarray, Any]] = []  # (name, values of impact pixels then control pixels, cut)
    both = np.concatenate([np.flatnonzero(imp), np.flatnonzero(ctl)])
    n_imp = int(imp.sum())
    m = profile["matching"]
    if p.dem is not None:
        dem = _read(p.dem, p, categorical=False, resampling=Resampling.bilinear)
        slope = impact.slope_degrees(dem, p.transform.a, p.transform.e)
        covs.append(("elevation_m", dem.ravel()[both], float(m["elevation_band_m"]["value"])))
        covs.append(("slope_deg", slope.ravel()[both], list(m["slope_breaks_deg"]["value"])))
        del dem, slope
    before = p.spec.before
    if "landcover" in data:
        lc = data["landcover"][before].ravel()[both].astype(np.float64)
        lc[lc == 0] = np.nan
        codes = sorted(int(c) for c in np.unique(lc[np.isfinite(lc)]))
        covs.append(("landcover_before", lc, [c + 0.5 for c in codes]))
    else:
        covs.append(("ndvi_before", data["ndvi"][before].ravel()[both], float(m["ndvi_band"]["value"])))
    st = impact.strata([(v, cut) for _, v, cut in covs])
    weights, report = impact.match_weights(st[:n_imp], st[n_imp:], min_stratum_px=int(m["min_stratum_px"]["value"]))
    balance = {}
    for name, v, _ in covs:
        vi, vc = v[:n_imp], v[n_imp:]
        balance[name] = {
            "impact_mean": float(np.nanmean(vi)) if np.isfinite(vi).any() else math.nan,
            "control_mean_unmatched": float(np.nanmean(vc)) if np.isfinite(vc).any() else math.nan,
            "smd_unmatched": impact.standardized_difference(vi, vc),
            "smd_matched": impact.standardized_difference(vi, vc, weights),
        }
    report = {
        **report,
        "covariates": [name for name, _, _ in covs],
        "balance": balance,
        "control_kind": "explicit geometry" if p.control_explicit else "annulus",
        "note": "control pixels weighted so their stratum mix equals the impact zone's (exact stratification); "
        "|SMD| < 0.1 is usually taken as balanced",
    }
    return weights, report


def _sum(values: np.ndarray) -> float:
    return float(values.sum()) if values.size else 0.0


def _habitat_quality(areas: dict[int, float], ei: Profile) -> tuple[float, str]:
    """HQ (HJ 192 §2.2) of a zone from its class areas; NaN when no code has a habitat weight
    (e.g. CAS level-1 codes: the weights are per level-2 class)."""
    total = float(sum(areas.values()))
    if total <= 0:
        return math.nan, "no land-cover pixels"
    weighted = {int(c) for g in ei["habitat_quality"]["groups"].values() for sub in g["classes"] for c in sub["codes"]}
    if not weighted & set(areas):
        return math.nan, f"no CAS level-2 code among {sorted(areas)}: HQ needs level-2 classes"
    value, notes = habitat_quality(areas, total, ei)
    return value, "; ".join(notes)


def assess_project(p: PreparedProject, profile: Profile, ei: Profile | None = None) -> dict[str, Any]:
    """Compute every table and layer of one project (in memory); see :func:`_write`.

    ``ei``: the HJ 192 profile for habitat quality (default ``ei-hj192-2015``)."""
    spec = p.spec
    ei = ei if ei is not None else load_profile("ei-hj192-2015")
    years = (spec.before, spec.after)
    span = float(spec.after - spec.before)
    data: dict[str, dict[int, np.ndarray]] = {}
    for product, per_year in p.paths.items():
        cat = product in CATEGORICAL
        data[product] = {y: _read(path, p, categorical=cat) for y, path in per_year.items()}
    labels = _labels(p.zones_grid, p)
    zone_ids = {z.name: i + 1 for i, z in enumerate(p.zones)}
    ctl_id = next((i + 1 for i, z in enumerate(p.zones) if z.role == "control"), None)
    if int((labels == 1).sum()) == 0 and int(np.isin(labels, [zone_ids[z.name] for z in p.zones if z.role == "ring"][:1]).sum()) == 0:
        raise InputError(f"projects[{spec.name}].geometry: the footprint covers no pixel of the input rasters")
    ndvi_b, ndvi_a = data["ndvi"][spec.before], data["ndvi"][spec.after]
    valid_any = np.isfinite(ndvi_b) & np.isfinite(ndvi_a)
    if not valid_any[labels == 1].any() and not valid_any[labels == 2].any():
        raise InputError(f"projects[{spec.name}].geometry: no valid NDVI in both years at the project (outside every scene?)")
    settings = _settings(profile, abs(p.transform.a))
    blocks_all = _block_ids(p.shape, settings.block_px)
    weights_ctl, matching = _matching(p, labels, data, profile) if ctl_id else (None, {"note": "no control zone"})
    control_w = None
    if ctl_id is not None:
        control_w = np.zeros(labels.shape, dtype=np.float64)
        control_w[labels == ctl_id] = weights_ctl

    slices = ndimage.find_objects(labels.astype(np.int32), max_label=len(p.zones))
    zone_px = zone_pixels(labels, len(p.zones))
    rows: list[dict[str, Any]] = []
    deltas: dict[tuple[str, str], tuple[impact.Interval, np.ndarray]] = {}
    lc_rows: list[dict[str, Any]] = []
    tr_rows: list[dict[str, Any]] = []
    natural = [int(c) for c in profile.value("fragmentation", "natural_classes")]
    conn = int(profile.value("fragmentation", "connectivity"))
    local_area = {z.name: z.geometry.area / 1e6 for z in p.zones}
    for i, z in enumerate(p.zones):
        zid = i + 1
        sl = slices[i]
        base = {"zone": z.name, "role": z.role, "inner_m": z.inner_m, "outer_m": z.outer_m, "zone_km2": local_area[z.name]}
        if sl is None:
            rows.append({**base, "indicator": "pixels", "year": None, "value": 0})
            continue
        inside = labels[sl] == zid
        pix = zone_px[i]  # flat indices of the zone's pixels
        rows.append({**base, "indicator": "pixels", "year": None, "value": int(pix.size)})
        w = control_w.ravel()[pix] if (z.role == "control" and control_w is not None) else None
        blk = blocks_all.ravel()[pix] if blocks_all is not None else None
        for product in CONTINUOUS:
            if product not in data:
                continue
            b = data[product][spec.before].ravel()[pix]
            a = data[product][spec.after].ravel()[pix]
            for y, v in ((spec.before, b), (spec.after, a)):
                rows.append({**base, "indicator": f"{product}_mean", "year": y, "value": float(np.nanmean(v)) if np.isfinite(v).any() else math.nan})
                rows.append({**base, "indicator": f"{product}_valid_km2", "year": y, "value": float(np.isfinite(v).sum()) * p.pixel_km2})
            iv, reps = impact.delta_interval(b, a, settings, weights=w, blocks=blk, stream=zid * 10 + CONTINUOUS.index(product))
            deltas[(z.name, product)] = (iv, reps)
            rows.append({**base, "indicator": f"{product}_delta", "year": spec.after, "value": iv.value,
                         "low": iv.low, "high": iv.high, "n": iv.n})  # fmt: skip
            if z.role == "control" and w is not None:
                iv_u, _ = impact.delta_interval(b, a, settings, blocks=blk, stream=zid * 10 + 5 + CONTINUOUS.index(product))
                rows.append({**base, "indicator": f"{product}_delta_unmatched", "year": spec.after, "value": iv_u.value,
                             "low": iv_u.low, "high": iv_u.high, "n": iv_u.n})  # fmt: skip
        if "landcover" in data:
            lb = data["landcover"][spec.before][sl]
            la = data["landcover"][spec.after][sl]
            areas = {}
            for y, lc in ((spec.before, lb), (spec.after, la)):
                codes, counts = np.unique(lc[inside & (lc != 0)], return_counts=True)
                areas[y] = {int(c): float(n) * p.pixel_km2 for c, n in zip(codes, counts, strict=True)}
                hq, note = _habitat_quality(areas[y], ei)
                rows.append({**base, "indicator": "habitat_quality", "year": y, "value": hq, "note": note})
                frag = impact.fragmentation(lc, inside, natural, p.pixel_km2, connectivity=conn)
                for k, v in frag.items():
                    rows.append({**base, "indicator": f"fragmentation_{k}", "year": y, "value": v})
            mat = transition_matrix(np.where(inside, lb, 0), np.where(inside, la, 0), pixel_area_km2=p.pixel_km2)
            nested = {int(f): {int(t): float(mat.loc[f, t]) for t in mat.columns} for f in mat.index}
            cio = impact.conversion_out_intensity(nested, span)
            for code in sorted(set(areas[spec.before]) | set(areas[spec.after])):
                ua, ub = areas[spec.before].get(code, 0.0), areas[spec.after].get(code, 0.0)
                lc_rows.append({"zone": z.name, "class": code, f"km2_{spec.before}": ua, f"km2_{spec.after}": ub,
                                "dynamic_degree_pct_per_year": impact.dynamic_degree(ua, ub, span),
                                "conversion_out_pct_per_year": cio.get(code, math.nan)})  # fmt: skip
            for f in nested:
                for t, km2 in nested[f].items():
                    if km2 > 0:
                        tr_rows.append({"zone": z.name, "from": f, "to": t, "km2": km2})

    baci_rows = []
    ctl_name = p.zones[ctl_id - 1].name if ctl_id else None
    for z in p.zones:
        if z.role == "control" or ctl_name is None:
            continue
        for product in CONTINUOUS:
            if (z.name, product) not in deltas or (ctl_name, product) not in deltas:
                continue
            d_i, d_c = deltas[(z.name, product)], deltas[(ctl_name, product)]
            b = impact.baci(d_i, d_c, settings.confidence)
            baci_rows.append({
                "zone": z.name, "indicator": product, "delta_impact": d_i[0].value, "delta_impact_low": d_i[0].low,
                "delta_impact_high": d_i[0].high, "delta_control": d_c[0].value, "delta_control_low": d_c[0].low,
                "delta_control_high": d_c[0].high, "baci": b.value, "baci_low": b.low, "baci_high": b.high,
                "n_impact": d_i[0].n, "n_control": d_c[0].n,
            })  # fmt: skip

    disturbance = _disturbance(p, labels, data, profile)
    chainage = _chainage(p, labels, data, disturbance["mask"], profile) if spec.type == "linear" else None
    sensitive = _sensitive(p)
    return {
        "indicators": pd.DataFrame(rows),
        "baci": pd.DataFrame(baci_rows),
        "landcover": pd.DataFrame(lc_rows),
        "transitions": pd.DataFrame(tr_rows),
        "matching": matching,
        "disturbance": disturbance["polygons"],
        "disturbed_km2": disturbance["km2"],
        "chainage": chainage,
        "sensitive": sensitive,
        "years": years,
    }


def _disturbance(p: PreparedProject, labels: np.ndarray, data: dict[str, dict[int, np.ndarray]], profile: Profile) -> dict[str, Any]:
    d = profile["disturbance"]
    b, a = data["ndvi"][p.spec.before], data["ndvi"][p.spec.after]
    mask = impact.disturbance_mask(
        b, a, ndvi_drop=float(d["ndvi_drop"]["value"]), relative_drop=float(d["relative_drop"]["value"]),
        min_ndvi_before=float(d["min_ndvi_before"]["value"]),
    ) & (labels > 0)  # fmt: skip
    conn = int(d["connectivity"]["value"])
    mask = impact.remove_small(mask, int(d["min_area_px"]["value"]), conn)
    structure = ndimage.generate_binary_structure(2, 2 if conn == 8 else 1)
    comp, n = ndimage.label(mask, structure=structure)
    cols = ["id", "area_km2", "pixels", "centroid_lon", "centroid_lat", "zone", "ndvi_drop_mean", "dominant_transition",
            "dominant_transition_share"]  # fmt: skip
    if n == 0:
        empty = gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=p.grid_crs)
        return {"polygons": empty, "mask": mask, "km2": 0.0}
    idx = np.arange(1, n + 1)
    flat = comp.ravel()
    sel = np.flatnonzero(flat)
    pixels = np.bincount(flat[sel], minlength=n + 1)[1:].astype(np.float64)
    drop = _label_sums(b.ravel()[sel] - a.ravel()[sel], flat[sel], n) / pixels
    zone_of = pd.Series(labels.ravel()[sel]).groupby(flat[sel]).agg(lambda s: s.value_counts().idxmax())
    trans = None
    try:
        codes = transition_code(data["landcover"][p.spec.before], data["landcover"][p.spec.after]) if "landcover" in data else None
    except ValueError:  # class codes >= TRANSITION_BASE cannot be combined
        codes = None
    if codes is not None:
        code = codes.ravel()[sel]
        grouped = pd.DataFrame({"c": flat[sel], "t": code}).groupby("c")["t"]
        trans = grouped.agg(lambda s: s.value_counts().idxmax())
        share = grouped.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    geoms: dict[int, list[BaseGeometry]] = {}
    for geom, value in rasterio.features.shapes(comp.astype(np.int32), mask=mask, transform=p.transform, connectivity=conn):
        geoms.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    polys = [shapely.union_all(geoms[i]) if len(geoms[i]) > 1 else geoms[i][0] for i in idx]
    to_ll = _transformer(p.grid_crs, "EPSG:4326")
    cents = [to_ll(g.centroid) for g in polys]
    names = [p.zones[int(zone_of[i]) - 1].name for i in idx]

    def _tr(i: int) -> str | None:
        if trans is None or int(trans[i]) == 0:
            return None
        c = int(trans[i])
        return f"{c // TRANSITION_BASE}->{c % TRANSITION_BASE}"

    frame = gpd.GeoDataFrame({
        "id": idx, "area_km2": pixels * p.pixel_km2, "pixels": pixels.astype(int),
        "centroid_lon": [c.x for c in cents], "centroid_lat": [c.y for c in cents], "zone": names,
        "ndvi_drop_mean": np.asarray(drop), "dominant_transition": [_tr(i) for i in idx],
        "dominant_transition_share": [float(share[i]) if trans is not None else math.nan for i in idx],
    }, geometry=polys, crs=p.grid_crs)  # fmt: skip
    return {"polygons": frame, "mask": mask, "km2": float(pixels.sum()) * p.pixel_km2}


def _chainage(p: PreparedProject, labels: np.ndarray, data: dict[str, dict[int, np.ndarray]], mask: np.ndarray, profile: Profile) -> gpd.GeoDataFrame:
    seg_km = p.spec.chainage_km or float(profile.value("chainage", "segment_km"))
    line = _transformer("EPSG:4326", p.local)(p.geometry_ll)
    rings = [z for z in p.zones if z.role == "ring"]
    half = (p.spec.footprint_m or float(profile.value("zones", "linear", "footprint_m"))) + (rings[-1].outer_m if rings else 0.0)
    segs = chainage_segments(line, seg_km * 1000.0, half)
    to_grid = _transformer(p.local, p.grid_crs)
    geoms = [shapely.make_valid(to_grid(_densify(g, 100.0))) for *_, g in segs]
    seg_labels = _labels(geoms, p)
    n = len(segs)
    impact_ids = [i + 1 for i, z in enumerate(p.zones) if z.role != "control"]
    lut = np.zeros(len(p.zones) + 1, dtype=bool)
    lut[impact_ids] = True
    sel = np.flatnonzero(lut[labels.ravel()] & (seg_labels.ravel() > 0))  # impact-zone pixels only
    sl = seg_labels.ravel()[sel]
    out: dict[str, Any] = {
        "segment": [s[0] for s in segs], "start_km": [s[1] for s in segs], "end_km": [s[2] for s in segs],
        "zone_km2": np.bincount(sl, minlength=n + 1)[1:] * p.pixel_km2,
        "disturbed_km2": _label_sums(mask.ravel()[sel], sl, n) * p.pixel_km2,
    }  # fmt: skip
    for product in ("ndvi", "fvc"):
        if product in data:
            dlt = data[product][p.spec.after].ravel()[sel] - data[product][p.spec.before].ravel()[sel]
            ok = np.isfinite(dlt)
            s = _label_sums(np.where(ok, dlt, 0.0), sl, n)
            c = _label_sums(ok, sl, n)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{product}_delta_mean"] = np.where(c > 0, s / c, np.nan)
    frame = gpd.GeoDataFrame(out, geometry=geoms, crs=p.grid_crs)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["disturbed_share"] = np.where(frame["zone_km2"] > 0, frame["disturbed_km2"] / frame["zone_km2"], np.nan)
    frame["rank"] = frame["disturbed_km2"].rank(ascending=False, method="min").astype(int)
    return frame


def _sensitive(p: PreparedProject) -> list[dict[str, Any]]:
    out = []
    fp = p.zones[0].geometry
    for name, g in p.sensitive:
        row: dict[str, Any] = {"target": name, "distance_from_footprint_m": float(fp.distance(g))}
        for z in p.zones:
            row[f"{z.name}_km2"] = float(shapely.intersection(z.geometry, g).area) / 1e6
        out.append(row)
    return out


# ------------------------------------------------------------------------------------ writing


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _write(p: PreparedProject, result: dict[str, Any], folder: Path, profile: Profile, *, simulated: bool, title: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "item.json").unlink(missing_ok=True)  # not done until the new item is written
    written: dict[str, Path] = {}

    def csv(name: str, frame: pd.DataFrame) -> None:
        path = folder / f"{name}.csv"
        atomic_write_text(path, frame.to_csv(index=False))
        written[name] = path

    for name in ("indicators", "baci", "landcover", "transitions"):
        csv(name, result[name])
    zones = gpd.GeoDataFrame(
        {"zone": [z.name for z in p.zones], "role": [z.role for z in p.zones], "inner_m": [z.inner_m for z in p.zones],
         "outer_m": [z.outer_m for z in p.zones], "area_km2": [z.geometry.area / 1e6 for z in p.zones]},
        geometry=p.zones_grid, crs=p.grid_crs,
    )  # fmt: skip
    with atomic_path(folder / "zones.gpkg") as tmp:
        zones.to_file(tmp, driver="GPKG", layer="zones")
        if result["chainage"] is not None:
            result["chainage"].to_file(tmp, driver="GPKG", layer="chainage")
    written["zones"] = folder / "zones.gpkg"
    with atomic_path(folder / "disturbance.gpkg") as tmp:
        result["disturbance"].to_file(tmp, driver="GPKG", layer="disturbance")
    written["disturbance"] = folder / "disturbance.gpkg"
    if result["chainage"] is not None:
        csv("chainage", pd.DataFrame(result["chainage"].drop(columns="geometry")).sort_values("rank"))
    atomic_write_json(folder / "matching.json", _nan_to_none(result["matching"]))
    written["matching"] = folder / "matching.json"
    summary = {
        "title": title,
        "project": p.spec.name,
        "type": p.spec.type,
        "before": p.spec.before,
        "after": p.spec.after,
        "simulated": simulated,
        "geometry_approximate": p.spec.approximate,
        "provenance": p.spec.provenance,
        "local_crs": p.local,
        "grid_crs": p.grid_crs.to_string(),
        "pixel_km2": p.pixel_km2,
        "inputs": {k: {str(y): v for y, v in d.items()} for k, d in p.paths.items()},
        "dem": p.dem,
        "method_profile": profile.provenance(),
        "zones": [{"zone": z.name, "role": z.role, "inner_m": z.inner_m, "outer_m": z.outer_m, "km2": z.geometry.area / 1e6} for z in p.zones],
        "disturbance": {"polygons": len(result["disturbance"]), "km2": result["disturbed_km2"]},
        "baci": result["baci"].to_dict(orient="records"),
        "sensitive_targets": result["sensitive"],
        "bootstrap_note": "pixel-level percentile bootstrap on a subsample of at most bootstrap.max_pixels pixels per zone",
    }
    atomic_write_json(folder / "summary.json", _nan_to_none(summary))
    written["summary"] = folder / "summary.json"
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"project-{p.spec.name}",
        "geometry": shapely.geometry.mapping(p.geometry_ll),
        "bbox": list(p.geometry_ll.bounds),
        "properties": {
            "datetime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eqi:task_id": p.task_id,
            "eqi:simulated": simulated,
            "eqi:project": p.spec.name,
        },
        "links": [],
        "assets": {k: {"href": v.name, "file:size": v.stat().st_size} for k, v in written.items()},
    }
    atomic_write_json(folder / "item.json", item)  # last: the done marker
    return summary


# ------------------------------------------------------------------------------------ entry point


def assess(
    config: AssessConfig,
    *,
    project: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> list[ProjectResult]:
    """Assess every project of ``config`` (or only ``project``); outputs under OUT/projects/<name>/.

    All projects are validated against their inputs before anything is written; a project whose
    ``item.json`` names the same task id is skipped unless ``overwrite``.
    """
    profile = load_profile(config.method)
    prepared = [prepare(config, spec, profile) for spec in config.select(project)]
    results = []
    with RunLock(config.out):
        for p in prepared:
            folder = config.out / "projects" / p.spec.name
            if not overwrite and check_done(folder / "item.json", p.task_id) is None:
                progress(f"skip {p.spec.name}: done ({p.task_id})")
                results.append(ProjectResult(p.spec.name, "skipped", folder, json.loads((folder / "summary.json").read_text())))
                continue
            progress(f"assess {p.spec.name}: {p.spec.type}, {p.spec.before} -> {p.spec.after}, {p.shape[1]}x{p.shape[0]} px")
            result = assess_project(p, profile)
            summary = _write(p, result, folder, profile, simulated=config.simulated, title=config.title)
            progress(f"      {summary['disturbance']['polygons']} disturbance polygons, {summary['disturbance']['km2']:.3f} km2; {folder}")
            results.append(ProjectResult(p.spec.name, "done", folder, summary))
    return results
