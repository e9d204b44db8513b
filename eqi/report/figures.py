"""Maps and charts of the reports (matplotlib, no pyplot state): PNG bytes, byte-reproducible.

Maps read the product COGs at display size (a decimated read, which GDAL serves from the COG's
overviews); nothing is recomputed.  Every map has a legend, a scale bar and a north arrow; text
uses Noto Sans CJK (Debian ``fonts-noto-cjk``) so Chinese labels render.  PNGs carry no software
or date metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from matplotlib import colors as mcolors
from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from eqi.errors import InputError
from eqi.palettes import RAMPS

__all__ = [
    "CJK_FAMILY", "DisplayRaster", "read_display", "figure_style", "png_bytes", "raster_map",
    "choropleth_map", "grade_share_chart", "bar_chart", "trend_chart", "transition_chart",
    "change_map",
]  # fmt: skip

CJK_FAMILY = "Noto Sans CJK SC"
_DPI = 110
_OUTLINE = "#333333"


def _font_available(family: str) -> bool:
    return any(f.name == family for f in font_manager.fontManager.ttflist)


@contextmanager
def figure_style(lang: str) -> Iterator[None]:
    """Fonts and reproducibility settings for every figure (a CJK font is required for Chinese)."""
    if not _font_available(CJK_FAMILY):
        if lang == "zh":
            raise InputError(f"font '{CJK_FAMILY}' not found: install Debian package fonts-noto-cjk "
                             "(make system-deps) for Chinese reports, or use --lang en")
        families = ["DejaVu Sans"]
    else:
        families = [CJK_FAMILY, "DejaVu Sans"]
    with rc_context({"font.family": "sans-serif", "font.sans-serif": families, "axes.unicode_minus": False,
                     "svg.hashsalt": "eqi-report", "font.size": 9, "axes.titlesize": 10}):
        yield


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG without metadata that changes (no software, no date)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# reading rasters at display size


@dataclass(frozen=True)
class DisplayRaster:
    """A product read at display size: masked values, extent (CRS units), CRS, class table."""

    data: np.ma.MaskedArray
    extent: tuple[float, float, float, float]  # left, right, bottom, top
    crs: CRS
    classes: tuple[tuple[int, str, tuple[float, float, float]], ...] = ()  # value, "zh en" label, rgb 0-1


def _class_table(path: Path, colormap: Mapping[int, tuple[int, ...]] | None) -> tuple[tuple[int, str, tuple[float, float, float]], ...]:
    """Classes from the COG's raster attribute table (``.aux.xml``: value, Class_Name, RGB)."""
    aux = path.with_name(path.name + ".aux.xml")
    rows: list[tuple[int, str, tuple[float, float, float]]] = []
    if aux.is_file():
        rat = ET.parse(aux).getroot().find(".//GDALRasterAttributeTable")
        if rat is not None:
            names = [f.findtext("Name") for f in rat.findall("FieldDefn")]
            for row in rat.findall("Row"):
                rec = dict(zip(names, (f.text or "" for f in row.findall("F")), strict=False))
                rgb = tuple(int(rec.get(k, 0)) / 255 for k in ("Red", "Green", "Blue"))
                rows.append((int(rec["Value"]), rec.get("Class_Name", rec["Value"]), rgb))  # type: ignore[arg-type]
    if not rows and colormap:
        rows = [(v, str(v), tuple(c / 255 for c in rgba[:3])) for v, rgba in sorted(colormap.items())
                if v != 0 and rgba[3] > 0]  # type: ignore[misc]
    return tuple(rows)


def read_display(path: Path, max_px: int = 700) -> DisplayRaster:
    """Band 1 of ``path`` decimated to at most ``max_px`` on its long side (from the overviews)."""
    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / max_px
        shape = (src.height, src.width) if scale <= 1 else (
            max(1, math.ceil(src.height / scale)), max(1, math.ceil(src.width / scale)))
        data = src.read(1, out_shape=shape, masked=True, resampling=Resampling.nearest)
        if np.issubdtype(data.dtype, np.floating):
            data = np.ma.masked_invalid(data)
        categorical = src.dtypes[0] in ("uint8", "uint16") and src.colorinterp[0].name == "palette"
        colormap = src.colormap(1) if categorical else None
        b = src.bounds
        return DisplayRaster(data, (b.left, b.right, b.bottom, b.top), CRS.from_user_input(src.crs),
                             _class_table(path, colormap) if categorical else ())


# ---------------------------------------------------------------------------------------------
# map furniture


