"""Acquisition calendar and sun geometry of the simulated scenes.

Per year: five Landsat dates in June-September, 24 days apart so that Landsat 8 and Landsat 9
alternate (each revisits every 16 days, 8 days apart), plus one date in March/April; four
Sentinel-2 dates in June-August, 25 days apart (S2A and S2B alternate on the 5-day combined
revisit), plus one in November.  Overpass times follow the sun-synchronous local times (Landsat
about 10:05, Sentinel-2 about 10:30 local solar time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "Acquisition",
    "GROWING_SEASON",
    "landsat_dates",
    "sentinel2_dates",
    "sun_angles",
    "in_season",
]

#: Growing season (month, day) bounds, inclusive: June-September (spec §0.4 default for Sichuan).
GROWING_SEASON = ((6, 1), (9, 30))
_LANDSAT9_FIRST = date(2022, 2, 10)  # Landsat 9 operational data start
_S2B_FIRST = date(2017, 7, 1)


@dataclass(frozen=True)
class Acquisition:
    """One simulated overpass."""

    platform: str  # "LC08", "LC09", "S2A", "S2B"
    when: datetime  # UTC
    in_season: bool

    @property
    def day(self) -> date:
        return self.when.date()


def in_season(day: date) -> bool:
    """True when ``day`` falls in the growing season (June-September)."""
    (m0, d0), (m1, d1) = GROWING_SEASON
    return date(day.year, m0, d0) <= day <= date(day.year, m1, d1)


def _overpass(day: date, lon: float, local_solar_hour: float, jitter_s: float) -> datetime:
    utc_hour = (local_solar_hour - lon / 15.0) % 24.0
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(seconds=round(utc_hour * 3600.0 + jitter_s, 3))


def landsat_dates(year: int, lon: float, offset_days: int) -> list[Acquisition]:
    """Landsat 8/9 acquisitions of ``year``; ``offset_days`` (0-15) shifts the whole calendar."""
    anchor = date(year, 6, 3) + timedelta(days=offset_days % 16)
    days = [anchor - timedelta(days=72)] + [anchor + timedelta(days=24 * k) for k in range(5)]
    out = []
    for i, day in enumerate(days):
        steps = (day - anchor).days // 8
        platform = "LC08" if steps % 2 == 0 or day < _LANDSAT9_FIRST else "LC09"
        out.append(Acquisition(platform, _overpass(day, lon, 10.08, 7.3 * i), in_season(day)))
    return out


def sentinel2_dates(year: int, lon: float, offset_days: int) -> list[Acquisition]:
    """Sentinel-2A/B acquisitions of ``year``; ``offset_days`` (0-4) shifts the calendar."""
    anchor = date(year, 6, 8) + timedelta(days=offset_days % 5)
    days = [anchor + timedelta(days=25 * k) for k in range(4)] + [anchor + timedelta(days=150)]
    out = []
    for i, day in enumerate(days):
        steps = (day - anchor).days // 5
        platform = "S2A" if steps % 2 == 0 or day < _S2B_FIRST else "S2B"
        out.append(Acquisition(platform, _overpass(day, lon, 10.5, 3.1 * i), in_season(day)))
    return out


def sun_angles(lon: float, lat: float, when: datetime) -> tuple[float, float]:
    """Approximate solar (azimuth, elevation) in degrees (NOAA general solar position formulas)."""
    when = when.astimezone(UTC)
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60.0 + when.second / 3600.0
    g = 2.0 * math.pi / 365.0 * (doy - 1 + (hour - 12.0) / 24.0)
    eqtime = 229.18 * (
        0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g)
    )  # fmt: skip
    decl = (
        0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g)
    )  # fmt: skip
    true_solar_min = hour * 60.0 + eqtime + 4.0 * lon
    ha = math.radians(true_solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    elevation = 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zen))))
    azimuth = math.degrees(
        math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    )
    return (azimuth + 180.0) % 360.0, elevation


def earth_sun_distance_au(day: date) -> float:
    """Earth-Sun distance (astronomical units), first-order approximation."""
    doy = day.timetuple().tm_yday
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))
