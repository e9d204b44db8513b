"""Per-project impact reports from ``OUT/projects/<name>/`` (written by ``eqi assess``).

Read only: ``summary.json`` (project, years, zones, BACI rows, disturbance), the CSV tables
(``indicators``, ``baci``, ``landcover``, ``transitions``) and ``zones.gpkg`` / ``disturbance.gpkg``
for the map.  A project folder is finished when its ``item.json`` exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eqi.report.document import Doc as _Doc
from eqi.report.document import figure as _figure
from eqi.report.messages import Messages
from eqi.report.outputs import RunOutputs

__all__ = ["project_reports", "finished_projects"]


def finished_projects(root: Path) -> list[Path]:
    """Project folders with a done marker, sorted by name."""
    return sorted(p.parent for p in (root / "projects").glob("*/item.json") if (p.parent / "summary.json").is_file())


def _cell(v: Any) -> dict[str, Any]:
    if isinstance(v, float):
        return {"text": "—" if not math.isfinite(v) else f"{v:.4g}", "num": True, "href": None}
    return {"text": "—" if v is None else str(v), "num": isinstance(v, int), "href": None}


def _csv_table(path: Path, limit: int = 60) -> dict[str, Any] | None:
    import pandas as pd

    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if frame.empty:
        return None
    rows = [[_cell(v.item() if hasattr(v, "item") else v) for v in row] for row in frame.head(limit).itertuples(index=False)]
    return {"kind": "table", "header": [str(c) for c in frame.columns], "rows": rows}


def _zones_map(m: Messages, folder: Path) -> bytes | None:
    import geopandas as gpd
    from matplotlib.figure import Figure

    from eqi.report.figures import _furniture, png_bytes

    zones_path = folder / "zones.gpkg"
    if not zones_path.is_file():
        return None
    zones = gpd.read_file(zones_path, layer="zones")
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    zones.plot(ax=ax, column="zone", categorical=True, cmap="Pastel1", edgecolor="#333333", linewidth=0.8,
               legend=True, legend_kwds={"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "frameon": False})
    disturbance = folder / "disturbance.gpkg"
    if disturbance.is_file():
        polys = gpd.read_file(disturbance, layer="disturbance")
        if len(polys):
            polys.to_crs(zones.crs).plot(ax=ax, facecolor="#d7191c", edgecolor="#7f0000", linewidth=0.5)
    ax.set_title(m.t("p_map"))
    _furniture(ax, m.t("north"))
    return png_bytes(fig)


def _sentences(m: Messages, summary: dict[str, Any]) -> list[str]:
    """One sentence per zone and indicator from the BACI rows (the bootstrap interval decides
    whether a difference from the control can be told), then the disturbance polygons."""
    out = []
    label = {"ndvi": m.t("ind_ndvi"), "fvc": m.t("ind_fvc"), "rsei": m.t("ind_rsei")}
    for row in summary.get("baci") or []:
        try:
            baci, low, high = (float(row[k]) for k in ("baci", "baci_low", "baci_high"))
        except (KeyError, TypeError, ValueError):
            continue
        verdict = m.t("p_down") if high < 0 else m.t("p_up") if low > 0 else m.t("p_none_sig")
        out.append(m.t("p_baci", zone=row.get("zone"), indicator=label.get(str(row.get("indicator")), row.get("indicator")),
                       baci=f"{baci:+.3f}", low=f"{low:+.3f}", high=f"{high:+.3f}",
                       d_impact=f"{float(row.get('delta_impact') or 0):+.3f}",
                       d_control=f"{float(row.get('delta_control') or 0):+.3f}", verdict=verdict))
    dist = summary.get("disturbance") or {}
    if dist:
        out.append(m.t("p_disturbance", n=dist.get("polygons", 0), km2=f"{float(dist.get('km2') or 0):.3f}"))
    return out


def _baci_chart(m: Messages, summary: dict[str, Any]) -> bytes | None:
    """BACI effect with its interval per zone, one panel per indicator."""
    import numpy as np
    from matplotlib.figure import Figure

    from eqi.report.figures import png_bytes

    rows = [r for r in summary.get("baci") or [] if all(r.get(k) is not None for k in ("baci", "baci_low", "baci_high"))]
    indicators = list(dict.fromkeys(str(r["indicator"]) for r in rows))
    if not indicators:
        return None
    fig = Figure(figsize=(6.4, 0.6 + 2.2 * len(indicators)))
    axes = fig.subplots(len(indicators), 1, squeeze=False)[:, 0]
    for ax, indicator in zip(axes, indicators, strict=True):
        sel = [r for r in rows if str(r["indicator"]) == indicator]
        x = np.arange(len(sel))
        values = np.array([float(r["baci"]) for r in sel])
        err = np.array([[v - float(r["baci_low"]) for v, r in zip(values, sel, strict=True)],
                        [float(r["baci_high"]) - v for v, r in zip(values, sel, strict=True)]])
        ax.bar(x, values, yerr=err, capsize=4, color=["#d7191c" if float(r["baci_high"]) < 0 else "#1a9641"
                                                      if float(r["baci_low"]) > 0 else "#bdbdbd" for r in sel])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, [str(r["zone"]) for r in sel], fontsize=8)
        ax.set_ylabel(indicator)
    axes[0].set_title(m.t("p_chart"))
    return png_bytes(fig)


def project_reports(m: Messages, run: RunOutputs) -> Iterator[tuple[Any, str]]:
    """(document, project name) for every finished project of the run."""
    for folder in finished_projects(run.root):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        name = str(summary.get("project") or folder.name)
        doc = _Doc(m.t("report_project_title", project=name),
                   f"{summary.get('type', '')} · {m.t('p_years', before=summary.get('before'), after=summary.get('after'))}"
                   f" · {run.title}",
                   bool(summary.get("simulated")) or run.simulated)
        doc.section("summary", m.t("sec_summary")).append({"kind": "sentences", "lines": _sentences(m, summary)})
        maps = doc.section("maps", m.t("sec_maps"))
        png = _zones_map(m, folder)
        if png:
            _figure(maps, png, m.t("p_map"))
        chart = _baci_chart(m, summary)
        if chart:
            _figure(doc.section("charts", m.t("sec_charts")), chart, m.t("p_chart"))
        tables = doc.section("tables", m.t("sec_tables"))
        for stem in ("baci", "indicators", "landcover", "transitions", "chainage"):
            table = _csv_table(folder / f"{stem}.csv")
            if table:
                tables += [{"kind": "heading", "text": stem}, table]
        method = summary.get("method_profile") or {}
        if method:
            doc.section("method", m.t("sec_method")).append(
                {"kind": "table", "header": [m.t("m_param"), m.t("value")],
                 "rows": [[_cell(k), _cell(v)] for k, v in sorted(method.items())]})
        yield doc, name