def _to_crs(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely_transform(to.transform, geom)


def _polygons(geom: BaseGeometry) -> list[Any]:
    return list(getattr(geom, "geoms", [geom]))


def _outline(ax: Any, geom: BaseGeometry, *, width: float, color: str = _OUTLINE) -> None:
    for poly in _polygons(geom):
        for ring in (poly.exterior, *poly.interiors):
            x, y = ring.xy
            ax.plot(x, y, color=color, linewidth=width, solid_joinstyle="round")


def _furniture(ax: Any, north: str) -> None:
    """Scale bar (metres) and north arrow; axes in CRS metres, ticks off."""
    from matplotlib_scalebar.scalebar import ScaleBar

    ax.add_artist(ScaleBar(1.0, "m", location="lower left", box_alpha=0.7, length_fraction=0.25,
                           font_properties={"size": 8}))
    ax.annotate(north, xy=(0.94, 0.96), xytext=(0.94, 0.84), xycoords="axes fraction", ha="center", va="center",
                fontsize=10, fontweight="bold",
                arrowprops={"facecolor": "black", "edgecolor": "black", "width": 3, "headwidth": 9, "headlength": 8})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_aspect("equal")


def _labels(ax: Any, outlines: Sequence[tuple[str, BaseGeometry]]) -> None:
    for name, geom in outlines:
        p = geom.representative_point()
        ax.text(p.x, p.y, name, ha="center", va="center", fontsize=9, color="black",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.75, "linewidth": 0})


def _ramp_cmap(ramp: str) -> mcolors.Colormap:
    return mcolors.LinearSegmentedColormap.from_list(ramp, list(RAMPS[ramp]))


def raster_map(rasters: Sequence[DisplayRaster], *, title: str, outlines: Sequence[tuple[str, BaseGeometry]],
               highlight: str | None, labeller: Any, north: str, ramp: str | None = None,
               value_range: tuple[float, float] | None = None, units: str = "") -> bytes:
    """A product map: the rasters (regions of one grid), county outlines (``highlight`` thicker)
    with labels, legend, scale bar, north arrow.  ``labeller`` turns a "zh en" class label into
    the report's language."""
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    first = rasters[0]
    if first.classes:
        values = [c[0] for c in first.classes]
        cmap = mcolors.ListedColormap([c[2] for c in first.classes])
        norm = mcolors.BoundaryNorm([v - 0.5 for v in values] + [values[-1] + 0.5], cmap.N)
        present: set[int] = set()
        for raster in rasters:
            ax.imshow(raster.data, extent=raster.extent, cmap=cmap, norm=norm, interpolation="nearest")
            present |= set(np.unique(raster.data.compressed()).tolist())
        handles = [Patch(facecolor=c[2], edgecolor="#666666", label=labeller(c[1])) for c in first.classes
                   if c[0] in present]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    else:
        cmap = _ramp_cmap(ramp or "ndvi")
        vmin, vmax = value_range or (min(float(r.data.min()) for r in rasters), max(float(r.data.max()) for r in rasters))
        for raster in rasters:
            im = ax.imshow(raster.data, extent=raster.extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.75, label=units)
    projected = [(n, _to_crs(g, first.crs)) for n, g in outlines]
    for name, geom in projected:
        _outline(ax, geom, width=1.8 if name == highlight else 0.8)
    _labels(ax, projected)
    ax.set_xlim(min(r.extent[0] for r in rasters), max(r.extent[1] for r in rasters))
    ax.set_ylim(min(r.extent[2] for r in rasters), max(r.extent[3] for r in rasters))
    ax.set_title(title)
    _furniture(ax, north)
    return png_bytes(fig)


def change_map(before: DisplayRaster, after: DisplayRaster, *, title: str, unchanged: str,
               outlines: Sequence[tuple[str, BaseGeometry]], labeller: Any, north: str) -> bytes:
    """Land-cover change: pixels whose class changed in the colour of their new class, others grey."""
    if before.data.shape != after.data.shape:
        raise InputError("land-cover rasters of the two years have different grids; rerun the region")
    changed = np.ma.masked_where(np.ma.getmaskarray(after.data) | (before.data == after.data), after.data)
    same = np.ma.masked_where(np.ma.getmaskarray(after.data) | (before.data != after.data), after.data)
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    ax.imshow(np.ma.where(np.ma.getmaskarray(same), np.nan, 1.0), extent=after.extent,
              cmap=mcolors.ListedColormap(["#d9d9d9"]), interpolation="nearest")
    values = [c[0] for c in after.classes]
    cmap = mcolors.ListedColormap([c[2] for c in after.classes])
    norm = mcolors.BoundaryNorm([v - 0.5 for v in values] + [values[-1] + 0.5], cmap.N)
    ax.imshow(changed, extent=after.extent, cmap=cmap, norm=norm, interpolation="nearest")
    present = set(np.unique(changed.compressed()).tolist())
    handles = [Patch(facecolor="#d9d9d9", edgecolor="#666666", label=unchanged)]
    handles += [Patch(facecolor=c[2], edgecolor="#666666", label=f"→ {labeller(c[1])}") for c in after.classes
                if c[0] in present]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    projected = [(n, _to_crs(g, after.crs)) for n, g in outlines]
    for _name, geom in projected:
        _outline(ax, geom, width=1.0)
    _labels(ax, projected)
    left, right, bottom, top = after.extent
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title)
    _furniture(ax, north)
    return png_bytes(fig)


