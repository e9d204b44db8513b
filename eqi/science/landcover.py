"""Land cover in the national classes: the class table, product mappings and reclassification.

The national classes are the Chinese LUCC system (CAS 1:100k, 6 一级 / 25 二级, methods spec §1.1),
held in ONE table, ``configs/landcover/national_classes.yaml``, which also drives QGIS styles,
colour tables and raster attribute tables.  Global/national products (ESA WorldCover, Esri LULC,
Dynamic World, CLCD) are mapped onto it through ``configs/landcover/mappings/<product>.yaml``
(spec §1.3).  Reclassification is a 256-entry lookup table applied block by block, so it stays lazy
on Dask-backed arrays.

Auxiliary rules (spec §1.3), each optional, each marked per source class in the mapping
(``split:``): grassland cover by FVC (``grassland_fvc``), sparse vegetation in bare classes by FVC
(``sparse_fvc``), rivers vs lakes/reservoirs from a water-body layer (``water_body``,
:func:`split_water`), paddy rice from a rice layer (``paddy``, :func:`paddy_from_calendar`).

Codes in the output: ``0`` = nodata, ``1``–``6`` = 一级, ``11``–``67`` = 二级; dtype ``uint8``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from eqi.errors import ConfigError, InputError

__all__ = [
    "PRODUCTS",
    "LandCoverClass",
    "ClassTable",
    "SourceClass",
    "ProductMapping",
    "Mapping",
    "FvcSplit",
    "WaterSplit",
    "PaddySplit",
    "SPLIT_RULES",
    "UnmappedCodeWarning",
    "class_table_from_data",
    "mapping_from_data",
    "fvc_split_from_profile",
    "water_split_from_profile",
    "paddy_split_from_profile",
    "reclassify",
    "split_water",
    "paddy_from_calendar",
    "unmapped_codes",
    "class_pixel_counts",
]

#: product id → file name (without ``.yaml``) under ``configs/landcover/mappings/``
PRODUCTS: dict[str, str] = {
    "esa-worldcover": "esa_worldcover",
    "esri-lulc": "esri_lulc",
    "dynamic-world": "dynamic_world",
    "clcd": "clcd",
}

Level = Literal[1, 2]

#: auxiliary split rules a source class may carry (``split:`` in the mapping files)
SPLIT_RULES: tuple[str, ...] = ("grassland_fvc", "sparse_fvc", "water_body", "paddy")

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_LUT_SIZE = 256


class UnmappedCodeWarning(UserWarning):
    """Source pixels carry codes the product mapping does not know; they were set to nodata."""


# --------------------------------------------------------------------------------------------
# class table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandCoverClass:
    """One national land-cover class.

    ``level`` is 1 (一级) or 2 (二级), 0 for the nodata entry; ``parent`` is the 一级 code of a
    二级 class (``None`` otherwise); ``color`` is ``"#rrggbb"``.
    """

    code: int
    level: int
    name_zh: str
    name_en: str
    color: str
    parent: int | None = None
    tag: str = ""

    @property
    def rgb(self) -> tuple[int, int, int]:
        """Colour as an (r, g, b) tuple of 0–255 integers."""
        return tuple(int(self.color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass(frozen=True)
class ClassTable:
    """The national class table (一级 and 二级 classes plus the nodata entry)."""

    id: str
    version: str
    source: str
    tag: str
    nodata: LandCoverClass
    classes: tuple[LandCoverClass, ...]

    @cached_property
    def _by_code(self) -> dict[int, LandCoverClass]:
        return {c.code: c for c in self.classes}

    def __iter__(self) -> Iterator[LandCoverClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def get(self, code: int) -> LandCoverClass:
        """Class with ``code``; the nodata entry for the nodata code."""
        if code == self.nodata.code:
            return self.nodata
        try:
            return self._by_code[int(code)]
        except KeyError:
            raise InputError(
                f"land-cover code {code} is not in the national class table "
                f"({self.id} v{self.version}); valid codes: {sorted(self._by_code)}"
            ) from None

    def of_level(self, level: Level) -> tuple[LandCoverClass, ...]:
        """Classes of one level (1 = 一级, 2 = 二级), in code order."""
        _check_level(level)
        return tuple(c for c in self.classes if c.level == level)

    def codes(self, level: Level) -> tuple[int, ...]:
        """Codes of one level, ascending."""
        return tuple(c.code for c in self.of_level(level))

    def parent_lookup(self) -> np.ndarray:
        """256-entry uint8 array: 二级 code → its 一级 code, 一级 code → itself, else nodata."""
        lut = np.full(_LUT_SIZE, self.nodata.code, dtype=np.uint8)
        for c in self.classes:
            lut[c.code] = c.code if c.level == 1 else c.parent
        return lut

    def colormap(self, level: Level) -> dict[int, tuple[int, int, int, int]]:
        """``{code: (r, g, b, a)}`` for one level plus a transparent nodata entry (rasterio style)."""
        cmap = {self.nodata.code: (*self.nodata.rgb, 0)}
        cmap.update({c.code: (*c.rgb, 255) for c in self.of_level(level)})
        return cmap


def _check_level(level: object) -> None:
    if level not in (1, 2):
        raise ConfigError(f"land-cover level must be 1 (一级) or 2 (二级), got {level!r}")


def _make_class(entry: Any, level: int, where: str) -> LandCoverClass:
    if not isinstance(entry, AnyMapping):
        raise ConfigError(f"{where}: each class must be a mapping, got {entry!r}")
    try:
        cls = LandCoverClass(
            code=int(entry["code"]),
            level=level,
            name_zh=str(entry["name_zh"]),
            name_en=str(entry["name_en"]),
            color=str(entry["color"]),
            parent=None if entry.get("parent") is None else int(entry["parent"]),
            tag=str(entry.get("tag", "")),
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: class {entry!r} lacks the field {exc}") from None
    if not _HEX_COLOR.match(cls.color):
        raise ConfigError(f"{where}: class {cls.code} colour {cls.color!r} is not '#rrggbb'")
    if not 0 <= cls.code < _LUT_SIZE:
        raise ConfigError(f"{where}: class code {cls.code} must lie in 0..255")
    return cls


def class_table_from_data(data: AnyMapping[str, Any], where: str) -> ClassTable:
    """The national class table from its parsed YAML (``configs/landcover/national_classes.yaml``).

    Raises :class:`~eqi.errors.ConfigError` when it is inconsistent (duplicate codes, bad colours,
    a 二级 class whose parent is not a 一级 code); ``where`` names the file in messages.
    """
    try:
        nodata = _make_class(data["nodata"], 0, where)
        level1 = [_make_class(e, 1, where) for e in data["level1"]]
        level2 = [_make_class(e, 2, where) for e in data["level2"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: needs 'nodata', 'level1' and 'level2' lists ({exc})") from None
    codes = [c.code for c in (nodata, *level1, *level2)]
    if len(codes) != len(set(codes)):
        raise ConfigError(f"{where}: duplicate class codes {sorted(codes)}")
    l1_codes = {c.code for c in level1}
    for c in level2:
        if c.parent not in l1_codes or c.code // 10 != c.parent:
            raise ConfigError(
                f"{where}: 二级 class {c.code} must have a 一级 parent equal to code // 10, "
                f"got parent {c.parent}"
            )
    return ClassTable(
        id=str(data.get("id", "")),
        version=str(data.get("version", "")),
        source=str(data.get("source", "")).strip(),
        tag=str(data.get("tag", "")),
        nodata=nodata,
        classes=tuple(sorted((*level1, *level2), key=lambda c: c.code)),
    )


# --------------------------------------------------------------------------------------------
# product mappings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceClass:
    """One class of a source product and its national targets (0/0 = mapped to nodata)."""

    code: int
    name: str
    level1: int
    level2: int
    split: str | None = None
    note: str = ""
    tag: str = ""
    source: str = ""

    @property
    def to_nodata(self) -> bool:
        """True if the class is mapped to nodata (e.g. Esri clouds)."""
        return self.level1 == 0


@dataclass(frozen=True)
class ProductMapping:
    """Mapping of one product's class codes onto the national classes.

    ``source`` is the citation (spec section and source id), ``tag`` the verification tag of the
    source codes, ``mapping_tag`` that of the target classes, ``nodata`` the product's documented
    nodata code (``None`` if it has none).
    """

    product: str
    name: str
    versions: tuple[str, ...]
    source: str
    tag: str
    mapping_tag: str
    nodata: int | None
    classes: tuple[SourceClass, ...]
    nodata_note: str = ""

    @cached_property
    def _by_code(self) -> dict[int, SourceClass]:
        return {c.code: c for c in self.classes}

    def __getitem__(self, code: int) -> SourceClass:
        return self._by_code[code]

    @property
    def codes(self) -> tuple[int, ...]:
        """Documented source class codes (excluding the nodata code)."""
        return tuple(sorted(self._by_code))

    def lookup(self, level: Level, nodata_out: int = 0) -> np.ndarray:
        """256-entry uint8 lookup table source code → national code at ``level``.

        Codes not in the mapping, and classes mapped to nodata, give ``nodata_out``.
        """
        _check_level(level)
        lut = np.full(_LUT_SIZE, nodata_out, dtype=np.uint8)
        for c in self.classes:
            if not c.to_nodata:
                lut[c.code] = c.level1 if level == 1 else c.level2
        return lut

    def known(self) -> np.ndarray:
        """256-entry bool array: True for documented codes and the product's nodata code."""
        ok = np.zeros(_LUT_SIZE, dtype=bool)
        ok[list(self.codes)] = True
        if self.nodata is not None and 0 <= self.nodata < _LUT_SIZE:
            ok[self.nodata] = True
        return ok

    def split_mask(self, rule: str = "grassland_fvc") -> np.ndarray:
        """256-entry bool array: True for source codes carrying the auxiliary split ``rule``."""
        mask = np.zeros(_LUT_SIZE, dtype=bool)
        for c in self.classes:
            if c.split == rule:
                mask[c.code] = True
        return mask


