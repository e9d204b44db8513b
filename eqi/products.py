"""The product registry: every raster eqi can write, declared once.

An entry says what a product needs (composite bands per sensor, other products, an area model),
how it is computed (a function of a :class:`ProductContext`), and how it is stored and styled
(dtype, nodata, units, colour ramp or class table).  The pipeline, the command line (``--products``)
and the docs read this table; adding an NDVI-like product is one :func:`register` call::

    register(Product("gndvi", "Green NDVI", bands=("nir", "green"),
                     compute=lambda ctx: normalised_difference(ctx.band("nir"), ctx.band("green")),
                     ramp="ndvi", display_range=(-0.2, 0.9)))

Products with ``model`` set (FVC, RSEI, land cover) apply a model fitted once over the run's
evaluation area and period (``eqi.pipeline.fit``), so they are comparable across regions and years.
``composite`` in ``--products`` expands to the six reflectance bands; ``count`` is the number of
clear observations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
import xarray as xr

from eqi.errors import ConfigError
from eqi.palettes import evenly_spaced
from eqi.params import Profile
from eqi.science import fvc as fvc_science
from eqi.science import indices
from eqi.science import rsei as rsei_science
from eqi.sensors import ALIASES

__all__ = [
    "ClassEntry",
    "Product",
    "ProductContext",
    "REGISTRY",
    "COMPOSITE_BANDS",
    "register",
    "product",
    "expand_products",
    "ASSESSMENTS",
    "ECOSYSTEM_QUALITY",
    "TREND",
    "assessments",
    "wants_trends",
    "requirements",
    "bands_for",
    "spec_for",
    "normalised_difference",
]

COMPOSITE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
ClassEntry = tuple[int, str, str]  # (value, "#rrggbb", "中文 English")
Family = Literal["composite", "vegetation", "water", "rsei", "landcover", "heat"]
Role = Literal["main", "specific", "thermal"]
_NAN = float("nan")


class ProductContext(Protocol):
    """What a product's compute function may ask for (implemented by the pipeline per tile)."""

    def band(self, name: str) -> xr.DataArray:
        """A composite band (reflectance 0-1, or kelvin for ``lwir``), float32, NaN = nodata."""

    def composite(self, role: Role = "main") -> xr.Dataset:
        """The composite for a role: ``main`` (all sensors), ``specific`` (the sensor family of
        per-sensor products in mixed runs), ``thermal`` (the Landsat composite with ``lwir``)."""

    def get(self, name: str) -> xr.DataArray:
        """Another product's array (computed first or read from the tile store)."""

    def profile(self, name: str) -> Profile:
        """A method profile (``indices``, ``fvc``, ``rsei``, ``landcover``, ...)."""

    def model(self, name: str) -> Any:
        """The area model a fitted product applies (``fvc``, ``rsei``, ``landcover``)."""

    def reference(self, name: str) -> xr.DataArray:
        """An auxiliary layer on the tile grid (e.g. ``landcover``: the reference product)."""


