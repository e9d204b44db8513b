"""stac-geoparquet files with rustac: write an archive atomically, read it back as pystac Items."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pystac
import rustac

from eqi.errors import InputError
from eqi.io.atomic import atomic_path
from eqi.io.catalog.base import sort_items

__all__ = ["write_archive", "read_archive"]


def write_archive(items: Iterable[pystac.Item], out: str | Path) -> Path:
    """Write items (sorted by datetime, id) to a stac-geoparquet file atomically with rustac."""
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    dicts = [item.to_dict(transform_hrefs=False) for item in sort_items(items)]
    with atomic_path(out) as tmp:
        rustac.write_sync(str(tmp), dicts, format="geoparquet")
    return out


def read_archive(path: str | Path) -> list[pystac.Item]:
    """All items of a stac-geoparquet archive (rustac reader), sorted by datetime then id."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(
            f"archive file {path} not found; build it with: eqi archive index DIR... --out {path}"
        )
    try:
        collection = rustac.read_sync(str(path), format="geoparquet", set_self_link=False)
    except Exception as err:  # rustac raises its own error types for I/O and format problems
        raise InputError(
            f"archive file {path} cannot be read as stac-geoparquet ({str(err)[:200]}); "
            f"rebuild it with: eqi archive index DIR... --out {path}"
        ) from err
    items = []
    for feature in collection.get("features", []):
        if isinstance(feature.get("bbox"), tuple):
            feature["bbox"] = list(feature["bbox"])
        # stac-geoparquet stores properties as columns: a property another item has comes back
        # as null here; drop those (a null datetime is kept, it means a start/end range).
        props = feature.get("properties", {})
        feature["properties"] = {k: v for k, v in props.items() if v is not None or k == "datetime"}
        items.append(pystac.Item.from_dict(feature, preserve_dict=False))
    return sort_items(items)