#: short alias used in the issue text
Mapping = ProductMapping


def mapping_from_data(
    product: str, data: AnyMapping[str, Any], table: ClassTable, where: str
) -> ProductMapping:
    """The mapping of ``product`` from its parsed YAML (``configs/landcover/mappings/``).

    Every target code is checked against the class table and every 一级 target against the parent
    of its 二级 default; :class:`~eqi.errors.ConfigError` names the offending entry.
    """
    if data.get("product") != product:
        raise ConfigError(f"{where}: 'product' must be '{product}', got {data.get('product')!r}")
    raw = data.get("classes")
    if not isinstance(raw, AnyMapping) or not raw:
        raise ConfigError(f"{where}: needs a non-empty 'classes' mapping of source code → target")
    classes = []
    for code, entry in raw.items():
        classes.append(_make_source_class(code, entry, table, where))
    nodata = data.get("nodata")
    if nodata is not None and int(nodata) in {c.code for c in classes}:
        raise ConfigError(f"{where}: nodata {nodata} is also a class code")
    return ProductMapping(
        product=product,
        name=str(data.get("name", product)),
        versions=tuple(str(v) for v in data.get("versions", ())),
        source=" ".join(str(data.get("source", "")).split()),
        tag=str(data.get("tag", "")),
        mapping_tag=str(data.get("mapping_tag", "")),
        nodata=None if nodata is None else int(nodata),
        classes=tuple(sorted(classes, key=lambda c: c.code)),
        nodata_note=" ".join(str(data.get("nodata_note", "")).split()),
    )