@dataclass(frozen=True)
class Product:
    """One product: inputs, computation, storage and style.

    Parameters
    ----------
    name, description
        File stem (``ndvi`` -> ``ndvi.tif``) and band description.
    bands
        Composite bands it reads, sensor-neutral aliases; or a callable ``(sensor, indices
        profile) -> bands`` when they depend on the sensor (tasseled-cap wetness).
    needs
        Other products computed before it (and kept in the tile store when ``model`` uses them);
        or a callable ``(run options) -> names`` when they depend on a method option (RSEI variant).
    compute
        ``ctx -> DataArray`` on the tile grid.  ``None``: the composite variable of the same name.
    model
        Name of the area model it applies (fitted over the evaluation area and period).
    role
        Which composite it reads: ``main``; ``specific`` for per-sensor coefficients (WET, NDBSI
        and the RSEI components: in mixed Landsat + Sentinel-2 runs the Landsat composite, spec
        §6.1 heat option 1, or Sentinel-2's with heat option 2); ``thermal`` for LST.
    internal
        An intermediate kept in the tile store for another product; not offered in ``--products``.
    same_as
        The product this one equals when both read the same composite (``rsei_ndvi`` is ``ndvi``
        unless the run mixes sensor families): the tile stage then stores it once.
    classes
        ``ctx -> [(value, colour, label)]`` for categorical products.
    """

    name: str
    description: str
    kind: Literal["continuous", "categorical"] = "continuous"
    dtype: str = "float32"
    nodata: float | int = _NAN
    units: str = "1"
    ramp: str | None = None
    display_range: tuple[float, float] | None = None
    bands: tuple[str, ...] | Callable[[str, Profile], Iterable[str]] = ()
    needs: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]] = ()
    compute: Callable[[ProductContext], xr.DataArray] | None = None
    model: str | None = None
    role: Role = "main"
    internal: bool = False
    same_as: str | None = None
    classes: Callable[[ProductContext], Sequence[ClassEntry]] | None = None
    family: Family = "vegetation"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def needs_for(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The products this one needs under the run's method options."""
        return tuple(self.needs(options)) if callable(self.needs) else tuple(self.needs)

    def bands_for(self, sensor: str, indices_profile: Profile) -> set[str]:
        """Composite bands this product reads for ``sensor`` (not counting ``needs``)."""
        if callable(self.bands):
            return set(self.bands(sensor, indices_profile))
        return set(self.bands)


REGISTRY: dict[str, Product] = {}


def register(entry: Product, *, replace_existing: bool = False) -> Product:
    """Add a product to the registry (``replace_existing`` to redefine one); returns it."""
    if entry.name in REGISTRY and not replace_existing:
        raise ConfigError(f"product {entry.name!r} is already registered")
    if entry.name == "composite":
        raise ConfigError("'composite' is reserved (it expands to the reflectance bands)")
    REGISTRY[entry.name] = entry
    return entry


def product(name: str) -> Product:
    """The registry entry of ``name`` (a ConfigError lists the known names)."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(["composite", *(n for n, p in REGISTRY.items() if not p.internal), *ASSESSMENTS])
        raise ConfigError(f"unknown product '{name}'; known products: {known}") from None


def normalised_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """(a - b) / (a + b) as float32; NaN where undefined (0/0, NaN inputs)."""
    out = (a - b) / (a + b)
    return out.where(np.isfinite(out)).astype(np.float32)


# ------------------------------------------------------------------------------ entries


def _reflectance(alias: str, text: str) -> Product:
    return Product(
        alias, f"{text} surface reflectance, seasonal median", ramp="grey",
        display_range=(0.0, 0.4), bands=(alias,), family="composite",
    )


def _index(name: str, description: str, ramp: str, display: tuple[float, float] | None,
           family: Family = "vegetation", role: Role = "main", *, index: str | None = None,
           internal: bool = False) -> Product:
    same_as = index if index and index != name else None
    index = index or name

    def compute(ctx: ProductContext) -> xr.DataArray:
        ds = ctx.composite(role)
        if index == "wet" and "wet" in ds:  # per-observation wetness, composited (sensor-correct)
            return ds["wet"].astype(np.float32)
        return indices.compute_index(index, ds, ctx.profile("indices")).rename(name)

    return Product(
        name, description, ramp=ramp, display_range=display,
        bands=lambda sensor, profile: indices.required_bands(index, sensor, profile),
        compute=compute, family=family, role=role, internal=internal, same_as=same_as,
        units=indices.INDEX_INFO[index].units,
    )


def _fvc(ctx: ProductContext) -> xr.DataArray:
    out, _bounds = fvc_science.fvc(ctx.get("ndvi"), bounds=ctx.model("fvc"), params=ctx.profile("fvc"))
    return out


def _rsei_components(ctx: ProductContext) -> rsei_science.RseiComponents:
    model = ctx.model("rsei")
    layers = {name: ctx.get(_RSEI_LAYER.get(name, name)) for name in rsei_science.VARIANTS[model.variant]}
    return rsei_science.components_from_indices(
        layers, ctx.get("rsei_mndwi"), variant=model.variant, obs_count=ctx.get("rsei_count"),
        observed=ctx.get("rsei_observed"), params=ctx.profile("rsei"),
    )


def _rsei(ctx: ProductContext) -> xr.DataArray:
    value, _grade = rsei_science.apply_rsei_model(ctx.model("rsei"), _rsei_components(ctx))
    return value


def _rsei_grade(ctx: ProductContext) -> xr.DataArray:
    return rsei_science.grade_rsei(ctx.get("rsei"), ctx.model("rsei").grade_edges)


def rsei_grade_classes(ctx: ProductContext) -> list[ClassEntry]:
    """RSEI grade classes (value, colour, "zh en") from the profile's grade table."""
    classes = ctx.profile("rsei")["grading"]["classes"]
    colours = evenly_spaced("rsei", len(classes))
    return [(int(c["value"]), colour, f"{c['zh']} {c['en']}") for c, colour in zip(classes, colours, strict=True)]


# RSEI components come from the sensor-specific composite (heat options, spec §6.1)
_RSEI_LAYER = {"ndvi": "rsei_ndvi"}
def _rsei_inputs(options: Mapping[str, Any]) -> tuple[str, ...]:
    variant = options.get("rsei_variant", "rsei")
    layers = tuple(_RSEI_LAYER.get(n, n) for n in rsei_science.VARIANTS[variant])
    return (*layers, "rsei_mndwi", "rsei_count", "rsei_observed")
_LANDCOVER_INPUTS = (*COMPOSITE_BANDS, "ndvi", "mndwi", "ndbsi", "lc_reference")


def _count(role: Role, name: str = "count") -> Callable[[ProductContext], xr.DataArray]:
    return lambda ctx: ctx.composite(role)[name]


def _lc_reference(ctx: ProductContext) -> xr.DataArray:
    return ctx.reference("landcover")


def _landcover(ctx: ProductContext) -> xr.DataArray:
    return ctx.model("landcover").apply(ctx)


def _landcover_confidence(ctx: ProductContext) -> xr.DataArray:
    return ctx.model("landcover").confidence(ctx)


def _landcover_classes(ctx: ProductContext) -> list[ClassEntry]:
    return ctx.model("landcover").classes()


for _entry in (
    _reflectance("blue", "Blue"),
    _reflectance("green", "Green"),
    _reflectance("red", "Red"),
    _reflectance("nir", "Near-infrared"),
    _reflectance("swir16", "Shortwave-infrared 1.6 um"),
    _reflectance("swir22", "Shortwave-infrared 2.2 um"),
    Product("lwir", "Surface temperature (Landsat ST_B10), seasonal median", units="K", ramp="lst",
            bands=("lwir",), family="heat", role="thermal",
            compute=lambda ctx: ctx.composite("thermal")["lwir"]),
    Product("count", "Number of clear observations in the season", dtype="uint16", nodata=65535,
            units="count", ramp="count", bands=("red", "nir"), family="composite", compute=_count("main")),
    _index("ndvi", "NDVI of the seasonal composite", "ndvi", (-0.2, 0.9)),
    _index("evi", "EVI of the seasonal composite", "ndvi", (-0.2, 0.9)),
    _index("savi", "SAVI of the seasonal composite", "ndvi", (-0.2, 0.9)),
    _index("ndwi", "NDWI (McFeeters) of the seasonal composite", "water", (-0.8, 0.8), "water"),
    _index("mndwi", "MNDWI of the seasonal composite", "water", (-0.8, 0.8), "water"),
    _index("ndbi", "NDBI of the seasonal composite", "dryness", (-0.6, 0.6), "rsei"),
    _index("ndbsi", "NDBSI dryness (SI + IBI) / 2", "dryness", (-0.6, 0.6), "rsei", "specific"),
    _index("wet", "Tasseled-cap wetness", "water", (-0.4, 0.1), "rsei", "specific"),
    _index("lst", "Land surface temperature, seasonal median", "lst", None, "heat", "thermal"),
    _index("rsei_ndvi", "NDVI of the RSEI composite", "ndvi", (-0.2, 0.9), "rsei", "specific",
           index="ndvi", internal=True),
    _index("rsei_mndwi", "MNDWI of the RSEI composite (water mask)", "water", (-0.8, 0.8), "rsei",
           "specific", index="mndwi", internal=True),
    Product("rsei_count", "Clear observations of the RSEI composite", dtype="uint16", nodata=65535,
            units="count", ramp="count", bands=("red", "nir"), family="rsei", role="specific",
            compute=_count("specific"), internal=True, same_as="count"),
    Product("rsei_observed", "Scenes with data at the pixel (RSEI composite)", dtype="uint16", nodata=65535,
            units="count", ramp="count", bands=("red", "nir"), family="rsei", role="specific",
            compute=_count("specific", "observed"), internal=True),
    Product("lc_reference", "Land-cover reference product in the national classes", kind="categorical",
            dtype="uint8", nodata=0, units="class", compute=_lc_reference, family="landcover",
            internal=True),  # an intermediate: never styled, so no class table
    Product("fvc", "Fractional vegetation cover (pixel dichotomy)", ramp="ndvi", display_range=(0.0, 1.0),
            needs=("ndvi", "mndwi"), compute=_fvc, model="fvc"),
    Product("rsei", "Remote Sensing Ecological Index", ramp="rsei", display_range=(0.0, 1.0),
            needs=_rsei_inputs, compute=_rsei, model="rsei", family="rsei"),
    Product("rsei_grade", "RSEI grade (0.2 steps)", kind="categorical", dtype="uint8", nodata=0,
            units="class", needs=("rsei",), compute=_rsei_grade, model="rsei", family="rsei",
            classes=rsei_grade_classes),
    Product("landcover", "Land cover, national classes", kind="categorical", dtype="uint8", nodata=0,
            units="class", needs=_LANDCOVER_INPUTS, compute=_landcover, model="landcover",
            family="landcover", classes=_landcover_classes),
    Product("landcover_confidence", "Land-cover confidence (probability of the mapped class)", ramp="count",
            display_range=(0.0, 1.0), needs=_LANDCOVER_INPUTS, compute=_landcover_confidence,
            model="landcover", family="landcover"),
):
    register(_entry)


# ------------------------------------------------------------------------------ queries


# Regional assessments (eqi.pipeline.assess_stage): not rasters, but indices per region computed
# from the area mosaics of these products (and tabular inputs); asking for one brings them.
ECOSYSTEM_QUALITY = "ecosystem_quality"  # the assessment of eqi.pipeline.eq_stage
ASSESSMENTS: dict[str, tuple[str, ...]] = {"ei": ("ndvi", "landcover"), "eqi": ("fvc", "landcover"),
                                          ECOSYSTEM_QUALITY: ("fvc", "landcover")}  # HJ 1172 (+ supplied rasters)


TREND = "trend"  # the pseudo-product asking for per-pixel trends (eqi.pipeline.trend_stage)


def wants_trends(products: Iterable[str]) -> bool:
    """Whether the run's product list asks for trends (``trend``)."""
    return any(str(p).strip().lower() == TREND for p in products)


def assessments(requested: Iterable[str]) -> list[str]:
    """The regional assessments (``ei``, ``eqi``, ``ecosystem_quality``) among requested product names, in order."""
    return list(dict.fromkeys(n.strip().lower() for n in requested if n.strip().lower() in ASSESSMENTS))


def expand_products(requested: Iterable[str]) -> list[str]:
    """Validate product names and expand ``composite`` into the reflectance bands.

    Order is stable: as requested, ``composite`` replaced by its bands; ``rsei_grade`` brings
    ``rsei``.  Unknown names raise :class:`ConfigError` listing the known ones.
    """
    names: list[str] = []
    for name in requested:
        name = name.strip().lower()
        if not name:
            continue
        if name == "composite":
            names.extend(COMPOSITE_BANDS)
        elif name == "trend":  # per-pixel trends over the years (eqi.pipeline.trend_stage), not a raster
            continue
        elif name in ASSESSMENTS:  # regional indices (issue 8): the rasters they are computed from
            names.extend(ASSESSMENTS[name])
        elif name in ALIASES and name not in REGISTRY:  # an extra band (coastal, rededge1, ...)
            names.append(name)
        elif name in REGISTRY and REGISTRY[name].internal:
            raise ConfigError(f"'{name}' is an internal intermediate, not a product to ask for")
        else:
            names.append(product(name).name)
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    if "rsei_grade" in seen and "rsei" not in seen:
        seen.insert(seen.index("rsei_grade"), "rsei")
    return seen


def requirements(names: Iterable[str], options: Mapping[str, Any] | None = None) -> list[str]:
    """``names`` plus every product they need, dependencies first (topological order).

    ``options`` are the run's method options that change what a product needs (``rsei_variant``).
    """
    options = options or {}
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ConfigError(f"product dependency cycle: {' -> '.join((*path, name))}")
        entry = REGISTRY.get(name)
        for dep in entry.needs_for(options) if entry else ():
            visit(dep, (*path, name))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def bands_for(
    names: Iterable[str], sensors: Mapping[Role, Iterable[str]], indices_profile: Profile,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Composite bands needed to compute ``names`` (and what they need).

    ``sensors`` gives, per composite role, the sensors whose scenes feed that composite (in a
    mixed run with heat option 1 the ``specific`` and ``thermal`` roles have only Landsat).
    """
    needed = {"red", "nir"}  # the clear-observation count's validity uses them
    for name in requirements(names, options):
        entry = REGISTRY.get(name)
        if entry is None:  # an extra band alias
            needed.add(name)
            continue
        for sensor in sensors.get(entry.role, ()):
            needed |= entry.bands_for(sensor, indices_profile)
    return [b for b in ALIASES if b in needed]


def spec_for(name: str) -> Product:
    """Entry for an output name: registry entries, extra bands, percentiles (``red_p10``)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in ALIASES:
        return replace(_reflectance(name, name), description=f"{name} surface reflectance, seasonal median")
    band, _, pct = name.partition("_p")
    if band in REGISTRY and pct:
        entry = REGISTRY[band]
        return replace(entry, name=name, description=entry.description.replace("median", f"percentile {pct}"))
    raise ConfigError(f"unknown output {name!r}")
