"""Task model of a run: deterministic ids, output paths and done markers.

A task's outputs live in one folder; every file is written atomically (:mod:`eqi.io.atomic`) and
the task's STAC ``item.json`` is written last: it is the "done" marker.  A rerun skips a task
whose item names the same task id and whose assets are all present with the recorded size
(:func:`is_done`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eqi.errors import ConfigError
from eqi.io.atomic import json_default, sha256_file

__all__ = ["task_id", "params_hash", "TaskPaths", "check_done", "is_done", "BAD_NAME_CHARS"]

BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f]")


# --------------------------------------------------------------------------------------------
# ids and paths


def _check_region(region: str) -> str:
    if not isinstance(region, str) or not region.strip() or region.startswith("."):
        raise ConfigError(f"region name {region!r} is empty or starts with '.'; give a plain name")
    if BAD_NAME_CHARS.search(region) or region != region.strip():
        raise ConfigError(
            f"region name {region!r} contains a path separator, control character or surrounding "
            "spaces; region names become folder names, choose one without them"
        )
    return region


def params_hash(params: Mapping[str, Any], length: int = 10) -> str:
    """Short sha256 hex digest of the canonical JSON of ``params``.

    Canonical JSON: keys sorted, no whitespace, UTF-8; values must be JSON-serialisable (paths and
    dates are converted with ``str``).  Key order and Python's hash seed do not change the result.
    """
    try:
        text = json.dumps(
            params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task parameters cannot be serialised to JSON: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def task_id(region: str, year: int, params: Mapping[str, Any]) -> str:
    """Deterministic id ``<region>_<year>_<hash>`` of one region × year task.

    ``hash`` is the first 10 hex digits of the sha256 of the canonical JSON of ``params`` (method
    profile, products, grid, sources …), so a changed parameter gives a new id and forces a rerun.
    """
    _check_region(region)
    return f"{region}_{int(year)}_{params_hash(params)}"


class TaskPaths:
    """Output paths of one task: ``OUT/<region>/<year>/``.

    Parameters
    ----------
    out_root
        Output root folder ``OUT``.
    region
        Region name (folder name; no path separators).
    year
        Year of the task.
    """

    def __init__(self, out_root: str | os.PathLike[str], region: str, year: int) -> None:
        self.out_root = Path(out_root)
        self.region = _check_region(region)
        self.year = int(year)

    def __repr__(self) -> str:
        return f"TaskPaths({str(self.out_root)!r}, {self.region!r}, {self.year})"

    @property
    def dir(self) -> Path:
        """Folder of the task's outputs."""
        return self.out_root / self.region / str(self.year)

    @property
    def item(self) -> Path:
        """The task's STAC item, written last (the done marker)."""
        return self.dir / "item.json"

    def product(self, name: str) -> Path:
        """Path of product ``name`` as a GeoTIFF, e.g. ``OUT/<region>/<year>/ndvi.tif``."""
        if not name or BAD_NAME_CHARS.search(name) or name.startswith("."):
            raise ConfigError(f"product name {name!r} cannot be used as a file name")
        return self.dir / f"{name}.tif"


# --------------------------------------------------------------------------------------------
# done markers


def check_done(paths: TaskPaths | Path, task_id: str, *, verify_checksum: bool = False) -> str | None:
    """Why task ``task_id`` is not done, or ``None`` when it is.

    ``paths`` is a task's :class:`TaskPaths` or the path of its ``item.json``.  Done means: the item exists and parses, its ``properties["eqi:task_id"]`` equals
    ``task_id``, and every asset it lists exists with the recorded ``file:size`` (bytes).  With
    ``verify_checksum`` the ``file:checksum`` (sha256 multihash, ``1220`` + hex) is verified too;
    an asset without a recorded size is treated as unverifiable (not done).
    """
    item_path = paths if isinstance(paths, Path) else paths.item
    if not item_path.is_file():
        return f"{item_path} does not exist"
    try:
        item = json.loads(item_path.read_text(encoding="utf-8"))
        recorded = item["properties"].get("eqi:task_id")
        assets = item.get("assets", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{item_path} is unreadable ({exc})"
    if recorded != task_id:
        return f"{item_path} belongs to task {recorded!r}, not {task_id!r}"
    for key, asset in assets.items():
        href = asset.get("href", "")
        if "://" in href:
            return f"asset {key!r} has a non-local href {href!r}"
        asset_path = (item_path.parent / href).resolve()
        if not asset_path.is_file():
            return f"asset {key!r} is missing: {asset_path}"
        size = asset.get("file:size")
        if size is None:
            return f"asset {key!r} records no file:size"
        actual = asset_path.stat().st_size
        if actual != size:
            return f"asset {key!r} has {actual} bytes, item records {size}: {asset_path}"
        if verify_checksum:
            checksum = asset.get("file:checksum")
            if checksum is None:
                return f"asset {key!r} records no file:checksum"
            if checksum != "1220" + sha256_file(asset_path):
                return f"asset {key!r} does not match its recorded sha256: {asset_path}"
    return None


def is_done(paths: TaskPaths | Path, task_id: str, *, verify_checksum: bool = False) -> bool:
    """True when the task's item names ``task_id`` and all its assets exist with the recorded size.

    Sizes are always checked (cheap; catches missing and truncated files); sha256 checksums only
    when ``verify_checksum`` is set.  See :func:`check_done` for the reason when False.
    """
    return check_done(paths, task_id, verify_checksum=verify_checksum) is None