def _make_source_class(code: Any, entry: Any, table: ClassTable, where: str) -> SourceClass:
    if not isinstance(code, int) or not 0 <= code < _LUT_SIZE or not isinstance(entry, AnyMapping):
        raise ConfigError(f"{where}: class key {code!r} must be an integer 0..255 with a mapping")
    l1, l2 = entry.get("level1"), entry.get("level2")
    if (l1 is None) != (l2 is None):
        raise ConfigError(f"{where}: class {code}: level1 and level2 must both be set or both null")
    if l1 is None:
        return SourceClass(
            code, str(entry.get("name", code)), 0, 0, None, str(entry.get("note", "")),
            str(entry.get("tag", "")), " ".join(str(entry.get("source", "")).split()),
        )  # fmt: skip
    l1, l2 = int(l1), int(l2)
    if l1 not in table.codes(1) or l2 not in table.codes(2):
        raise ConfigError(
            f"{where}: class {code} maps to ({l1}, {l2}), not a 一级/二级 pair of the class table"
        )
    if table.get(l2).parent != l1:
        raise ConfigError(f"{where}: class {code}: 二级 {l2} does not belong to 一级 {l1}")
    split = entry.get("split")
    if split is not None and split not in SPLIT_RULES:
        raise ConfigError(
            f"{where}: class {code}: unknown split rule {split!r}; use one of {list(SPLIT_RULES)}"
        )
    return SourceClass(
        code=code,
        name=str(entry.get("name", code)),
        level1=l1,
        level2=l2,
        split=split,
        note=str(entry.get("note", "")),
        tag=str(entry.get("tag", "")),
        source=" ".join(str(entry.get("source", "")).split()),
    )


