"""Search a stac-geoparquet archive in-process: bbox, datetime and collection filters.

rustac's own DuckDB search needs a DuckDB extension that it downloads at run time, which offline
machines cannot do, so the archive is read once with rustac and filtered here.  Footprints are
built once per archive (a prepared shapely geometry per item), not on every search.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import shapely
from shapely.geometry import box, shape

from eqi.errors import InputError
from eqi.io.catalog.archive.parquet import read_archive
from eqi.io.catalog.base import (
    BBox,
    check_bbox,
    check_collections_arg,
    item_interval,
    parse_interval,
    sort_items,
)

__all__ = ["ArchiveCatalog"]


def _query_area(bbox: BBox) -> Any:
    west, south, east, north = bbox
    if west <= east:
        return box(west, south, east, north)
    return box(west, south, 180.0, north).union(box(-180.0, south, east, north))


@dataclass(frozen=True)
class _Entry:
    """An item with what the filters test, computed once."""

    item: pystac.Item
    collection: str | None
    first: datetime
    last: datetime
    footprint: Any  # prepared shapely geometry


def _entry(item: pystac.Item) -> _Entry:
    outline = shape(item.geometry) if item.geometry else box(*item.bbox[:4])
    shapely.prepare(outline)
    first, last = item_interval(item)
    return _Entry(item, item.collection_id, first, last, outline)


class ArchiveCatalog:
    """A local stac-geoparquet archive searched in-process (see :class:`~eqi.io.catalog.base.Catalog`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._entries: list[_Entry] | None = None
        if not self.path.is_file():
            raise InputError(
                f"archive file {self.path} not found; build it with: "
                f"eqi archive index DIR... --out {self.path}"
            )
        self.items()  # fail early, naming the file, when it is not stac-geoparquet

    def __repr__(self) -> str:
        return f"ArchiveCatalog({str(self.path)!r})"

    def _index(self) -> list[_Entry]:
        if self._entries is None:
            self._entries = [_entry(item) for item in read_archive(self.path)]
        return self._entries

    def items(self) -> list[pystac.Item]:
        """Every item of the archive (read once, cached; do not modify them)."""
        return [entry.item for entry in self._index()]

    def collections(self) -> list[str]:
        """The collection ids the archive holds, sorted (e.g. ``['landsat-c2-l2']``)."""
        return sorted({e.collection for e in self._index() if e.collection})

    def search(
        self,
        *,
        bbox: BBox,
        datetime: str,
        collections: list[str],
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Items intersecting ``bbox`` within ``datetime`` in ``collections``, sorted (copies)."""
        area = _query_area(check_bbox(bbox))
        start, end = parse_interval(datetime)
        wanted = set(check_collections_arg(collections))
        found = [
            entry.item.clone()
            for entry in self._index()
            if entry.collection in wanted
            and not (start is not None and entry.last < start)
            and not (end is not None and entry.first > end)
            and entry.footprint.intersects(area)
        ]
        found = sort_items(found)
        return found[:limit] if limit is not None else found
