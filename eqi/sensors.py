"""Per-collection band tables: sensor-neutral aliases, scaling, nodata and mask bands.

Formulas elsewhere in eqi use only the aliases ``coastal, blue, green, red, rededge1-3, nir, nir08,
nir09, swir16, swir22, lwir``.  This module maps a STAC item from any supported catalog (Earth
Search v0/v1, Planetary Computer, USGS LandsatLook, an eqi archive) to those aliases, with the
scale/offset that turns its digital numbers (DN) into surface reflectance (unitless, 0-1) or
surface temperature (kelvin).

Scaling rules
-------------
* Landsat Collection 2 Level-2: SR = DN x 2.75e-5 - 0.2; ST(K) = DN x 0.00341802 + 149.0; DN 0 is
  fill (USGS, published constant scaling; spec §0.3).
* Sentinel-2 L2A: reflectance = (DN + BOA_ADD_OFFSET) / 10000 with BOA_ADD_OFFSET = -1000 from
  processing baseline 04.00, else 0.  Decided per item from its own metadata
  (:func:`s2_boa_offset_dn`); the ``raster:bands`` offset of Earth Search's ``sentinel-2-l2a``
  collection is known to be wrong for harmonised items (Element84/earth-search#66, #71), so the
  baseline and the ``boa_offset_applied`` flag decide, not that field.  Both are then checked
  against the pixels (:mod:`eqi.pipeline.checks`), because that flag is itself known to be wrong
  for some items.

Valid ranges
------------
Every reflective band has ``valid_range = (0, 1)`` in physical units (spec §0.2: reflectance in
[0, 1]).  For Landsat C2 L2 this is the USGS valid range of SR DN 7273-43636; for Sentinel-2 L2A
it is DN 1-10000 before baseline 04.00 and 1000-11000 from it (:func:`valid_dn_range`).  A DN
outside the range makes the observation unusable (:mod:`eqi.pipeline.stack`).

Saturation
----------
Landsat C2 items carry ``QA_RADSAT``: bit ``n - 1`` flags saturation of band ``n``
(``BandSpec.radsat_bit``), plus sensor-specific flags (OLI terrain occlusion, TM/ETM+ dropped
pixel; ``SensorSpec.radsat_flags``).  It is resolved as a second mask band when an item has it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import pystac

from eqi.errors import BandError, ScalingError

__all__ = [
    "ALIASES",
    "BandSpec",
    "SensorSpec",
    "SENSORS",
    "KNOWN_COLLECTIONS",
    "ResolvedBand",
    "ItemBands",
    "identify_sensor",
    "resolve_item",
    "s2_boa_offset_dn",
    "s2_offset_evidence",
    "valid_dn_range",
    "check_collections",
    "check_bands",
]

ALIASES: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "swir16", "swir22", "lwir",
)  # fmt: skip

BandKind = Literal["reflectance", "temperature", "mask"]
MaskKind = Literal["qa_pixel", "scl"]


@dataclass(frozen=True)
class BandSpec:
    """One band of a sensor: how catalogs name it and how to scale its DN."""

    alias: str
    native: str  # name in the delivered files, e.g. "SR_B4" or "B04"
    keys: tuple[str, ...]  # candidate STAC asset keys, most specific first
    scale: float
    offset: float
    nodata: int
    resolution_m: float
    center_um: float | None = None
    kind: BandKind = "reflectance"
    # valid physical values (reflectance 0-1); DN outside -> observation not usable
    valid_range: tuple[float, float] | None = None
    radsat_bit: int | None = None  # QA_RADSAT bit flagging saturation of this band


@dataclass(frozen=True)
class SensorSpec:
    """A sensor's band table and mask scheme (cloud mask, optional saturation mask)."""

    id: str  # "landsat8", "sentinel2", ...
    family: Literal["landsat-c2l2", "sentinel2-l2a"]
    title: str
    bands: Mapping[str, BandSpec]
    mask: BandSpec
    mask_kind: MaskKind
    radsat: BandSpec | None = None  # QA_RADSAT (Landsat C2)
    radsat_flags: Mapping[str, int] = field(default_factory=dict)  # non-band QA_RADSAT bits


REFLECTANCE_RANGE: tuple[float, float] = (0.0, 1.0)  # spec §0.2; USGS SR DN 7273-43636


def _landsat_sr(alias: str, n: int, center: float) -> BandSpec:
    return BandSpec(
        alias=alias,
        native=f"SR_B{n}",
        keys=(alias, f"SR_B{n}", f"sr_b{n}", f"B{n}"),
        scale=2.75e-5,
        offset=-0.2,
        nodata=0,
        resolution_m=30.0,
        center_um=center,
        valid_range=REFLECTANCE_RANGE,
        radsat_bit=n - 1,  # QA_RADSAT bit n-1 = band n saturated (all Landsat C2 sensors)
    )