# --------------------------------------------------------------------------------------------
# FVC split of grassland
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FvcSplit:
    """Grassland cover classes from FVC (0–1), from ``configs/methods/landcover.yaml``.

    FVC > ``high_min`` → ``high_code``; ``medium_min`` ≤ FVC ≤ ``high_min`` → ``medium_code``;
    ``low_min`` ≤ FVC < ``medium_min`` → ``low_code``; FVC < ``low_min`` → ``below_low_code``.
    """

    high_min: float
    medium_min: float
    low_min: float
    high_code: int
    medium_code: int
    low_code: int
    below_low_code: int
    tag: str = ""

    def classify(self, fvc: np.ndarray) -> np.ndarray:
        """二级 code (uint8) for each FVC value; NaN gives 0 (caller keeps its default)."""
        out = np.select(
            [fvc > self.high_min, fvc >= self.medium_min, fvc >= self.low_min, fvc < self.low_min],
            [self.high_code, self.medium_code, self.low_code, self.below_low_code],
            default=0,
        )
        return out.astype(np.uint8)


def fvc_split_from_profile(profile: AnyMapping[str, Any], table: ClassTable) -> FvcSplit:
    """Grassland FVC thresholds of the ``landcover`` method profile, checked against ``table``."""
    params = profile.get("grassland_fvc_split")
    if not isinstance(params, AnyMapping):
        raise ConfigError("configs/methods/landcover.yaml lacks the 'grassland_fvc_split' section")
    try:
        split = FvcSplit(
            high_min=float(params["high_min"]),
            medium_min=float(params["medium_min"]),
            low_min=float(params["low_min"]),
            high_code=int(params["high_code"]),
            medium_code=int(params["medium_code"]),
            low_code=int(params["low_code"]),
            below_low_code=int(params["below_low_code"]),
            tag=str(params.get("tag", "")),
        )
    except KeyError as exc:
        raise ConfigError(
            f"configs/methods/landcover.yaml grassland_fvc_split lacks {exc}"
        ) from None
    if not 0 <= split.low_min < split.medium_min < split.high_min <= 1:
        raise ConfigError(
            "configs/methods/landcover.yaml grassland_fvc_split: need 0 ≤ low_min < medium_min "
            f"< high_min ≤ 1, got {split.low_min}, {split.medium_min}, {split.high_min}"
        )
    for code in (split.high_code, split.medium_code, split.low_code, split.below_low_code):
        if code not in table.codes(2):
            raise ConfigError(f"configs/methods/landcover.yaml: {code} is not a 二级 class code")
    return split


# --------------------------------------------------------------------------------------------
# water bodies and paddy rice
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterSplit:
    """Rivers vs lakes/reservoirs from a water-body layer (``water_split`` of the profile).

    A boolean layer is a river mask (True → ``river_code``, False → ``not_river_code``); an
    integer layer holds national codes (``river_code``/``lake_code``/``reservoir_code``; any
    other value = no information, the pixel keeps its code).
    """

    river_code: int
    lake_code: int
    reservoir_code: int
    not_river_code: int
    tag: str = ""

    @property
    def codes(self) -> tuple[int, int, int]:
        return (self.river_code, self.lake_code, self.reservoir_code)

    def targets(self, layer: np.ndarray) -> np.ndarray:
        """uint8 target code per pixel of ``layer`` (0 = no information)."""
        if layer.dtype == bool:
            return np.where(layer, self.river_code, self.not_river_code).astype(np.uint8)
        return np.where(np.isin(layer, self.codes), layer, 0).astype(np.uint8)


