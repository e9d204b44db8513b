"""Read USGS Landsat Collection 2 Level-2 metadata files (``*_MTL.txt`` ODL or ``*_MTL.json``).

Only what indexing needs is extracted: product id, acquisition time, spacecraft, cloud cover,
WRS path/row, processing level, the file name of every band, the per-band scale/offset
(``REFLECTANCE_MULT/ADD_BAND_n``, ``TEMPERATURE_MULT/ADD_BAND_ST_Bn``) and the ``ORIGIN`` texts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eqi.errors import InputError

__all__ = ["LandsatMtl", "read_mtl", "parse_mtl_text", "mtl_from_groups"]

_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class LandsatMtl:
    """The parts of a Landsat C2 L2 MTL file that eqi uses.

    ``files`` maps the band suffix of each delivered file (``SR_B4``, ``ST_B10``, ``QA_PIXEL``,
    ``MTL``...) to its file name; ``scaling`` maps the same suffix to (multiplier, offset).
    """

    product_id: str
    processing_level: str  # "L2SP" or "L2SR"
    spacecraft_id: str  # "LANDSAT_8"
    sensor_id: str  # "OLI_TIRS"
    datetime: datetime  # UTC
    cloud_cover: float | None  # percent
    cloud_cover_land: float | None  # percent
    wrs_path: int | None
    wrs_row: int | None
    collection_number: str | None
    collection_category: str | None
    files: dict[str, str]
    scaling: dict[str, tuple[float, float]]
    origin: tuple[str, ...] = field(default=())

    @property
    def number(self) -> int:
        """Landsat mission number (5, 7, 8, 9) from SPACECRAFT_ID."""
        match = re.search(r"(\d+)$", self.spacecraft_id)
        if not match:
            raise InputError(
                f"MTL of {self.product_id}: unknown SPACECRAFT_ID '{self.spacecraft_id}'"
            )
        return int(match.group(1))

    @property
    def simulated(self) -> bool:
        """True when an ORIGIN text says the data are simulated."""
        return any("simulat" in text.lower() for text in self.origin)


def _value(raw: str) -> Any:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    return raw


def parse_mtl_text(text: str) -> dict[str, Any]:
    """Parse ODL text (``GROUP = X`` ... ``END_GROUP = X``) into nested dicts of strings."""
    root: dict[str, Any] = {}
    stack: list[dict[str, Any]] = [root]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip() == "END":
            continue
        match = _ASSIGN.match(line)
        if not match:
            raise ValueError(f"line {number}: not 'KEY = VALUE': {line.strip()[:60]!r}")
        key, raw = match.groups()
        if key == "GROUP":
            child: dict[str, Any] = {}
            stack[-1][_value(raw)] = child
            stack.append(child)
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise ValueError(f"line {number}: END_GROUP without GROUP")
            stack.pop()
        else:
            stack[-1][key] = _value(raw)
    if len(stack) != 1:
        raise ValueError("unterminated GROUP (file truncated?)")
    return root


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _acquired(date: str, time: str) -> datetime:
    """DATE_ACQUIRED + SCENE_CENTER_TIME ("15:13:51.8610990Z", 7 decimals) as UTC datetime."""
    time = time.strip().rstrip("Z")
    hms, _, frac = time.partition(".")
    stamp = f"{date.strip()}T{hms}.{(frac + '000000')[:6]}"
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def _collect_origin(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ORIGIN" and isinstance(value, str):
                if value not in out:
                    out.append(value)
            else:
                _collect_origin(value, out)


def mtl_from_groups(groups: dict[str, Any], source: str = "MTL") -> LandsatMtl:
    """Build :class:`LandsatMtl` from parsed MTL groups (text or JSON form)."""
    meta = groups.get("LANDSAT_METADATA_FILE", groups)
    try:
        contents = meta["PRODUCT_CONTENTS"]
        image = meta["IMAGE_ATTRIBUTES"]
        product_id = str(contents["LANDSAT_PRODUCT_ID"])
        when = _acquired(str(image["DATE_ACQUIRED"]), str(image["SCENE_CENTER_TIME"]))
        spacecraft = str(image["SPACECRAFT_ID"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"{source}: not a Landsat Collection 2 MTL (missing or bad {err})"
        ) from err
    level = str(contents.get("PROCESSING_LEVEL", ""))
    files: dict[str, str] = {}
    for key, name in contents.items():
        if key.startswith("FILE_NAME_") and isinstance(name, str):
            stem = Path(name).stem
            suffix = stem[len(product_id) + 1 :] if stem.startswith(product_id + "_") else stem
            files[suffix] = name
    scaling: dict[str, tuple[float, float]] = {}
    # Level-2 groups only: LEVEL1_RADIOMETRIC_RESCALING holds TOA factors under the same keys.
    sr = meta.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS") or {}
    st = meta.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS") or {}
    for key, value in sr.items():
        match = re.fullmatch(r"REFLECTANCE_MULT_BAND_(\d+)", key)
        add = _float(sr.get(f"REFLECTANCE_ADD_BAND_{match.group(1)}")) if match else None
        if match and _float(value) is not None and add is not None:
            scaling[f"SR_B{match.group(1)}"] = (float(value), add)
    for key, value in st.items():
        match = re.fullmatch(r"TEMPERATURE_MULT_BAND_(ST_B\d+)", key)
        add = _float(st.get(f"TEMPERATURE_ADD_BAND_{match.group(1)}")) if match else None
        if match and _float(value) is not None and add is not None:
            scaling[match.group(1)] = (float(value), add)
    origin: list[str] = []
    _collect_origin(meta, origin)
    return LandsatMtl(
        product_id=product_id,
        processing_level=level,
        spacecraft_id=spacecraft,
        sensor_id=str(image.get("SENSOR_ID", "")),
        datetime=when,
        cloud_cover=_float(image.get("CLOUD_COVER")),
        cloud_cover_land=_float(image.get("CLOUD_COVER_LAND")),
        wrs_path=_int(image.get("WRS_PATH")),
        wrs_row=_int(image.get("WRS_ROW")),
        collection_number=_str_or_none(contents.get("COLLECTION_NUMBER")),
        collection_category=_str_or_none(contents.get("COLLECTION_CATEGORY")),
        files=files,
        scaling=scaling,
        origin=tuple(origin),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def read_mtl(path: Path) -> LandsatMtl:
    """Read ``*_MTL.txt`` or ``*_MTL.json``; raise :class:`InputError` when unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err}") from err
    try:
        groups = json.loads(text) if path.suffix.lower() == ".json" else parse_mtl_text(text)
    except ValueError as err:
        raise InputError(f"{path}: malformed MTL file ({err})") from err
    if not isinstance(groups, dict):
        raise InputError(f"{path}: malformed MTL file (not a set of groups)")
    return mtl_from_groups(groups, source=str(path))