def _landsat_st(n: int) -> BandSpec:
    return BandSpec(
        alias="lwir",
        native=f"ST_B{n}",
        keys=("lwir", "lwir11", f"ST_B{n}", f"st_b{n}", "lwir1"),
        scale=0.00341802,
        offset=149.0,
        nodata=0,
        resolution_m=30.0,
        center_um=10.9 if n == 10 else 11.45,
        kind="temperature",
    )


_QA_PIXEL = BandSpec(
    alias="qa_pixel",
    native="QA_PIXEL",
    keys=("qa_pixel", "QA_PIXEL"),
    scale=1.0,
    offset=0.0,
    nodata=1,  # bit 0 "fill" set
    resolution_m=30.0,
    kind="mask",
)

# QA_RADSAT: saturation per band (bit n-1) and terrain occlusion / dropped pixel.  OLI bits as in
# the classification:bitfields of the USGS / Earth Search / Planetary Computer STAC items (band1-7
# at bits 0-6, band9 at 8, occlusion at 11); TM/ETM+: bands 1-7 at bits 0-6, dropped pixel at
# bit 9 (USGS Landsat 4-7 C2 product guide, as in ESA SNAP's Landsat reader).
_QA_RADSAT = BandSpec(
    alias="qa_radsat",
    native="QA_RADSAT",
    keys=("qa_radsat", "QA_RADSAT"),
    scale=1.0,
    offset=0.0,
    nodata=0,  # 0 = nothing saturated; fill is told by QA_PIXEL
    resolution_m=30.0,
    kind="mask",
)
_RADSAT_FLAGS_OLI = {"terrain_occlusion": 11}
_RADSAT_FLAGS_TM = {"dropped_pixel": 9}


def _landsat(
    sensor_id: str,
    title: str,
    reflective: list[tuple[str, int, float]],
    thermal_band: int,
    radsat_flags: Mapping[str, int],
) -> SensorSpec:
    """Band table of a Landsat C2 L2 sensor from (alias, SR band number, centre µm) rows.

    The near-infrared band is called ``nir08`` by Earth Search / Planetary Computer / USGS; it is
    eqi's ``nir``, so both keys are accepted.
    """
    bands = []
    for alias, number, center in reflective:
        band = _landsat_sr(alias, number, center)
        if alias == "nir":
            band = replace(band, keys=("nir08", "nir", f"SR_B{number}", f"sr_b{number}", f"B{number}"))
        bands.append(band)
    bands.append(_landsat_st(thermal_band))
    return SensorSpec(
        id=sensor_id,
        family="landsat-c2l2",
        title=title,
        bands={b.alias: b for b in bands},
        mask=_QA_PIXEL,
        mask_kind="qa_pixel",
        radsat=_QA_RADSAT,
        radsat_flags=dict(radsat_flags),
    )


_OLI = [
    ("coastal", 1, 0.443), ("blue", 2, 0.482), ("green", 3, 0.561), ("red", 4, 0.655),
    ("nir", 5, 0.865), ("swir16", 6, 1.609), ("swir22", 7, 2.201),
]  # fmt: skip
_TM = [
    ("blue", 1, 0.485), ("green", 2, 0.56), ("red", 3, 0.66), ("nir", 4, 0.835),
    ("swir16", 5, 1.65), ("swir22", 7, 2.215),
]  # fmt: skip


def _s2(alias: str, native: str, res: float, center: float, extra_keys: tuple[str, ...] = ()) -> BandSpec:
    return BandSpec(
        alias=alias,
        native=native,
        keys=(*extra_keys, alias, native, native.lower()),
        scale=1e-4,
        offset=0.0,  # replaced per item by the BOA offset
        nodata=0,
        resolution_m=res,
        center_um=center,
        valid_range=REFLECTANCE_RANGE,
    )


_S2_BANDS = [
    _s2("coastal", "B01", 60, 0.443),
    _s2("blue", "B02", 10, 0.492),
    _s2("green", "B03", 10, 0.560),
    _s2("red", "B04", 10, 0.665),
    _s2("rededge1", "B05", 20, 0.704),
    _s2("rededge2", "B06", 20, 0.740),
    _s2("rededge3", "B07", 20, 0.783),
    _s2("nir", "B08", 10, 0.833),
    _s2("nir08", "B8A", 20, 0.865),
    _s2("nir09", "B09", 60, 0.945),
    _s2("swir16", "B11", 20, 1.614),
    _s2("swir22", "B12", 20, 2.202),
]