@dataclass(frozen=True)
class PaddySplit:
    """Paddy rice (水田) within classes carrying ``split: paddy`` (``paddy_split`` of the profile).

    The crop-calendar rule of :func:`paddy_from_calendar`: flooded at transplanting
    (LSWI + ``flood_margin`` ≥ NDVI) and vegetated at the peak (NDVI ≥ ``peak_ndvi_min``).
    """

    paddy_code: int
    flood_margin: float
    peak_ndvi_min: float
    tag: str = ""


def _section(profile: AnyMapping[str, Any], name: str) -> AnyMapping[str, Any]:
    params = profile.get(name)
    if not isinstance(params, AnyMapping):
        raise ConfigError(f"configs/methods/landcover.yaml lacks the '{name}' section")
    return params


def _value(entry: Any) -> Any:
    return entry["value"] if isinstance(entry, AnyMapping) and "value" in entry else entry


def water_split_from_profile(profile: AnyMapping[str, Any], table: ClassTable) -> WaterSplit:
    """River/lake/reservoir codes of the ``landcover`` profile, checked against ``table``."""
    params = _section(profile, "water_split")
    try:
        split = WaterSplit(
            river_code=int(params["river_code"]),
            lake_code=int(params["lake_code"]),
            reservoir_code=int(params["reservoir_code"]),
            not_river_code=int(params["not_river_code"]),
            tag=str(params.get("tag", "")),
        )
    except KeyError as exc:
        raise ConfigError(f"configs/methods/landcover.yaml water_split lacks {exc}") from None
    for code in (*split.codes, split.not_river_code):
        if code not in table.codes(2) or table.get(code).parent != 4:
            raise ConfigError(f"configs/methods/landcover.yaml water_split: {code} is not a 水域 二级 code")
    if split.not_river_code == split.river_code:
        raise ConfigError("configs/methods/landcover.yaml water_split: not_river_code equals river_code")
    return split


