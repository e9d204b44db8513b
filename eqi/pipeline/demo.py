"""The offline demo: simulate an archive over a real Sichuan county, index it, run the main job.

Everything after the simulation is the code path of real data: ``eqi archive index`` on delivered-
format scenes, then ``eqi run`` with a YAML config.  The archive and the config stay in the output
folder, so ``eqi run OUT/demo.yaml`` reruns the job.  All outputs are flagged as SIMULATED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from eqi.config import load_config
from eqi.geo.regions import load_regions
from eqi.io.atomic import atomic_write_text

__all__ = ["DEMO_COUNTY", "DEMO_YEARS", "run_demo", "demo_corridor", "assess_demo", "DEMO_CORRIDOR_WIDTH_M",
           "DEMO_CONTROL_M", "DEMO_CORRIDOR_QUIET_M"]  # fmt: skip

DEMO_CORRIDOR_WIDTH_M = 150.0  # width of the planted construction corridor (issue 9)
DEMO_CONTROL_M = (3000.0, 5000.0)  # the demo assessment's control annulus (m from the footprint)
#: the simulator plants its other year-2 changes (town growth, cropland to forest) beyond this
#: distance from the corridor, so the assessment's rings and control see only the corridor's change.
#: 1 km beyond the control's outer edge: the control is measured from the footprint edge, on the
#: run's grid, and the moved changes crowd just outside the quiet zone (their best-scoring pixels).
DEMO_CORRIDOR_QUIET_M = DEMO_CONTROL_M[1] + 1000.0
#: the corridor's vertices as fractions (x, y) of the region's lon/lat bounds, west-south origin
DEMO_CORRIDOR_FRACTIONS = ((0.557, 0.067), (0.671, 0.467), (0.929, 0.867))

DEMO_COUNTY = "sichuan:510115"  # 温江区 Wenjiang District, Chengdu: cropland, towns, the Jin River
DEMO_YEARS = (2022, 2023)
DEMO_PRODUCTS = [
    "composite", "count", "ndvi", "evi", "mndwi", "ndbsi", "wet", "lst", "fvc", "rsei", "rsei_grade", "landcover",
    "landcover_confidence", "ei", "eqi",
]  # fmt: skip

_README = """SIMULATED DATA - eqi offline demo
=================================

Everything in this folder was produced from a SIMULATED scene archive (archive/): Landsat-like and
Sentinel-2-like scenes over the real boundary of {region}, with spectra sampled from real Landsat 8
pixels per land-cover type, and simulated clouds and shadows.  No value here is an observation.

  archive/          simulated scenes in the formats of delivered USGS / Sentinel-2 L2A products
  archive.parquet   the archive indexed by `eqi archive index` (stac-geoparquet)
  demo.yaml         the run configuration; `eqi run demo.yaml --overwrite` recomputes everything
  tables/           SIMULATED tabular inputs (pollution, water resources, erosion, surveys) for EI/EQI
  areas/<area>/tables/  EI, EQI, zonal statistics, changes per county (regions.gpkg/.json/.csv/.xlsx)
  <region>/<year>/  products (COG + QGIS .qml), items.json (inputs), metadata.json, item.json
  <region>/<year>/<region>_<year>.qgs   QGIS project of the region and year (open it in QGIS)
  catalog.json      STAC catalog of all outputs (collections/: one collection per product family)
  demo-assess.yaml  the planted construction corridor as a project; `eqi assess demo-assess.yaml`
  projects/         its impact assessment: zones, BACI, disturbance polygons, chainage (eqi assess)