SENSORS: dict[str, SensorSpec] = {
    "landsat5": _landsat("landsat5", "Landsat 5 TM, Collection 2 Level-2", _TM, 6, _RADSAT_FLAGS_TM),
    "landsat7": _landsat("landsat7", "Landsat 7 ETM+, Collection 2 Level-2", _TM, 6, _RADSAT_FLAGS_TM),
    "landsat8": _landsat("landsat8", "Landsat 8 OLI/TIRS, Collection 2 Level-2", _OLI, 10, _RADSAT_FLAGS_OLI),
    "landsat9": _landsat("landsat9", "Landsat 9 OLI-2/TIRS-2, Collection 2 Level-2", _OLI, 10, _RADSAT_FLAGS_OLI),
    "sentinel2": SensorSpec(
        id="sentinel2",
        family="sentinel2-l2a",
        title="Sentinel-2 MSI Level-2A",
        bands={b.alias: b for b in _S2_BANDS},
        mask=BandSpec(
            alias="scl",
            native="SCL",
            keys=("scl", "SCL"),
            scale=1.0,
            offset=0.0,
            nodata=0,
            resolution_m=20,
            kind="mask",
        ),
        mask_kind="scl",
    ),
}

# Collection ids eqi knows, by catalog, and the sensor family they hold.
KNOWN_COLLECTIONS: dict[str, str] = {
    "sentinel-2-l2a": "sentinel2-l2a",  # Earth Search v1, Planetary Computer, CDSE, eqi archive
    "sentinel-2-c1-l2a": "sentinel2-l2a",  # Earth Search Collection-1 reprocessing
    "sentinel-s2-l2a-cogs": "sentinel2-l2a",  # Earth Search v0
    "landsat-c2-l2": "landsat-c2l2",  # Earth Search v1, Planetary Computer, eqi archive
    "landsat-c2l2-sr": "landsat-c2l2",  # USGS LandsatLook
    "landsat-c2l2-st": "landsat-c2l2",  # USGS LandsatLook (thermal)
}

_LANDSAT_ID = re.compile(r"^L([CTEOM])0?([45789])_L2S[PR]_")
_S2_BASELINE = re.compile(r"_N(\d{2})\.?(\d{2})(?=[_.]|$)")  # "_N0214_" or "_N02.14" (granule ids)


def check_collections(collections: Iterable[str]) -> list[str]:
    """Return the collections unchanged, or raise BandError naming unknown ones."""
    names = list(collections)
    unknown = [c for c in names if c not in KNOWN_COLLECTIONS]
    if unknown:
        raise BandError(
            f"unknown collection(s): {', '.join(unknown)}. eqi supports: "
            f"{', '.join(sorted(KNOWN_COLLECTIONS))}"
        )
    if not names:
        raise BandError("no collection given; pass --collections, e.g. sentinel-2-l2a,landsat-c2-l2")
    return names


def check_bands(bands: Iterable[str]) -> list[str]:
    """Return the band aliases unchanged, or raise BandError naming unknown ones."""
    names = list(bands)
    unknown = [b for b in names if b not in ALIASES]
    if unknown:
        raise BandError(
            f"unknown band(s): {', '.join(unknown)}. Use sensor-neutral aliases: {', '.join(ALIASES)}"
        )
    return names


def valid_dn_range(
    valid_range: tuple[float, float], scale: float, offset: float
) -> tuple[int, int]:
    """Inclusive DN limits whose physical value ``DN x scale + offset`` lies in ``valid_range``.

    Landsat C2 L2 SR (2.75e-5, -0.2) and (0, 1) -> (7273, 43636), the USGS valid range;
    Sentinel-2 L2A (1e-4, -0.1) -> (1000, 11000).  A 1e-6 DN tolerance absorbs float rounding.
    """
    if scale <= 0:
        raise ScalingError(f"scale must be positive to derive a valid DN range, got {scale}")
    lo = math.ceil((valid_range[0] - offset) / scale - 1e-6)
    hi = math.floor((valid_range[1] - offset) / scale + 1e-6)
    return int(lo), int(hi)


@dataclass(frozen=True)
class ResolvedBand:
    """A band of one item: the asset to read and the DN -> physical-units conversion."""

    alias: str
    asset_key: str
    href: str
    scale: float
    offset: float
    nodata: int


