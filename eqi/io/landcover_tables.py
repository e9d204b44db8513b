"""Reading the land-cover tables shipped in ``configs/landcover/``: class table and mappings.

The tables are parsed and checked by :mod:`eqi.science.landcover`; this module only finds and
reads the files (cached: the returned objects are immutable).
"""

from __future__ import annotations

from functools import cache

from eqi.errors import ConfigError
from eqi.resources import config_dir, load_profile, load_yaml
from eqi.science.landcover import (
    PRODUCTS,
    ClassTable,
    FvcSplit,
    PaddySplit,
    ProductMapping,
    WaterSplit,
    class_table_from_data,
    fvc_split_from_profile,
    mapping_from_data,
    paddy_split_from_profile,
    water_split_from_profile,
)

__all__ = ["load_class_table", "load_mapping", "load_fvc_split", "load_water_split", "load_paddy_split"]


@cache
def load_class_table() -> ClassTable:
    """The national class table, ``configs/landcover/national_classes.yaml``."""
    path = config_dir() / "landcover" / "national_classes.yaml"
    return class_table_from_data(load_yaml(path), str(path))


@cache
def load_mapping(product: str) -> ProductMapping:
    """The mapping of ``product`` (``esa-worldcover``, ``esri-lulc``, ``dynamic-world``, ``clcd``)."""
    if product not in PRODUCTS:
        raise ConfigError(
            f"unknown land-cover product '{product}'; choose one of {sorted(PRODUCTS)}"
        )
    path = config_dir() / "landcover" / "mappings" / f"{PRODUCTS[product]}.yaml"
    return mapping_from_data(product, load_yaml(path), load_class_table(), str(path))


def load_fvc_split() -> FvcSplit:
    """Grassland FVC thresholds of the ``landcover`` method profile."""
    return fvc_split_from_profile(load_profile("landcover"), load_class_table())


def load_water_split() -> WaterSplit:
    """River/lake/reservoir codes of the ``landcover`` method profile."""
    return water_split_from_profile(load_profile("landcover"), load_class_table())


def load_paddy_split() -> PaddySplit:
    """Paddy code and crop-calendar thresholds of the ``landcover`` method profile."""
    return paddy_split_from_profile(load_profile("landcover"), load_class_table())