"""


def _write_config(out: Path, region_spec: str) -> Path:
    config = {
        "title": "eqi offline demo (SIMULATED data)",
        "source": "archive.parquet",
        "collections": ["landsat-c2-l2", "sentinel-2-l2a"],
        "aoi": region_spec,
        "years": list(DEMO_YEARS),
        "season": "06-01/09-30",
        "crs": "albers-china",
        "resolution": 30,
        "products": DEMO_PRODUCTS,
        "out": ".",
        "simulated": True,
        "landcover": {
            "reference": "archive/reference/truth_landcover_{year}.tif",
            "product": "esa-worldcover",
            "mode": "classify",
            "samples_per_class": 300,
            "extra_seasons": ["03-01/05-31", "10-01/11-30"],
            "level": 2,  # CAS 二级 classes: EI's habitat quality weights them (spec §2.2)
        },
        "assess": {"tables": "tables", "rivers": "tables/rivers-SIMULATED.gpkg", "uncertainty": {"draws": 200, "seed": 0}},
    }
    path = out / "demo.yaml"
    header = "# eqi offline demo - SIMULATED data. Rerun with: eqi run demo.yaml --overwrite\n"
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def demo_corridor(region: BaseGeometry) -> LineString:
    """The SIMULATED railway centreline of the demo: a bent line across the region (lon/lat)."""
    x0, y0, x1, y1 = region.bounds
    return LineString([(x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)) for fx, fy in DEMO_CORRIDOR_FRACTIONS])


def assess_demo(out: Path, corridor: LineString, *, progress: Callable[[str], None] = print) -> Path:
    """Write ``demo-assess.yaml`` (the planted corridor as a linear project) and assess it."""
    from eqi.pipeline.assess.config import load_assess_config
    from eqi.pipeline.assess.run import assess

    config = {
        "title": "eqi offline demo: planted construction corridor (SIMULATED data)",
        "out": ".",
        "simulated": True,
        "inputs": {"run": "."},
        "projects": [{
            "name": "demo-corridor", "type": "linear", "approximate": False,
            "provenance": "SIMULATED: the corridor planted by the demo simulator (archive/reference/planted_corridor.geojson)",
            "geometry": {"coordinates": [list(c) for c in corridor.coords]},
            "footprint_m": DEMO_CORRIDOR_WIDTH_M / 2, "rings_m": [300, 1000, 2000], "control": {"distance_m": list(DEMO_CONTROL_M)},
            "before": DEMO_YEARS[0], "after": DEMO_YEARS[-1], "chainage_km": 2,
        }],
    }  # fmt: skip
    path = out / "demo-assess.yaml"
    atomic_write_text(path, "# eqi demo project assessment - SIMULATED data\n" + yaml.safe_dump(config, sort_keys=False))
    assess(load_assess_config(path), overwrite=True, progress=progress)
    return path


_TABLES_README = """SIMULATED TABULAR INPUTS - eqi offline demo
============================================

