"""The numbers of the reports: per region and year, from the area's region table when there is one.

Source of truth: ``OUT/areas/<area>/tables/regions.json`` (written by the regional assessment,
layout in ``docs/tables.md``): EI/EQI with grades and intervals, zonal statistics, changes and
land-cover transitions.  Without that table (a run without ``ei``/``eqi``) the report falls back
to a clearly marked stopgap: region means are the band statistics the writer stored in each COG's
item, and grade shares and land-cover transitions are counted from the region COGs.  No product
is recomputed either way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eqi.report.outputs import RunOutputs

__all__ = ["Transition", "Indicators", "read_indicators", "region_table_path", "transition_matrix", "change_rows",
           "CONTINUOUS"]

CONTINUOUS = ("rsei", "ndvi", "fvc")  # products whose region mean the reports show
_CLASS_FRAC = re.compile(r"^(?P<product>[a-z_]+?)_class_(?P<code>\d+)_frac$")


@dataclass(frozen=True)
class Transition:
    """Area (km²) of one from-class -> to-class transition between two years."""

    from_class: int
    from_name: str
    to_class: int
    to_name: str
    area_km2: float


@dataclass
class Indicators:
    """Region x year values, changes and transitions of one evaluation area."""

    source: str  # "regions.json" or "stopgap"
    rows: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    transitions: dict[tuple[str, int, int], list[Transition]] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    simulated: bool = False
    counted: list[str] = field(default_factory=list)  # class products the report counted itself

    def value(self, region: str, year: int, column: str) -> float | None:
        """A finite number or None."""
        v = self.rows.get((region, year), {}).get(column)
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) else None

    def text(self, region: str, year: int, column: str) -> str | None:
        v = self.rows.get((region, year), {}).get(column)
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(v)

    def shares(self, region: str, year: int, product: str) -> dict[int, float]:
        """Class shares (0-1 of the valid area) of a class product in a region and year."""
        row = self.rows.get((region, year), {})
        out: dict[int, float] = {}
        for key, v in row.items():
            m = _CLASS_FRAC.match(key)
            if m and m.group("product") == product and v is not None:
                out[int(m.group("code"))] = float(v)
        return dict(sorted(out.items()))

    def has(self, column: str) -> bool:
        return any(self.value(r, y, column) is not None for r, y in self.rows)


def region_table_path(root: Path, area: str) -> Path:
    """Where the regional assessment writes the area's ``regions.json``."""
    return root / "areas" / area / "tables" / "regions.json"


def _from_table(path: Path, regions: Sequence[str]) -> Indicators:
    data = json.loads(path.read_text(encoding="utf-8"))
    ind = Indicators("regions.json", simulated=bool(data.get("simulated")), profiles=dict(data.get("profiles") or {}))
    rows = data.get("rows") or []
    wanted = set(regions)
    if not any(r.get("region") in wanted for r in rows):  # run AOIs that are not library counties
        wanted = {r.get("region") for r in rows if r.get("level") == "county"}
    for row in rows:
        slug = str(row.get("region"))
        if slug not in wanted:
            continue
        ind.rows[(slug, int(row["year"]))] = dict(row)
        name = str(row.get("name") or slug)
        ind.names[slug] = (name, slug.rsplit("-", 1)[0].title() if row.get("adcode") else name)
    ind.changes = [dict(c) for c in data.get("changes") or [] if c.get("region") in wanted]
    for t in data.get("transitions") or []:
        if t.get("region") not in wanted:
            continue
        key = (str(t["region"]), int(t["year_from"]), int(t["year_to"]))
        ind.transitions.setdefault(key, []).append(Transition(
            int(t["from_class"]), str(t.get("from_name") or t["from_class"]), int(t["to_class"]),
            str(t.get("to_name") or t["to_class"]), float(t["area_km2"])))
    return ind


def _class_counts(path: Path, nodata: int = 0) -> tuple[np.ndarray, float]:
    """Pixel counts per class value of a class COG and the pixel area (km²)."""
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(1)
        px_km2 = abs(src.transform.a * src.transform.e) / 1e6
    return np.bincount(data[data != nodata].ravel().astype(np.int64)), px_km2


