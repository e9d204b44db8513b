"""``eqi archive index``: scan delivery folders, write the stac-geoparquet file, report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eqi.errors import InputError
from eqi.io.catalog.archive.georef import MISSING_BANDS
from eqi.io.catalog.archive.parquet import write_archive
from eqi.io.catalog.archive.scan import PATTERNS, SkippedScene, scan_scenes
from eqi.sensors import SENSORS

__all__ = ["IndexReport", "index_archive", "missing_band_warning"]

_MASK_BANDS = {spec.mask.native for spec in SENSORS.values()}  # QA_PIXEL, SCL


def missing_band_warning(item_id: str, missing: Sequence[str]) -> str:
    """One line saying which band files a scene lacks and what that means for a run."""
    text = (
        f"scene {item_id} lacks {', '.join(missing)}: indexed with its other bands; "
        "a run fails only if a product needs a missing band"
    )
    masks = [m for m in missing if m in _MASK_BANDS]
    if masks:
        text += (
            f"; without {masks[0]} its clouds cannot be masked, so eqi run refuses it unless "
            "given --no-cloud-mask"
        )
    return text


@dataclass
class IndexReport:
    """What :func:`index_archive` did."""

    out: Path
    item_ids: list[str]
    skipped: list[SkippedScene] = field(default_factory=list)
    seconds: float = 0.0
    missing: dict[str, list[str]] = field(default_factory=dict)  # item id -> absent band files

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __str__(self) -> str:
        return self.summary()

    def warnings(self) -> list[str]:
        """One warning per partial delivery (see :func:`missing_band_warning`)."""
        return [missing_band_warning(i, bands) for i, bands in self.missing.items()]

    def summary(self) -> str:
        """Human-readable lines for the command line."""
        lines = [f"indexed {self.n_items} scene(s) into {self.out} in {self.seconds:.2f} s"]
        lines += [f"  warning: {text}" for text in self.warnings()]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def index_archive(dirs: Sequence[str | Path], out: str | Path) -> IndexReport:
    """Index every scene under ``dirs`` into the stac-geoparquet file ``out``.

    Raises :class:`InputError` when a folder does not exist or no scene is found at all;
    unreadable scenes are skipped and listed in the returned :class:`IndexReport`; scenes with
    only some of their band files are indexed and listed in ``IndexReport.missing`` (its
    :meth:`~IndexReport.warnings` are part of the printed summary).
    """
    started = time.perf_counter()
    items, skipped = scan_scenes(dirs)
    if not items:
        where = ", ".join(str(d) for d in dirs)
        reasons = "".join(f"\n  {s.path}: {s.reason}" for s in skipped)
        raise InputError(f"no scenes found in {where}; looked for {PATTERNS}{reasons}")
    path = write_archive(items, out)
    missing = {
        item.id: list(item.properties[MISSING_BANDS])
        for item in items
        if item.properties.get(MISSING_BANDS)
    }
    return IndexReport(
        out=path,
        item_ids=[item.id for item in items],
        skipped=skipped,
        seconds=time.perf_counter() - started,
        missing=missing,
    )
