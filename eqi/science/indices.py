"""Spectral indices, tasseled-cap wetness and land-surface temperature from a composite.

Every function takes a composite :class:`xarray.Dataset` whose variables are named by the
sensor-neutral aliases (``blue, green, red, nir, swir16, swir22`` reflectance 0-1, NaN = nodata;
optionally ``coastal, rededge1-3, nir08, nir09``; ``lwir`` = surface temperature in kelvin) and
returns a float32 :class:`xarray.DataArray` on the same grid.  Nothing is computed eagerly: on a
Dask-backed Dataset the result is a lazy Dask graph, on a NumPy-backed one a NumPy array.
Non-finite results (e.g. 0/0) are NaN.

Input rule (indices never leave their mathematical range): a reflectance input outside [0, 1]
(spec §0.2) or NaN makes the index NaN at that pixel.  With every input in [0, 1] the normalised
differences (NDVI, NDWI, MNDWI, NDBI, SI) lie in [-1, 1] or are 0/0 = NaN, and so does IBI: its
parts 2 S1/(S1+N) and N/(N+R) + G/(G+S1) are both in [0, 2], so their normalised difference is in
[-1, 1]; a part that is 0/0 (e.g. S1 = N = 0) is NaN and so is IBI.  No clipping is needed:
float rounding is monotonic, so |a - b| <= a + b holds in float32 too.  The values IBI reached
before this rule (+-4e3) came from negative reflectance, i.e. tiny or negative denominators.
A composite whose reflectance was masked by the valid range and clamped to [0, 1] carries
``attrs["reflectance_in_range"] = True`` (:func:`eqi.science.composite.composite`); its bands
are then used as they are, without the extra pass.

Sentinel-2 NIR (spec §6.1: "B8A (or B8)"): ``indices.yaml`` ``nir_band`` names the band whose
composite serves as ``nir`` for Sentinel-2 scenes (default ``nir08`` = B8A, the band that matches
OLI B5); the composite stage takes it per observation (:func:`nir_sources`).

Where the Awesome Spectral Indices catalogue (``spyndex``) defines the same formula, it is the
implementation: NDVI, EVI, SAVI, NDWI, MNDWI, NDBI and SI (= spyndex ``BI``, "Bare Soil Index").
IBI, NDBSI, WET and LST follow spec §6.1 directly (spyndex has no tasseled-cap wetness, no LST,
no NDBSI, and its ``IBI`` is a different formula, see :func:`ibi`).  Constants (EVI, SAVI) and the
per-sensor wetness coefficients come from ``configs/methods/indices.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import spyndex
import xarray as xr

from eqi.errors import BandError, ConfigError, ThermalSourceError
from eqi.params import param_value

__all__ = [
    "IndexInfo",
    "INDEX_INFO",
    "INDEX_FUNCTIONS",
    "DERIVED_PRODUCTS",
    "SENSORS",
    "THERMAL_OPTIONS",
    "required_bands",
    "compute_index",
    "wetness_coefficients",
    "wetness_sets",
    "nir_sources",
    "bandpass_coefficients",
    "REFLECTANCE_RANGE",
    "ndvi",
    "evi",
    "savi",
    "ndwi",
    "mndwi",
    "ndbi",
    "si",
    "ibi",
    "ndbsi",
    "wet",
    "lst",
    "lst_celsius",
]

SENSORS: tuple[str, ...] = ("landsat5", "landsat7", "landsat8", "landsat9", "sentinel2")

KELVIN_AT_0C = 273.15  # physical definition of the Celsius scale, not a method parameter
REFLECTANCE_RANGE = (0.0, 1.0)  # spec §0.2: reflectance is unitless in [0, 1]
_NOT_REFLECTANCE = frozenset({"lwir"})

THERMAL_OPTIONS = (
    "Options (spec §6.1 Heat): 1) run RSEI on a Landsat 8/9 composite (all four components on the "
    "30 m grid); 2) provide a Landsat ST_B10 surface-temperature composite on the same grid as the "
    "'lwir' variable (kelvin); 4) ask explicitly for the three-component variant 'rsei3' (NDVI, WET, "
    "NDBSI), which is NOT comparable with 4-component RSEI."
)


@dataclass(frozen=True)
class IndexInfo:
    """Metadata of one index product.

    ``valid_range`` is the mathematically possible range (None when unbounded); values are not
    clipped to it.  ``bands`` is None when the band set depends on the sensor (WET).
    """

    name: str
    long_name: str
    units: str
    valid_range: tuple[float, float] | None
    bands: tuple[str, ...] | None
    source: str

    def attrs(self) -> dict[str, Any]:
        """Attributes written onto the output DataArray."""
        out: dict[str, Any] = {
            "long_name": self.long_name,
            "units": self.units,
            "source": self.source,
        }
        if self.valid_range is not None:
            out["valid_range"] = list(self.valid_range)
        return out


_UNIT = "1"  # dimensionless
_PM1 = (-1.0, 1.0)

INDEX_INFO: dict[str, IndexInfo] = {
    i.name: i
    for i in (
        IndexInfo("ndvi", "Normalized Difference Vegetation Index", _UNIT, _PM1, ("nir", "red"), "spyndex:NDVI"),
        IndexInfo("evi", "Enhanced Vegetation Index", _UNIT, None, ("nir", "red", "blue"), "spyndex:EVI"),
        IndexInfo("savi", "Soil-Adjusted Vegetation Index", _UNIT, _PM1, ("nir", "red"), "spyndex:SAVI"),
        IndexInfo("ndwi", "Normalized Difference Water Index (McFeeters)", _UNIT, _PM1, ("green", "nir"), "spyndex:NDWI"),
        IndexInfo("mndwi", "Modified Normalized Difference Water Index", _UNIT, _PM1, ("green", "swir16"), "spyndex:MNDWI"),
        IndexInfo("ndbi", "Normalized Difference Built-up Index", _UNIT, _PM1, ("swir16", "nir"), "spyndex:NDBI"),
        IndexInfo("si", "Soil Index (RSEI dryness part)", _UNIT, _PM1, ("swir16", "red", "nir", "blue"), "spyndex:BI; spec §6.1 SI"),
        IndexInfo("ibi", "Index-based Built-up Index (ratio form)", _UNIT, _PM1, ("swir16", "nir", "red", "green"), "spec §6.1 IBI"),
        IndexInfo("ndbsi", "Normalized Difference Built-up and Soil Index", _UNIT, _PM1, ("swir16", "red", "nir", "blue", "green"), "spec §6.1 NDBSI = (SI + IBI) / 2"),
        IndexInfo("wet", "Tasseled-cap wetness", _UNIT, None, None, "spec §6.1; configs/methods/indices.yaml"),
        IndexInfo("lst", "Land surface temperature", "K", None, ("lwir",), "spec §6.1 Heat; Landsat C2 L2 ST_B10"),
    )
}  # fmt: skip

# Products computed from indices: which indices they need (the pipeline loads their bands).
DERIVED_PRODUCTS: dict[str, tuple[str, ...]] = {
    "fvc": ("ndvi", "mndwi"),  # MNDWI: the water mask kept out of the NDVI percentiles
    "rsei": ("ndvi", "wet", "lst", "ndbsi", "mndwi"),
    "rsei3": ("ndvi", "wet", "ndbsi", "mndwi"),
}


# --------------------------------------------------------------------------------------- helpers


def _params(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if params is None:
        raise TypeError("pass the 'indices' method profile (eqi.resources.load_profile('indices'))")
    return params


def _bands(ds: xr.Dataset, names: tuple[str, ...], index: str) -> dict[str, xr.DataArray]:
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise BandError(
            f"index '{index}' needs band(s) {', '.join(missing)} that the composite lacks "
            f"(has: {', '.join(map(str, ds.data_vars)) or 'nothing'}); load these bands"
        )
    # the input rule of the module docstring; a composite made with the valid range applied says
    # so (attrs reflectance_in_range), and its bands need no second pass
    checked = ds.attrs.get("reflectance_in_range") is True
    out = {}
    for n in names:
        band = ds[n].astype(np.float32, copy=False)
        if n not in _NOT_REFLECTANCE and not checked:
            lo, hi = np.float32(REFLECTANCE_RANGE[0]), np.float32(REFLECTANCE_RANGE[1])
            band = band.where((band >= lo) & (band <= hi))
        out[n] = band
    return out


def _finish(da: xr.DataArray, name: str) -> xr.DataArray:
    """float32, non-finite -> NaN, name and attributes from INDEX_INFO."""
    da = da.astype(np.float32, copy=False)
    da = da.where(np.isfinite(da))
    da.name = name
    da.attrs = INDEX_INFO[name].attrs()
    return da


def _spyndex(index: str, params: dict[str, Any]) -> xr.DataArray:
    return spyndex.computeIndex(index, params=params)


def _sensor(ds: xr.Dataset) -> str:
    sensor = ds.attrs.get("sensor")
    if sensor not in SENSORS:
        raise BandError(
            f"composite attribute 'sensor' is {sensor!r}; it must be one of {', '.join(SENSORS)} "
            "(it selects the tasseled-cap coefficients)"
        )
    return str(sensor)


# --------------------------------------------------------------------------------------- indices


def ndvi(ds: xr.Dataset) -> xr.DataArray:
    """NDVI = (NIR - Red) / (NIR + Red), unitless in [-1, 1] (spyndex ``NDVI``)."""
    b = _bands(ds, ("nir", "red"), "ndvi")
    return _finish(_spyndex("NDVI", {"N": b["nir"], "R": b["red"]}), "ndvi")


def evi(ds: xr.Dataset, params: Mapping[str, Any]) -> xr.DataArray:
    """EVI = g (NIR - Red) / (NIR + C1 Red - C2 Blue + L), unitless (spyndex ``EVI``).

    ``g, C1, C2, L`` from ``indices.yaml`` (``evi``), default 2.5, 6, 7.5, 1.
    """
    c = _params(params)["evi"]
    b = _bands(ds, ("nir", "red", "blue"), "evi")
    p = {"N": b["nir"], "R": b["red"], "B": b["blue"]}
    p.update({k: float(c[k]) for k in ("g", "C1", "C2", "L")})
    return _finish(_spyndex("EVI", p), "evi")


def savi(ds: xr.Dataset, params: Mapping[str, Any]) -> xr.DataArray:
    """SAVI = (1 + L)(NIR - Red) / (NIR + Red + L), unitless (spyndex ``SAVI``; L from config, 0.5)."""
    c = _params(params)["savi"]
    b = _bands(ds, ("nir", "red"), "savi")
    return _finish(_spyndex("SAVI", {"N": b["nir"], "R": b["red"], "L": float(c["L"])}), "savi")


def ndwi(ds: xr.Dataset) -> xr.DataArray:
    """NDWI (McFeeters) = (Green - NIR) / (Green + NIR), unitless (spyndex ``NDWI``)."""
    b = _bands(ds, ("green", "nir"), "ndwi")
    return _finish(_spyndex("NDWI", {"G": b["green"], "N": b["nir"]}), "ndwi")


def mndwi(ds: xr.Dataset) -> xr.DataArray:
    """MNDWI = (Green - SWIR1) / (Green + SWIR1), unitless (spyndex ``MNDWI``; spec §5.3)."""
    b = _bands(ds, ("green", "swir16"), "mndwi")
    return _finish(_spyndex("MNDWI", {"G": b["green"], "S1": b["swir16"]}), "mndwi")


def ndbi(ds: xr.Dataset) -> xr.DataArray:
    """NDBI = (SWIR1 - NIR) / (SWIR1 + NIR), unitless (spyndex ``NDBI``)."""
    b = _bands(ds, ("swir16", "nir"), "ndbi")
    return _finish(_spyndex("NDBI", {"S1": b["swir16"], "N": b["nir"]}), "ndbi")


def si(ds: xr.Dataset) -> xr.DataArray:
    """Soil index SI = [(SWIR1 + Red) - (NIR + Blue)] / [(SWIR1 + Red) + (NIR + Blue)] (spec §6.1).

    Identical to spyndex's ``BI`` ("Bare Soil Index"), which is used; spyndex's ``SI`` is an
    unrelated shadow index.
    """
    b = _bands(ds, ("swir16", "red", "nir", "blue"), "si")
    p = {"S1": b["swir16"], "R": b["red"], "N": b["nir"], "B": b["blue"]}
    return _finish(_spyndex("BI", p), "si")


def _ibi(b: Mapping[str, xr.DataArray]) -> xr.DataArray:
    s1, n, r, g = b["swir16"], b["nir"], b["red"], b["green"]
    built = 2.0 * s1 / (s1 + n)
    veg_water = n / (n + r) + g / (g + s1)
    return (built - veg_water) / (built + veg_water)


def ibi(ds: xr.Dataset) -> xr.DataArray:
    """IBI = {2S1/(S1+N) - [N/(N+R) + G/(G+S1)]} / {2S1/(S1+N) + [N/(N+R) + G/(G+S1)]} (spec §6.1).

    Own implementation: spyndex's ``IBI`` is the index-based form
    (NDBI - (SAVI + MNDWI)/2) / (NDBI + (SAVI + MNDWI)/2) with a SAVI L term, which is not the
    ratio form RSEI's NDBSI uses (spec §6.1, S19) and gives different values.
    """
    b = _bands(ds, ("swir16", "nir", "red", "green"), "ibi")
    return _finish(_ibi(b), "ibi")


def ndbsi(ds: xr.Dataset) -> xr.DataArray:
    """Dryness NDBSI = (SI + IBI) / 2 (spec §6.1, S19), unitless in [-1, 1]."""
    _bands(ds, INDEX_INFO["ndbsi"].bands or (), "ndbsi")
    return _finish((si(ds) + ibi(ds)) / 2.0, "ndbsi")


def wetness_coefficients(
    sensor: str, params: Mapping[str, Any], set_id: str | None = None
) -> tuple[str, dict[str, float]]:
    """Return ``(set_id, {alias: coefficient})`` of the tasseled-cap wetness set for a sensor.

    ``set_id`` overrides the sensor's default set from ``indices.yaml`` (e.g. to keep one set
    for a whole series).
    """
    tc = _params(params)["tasseled_cap_wetness"]
    if set_id is None:
        if sensor not in tc["sensor_sets"]:
            raise ConfigError(
                f"no tasseled-cap wetness set for sensor {sensor!r} in indices.yaml; "
                f"known sensors: {', '.join(tc['sensor_sets'])}"
            )
        set_id = str(tc["sensor_sets"][sensor])
    if set_id not in tc["sets"]:
        raise ConfigError(
            f"tasseled-cap wetness set {set_id!r} not in indices.yaml; "
            f"known sets: {', '.join(tc['sets'])}"
        )
    coeffs = {str(k): float(v) for k, v in tc["sets"][set_id]["coefficients"].items()}
    return set_id, coeffs


def wetness_sets(
    sensors: Sequence[str], params: Mapping[str, Any]
) -> dict[str, tuple[str, dict[str, float]]]:
    """``{sensor: (set id, coefficients)}`` for per-observation wetness in the composite stage."""
    return {s: wetness_coefficients(s, params) for s in sensors}


def nir_sources(params: Mapping[str, Any]) -> dict[str, str]:
    """``{sensor: alias}`` of sensors whose ``nir`` composite comes from another band (``nir_band``)."""
    table = _params(params).get("nir_band", {})
    out = {}
    for sensor, entry in table.items():
        alias = str(param_value(entry))
        if alias not in ("nir", "nir08"):
            raise ConfigError(f"indices.yaml nir_band.{sensor} must be 'nir' or 'nir08', got {alias!r}")
        if alias != "nir":
            out[str(sensor)] = alias
    return out


def bandpass_coefficients(params: Mapping[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{platform: {alias: (slope, intercept)}}`` of the bandpass adjustment in ``indices.yaml``."""
    cfg = _params(params)["bandpass_adjustment"]
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for platform, set_id in cfg["platform_sets"].items():
        set_id = str(param_value(set_id))
        if set_id not in cfg["sets"]:
            raise ConfigError(f"bandpass set {set_id!r} of {platform} not in indices.yaml; known: {', '.join(cfg['sets'])}")
        lines = cfg["sets"][set_id]["coefficients"]
        out[str(platform)] = {str(a): (float(v[0]), float(v[1])) for a, v in lines.items()}
    return out


