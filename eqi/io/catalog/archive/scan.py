"""Walk delivery folders and build one STAC Item per scene found.

A folder holding ``*_MTL.txt`` / ``*_MTL.json`` is a Landsat C2 L2 scene
(:func:`~eqi.io.catalog.archive.landsat.landsat_item`); otherwise each ``*.json`` that looks like a
Sentinel-2 STAC Item is one (:func:`~eqi.io.catalog.archive.sentinel2.sentinel2_item`).  A scene
that cannot be read is skipped with its reason; the walk goes on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pystac

from eqi.errors import BandError, InputError
from eqi.io.catalog.archive.landsat import landsat_item
from eqi.io.catalog.archive.sentinel2 import sentinel2_item
from eqi.io.catalog.base import sort_items

__all__ = ["SkippedScene", "scan_scenes", "PATTERNS"]

log = logging.getLogger(__name__)

_MTL_SUFFIXES = ("_MTL.json", "_MTL.txt")  # preference order
_MAX_ITEM_JSON_BYTES = 5_000_000
PATTERNS = (
    "Landsat C2 L2 folders with *_MTL.txt or *_MTL.json; Sentinel-2 L2A folders with a STAC "
    "Item *.json whose assets name band files beside it (e.g. B04.tif)"
)


@dataclass(frozen=True)
class SkippedScene:
    """A scene that could not be indexed and why."""

    path: Path
    reason: str


def _landsat_candidates(folder: Path, names: list[str]) -> dict[str, list[Path]]:
    """MTL files of a folder grouped by product id, JSON before TXT."""
    found: dict[str, list[Path]] = {}
    for suffix in _MTL_SUFFIXES:
        for name in names:
            if name.upper().endswith(suffix.upper()) and not name.startswith("."):
                found.setdefault(name[: -len(suffix)], []).append(folder / name)
    return found


def _looks_like_s2_item(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_ITEM_JSON_BYTES:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("type") == "Feature"
        and isinstance(data.get("assets"), dict)
        and (
            str(data.get("collection", "")).startswith("sentinel-2")
            or str(data.get("properties", {}).get("platform", "")).lower().startswith("sentinel-2")
        )
    )


def scan_scenes(dirs: Sequence[str | Path]) -> tuple[list[pystac.Item], list[SkippedScene]]:
    """Find and describe every scene under ``dirs``; unreadable scenes are returned as skipped."""
    roots = [Path(d).expanduser() for d in dirs]
    if not roots:
        raise InputError("no folder given; usage: eqi archive index DIR... --out FILE.parquet")
    for root in roots:
        if not root.is_dir():
            raise InputError(f"folder {root} does not exist (or is not a folder)")
    items: dict[str, pystac.Item] = {}
    skipped: list[SkippedScene] = []

    def add(build: Callable[[Path], pystac.Item], candidates: list[Path]) -> None:
        errors: list[str] = []
        for candidate in candidates:
            try:
                item = build(candidate)
            except (InputError, BandError) as err:
                errors.append(str(err))
                continue
            if item.id in items:
                skipped.append(
                    SkippedScene(candidate, f"duplicate of scene {item.id} already indexed")
                )
            else:
                items[item.id] = item
            return
        skipped.append(SkippedScene(candidates[0], errors[0]))
        log.warning("skipped %s: %s", candidates[0], errors[0])

    for root in roots:
        for current, subdirs, names in os.walk(root):
            subdirs.sort()
            folder = Path(current)
            names = sorted(names)
            landsat = _landsat_candidates(folder, names)
            for _, candidates in sorted(landsat.items()):
                add(landsat_item, candidates)
            if landsat:
                continue  # the USGS STAC JSONs of a Landsat folder describe the same scene
            for name in names:
                path = folder / name
                if (
                    name.lower().endswith(".json")
                    and not name.startswith(".")
                    and _looks_like_s2_item(path)
                ):
                    add(sentinel2_item, [path])
    return sort_items(items.values()), skipped
