"""The product registry: every raster eqi can write, with dtype, nodata, units and style.

``--products`` names come from here.  ``composite`` expands to one median file per reflectance band
(``blue.tif``, ``red.tif`` …); ``count`` is the clear-observation count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from eqi.errors import ConfigError
from eqi.resources import load_profile
from eqi.science.indices import DERIVED_PRODUCTS, INDEX_INFO, required_bands
from eqi.sensors import ALIASES

__all__ = ["ProductSpec", "PRODUCTS", "COMPOSITE_BANDS", "expand_products", "bands_for"]

COMPOSITE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")


@dataclass(frozen=True)
class ProductSpec:
    """How one product is stored and styled."""

    name: str
    description: str
    kind: Literal["continuous", "categorical"]
    dtype: str
    nodata: float | int
    units: str
    ramp: str | None = None  # name in eqi.io.qml.RAMPS
    display_range: tuple[float, float] | None = None  # QGIS min/max; None = data 2-98 %


def _band(alias: str, text: str) -> ProductSpec:
    return ProductSpec(
        alias,
        f"{text} surface reflectance, seasonal median",
        "continuous",
        "float32",
        float("nan"),
        "1",
        "grey",
        (0.0, 0.4),
    )


_NAN = float("nan")

PRODUCTS: dict[str, ProductSpec] = {
    p.name: p
    for p in (
        _band("blue", "Blue"),
        _band("green", "Green"),
        _band("red", "Red"),
        _band("nir", "Near-infrared"),
        _band("swir16", "Shortwave-infrared 1.6 um"),
        _band("swir22", "Shortwave-infrared 2.2 um"),
        ProductSpec("lwir", "Surface temperature (Landsat ST_B10), seasonal median", "continuous", "float32", _NAN, "K", "lst"),
        ProductSpec("count", "Number of clear observations in the season", "continuous", "uint16", 65535, "count", "count"),
        ProductSpec("ndvi", "NDVI of the seasonal composite", "continuous", "float32", _NAN, "1", "ndvi", (-0.2, 0.9)),
        ProductSpec("evi", "EVI of the seasonal composite", "continuous", "float32", _NAN, "1", "ndvi", (-0.2, 0.9)),
        ProductSpec("savi", "SAVI of the seasonal composite", "continuous", "float32", _NAN, "1", "ndvi", (-0.2, 0.9)),
        ProductSpec("ndwi", "NDWI (McFeeters) of the seasonal composite", "continuous", "float32", _NAN, "1", "water", (-0.8, 0.8)),
        ProductSpec("mndwi", "MNDWI of the seasonal composite", "continuous", "float32", _NAN, "1", "water", (-0.8, 0.8)),
        ProductSpec("ndbi", "NDBI of the seasonal composite", "continuous", "float32", _NAN, "1", "dryness", (-0.6, 0.6)),
        ProductSpec("ndbsi", "NDBSI dryness (SI + IBI) / 2", "continuous", "float32", _NAN, "1", "dryness", (-0.6, 0.6)),
        ProductSpec("wet", "Tasseled-cap wetness", "continuous", "float32", _NAN, "1", "water", (-0.4, 0.1)),
        ProductSpec("lst", "Land surface temperature, seasonal median", "continuous", "float32", _NAN, "K", "lst"),
        ProductSpec("fvc", "Fractional vegetation cover (pixel dichotomy)", "continuous", "float32", _NAN, "1", "ndvi", (0.0, 1.0)),
        ProductSpec("rsei", "Remote Sensing Ecological Index", "continuous", "float32", _NAN, "1", "rsei", (0.0, 1.0)),
        ProductSpec("rsei_grade", "RSEI grade (0.2 steps)", "categorical", "uint8", 0, "class"),
        ProductSpec("landcover", "Land cover, national first-level classes", "categorical", "uint8", 0, "class"),
    )
}  # fmt: skip

def expand_products(requested: Iterable[str]) -> list[str]:
    """Validate product names and expand ``composite`` into the reflectance bands.

    Order is stable: bands, count, then the rest as requested.  Unknown names raise
    :class:`ConfigError` listing the known ones.
    """
    names: list[str] = []
    for name in requested:
        name = name.strip().lower()
        if not name:
            continue
        if name == "composite":
            names.extend(COMPOSITE_BANDS)
        elif name in PRODUCTS:
            names.append(name)
        else:
            known = ", ".join(["composite", *PRODUCTS])
            raise ConfigError(f"unknown product '{name}'; known products: {known}")
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    if "rsei_grade" in seen and "rsei" not in seen:
        seen.insert(seen.index("rsei_grade"), "rsei")
    return seen


def bands_for(products: Iterable[str]) -> list[str]:
    """Bands the composite needs for ``products`` (sensor-neutral aliases, Landsat WET bands).

    Index bands come from :func:`eqi.science.indices.required_bands`; sensor-specific extras (the
    Sentinel-2 WET bands) are added by the caller that knows the sensors of a run.
    """
    needed = {"red", "nir"}  # NDVI and the count layer's validity always use them
    for name in products:
        if name in ALIASES:
            needed.add(name)
        elif name in ("rsei", "rsei_grade"):
            needed |= required_bands("rsei", "landsat8", load_profile("indices"))
        elif name == "landcover":
            needed |= set(COMPOSITE_BANDS)
        elif name in INDEX_INFO or name in DERIVED_PRODUCTS:
            needed |= required_bands(name, "landsat8", load_profile("indices"))
    return [b for b in ALIASES if b in needed]