def wet(
    ds: xr.Dataset, params: Mapping[str, Any], set_id: str | None = None
) -> xr.DataArray:
    """Tasseled-cap wetness = sum of coefficient x reflectance, unitless (spec §6.1).

    A composite that already holds ``wet`` (per-observation wetness, each scene with its own
    sensor's set: :func:`eqi.science.composite.composite` with ``wetness``) returns it, unless
    ``set_id`` asks for another set.  Otherwise the set is chosen by ``ds.attrs["sensor"]``
    (or ``set_id``) and applied to the composite's reflectance; Sentinel-2 needs ``coastal,
    blue, green, red, rededge1-3, nir, nir08, nir09, swir16, swir22``.  The set id is recorded in
    ``attrs["tasseled_cap_set"]``.
    """
    if "wet" in ds.data_vars and set_id is None:
        out = _finish(ds["wet"], "wet")
        out.attrs.update({k: v for k, v in ds["wet"].attrs.items() if k.startswith("tasseled_cap") or k == "method"})
        return out
    sensor = _sensor(ds)
    set_id, coeffs = wetness_coefficients(sensor, params, set_id)
    remapped = str(ds.attrs.get("nir_sources", ""))
    if "nir" in coeffs and f"{sensor}:" in remapped.replace(" ", ""):
        raise ConfigError(
            f"this {sensor} composite's 'nir' is taken from another band ({remapped}), so the "
            f"{set_id} wetness (which weights B08 'nir' and B8A 'nir08' separately) cannot be computed "
            "from it; compute wetness per observation in the composite stage (composite(..., wetness=...))"
        )
    b = _bands(ds, tuple(coeffs), "wet")
    total: xr.DataArray | None = None
    for alias, c in coeffs.items():  # fixed order -> identical rounding on every chunk
        term = b[alias] * np.float32(c)
        total = term if total is None else total + term
    assert total is not None
    out = _finish(total, "wet")
    out.attrs["tasseled_cap_set"] = set_id
    return out


