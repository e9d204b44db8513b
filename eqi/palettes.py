"""Named colour ramps and colour parsing: presentation choices shared by styles, tables and reports.

Colours are ColorBrewer-like choices, not method parameters.
"""

from __future__ import annotations

import re

__all__ = ["RampStop", "RAMPS", "hex_to_rgba", "ramp", "evenly_spaced"]

RampStop = tuple[float, str]
"""One colour-ramp stop: ``(value, "#rrggbb")``."""

# Colours of the named ramps, low → high, spread evenly between vmin and vmax by :func:`ramp`.
# Presentation choices (ColorBrewer-like), not method parameters.
RAMPS: dict[str, tuple[str, ...]] = {
    # NDVI / FVC / EVI: bare soil brown → dense vegetation green
    "ndvi": ("#8c510a", "#d8b365", "#f6e8c3", "#c7e9b4", "#7fbc41", "#4d9221", "#1b5e20"),
    # RSEI / EQI / EI: poor red → excellent green (RdYlGn)
    "rsei": ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"),
    # LST: cold blue → hot red (RdYlBu reversed)
    "lst": ("#2c7bb6", "#abd9e9", "#ffffbf", "#fdae61", "#d7191c"),
    # Water / wetness indices: dry tan → wet blue
    "water": ("#a6611a", "#dfc27d", "#f5f5f5", "#80cdc1", "#018571"),
    # Signed change: loss red → no change white → gain green
    "change": ("#b2182b", "#ef8a62", "#f7f7f7", "#7fbf7b", "#1b7837"),
    # Reflectance bands: black → white
    "grey": ("#000000", "#ffffff"),
    # Observation counts: few (light) → many (dark blue)
    "count": ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"),
    # Dryness / built-up indices: green (moist, vegetated) → brown (bare, built)
    "dryness": ("#1a9850", "#91cf60", "#ffffbf", "#fc8d59", "#8c510a"),
}

_HEX_RE = re.compile(r"^#?([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")


def hex_to_rgba(color: str) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` or ``"#rrggbbaa"`` → ``(r, g, b, a)`` with 0–255 components."""
    m = _HEX_RE.match(color.strip())
    if not m:
        raise ValueError(f"colour {color!r} is not '#rrggbb' or '#rrggbbaa'")
    rgb, alpha = m.group(1), m.group(2) or "ff"
    return (int(rgb[0:2], 16), int(rgb[2:4], 16), int(rgb[4:6], 16), int(alpha, 16))


def ramp(name: str, vmin: float, vmax: float) -> list[RampStop]:
    """Named ramp (``RAMPS`` key) as stops spread evenly from ``vmin`` to ``vmax``."""
    try:
        colors = RAMPS[name]
    except KeyError:
        raise ValueError(f"unknown colour ramp {name!r}; known: {sorted(RAMPS)}") from None
    if not vmax > vmin:
        raise ValueError(f"ramp range must increase, got vmin={vmin}, vmax={vmax}")
    n = len(colors) - 1
    # weighted form hits 0 exactly where it should; rounding drops float noise from labels
    return [(round((vmin * (n - i) + vmax * i) / n, 12) + 0.0, c) for i, c in enumerate(colors)]


def evenly_spaced(name: str, n: int) -> list[str]:
    """``n`` colours of ramp ``name`` at evenly spaced positions (e.g. one per grade)."""
    if n == 1:
        return [RAMPS[name][-1]]
    return [colour for _, colour in ramp(name, 1, n)]
