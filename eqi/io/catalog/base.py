"""One interface for every scene catalog, and saving the items a run used.

A :class:`Catalog` answers ``search(bbox=..., datetime=..., collections=...)`` with pystac Items
sorted by datetime then id, whether it is a remote STAC API (:mod:`eqi.io.catalog.stac_api`) or a
local stac-geoparquet archive (:mod:`eqi.io.catalog.archive`); :func:`eqi.io.catalog.open_catalog`
picks the implementation from the source string.  :func:`save_items` / :func:`load_items` keep the items of
a run next to its outputs so reruns do not depend on the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Protocol, runtime_checkable

import pystac

from eqi.errors import ConfigError, InputError
from eqi.io.atomic import atomic_write_text

__all__ = [
    "BBox",
    "Catalog",
    "save_items",
    "load_items",
    "sort_items",
    "item_interval",
    "parse_interval",
    "check_bbox",
    "check_collections_arg",
]

BBox = tuple[float, float, float, float]


@runtime_checkable
class Catalog(Protocol):
    """Anything that finds scenes: a STAC API or a local archive."""

    def search(
        self,
        *,
        bbox: BBox,
        datetime: str,
        collections: list[str],
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Items intersecting ``bbox`` (WGS84 lon/lat degrees) within ``datetime``
        ("2022-06-01/2022-09-30", ends inclusive) in ``collections``, sorted by datetime then id;
        at most ``limit`` items.  No match gives an empty list (the caller decides)."""
        ...


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Return ``bbox`` as a float 4-tuple or raise :class:`ConfigError` (lon/lat degrees)."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"bbox must be 4 numbers (west, south, east, north), got {bbox!r}"
        ) from err
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise ConfigError(
            f"bbox {bbox!r} is not WGS84 lon/lat (west, south, east, north) in degrees"
        )
    return (west, south, east, north)


def check_collections_arg(collections: Sequence[str]) -> list[str]:
    """Return ``collections`` as a list, or raise :class:`ConfigError` when empty or not strings."""
    if isinstance(collections, str) or not collections:
        raise ConfigError(
            f"collections must be a non-empty list of ids, e.g. ['sentinel-2-l2a'], got {collections!r}"
        )
    return [str(c) for c in collections]


def _parse_instant(text: str, *, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        if len(text) in (4, 7):  # a year or a month (as pystac-client accepts): whole period
            year, month = int(text[:4]), int(text[5:7]) if len(text) == 7 else None
            if not end:
                return datetime(year, month or 1, 1, tzinfo=UTC)
            last_month = month or 12
            following = date(year + (last_month == 12), last_month % 12 + 1, 1)
            day = date.fromordinal(following.toordinal() - 1)
            return datetime.combine(day, time.max, tzinfo=UTC)
        if len(text) == 10:  # a date: start of day, or end of day for the interval end
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise ConfigError(
            f"datetime '{text}' is not an RFC 3339 date or time; use e.g. 2022-06-01/2022-09-30"
        ) from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_interval(text: str) -> tuple[datetime | None, datetime | None]:
    """Parse "start/end" into UTC datetimes, ends inclusive.

    Each end is RFC 3339 date-time, a date, a month ("2022-06") or a year ("2022"); ".." or empty
    leaves it open; a single value means that whole period.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("datetime must be a string such as 2022-06-01/2022-09-30")
    start_text, sep, end_text = text.partition("/")
    start = _parse_instant(start_text, end=False)
    end = _parse_instant(end_text if sep else start_text, end=True)
    if start and end and start > end:
        raise ConfigError(f"datetime '{text}': start is after end")
    return start, end


def item_interval(item: pystac.Item) -> tuple[datetime, datetime]:
    """An item's time span: (datetime, datetime) or (start_datetime, end_datetime), UTC."""
    if item.datetime is not None:
        value = item.datetime if item.datetime.tzinfo else item.datetime.replace(tzinfo=UTC)
        return value, value
    start = item.common_metadata.start_datetime
    end = item.common_metadata.end_datetime
    if start is None or end is None:
        raise InputError(f"item {item.id} has neither datetime nor start/end_datetime")
    return start, end


def sort_items(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """Items sorted by (datetime, id): the deterministic order every catalog returns."""
    return sorted(items, key=lambda item: (item_interval(item)[0], item.id))


def save_items(items: Iterable[pystac.Item], path: str | Path) -> Path:
    """Write ``items`` as a STAC ItemCollection JSON file, atomically; return the path."""
    path = Path(path)
    collection = pystac.ItemCollection(list(items), clone_items=True)
    text = json.dumps(collection.to_dict(transform_hrefs=False), indent=1, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
    return path


def load_items(path: str | Path) -> list[pystac.Item]:
    """Read the items saved by :func:`save_items` (any STAC ItemCollection JSON file)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"item file {path} not found; it is written by 'eqi search' or 'eqi run'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        collection = pystac.ItemCollection.from_dict(data, preserve_dict=False)
    except (ValueError, TypeError, KeyError, pystac.STACError) as err:
        raise InputError(f"{path} is not a STAC ItemCollection JSON file ({err})") from err
    return list(collection.items)