def lst(ds: xr.Dataset) -> xr.DataArray:
    """Land surface temperature in kelvin: the composite's ``lwir`` (Landsat ST_B10, already K).

    Raises :class:`~eqi.errors.ThermalSourceError` when the composite has no ``lwir`` band
    (e.g. Sentinel-2).
    """
    if "lwir" not in ds.data_vars:
        raise ThermalSourceError(
            f"the {ds.attrs.get('sensor', 'given')} composite has no thermal band 'lwir', so LST "
            f"cannot be computed. {THERMAL_OPTIONS}"
        )
    return _finish(ds["lwir"], "lst")


def lst_celsius(lst_k: xr.DataArray) -> xr.DataArray:
    """Convert an LST DataArray from kelvin to degrees Celsius (float32)."""
    out = (lst_k.astype(np.float32, copy=False) - np.float32(KELVIN_AT_0C)).astype(np.float32)
    out.name = "lst_celsius"
    out.attrs = {**lst_k.attrs, "units": "degC", "long_name": "Land surface temperature"}
    return out


def compute_index(name: str, ds: xr.Dataset, params: Mapping[str, Any]) -> xr.DataArray:
    """Index ``name`` of composite ``ds``; ``params`` is the ``indices`` method profile."""
    func = INDEX_FUNCTIONS[name]
    return func(ds, params) if name in _NEEDS_PARAMS else func(ds)