def paddy_split_from_profile(profile: AnyMapping[str, Any], table: ClassTable) -> PaddySplit:
    """Paddy code and crop-calendar thresholds of the ``landcover`` profile."""
    params = _section(profile, "paddy_split")
    try:
        calendar = params["calendar"]
        split = PaddySplit(
            paddy_code=int(params["paddy_code"]),
            flood_margin=float(_value(calendar["flood_margin"])),
            peak_ndvi_min=float(_value(calendar["peak_ndvi_min"])),
            tag=str(params.get("tag", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"configs/methods/landcover.yaml paddy_split lacks {exc}") from None
    if split.paddy_code not in table.codes(2):
        raise ConfigError(f"configs/methods/landcover.yaml paddy_split: {split.paddy_code} is not a 二级 code")
    return split


def _water_block(national: np.ndarray, layer: np.ndarray, *, water: WaterSplit) -> np.ndarray:
    target = water.targets(np.broadcast_to(layer, national.shape))
    sel = np.isin(national, water.codes) & (target != 0)
    return np.where(sel, target, national).astype(np.uint8)


def split_water(national: xr.DataArray, water_bodies: xr.DataArray, *, water: WaterSplit) -> xr.DataArray:
    """Rivers vs lakes/reservoirs in a national 二级 map (lazy on Dask).

    Pixels coded 41/42/43 (``water.codes``) take the code the water-body layer gives them
    (:class:`WaterSplit`); pixels without information, and every other class, are unchanged.
    A 一级 map has no such codes and comes back unchanged.

    Parameters
    ----------
    national
        uint8 national classes (e.g. from :func:`reclassify` at level 2 or the classifier).
    water_bodies
        Same grid: a boolean river mask (True = river/canal) or integer national water codes
        (e.g. a rasterised reservoir inventory: 43 inside reservoirs, 42 inside lakes, 0 elsewhere).
    water
        From :func:`water_split_from_profile`.
    """
    _check_aux(national, water_bodies, "water_bodies")
    out = xr.apply_ufunc(
        _water_block, national, water_bodies, kwargs={"water": water},
        dask="parallelized", output_dtypes=[np.uint8], keep_attrs=False,
    )  # fmt: skip
    out.name = national.name
    out.attrs = {**national.attrs, "water_split": "water-body layer"}
    return out


def paddy_from_calendar(
    lswi_flood: xr.DataArray,
    ndvi_flood: xr.DataArray,
    ndvi_peak: xr.DataArray,
    *,
    paddy: PaddySplit,
) -> xr.DataArray:
    """Boolean rice layer from a crop calendar (True = paddy rice; NaN inputs give False).

    ``lswi_flood``/``ndvi_flood``: LSWI = (NIR − SWIR1) / (NIR + SWIR1) and NDVI composited over
    the transplanting window (Sichuan Basin: about late April to May); ``ndvi_peak``: NDVI of the
    peak season (July–August).  Rule: LSWI + ``flood_margin`` ≥ NDVI at transplanting and
    NDVI ≥ ``peak_ndvi_min`` at the peak (thresholds: ``paddy_split.calendar`` of the profile).
    """
    flooded = (lswi_flood + paddy.flood_margin) >= ndvi_flood
    vegetated = ndvi_peak >= paddy.peak_ndvi_min
    out = (flooded & vegetated).fillna(False).astype(bool)
    out.name = "paddy_rice"
    out.attrs = {"long_name": "paddy rice from the crop calendar", "rule_tag": paddy.tag}
    return out


# --------------------------------------------------------------------------------------------
# reclassification
# --------------------------------------------------------------------------------------------


def _source_nodata_codes(
    da: xr.DataArray, mapping: ProductMapping, source_nodata: int | None
) -> tuple[int, ...]:
    """Codes meaning "no data" in the input: the product's own plus the file's (or the caller's)."""
    codes: set[int] = set()
    if mapping.nodata is not None:
        codes.add(mapping.nodata)
    if source_nodata is not None:
        codes.add(int(source_nodata))
    else:
        attr = da.attrs.get("nodata", da.attrs.get("_FillValue", da.encoding.get("_FillValue")))
        if attr is not None and np.isfinite(attr) and float(attr).is_integer():
            codes.add(int(attr))
    clash = codes & set(mapping.codes)
    if clash:
        names = ", ".join(f"{c} ({mapping[c].name})" for c in sorted(clash))
        raise InputError(
            f"this {mapping.product} input declares {names} as nodata, but that is a class of the "
            f"product: those pixels cannot be told apart from missing ones. "
            + (mapping.nodata_note or "Pass source_nodata= the value your file uses for missing pixels.")
        )
    return tuple(sorted(codes))


def _reclass_block(
    codes: np.ndarray,
    *aux: np.ndarray,
    names: tuple[str, ...],
    lut: np.ndarray,
    known: np.ndarray,
    extra_nodata: np.ndarray,
    nodata_out: int,
    masks: dict[str, np.ndarray],
    split: FvcSplit | None,
    water: WaterSplit | None,
    paddy: PaddySplit | None,
    parent: np.ndarray | None,
    product: str,
) -> np.ndarray:
    """Apply the lookup table, then the auxiliary splits, to one block of source codes."""
    layers = dict(zip(names, aux, strict=True))
    if codes.dtype == np.uint8:
        idx = codes
        inside = np.ones(codes.shape, dtype=bool)
        unknown = ~known[idx]
    else:
        inside = (codes >= 0) & (codes < _LUT_SIZE)
        idx = np.where(inside, codes, 0).astype(np.intp)
        unknown = ~inside | ~known[idx]
        if extra_nodata.size:
            unknown &= ~np.isin(codes, extra_nodata)
    out = lut[idx]
    if codes.dtype != np.uint8:
        out = np.where(inside, out, np.uint8(nodata_out))
    if unknown.any():
        bad = np.unique(codes[unknown])
        warnings.warn(
            f"{product}: source codes {bad[:20].tolist()} are not in the mapping "
            f"(configs/landcover/mappings); {int(unknown.sum())} pixels set to nodata {nodata_out}",
            UnmappedCodeWarning,
            stacklevel=2,
        )

    def national(code: np.ndarray | int) -> np.ndarray:
        """A 二级 code in the output level."""
        return parent[code] if parent is not None else np.asarray(code, dtype=np.uint8)

    fvc = layers.get("fvc")
    if fvc is not None and split is not None:
        fvc = np.broadcast_to(fvc, codes.shape)
        finite = np.isfinite(fvc) & inside
        cover = national(split.classify(fvc))
        grass = masks["grassland_fvc"][idx] & finite
        sparse = masks["sparse_fvc"][idx] & finite & (fvc >= split.low_min)
        out = np.where(grass | sparse, cover, out)
    layer = layers.get("water_bodies")
    if layer is not None and water is not None and parent is None:
        target = water.targets(np.broadcast_to(layer, codes.shape))
        sel = masks["water_body"][idx] & inside & (target != 0)
        out = np.where(sel, target, out)
    rice = layers.get("rice")
    if rice is not None and paddy is not None:
        sel = masks["paddy"][idx] & inside & np.broadcast_to(rice, codes.shape).astype(bool)
        out = np.where(sel, national(paddy.paddy_code), out)
    return out.astype(np.uint8, copy=False)


def reclassify(
    da: xr.DataArray,
    mapping: ProductMapping,
    level: Level = 1,
    nodata_out: int = 0,
    *,
    table: ClassTable,
    fvc: xr.DataArray | None = None,
    split: FvcSplit | None = None,
    source_nodata: int | None = None,
    water_bodies: xr.DataArray | None = None,
    water: WaterSplit | None = None,
    rice: xr.DataArray | None = None,
    paddy: PaddySplit | None = None,
) -> xr.DataArray:
    """Reclassify product class codes into the national classes (uint8, lazy on Dask).

    Parameters
    ----------
    da
        Integer class codes of ``mapping.product`` (any dims; NumPy- or Dask-backed).
    mapping
        From :func:`mapping_from_data` (``eqi.io.landcover_tables.load_mapping``).
    table
        The national class table (:func:`class_table_from_data`).
    level
        1 (一级, codes 1–6) or 2 (二级, codes 11–67).
    nodata_out
        Output code for nodata, for classes mapped to nodata (Esri clouds) and for unmapped
        codes (these also raise an :class:`UnmappedCodeWarning` when computed).
    fvc
        Optional growing-season fractional vegetation cover (0–1, same grid): splits classes with
        ``split: grassland_fvc`` into 31/32/33 (FVC below the low threshold → 65 / 一级 6) and
        turns classes with ``split: sparse_fvc`` (bare/sparse) with FVC ≥ the low threshold into
        31/32/33 (一级 3); thresholds from ``split`` (:func:`fvc_split_from_profile`).  NaN FVC
        keeps the mapping's default.
    source_nodata
        Nodata code of the input; default: the product's documented nodata and ``da.attrs``
        ``nodata``/``_FillValue``.
    water_bodies, water
        Optional water-body layer (boolean river mask or national water codes, same grid) and
        its codes (:func:`water_split_from_profile`) for classes with ``split: water_body``
        (level 2 only; see :func:`split_water`).  Without it water keeps the mapping's default.
    rice, paddy
        Optional boolean rice layer (True = paddy rice; an auxiliary rice map or
        :func:`paddy_from_calendar`) and the paddy code (:func:`paddy_split_from_profile`) for
        classes with ``split: paddy``.  Without it they keep the mapping's default.

    Returns
    -------
    xr.DataArray
        uint8 national class codes on the same grid, ``attrs["nodata"] = nodata_out``.
    """
    _check_level(level)
    if not np.issubdtype(da.dtype, np.integer):
        raise InputError(
            f"land-cover codes must be integers, got dtype {da.dtype}; load the {mapping.product} "
            "layer as uint8 with its nodata value (not as float)"
        )
    if not 0 <= nodata_out < _LUT_SIZE or nodata_out in table:
        raise ConfigError(f"nodata_out={nodata_out} must be 0..255 and not a national class code")
    nodata_codes = _source_nodata_codes(da, mapping, source_nodata)
    lut = mapping.lookup(level, nodata_out)
    known = mapping.known()
    small = [c for c in nodata_codes if 0 <= c < _LUT_SIZE]
    lut[small] = nodata_out
    known[small] = True
    extra = np.asarray([c for c in nodata_codes if not 0 <= c < _LUT_SIZE], dtype=np.int64)

    names: list[str] = []
    args = [da]
    if fvc is not None:
        _check_aux(da, fvc, "fvc")
        if not np.issubdtype(fvc.dtype, np.floating):
            raise InputError(f"fvc must be a float array (0–1), got dtype {fvc.dtype}")
        if split is None:
            raise ConfigError("reclassify with fvc needs the grassland FVC split (fvc_split_from_profile)")
        names.append("fvc")
        args.append(fvc)
    if water_bodies is not None:
        _check_aux(da, water_bodies, "water_bodies")
        if water_bodies.dtype != bool and not np.issubdtype(water_bodies.dtype, np.integer):
            raise InputError(
                f"water_bodies must be a boolean river mask or integer water codes, got {water_bodies.dtype}"
            )
        if water is None:
            raise ConfigError("reclassify with water_bodies needs the water split (water_split_from_profile)")
        names.append("water_bodies")
        args.append(water_bodies)
    if rice is not None:
        _check_aux(da, rice, "rice")
        if rice.dtype != bool and not np.issubdtype(rice.dtype, np.integer):
            raise InputError(f"rice must be a boolean layer (True = paddy rice), got {rice.dtype}")
        if paddy is None:
            raise ConfigError("reclassify with rice needs the paddy split (paddy_split_from_profile)")
        names.append("rice")
        args.append(rice)

    out = xr.apply_ufunc(
        _reclass_block,
        *args,
        kwargs={
            "names": tuple(names),
            "lut": lut,
            "known": known,
            "extra_nodata": extra,
            "nodata_out": nodata_out,
            "masks": {rule: mapping.split_mask(rule) for rule in SPLIT_RULES},
            "split": split if fvc is not None else None,
            "water": water if water_bodies is not None else None,
            "paddy": paddy if rice is not None else None,
            "parent": table.parent_lookup() if level == 1 else None,
            "product": mapping.product,
        },
        dask="parallelized",
        output_dtypes=[np.uint8],
        keep_attrs=False,
    )
    out.name = f"landcover_level{level}"
    out.attrs = {
        "long_name": f"land cover, national classes level {level} ({'一级' if level == 1 else '二级'})",
        "nodata": nodata_out,
        "class_table": f"{table.id} v{table.version}",
        "source_product": mapping.product,
        "mapping_tag": mapping.mapping_tag,
        "fvc_split": "yes" if fvc is not None else "no",
        "water_split": "water-body layer" if water_bodies is not None else "none: mapping default",
        "paddy_split": "rice layer" if rice is not None else "none: mapping default",
    }
    return out


def _check_aux(da: xr.DataArray, other: xr.DataArray, name: str) -> None:
    """``other`` (an auxiliary layer called ``name``) must lie on the grid of ``da``."""
    for dim in other.dims:
        if dim not in da.dims or other.sizes[dim] != da.sizes[dim]:
            raise InputError(
                f"{name} dims {dict(other.sizes)} do not match the land-cover grid {dict(da.sizes)}; "
                "put both on the same grid first"
            )
    try:
        xr.align(da, other, join="exact")
    except ValueError:
        raise InputError(
            f"{name} coordinates differ from the land-cover grid; put both on the same grid first"
        ) from None


# --------------------------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------------------------


def _block_counts(block: np.ndarray) -> dict[int, int]:
    if block.dtype == np.uint8:
        counts = np.bincount(block.ravel(), minlength=_LUT_SIZE)
        return {int(c): int(n) for c, n in enumerate(counts) if n}
    values, counts = np.unique(block, return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts, strict=True)}


def class_pixel_counts(da: xr.DataArray, *, nodata: int | None = None) -> dict[int, int]:
    """Pixel count per integer code, ``{code: count}`` sorted by code (codes == ``nodata`` left out).

    Dask-backed arrays are counted block by block (bounded memory).
    """
    if not np.issubdtype(da.dtype, np.integer):
        raise InputError(f"class codes must be integers, got dtype {da.dtype}")
    data = da.data
    if isinstance(data, dsa.Array):
        parts = dask.compute(*[dask.delayed(_block_counts)(b) for b in data.to_delayed().ravel()])
    else:
        parts = (_block_counts(np.asarray(data)),)
    total: dict[int, int] = {}
    for part in parts:
        for code, n in part.items():
            total[code] = total.get(code, 0) + n
    return {c: total[c] for c in sorted(total) if c != nodata}


def unmapped_codes(
    da: xr.DataArray, mapping: ProductMapping, *, source_nodata: int | None = None
) -> dict[int, int]:
    """Codes present in ``da`` that ``mapping`` does not know (nor treats as nodata): ``{code: pixels}``."""
    nodata_codes = set(_source_nodata_codes(da, mapping, source_nodata))
    known = set(mapping.codes) | nodata_codes
    return {c: n for c, n in class_pixel_counts(da).items() if c not in known}