Every number in these tables is SIMULATED (random, seeded by the adcode), in the schema of
docs/tabular-inputs.md, so that the demo can compute EI and EQI. They are not statistics of
any county. Replace them with the station's tables (same file names) for a real evaluation.
"""


def write_demo_tables(folder: Path, adcodes: list[str], years: tuple[int, ...]) -> list[Path]:
    """SIMULATED tabular inputs (pollution, water resources, erosion, biodiversity, restriction,
    disasters) for ``adcodes`` and ``years`` (water resources also for 3 earlier years: the
    wet-year cap needs them)."""
    import csv

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    note = "模拟数据 SIMULATED"
    rows: dict[str, list[list[object]]] = {k: [] for k in ("pollution", "water_resources", "erosion", "biodiversity", "restriction", "disasters")}
    for adcode in sorted(adcodes):
        rng = np.random.default_rng(int(adcode))
        for year in range(years[0] - 3, years[-1] + 1):
            rows["water_resources"].append([adcode, year, round(float(rng.uniform(250, 350)), 1), note])
        for year in years:
            rows["pollution"].append([adcode, year, *(round(float(rng.uniform(a, b)), 1) for a, b in
                                      ((3000, 6000), (300, 600), (500, 1500), (400, 900), (1000, 3000), (20, 200))),
                                      round(float(rng.uniform(850, 1000)), 1), note])  # fmt: skip
            rows["erosion"].append([adcode, year, round(float(rng.uniform(0.5, 3)), 2), round(float(rng.uniform(5, 15)), 2),
                                    round(float(rng.uniform(0, 1)), 2), note])  # fmt: skip
            rows["biodiversity"].append([adcode, year, round(float(rng.uniform(30, 50)), 1), int(rng.integers(2, 8)), note])
            rows["restriction"].append([adcode, year, 0, "", note])
            rows["disasters"].append([adcode, year, round(float(rng.uniform(0.1, 2)), 2), note])
    headers = {
        "pollution": ["adcode", "year", "化学需氧量 (t)", "氨氮 (t)", "二氧化硫 (t)", "烟粉尘 (t)", "氮氧化物 (t)", "固体废物丢弃量 (t)", "年降水量 (mm)", "备注"],
        "water_resources": ["adcode", "year", "water_resources_1e6m3", "note"],
        "erosion": ["adcode", "year", "severe_erosion_km2", "moderate_erosion_km2", "other_stress_km2", "note"],
        "biodiversity": ["adcode", "year", "biodiversity_index", "invasive_species", "note"],
        "restriction": ["adcode", "year", "level", "event", "note"],
        "disasters": ["adcode", "year", "affected_km2", "note"],
    }  # fmt: skip
    written = []
    for family, data in rows.items():
        path = folder / f"{family}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(headers[family])
            w.writerows(data)
        written.append(path)
    atomic_write_text(folder / "README-SIMULATED.txt", _TABLES_README)
    return written


def write_demo_rivers(truth_landcover: Path, out: Path, water_code: int = 80) -> Path:
    """A SIMULATED river centreline layer: the skeleton of the simulated water pixels, as
    segments between 8-connected skeleton pixels (EI's water-network river length)."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    import shapely
    from skimage.morphology import skeletonize

    with rasterio.open(truth_landcover) as src:
        water = src.read(1) == water_code
        t, crs = src.transform, src.crs
    skel = skeletonize(water)
    rows, cols = np.nonzero(skel)
    segments = []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        r2, c2 = rows + dr, cols + dc
        ok = (r2 < skel.shape[0]) & (c2 >= 0) & (c2 < skel.shape[1])
        hit = ok.copy()
        hit[ok] = skel[r2[ok], c2[ok]]
        for a, b, c, d in zip(rows[hit], cols[hit], r2[hit], c2[hit], strict=True):
            segments.append(shapely.LineString([t * (b + 0.5, a + 0.5), t * (d + 0.5, c + 0.5)]))
    frame = gpd.GeoDataFrame({"note": ["模拟数据 SIMULATED"]}, geometry=[shapely.MultiLineString(segments)], crs=crs)
    frame.to_file(out, driver="GPKG", layer="rivers")
    return out


def run_demo(out: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Build the demo archive in ``out``, index it and run the main job; returns the config path."""
    from eqi.demo.simulate import simulate_archive
    from eqi.io.catalog.archive import index_archive
    from eqi.pipeline.run import run

    out.mkdir(parents=True, exist_ok=True)
    (region,) = load_regions(DEMO_COUNTY)
    start = time.perf_counter()
    progress(f"[1/4] simulating scenes over {region.name} ({DEMO_COUNTY}) - SIMULATED data")
    archive_dir = out / "archive"
    corridor = demo_corridor(region.geometry)
    simulated = simulate_archive(
        region.geometry, archive_dir, region_name=region.name, years=DEMO_YEARS, overwrite=True,
        corridors=[corridor], corridor_width_m=DEMO_CORRIDOR_WIDTH_M, corridor_quiet_m=DEMO_CORRIDOR_QUIET_M,
    )
    progress(f"      done in {time.perf_counter() - start:.1f} s")
    progress("[2/4] indexing the archive (eqi archive index)")
    report = index_archive([simulated.scenes_dir], out / "archive.parquet")
    progress(f"      {report}")
    neighbours = [r.attrs["adcode"] for r in load_regions("sichuan:counties")
                  if r.geometry.intersects(region.geometry.buffer(0.05))]  # fmt: skip
    write_demo_tables(out / "tables", neighbours, DEMO_YEARS)
    progress(f"      SIMULATED tabular inputs for {len(neighbours)} county(ies) in {out / 'tables'}")
    write_demo_rivers(simulated.truth_landcover_path, out / "tables" / "rivers-SIMULATED.gpkg")
    config_path = _write_config(out, DEMO_COUNTY)
    atomic_write_text(out / "README-SIMULATED.txt", _README.format(region=region.name))
    progress(f"[3/4] running the main job (eqi run {config_path})")
    run(load_config(config_path), overwrite=True, progress=progress)
    for project in sorted(out.glob("*/*/*.qgs")):  # QGIS projects (eqi.io.qgis_project)
        progress(f"QGIS project: {project}")
    progress("[4/4] assessing the planted construction corridor (eqi assess demo-assess.yaml)")
    assess_demo(out, corridor, progress=progress)
    progress(f"demo finished in {time.perf_counter() - start:.1f} s; outputs in {out} (SIMULATED data)")
    return config_path
