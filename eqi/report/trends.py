"""Per-pixel trends of a region (the trend stage's ``OUT/<region>/trends/<first>-<last>/summary.json``):
km² significantly improving / without trend / degrading / not evaluated and the mean slope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eqi.report.document import cell
from eqi.report.messages import Messages

__all__ = ["trend_summaries", "trend_blocks"]


def trend_summaries(root: Path, region: str) -> list[dict[str, Any]]:
    """Every trend summary of ``region``, by period."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / region / "trends").glob("*/summary.json"))]


def trend_blocks(m: Messages, root: Path, region: str, name: str) -> list[dict[str, Any]]:
    """Sentences and a table per trend period of the region (empty when the run has no trends)."""
    blocks: list[dict[str, Any]] = []
    for summary in trend_summaries(root, region):
        years = summary.get("years") or []
        period = f"{years[0]}–{years[-1]}" if years else "—"
        lines, rows = [], []
        for product, v in sorted((summary.get("products") or {}).items()):
            label = m.t(f"ind_{product}") if f"ind_{product}" in _keys() else product
            lines.append(m.t("t_sentence", region=name, period=period, indicator=label,
                             up=f"{v['improving_km2']:.2f}", down=f"{v['degrading_km2']:.2f}",
                             flat=f"{v['no_trend_km2']:.2f}", alpha=summary.get("alpha", "—")))
            slope = v.get("slope_mean_per_year")
            rows.append([cell(label), *(cell(f"{v[k]:.2f}", num=True) for k in
                                        ("improving_km2", "no_trend_km2", "degrading_km2", "not_evaluated_km2")),
                         cell(None if slope is None else f"{slope:+.4f}", num=True)])
        if rows:
            blocks += [{"kind": "heading", "text": m.t("t_heading", period=period)},
                       {"kind": "sentences", "lines": lines},
                       {"kind": "table", "header": [m.t("value"), m.t("t_up"), m.t("t_flat"), m.t("t_down"),
                                                    m.t("t_none"), m.t("t_slope")], "rows": rows}]
    return blocks


def _keys() -> Any:
    from eqi.report.messages import catalogue

    return catalogue()
