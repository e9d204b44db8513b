"""Assessment zones of a project (spec §4.5): footprint, non-overlapping rings, control, chainage.

All geometry is in a metric CRS (the project's local Lambert azimuthal equal-area CRS from
:func:`local_crs`, or any projected CRS in metres): buffers are true distances there.  Lines get
flat caps (a ring around a railway ends where the railway ends); points and areas round ones.
Every zone is the set difference of its buffer and everything nearer, so zones never overlap and
each pixel belongs to at most one zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

__all__ = ["Zone", "ProjectKind", "local_crs", "footprint", "build_zones", "chainage_segments"]

ProjectKind = Literal["linear", "point", "area"]


@dataclass(frozen=True)
class Zone:
    """One zone: ``role`` footprint / ring / control, distances (m) from the footprint edge."""

    name: str
    role: Literal["footprint", "ring", "control"]
    inner_m: float
    outer_m: float
    geometry: BaseGeometry


def local_crs(lon: float, lat: float) -> str:
    """Lambert azimuthal equal-area CRS centred on (lon, lat): metric, equal-area (spec §0.2),
    distances within ~0.2 % up to 300 km from the centre."""
    return f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def _cap(kind: ProjectKind) -> str:
    return "flat" if kind == "linear" else "round"


def _buffer(geom: BaseGeometry, kind: ProjectKind, distance: float) -> BaseGeometry:
    if distance <= 0:
        return geom if kind == "area" else shapely.Polygon()
    return shapely.buffer(geom, distance, cap_style=_cap(kind), join_style="round", quad_segs=16)


def footprint(geom: BaseGeometry, kind: ProjectKind, footprint_m: float, given: BaseGeometry | None = None) -> BaseGeometry:
    """The construction footprint: ``given`` (a polygon from the config), else the project
    geometry buffered by ``footprint_m`` (half-width of a line, radius of a point; an area's polygon
    itself when 0)."""
    if given is not None and not given.is_empty:
        return shapely.make_valid(given)
    if kind == "area":
        return _buffer(geom, kind, footprint_m) if footprint_m > 0 else shapely.make_valid(geom)
    if footprint_m <= 0:
        raise ValueError("a linear or point project needs footprint_m > 0 or a footprint polygon")
    return _buffer(geom, kind, footprint_m)


def build_zones(
    geom: BaseGeometry,
    kind: ProjectKind,
    *,
    footprint_m: float,
    rings_m: Sequence[float],
    control_m: Sequence[float] | None,
    footprint_geometry: BaseGeometry | None = None,
    control_geometry: BaseGeometry | None = None,
) -> list[Zone]:
    """Footprint, rings ``(0, r1], (r1, r2] …`` (m from the footprint edge) and the control zone.

    Rings are buffers of the footprint (of the centreline with the footprint's half-width added,
    flat-capped, for lines).  The control is ``control_geometry`` (e.g. upstream valleys) or the
    annulus ``control_m = (inner, outer)``, minus the footprint and every ring.
    """
    fp = footprint(geom, kind, footprint_m, footprint_geometry)
    base_m = footprint_m if footprint_geometry is None else 0.0
    source = geom if (kind == "linear" and footprint_geometry is None) else fp
    src_kind: ProjectKind = kind if source is geom else ("linear" if kind == "linear" else "area")

    def grown(d: float) -> BaseGeometry:
        return shapely.union(_buffer(source, src_kind, base_m + d if source is geom else d), fp)

    zones = [Zone("footprint", "footprint", 0.0, 0.0, fp)]
    taken = fp
    inner = 0.0
    for outer in rings_m:
        outer = float(outer)
        g = shapely.difference(grown(outer), taken)
        zones.append(Zone(f"ring_{int(inner)}_{int(outer)}m", "ring", inner, outer, g))
        taken = shapely.union(taken, g)
        inner = outer
    if control_geometry is not None:
        ctl = shapely.difference(shapely.make_valid(control_geometry), taken)
        zones.append(Zone("control", "control", float("nan"), float("nan"), ctl))
    elif control_m is not None:
        c_in, c_out = (float(v) for v in control_m)
        ctl = shapely.difference(shapely.difference(grown(c_out), grown(c_in)), taken)
        zones.append(Zone(f"control_{int(c_in)}_{int(c_out)}m", "control", c_in, c_out, ctl))
    return zones


def chainage_segments(line: BaseGeometry, segment_m: float, half_width_m: float) -> list[tuple[str, float, float, BaseGeometry]]:
    """Split a centreline into consecutive segments of ``segment_m`` (the last may be shorter) and
    return ``(name, start_km, end_km, polygon)`` with each segment buffered flat by
    ``half_width_m``; polygons are made disjoint (a pixel at a bend goes to the earlier segment)."""
    if isinstance(line, shapely.MultiLineString):
        merged = shapely.line_merge(line)
        if not isinstance(merged, shapely.LineString):
            raise ValueError("chainage needs one continuous centreline")
        line = merged
    length = float(line.length)
    edges = np.append(np.arange(0.0, length, segment_m), length)
    out = []
    taken: BaseGeometry = shapely.Polygon()
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        if b - a <= 0:
            continue
        part = substring(line, a, b)
        poly = shapely.difference(shapely.buffer(part, half_width_m, cap_style="flat", join_style="round"), taken)
        taken = shapely.union(taken, poly)
        out.append((f"km_{a / 1000:.0f}_{b / 1000:.0f}", a / 1000.0, b / 1000.0, poly))
        _ = i
    return out