@dataclass(frozen=True)
class ItemBands:
    """What eqi needs from one item: its sensor, bands by alias and mask band."""

    item_id: str
    sensor: SensorSpec
    datetime: datetime | None
    bands: dict[str, ResolvedBand]
    mask: ResolvedBand | None
    notes: tuple[str, ...] = field(default=())
    radsat: ResolvedBand | None = None  # QA_RADSAT when the item has it (Landsat)

    @property
    def scaling_key(self) -> tuple[tuple[str, float, float, int], ...]:
        """Hashable summary of scaling and nodata, used to group items that can share a load."""
        return tuple((a, b.scale, b.offset, b.nodata) for a, b in sorted(self.bands.items()))


def _platform(item: pystac.Item) -> str:
    props = item.properties
    value = props.get("platform") or props.get("eo:platform") or ""
    return str(value).lower().replace("_", "-").replace(" ", "-")


def identify_sensor(item: pystac.Item) -> SensorSpec:
    """Tell which sensor (and processing level) an item holds, or raise BandError."""
    platform = _platform(item)
    collection = item.collection_id or item.properties.get("collection") or ""
    ident = item.id
    if "l1c" in collection.lower() or "MSIL1C" in ident or "_L1C" in ident:
        raise BandError(
            f"item {ident}: Sentinel-2 Level-1C is top-of-atmosphere reflectance; eqi needs "
            "Level-2A surface reflectance (collection sentinel-2-l2a)"
        )
    # a whole platform name only: products made from several sensors (e.g. WorldCover's
    # "sentinel-1a, ..., sentinel-2b") are not Sentinel-2 scenes
    if re.fullmatch(r"sentinel-2[a-d]?", platform) or KNOWN_COLLECTIONS.get(collection) == "sentinel2-l2a":
        return SENSORS["sentinel2"]
    match = _LANDSAT_ID.match(ident)
    number = None
    if platform.startswith("landsat-"):
        number = platform.split("-", 1)[1]
    elif match:
        number = match.group(2)
    if number in {"5", "7", "8", "9"}:
        if re.match(r"^L[CTEOM]0?\d_L1", ident):
            raise BandError(f"item {ident}: Landsat Level-1 is not surface reflectance; use Collection 2 Level-2")
        return SENSORS[f"landsat{number}"]
    raise BandError(
        f"item {ident} (collection '{collection}', platform '{platform}') is not a scene of a "
        "supported sensor; eqi reads Sentinel-2 L2A and Landsat 5/7/8/9 Collection 2 Level-2 "
        "scenes (derived products such as land-cover maps are not scenes)"
    )


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _baseline(item: pystac.Item) -> float | None:
    props = item.properties
    for key in ("s2:processing_baseline", "sentinel:processing_baseline", "processing:version"):
        value = props.get(key)
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    for key in ("s2:product_uri", "sentinel:product_id", "s2:granule_id", "s2:datatake_id"):
        value = props.get(key)
        if isinstance(value, str):
            match = _S2_BASELINE.search(value)
            if match:
                return float(f"{match.group(1)}.{match.group(2)}")
    match = _S2_BASELINE.search(item.id)
    if match:
        return float(f"{match.group(1)}.{match.group(2)}")
    return None


def s2_boa_offset_dn(item: pystac.Item, override: int | None = None) -> int:
    """BOA_ADD_OFFSET in DN for a Sentinel-2 L2A item (0 or -1000).

    Order: an explicit ``override`` (config ``s2_boa_offset``); the catalog's own flag that the
    offset was already removed from the pixels (``earthsearch:boa_offset_applied`` /
    ``sentinel:boa_offset_applied`` true -> 0); the processing baseline (property or ``_Nxxyy_`` in
    the product id) >= 04.00 -> -1000, else 0.  Otherwise :class:`ScalingError`.
    """
    if override is not None:
        return int(override)
    props = item.properties
    for key in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied"):
        flag = _bool(props.get(key))
        if flag is True:
            return 0
    baseline = _baseline(item)
    if baseline is not None:
        return -1000 if baseline >= 4.0 else 0
    raise ScalingError(
        f"Sentinel-2 item {item.id}: cannot tell its processing baseline, so the BOA offset "
        "(0 before baseline 04.00, -1000 from 04.00) is unknown. Add the property "
        "'s2:processing_baseline' to the item, or state the offset for the run with "
        "'s2_boa_offset: 0' or '-1000' in the config (--s2-boa-offset)."
    )


def s2_offset_evidence(item: pystac.Item) -> str:
    """What an item's metadata say about its BOA offset (baseline, catalog flag), for messages."""
    parts = []
    baseline = _baseline(item)
    parts.append(f"processing baseline {baseline:05.2f}" if baseline is not None else "no processing baseline")
    for key in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied"):
        if key in item.properties:
            parts.append(f"{key} = {str(item.properties[key]).lower()}")
    return ", ".join(parts)


