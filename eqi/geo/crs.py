"""Coordinate reference systems: names eqi accepts and the parser every module uses."""

from __future__ import annotations

from pyproj import CRS
from pyproj.exceptions import CRSError

from eqi.errors import ConfigError

__all__ = ["ALBERS_CHINA", "CRS_ALIASES", "parse_crs", "crs_string"]

# Equal-area Albers used by the CLCD product for China (spec §0.2 [V]).
ALBERS_CHINA = (
    "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
)
CRS_ALIASES = {"albers-china": ALBERS_CHINA, "albers": ALBERS_CHINA}


def crs_string(crs: str) -> str:
    """The CRS text for ``crs`` with eqi's aliases (``albers-china``) expanded."""
    return CRS_ALIASES.get(crs, crs)


def parse_crs(crs: str) -> CRS:
    """Parse a projected CRS (EPSG code, WKT, PROJ string or ``albers-china``) in metres.

    Raises :class:`ConfigError` for an unknown or a geographic (degrees) CRS.
    """
    try:
        parsed = CRS.from_user_input(CRS_ALIASES.get(crs, crs))
    except CRSError:
        raise ConfigError(
            f"unknown CRS '{crs}': use an EPSG code such as EPSG:32648, a PROJ string, "
            "or 'albers-china'"
        ) from None
    if parsed.is_geographic:
        raise ConfigError(
            f"CRS '{crs}' is geographic (degrees); give a projected CRS in metres, e.g. albers-china"
        )
    return parsed