def choropleth_map(shapes: Sequence[tuple[str, BaseGeometry, float | None]], *, crs: CRS, title: str,
                   label: str, north: str, ramp: str = "rsei",
                   value_range: tuple[float, float] | None = None, no_data: str = "",
                   highlight: str | None = None, grades: Mapping[str, str] | None = None,
                   decimals: int = 3) -> bytes:
    """Counties coloured by an indicator value (grey without a value), labelled with the value
    and, given ``grades`` (county -> grade text), the grade; ``highlight`` drawn thicker."""
    from matplotlib.cm import ScalarMappable

    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    values = [v for _n, _g, v in shapes if v is not None and math.isfinite(v)]
    vmin, vmax = value_range or ((min(values), max(values)) if values else (0.0, 1.0))
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    cmap, norm = _ramp_cmap(ramp), mcolors.Normalize(vmin, vmax)
    projected = [(n, _to_crs(g, crs), v) for n, g, v in shapes]
    for name, geom, value in projected:
        ok = value is not None and math.isfinite(value)
        colour = cmap(norm(value)) if ok else "#bdbdbd"
        for poly in _polygons(geom):
            x, y = poly.exterior.xy
            ax.fill(x, y, facecolor=colour, edgecolor="#000000" if name == highlight else _OUTLINE,
                    linewidth=2.4 if name == highlight else 0.9, zorder=3 if name == highlight else 2)
    def text(n: str, v: float | None) -> str:
        if v is None or not math.isfinite(v):
            return f"{n}\n{no_data}"
        grade = (grades or {}).get(n)
        return f"{n}\n{v:.{decimals}f}" + (f" {grade}" if grade else "")

    _labels(ax, [(text(n, v), g) for n, g, v in projected])
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.75, label=label)
    ax.set_title(title)
    ax.autoscale_view()
    _furniture(ax, north)
    return png_bytes(fig)


# ---------------------------------------------------------------------------------------------
# charts


def grade_share_chart(rows: Sequence[tuple[str, Mapping[int, float]]],
                      classes: Sequence[tuple[int, str, tuple[float, float, float]]], *,
                      title: str, labeller: Any, xlabel: str) -> bytes:
    """Horizontal stacked bars: the area share (0-1) of each grade per row (county or year)."""
    fig = Figure(figsize=(6.4, 0.9 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    names = [r[0] for r in rows]
    left = np.zeros(len(rows))
    for value, label, rgb in classes:
        shares = np.array([r[1].get(value, 0.0) for r in rows]) * 100
        ax.barh(names, shares, left=left, color=rgb, edgecolor="white", label=labeller(label))
        for i, s in enumerate(shares):
            if s >= 6:
                ax.text(left[i] + s / 2, i, f"{s:.0f}%", ha="center", va="center", fontsize=7)
        left += shares
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return png_bytes(fig)


def bar_chart(panels: Sequence[tuple[str, Sequence[tuple[str, float]], str, tuple[float, float] | None]]) -> bytes:
    """Indicator bars per county: one panel per indicator ``(label, [(county, value)], ramp,
    value range)``, bars coloured by the indicator's ramp and labelled with their value."""
    fig = Figure(figsize=(6.4, 0.4 + 2.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (label, values, ramp, value_range) in zip(axes, panels, strict=True):
        names = [n for n, _v in values]
        nums = np.array([v for _n, v in values], dtype=float)
        lo, hi = value_range or (float(np.nanmin(nums)), float(np.nanmax(nums)))
        norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1)
        bars = ax.bar(names, nums, color=[_ramp_cmap(ramp)(norm(v)) for v in nums], edgecolor="#555555")
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in nums], fontsize=8, padding=2)
        ax.set_ylabel(label)
        ax.margins(y=0.2)
        if len(names) > 6:
            ax.tick_params(axis="x", labelrotation=45)
    return png_bytes(fig)


def trend_chart(panels: Sequence[tuple[str, Mapping[str, Mapping[int, float]]]], *, xlabel: str) -> bytes:
    """Multi-year trends: one panel per indicator ``(label, {county: {year: value}})``, one line
    per county."""
    fig = Figure(figsize=(6.4, 0.6 + 2.4 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (label, series) in zip(axes, panels, strict=True):
        years = sorted({y for s in series.values() for y in s})
        for name, values in series.items():
            xs = [y for y in years if y in values]
            ax.plot(xs, [values[y] for y in xs], marker="o", label=name)
        ax.set_xticks(years, [str(y) for y in years])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    axes[-1].set_xlabel(xlabel)
    return png_bytes(fig)


def transition_chart(matrix: np.ndarray, labels: Sequence[str], *, title: str, xlabel: str, ylabel: str) -> bytes:
    """Transition matrix (rows: from, columns: to) as a heat map with the values written in."""
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot()
    shown = np.ma.masked_less_equal(matrix, 0)
    im = ax.imshow(shown, cmap="YlOrBr", norm=mcolors.LogNorm(vmin=max(shown.min(), 1e-3), vmax=max(shown.max(), 1e-2))
                   if shown.count() else None)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j] > 0:
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.75, label="km²")
    return png_bytes(fig)
