"""What a finished run left behind, read for the reports (never written, never recomputed).

A region and year is finished when ``OUT/<region>/<year>/item.json`` exists (the done marker);
its ``metadata.json`` (method, profiles, grid) and ``items.json`` (the scenes used) sit beside it.
Evaluation areas are the ``eqi:area`` of the items; county names come from the area's region
table when there is one, else from the AOI library (adcode in the region slug), else the slug.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eqi.errors import InputError

__all__ = ["YearOutputs", "RegionOutputs", "RunOutputs", "read_run"]

_ADCODE = re.compile(r"-(\d{6})$")
_SKIP_DIRS = {"tiles", "areas", "archive", "reports", "projects"}


@dataclass(frozen=True)
class YearOutputs:
    """One finished region x year folder."""

    region: str
    year: int
    folder: Path
    item: Mapping[str, Any]
    metadata: Mapping[str, Any]
    scenes: Sequence[Mapping[str, Any]]

    @property
    def simulated(self) -> bool:
        """True when the item, the metadata or any input scene says SIMULATED."""
        return bool(
            self.item.get("properties", {}).get("eqi:simulated")
            or self.metadata.get("simulated")
            or any(s.get("properties", {}).get("eqi:simulated") for s in self.scenes)
        )

    def product(self, name: str) -> Path | None:
        """The COG of product ``name`` (an item asset with role data), if written."""
        asset = self.item.get("assets", {}).get(name)
        if not asset or "data" not in asset.get("roles", ()):
            return None
        path = self.folder / asset["href"]
        return path if path.is_file() else None

    def statistics(self, name: str) -> Mapping[str, float] | None:
        """Band statistics the writer stored in the item (raster:bands), if any."""
        asset = self.item.get("assets", {}).get(name) or {}
        bands = asset.get("raster:bands") or [{}]
        return bands[0].get("statistics")


@dataclass(frozen=True)
class RegionOutputs:
    """A region (county) of the run: slug, names, outline (EPSG:4326) and its finished years."""

    slug: str
    name_zh: str
    name_en: str
    adcode: str | None
    area: str
    geometry: BaseGeometry
    years: Mapping[int, YearOutputs] = field(default_factory=dict)

    def name(self, lang: str) -> str:
        """Display name in ``lang``."""
        return self.name_zh if lang == "zh" else self.name_en


@dataclass(frozen=True)
class RunOutputs:
    """The finished outputs of one run folder."""

    root: Path
    title: str
    regions: Mapping[str, RegionOutputs]

    @property
    def simulated(self) -> bool:
        return any(y.simulated for r in self.regions.values() for y in r.years.values())

    @property
    def areas(self) -> dict[str, list[RegionOutputs]]:
        """Evaluation area -> its regions (sorted by slug)."""
        out: dict[str, list[RegionOutputs]] = {}
        for region in sorted(self.regions.values(), key=lambda r: r.slug):
            out.setdefault(region.area, []).append(region)
        return out

    @property
    def years(self) -> list[int]:
        return sorted({y for r in self.regions.values() for y in r.years})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}; rerun the task (eqi run ... --overwrite)") from None


def _library_names(adcode: str | None) -> tuple[str, str] | None:
    """(Chinese name, pinyin) of a library county, or None when the library does not know it."""
    if adcode is None:
        return None
    from eqi.errors import EqiError
    from eqi.geo.regions import load_regions

    try:
        (region,) = load_regions(f"sichuan:{adcode}")
    except (EqiError, ValueError):
        return None
    attrs = region.attrs
    return str(attrs.get("name") or adcode), str(attrs.get("pinyin") or adcode).title()


def read_run(root: Path, *, regions: Sequence[str] | None = None,
             names: Mapping[str, tuple[str, str]] | None = None) -> RunOutputs:
    """Every finished region x year under ``root`` (only ``regions`` when given).

    ``names`` maps a region slug to (Chinese name, English name) when a region table gives them.
    Raises InputError when ``root`` is not a run folder or holds no finished region.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"run folder {root} does not exist; give the `out` folder of a finished `eqi run`")
    found: dict[str, dict[int, YearOutputs]] = {}
    for item_path in sorted(root.glob("*/[0-9][0-9][0-9][0-9]/item.json")):
        folder = item_path.parent
        slug = folder.parent.name
        if slug in _SKIP_DIRS or (regions and slug not in regions):
            continue
        item = _read_json(item_path)
        meta_path, items_path = folder / "metadata.json", folder / "items.json"
        metadata = _read_json(meta_path) if meta_path.is_file() else {}
        scenes = _read_json(items_path).get("features", []) if items_path.is_file() else []
        year = int(folder.name)
        found.setdefault(slug, {})[year] = YearOutputs(slug, year, folder, item, metadata, scenes)
    if regions:
        missing = sorted(set(regions) - set(found))
        if missing:
            known = sorted({p.parent.parent.name for p in root.glob("*/[0-9][0-9][0-9][0-9]/item.json")} - _SKIP_DIRS)
            raise InputError(f"no finished outputs for region(s) {', '.join(missing)} in {root}; "
                             f"finished regions: {', '.join(known) or 'none'}")
    if not found:
        raise InputError(f"{root} holds no finished region (no <region>/<year>/item.json); "
                         "run `eqi run` first or give the run's `out` folder")
    title = ""
    out: dict[str, RegionOutputs] = {}
    for slug, years in sorted(found.items()):
        first = years[min(years)]
        title = title or str(first.metadata.get("config", {}).get("title") or "")
        match = _ADCODE.search(slug)
        adcode = match.group(1) if match else None
        zh, en = (names or {}).get(slug) or _library_names(adcode) or (slug, slug)
        area = str(first.item.get("properties", {}).get("eqi:area") or "area")
        out[slug] = RegionOutputs(slug, zh, en, adcode, area, shape(first.item["geometry"]), dict(sorted(years.items())))
    return RunOutputs(root, title or root.name, out)