def _find_asset(item: pystac.Item, spec: BandSpec) -> tuple[str, pystac.Asset] | None:
    assets = item.assets
    for key in (*spec.keys, f"{spec.native}.TIF"):  # USGS STAC 0.7-1.0-beta keys: "SR_B2.TIF"
        if key in assets:
            return key, assets[key]
    # last resort: a file name that ends with the native band name (USGS/ES v0 layouts)
    pattern = re.compile(rf"(^|[_/]){re.escape(spec.native)}\.(tif|TIF|tiff|jp2)$")
    for key, asset in assets.items():
        if pattern.search(asset.href):
            return key, asset
    return None


def _href(asset: pystac.Asset) -> str:
    """The asset's location: URLs and absolute local paths as written, relative ones resolved.

    pystac would resolve an absolute path against an item fetched from an API into a URL on
    that API's host; an eqi archive served with ``rustac serve`` holds local absolute paths.
    """
    href = asset.href
    if "://" in href or os.path.isabs(href):
        return href
    return asset.get_absolute_href() or href


def _nodata_of(asset: pystac.Asset, default: int) -> int:
    bands = asset.extra_fields.get("raster:bands") or []
    if bands and isinstance(bands[0], dict) and bands[0].get("nodata") is not None:
        try:
            return int(bands[0]["nodata"])
        except (TypeError, ValueError):
            return default
    return default


def resolve_item(
    item: pystac.Item,
    needed: Iterable[str] | None = None,
    *,
    s2_boa_offset: int | None = None,
    require_mask: bool = True,
) -> ItemBands:
    """Map an item's assets to eqi aliases with their scaling.

    Parameters
    ----------
    item : the STAC item.
    needed : aliases the run needs; a missing one raises :class:`BandError`.  ``None`` resolves
        every band the item has.
    s2_boa_offset : explicit Sentinel-2 BOA offset in DN for items whose metadata cannot tell.
    require_mask : raise when the item lacks its cloud mask band (QA_PIXEL / SCL).
    """
    sensor = identify_sensor(item)
    wanted = list(needed) if needed is not None else list(sensor.bands)
    check_bands(wanted)
    notes: list[str] = []
    offset_dn = 0
    if sensor.family == "sentinel2-l2a":
        offset_dn = s2_boa_offset_dn(item, s2_boa_offset)
        notes.append(f"BOA_ADD_OFFSET={offset_dn}")
    resolved: dict[str, ResolvedBand] = {}
    for alias in wanted:
        spec = sensor.bands.get(alias)
        found = _find_asset(item, spec) if spec is not None else None
        if spec is None or found is None:
            if needed is None:
                continue
            have = sorted(a for a in sensor.bands if _find_asset(item, sensor.bands[a]))
            raise BandError(
                f"item {item.id} ({sensor.title}) has no '{alias}' band; it has: {', '.join(have)}"
                + (". Thermal (lwir) exists only in Landsat L2SP products" if alias == "lwir" else "")
            )
        key, asset = found
        offset = spec.offset + (offset_dn * spec.scale if sensor.family == "sentinel2-l2a" else 0.0)
        resolved[alias] = ResolvedBand(
            alias=alias,
            asset_key=key,
            href=_href(asset),
            scale=spec.scale,
            offset=round(offset, 10),
            nodata=_nodata_of(asset, spec.nodata),
        )
    mask = None
    found = _find_asset(item, sensor.mask)
    if found is not None:
        key, asset = found
        mask = ResolvedBand(
            alias=sensor.mask.alias,
            asset_key=key,
            href=_href(asset),
            scale=1.0,
            offset=0.0,
            nodata=sensor.mask.nodata,
        )
    elif require_mask:
        raise BandError(
            f"scene {item.id} has no {sensor.mask.native} band, so its clouds cannot be masked; "
            f"add {sensor.mask.native} to the delivery (and re-index it), or run with "
            "--no-cloud-mask (config 'require_mask: false') to accept scenes without a cloud mask"
        )
    radsat = None
    if sensor.radsat is not None:
        found = _find_asset(item, sensor.radsat)
        if found is not None:
            key, asset = found
            radsat = ResolvedBand(
                alias=sensor.radsat.alias, asset_key=key, href=_href(asset),
                scale=1.0, offset=0.0, nodata=sensor.radsat.nodata,
            )
        else:
            notes.append(f"no {sensor.radsat.native} band: saturated pixels cannot be masked")
    return ItemBands(
        item_id=item.id,
        sensor=sensor,
        datetime=item.datetime,
        bands=resolved,
        mask=mask,
        notes=tuple(notes),
        radsat=radsat,
    )