def _stopgap(run: RunOutputs, regions: Sequence[str]) -> Indicators:
    """Region values without a region table: stored COG statistics and class counts (stopgap)."""
    from eqi.report.figures import _class_table

    ind = Indicators("stopgap", simulated=run.simulated)
    for slug in regions:
        region = run.regions[slug]
        ind.names[slug] = (region.name_zh, region.name_en)
        for year, out in region.years.items():
            row: dict[str, Any] = {"region": slug, "name": region.name_zh, "adcode": region.adcode, "year": year}
            for product in CONTINUOUS:
                stats = out.statistics(product)
                if stats and "mean" in stats:
                    row[f"{product}_mean"] = stats["mean"]
            for product in ("rsei_grade", "landcover"):
                path = out.product(product)
                if path is None:
                    continue
                counts, px_km2 = _class_counts(path)
                total = counts.sum()
                for code in np.flatnonzero(counts):
                    row[f"{product}_class_{code}_frac"] = float(counts[code] / total)
                    row[f"{product}_class_{code}_km2"] = float(counts[code] * px_km2)
            ind.rows[(slug, year)] = row
        years = sorted(y for y in region.years if region.years[y].product("landcover") is not None)
        pairs = sorted({(a, b) for a, b in zip(years, years[1:], strict=False)} | ({(years[0], years[-1])} if len(years) > 1 else set()))
        for y0, y1 in pairs:
            import rasterio

            p0, p1 = region.years[y0].product("landcover"), region.years[y1].product("landcover")
            with rasterio.open(p0) as a, rasterio.open(p1) as b:
                if a.shape != b.shape:
                    continue
                c0, c1 = a.read(1).astype(np.int64), b.read(1).astype(np.int64)
                px_km2 = abs(a.transform.a * a.transform.e) / 1e6
            names = {v: label for v, label, _rgb in _class_table(p1, None)}
            ok = (c0 != 0) & (c1 != 0)
            pair_counts = np.bincount((c0[ok] * 256 + c1[ok]).ravel())
            ind.transitions[(slug, y0, y1)] = [
                Transition(int(k // 256), names.get(int(k // 256), str(k // 256)), int(k % 256),
                           names.get(int(k % 256), str(k % 256)), float(pair_counts[k] * px_km2))
                for k in np.flatnonzero(pair_counts)
            ]
    return ind


def read_indicators(run: RunOutputs, area: str, regions: Sequence[str]) -> Indicators:
    """The area's numbers from its ``regions.json``, else the marked stopgap.  The table has no
    RSEI grade shares: those are counted from the grade COGs (and the report says so)."""
    path = region_table_path(run.root, area)
    if not path.is_file():
        return _stopgap(run, regions)
    ind = _from_table(path, regions)
    if not any(ind.shares(r, y, "rsei_grade") for r, y in ind.rows):
        for (slug, year), row in ind.rows.items():
            out = run.regions[slug].years.get(year) if slug in run.regions else None
            grade = out.product("rsei_grade") if out else None
            if grade is None:
                continue
            counts, px_km2 = _class_counts(grade)
            for code in np.flatnonzero(counts):
                row[f"rsei_grade_class_{code}_frac"] = float(counts[code] / counts.sum())
            if "rsei_grade" not in ind.counted:
                ind.counted.append("rsei_grade")
    return ind


def transition_matrix(transitions: Sequence[Transition]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Square matrix (km², rows from, columns to) over the classes that occur, and those classes."""
    classes = sorted({(t.from_class, t.from_name) for t in transitions} | {(t.to_class, t.to_name) for t in transitions})
    seen: dict[int, str] = {}
    for code, name in classes:
        seen.setdefault(code, name)
    codes = sorted(seen)
    index = {c: i for i, c in enumerate(codes)}
    matrix = np.zeros((len(codes), len(codes)))
    for t in transitions:
        matrix[index[t.from_class], index[t.to_class]] += t.area_km2
    return matrix, [(c, seen[c]) for c in codes]


def change_rows(ind: Indicators, region: str) -> list[Mapping[str, Any]]:
    """The region's change rows (regions.json ``changes``), first year first."""
    return sorted((c for c in ind.changes if c.get("region") == region), key=lambda c: (c["year_from"], c["year_to"]))