_NEEDS_PARAMS = frozenset({"evi", "savi", "wet"})

INDEX_FUNCTIONS: dict[str, Callable[..., xr.DataArray]] = {
    "ndvi": ndvi,
    "evi": evi,
    "savi": savi,
    "ndwi": ndwi,
    "mndwi": mndwi,
    "ndbi": ndbi,
    "si": si,
    "ibi": ibi,
    "ndbsi": ndbsi,
    "wet": wet,
    "lst": lst,
}


def required_bands(name: str, sensor: str, params: Mapping[str, Any]) -> set[str]:
    """Band aliases a composite must hold to compute index or product ``name`` for ``sensor``.

    ``name`` is a key of :data:`INDEX_FUNCTIONS` or :data:`DERIVED_PRODUCTS` (``fvc``, ``rsei``,
    ``rsei3``).  For ``rsei`` on Sentinel-2 the result includes ``lwir``, which the caller must
    supply from Landsat (see :data:`THERMAL_OPTIONS`).
    """
    if sensor not in SENSORS:
        raise ConfigError(f"unknown sensor {sensor!r}; expected one of {', '.join(SENSORS)}")
    if name in DERIVED_PRODUCTS:
        out: set[str] = set()
        for part in DERIVED_PRODUCTS[name]:
            out |= required_bands(part, sensor, params)
        return out
    if name not in INDEX_INFO:
        known = sorted([*INDEX_INFO, *DERIVED_PRODUCTS])
        raise ConfigError(f"unknown index or product {name!r}; known: {', '.join(known)}")
    bands = INDEX_INFO[name].bands
    if bands is None:  # wet
        return set(wetness_coefficients(sensor, params)[1])
    out = set(bands)
    source = nir_sources(params).get(sensor)
    if "nir" in out and source:  # the sensor's nir composite is made from this band
        out.add(source)
    return out
