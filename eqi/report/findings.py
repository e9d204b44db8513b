"""Summary sentences generated from the numbers: values, grades, which counties improved or declined.

A change is stated with its sign and size at the precision the report prints; "no change" means
equal at that precision (a presentation rule, not a method threshold).  Change classes come from
the region table (HJ 192-2015 ΔEI classes, EQI classes) when it has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eqi.report.indicators import Indicators, Transition, change_rows
from eqi.report.messages import Messages

__all__ = ["Indicator", "INDICATORS", "available", "fmt", "region_findings", "area_findings", "landcover_sentence"]


@dataclass(frozen=True)
class Indicator:
    """An indicator the reports show: table column, label key, decimals, grade columns, range."""

    column: str
    label: str
    decimals: int
    grade_zh: str | None = None
    grade_en: str | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    ramp: str = "rsei"
    change_prefix: str | None = None  # regions.json changes columns delta_<x>, delta_<x>_class
    standard: str = ""


INDICATORS: tuple[Indicator, ...] = (
    Indicator("ei", "ind_ei", 2, "ei_grade", "ei_grade_en", (0.0, 100.0), change_prefix="ei", standard="HJ 192-2015"),
    Indicator("eqi", "ind_eqi", 2, "eqi_grade", "eqi_grade_en", (0.0, 100.0), change_prefix="eqi", standard="EQI 2021"),
    Indicator("rsei_mean", "ind_rsei", 3),
    Indicator("fvc_mean", "ind_fvc", 3, ramp="ndvi"),
    Indicator("ndvi_mean", "ind_ndvi", 3, value_range=(-0.2, 0.9), ramp="ndvi"),
)


def available(ind: Indicators) -> list[Indicator]:
    """The indicators that have at least one value."""
    return [i for i in INDICATORS if ind.has(i.column)]


def fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _grade(ind: Indicators, spec: Indicator, region: str, year: int, lang: str) -> str | None:
    column = spec.grade_zh if lang == "zh" else spec.grade_en
    return ind.text(region, year, column) if column else None


def _change_sentence(m: Messages, name: str, label: str, spec: Indicator, y0: int, v0: float, y1: int, v1: float) -> str:
    a, b = round(v0, spec.decimals), round(v1, spec.decimals)
    values = {"region": name, "indicator": label, "y0": y0, "y1": y1, "v0": fmt(v0, spec.decimals),
              "v1": fmt(v1, spec.decimals), "delta": fmt(abs(b - a), spec.decimals),
              "pct": f"{abs(v1 - v0) / abs(v0) * 100:.1f}%" if v0 else "—"}
    if a == b:
        return m.t("f_same", **values)
    return m.t("f_up" if b > a else "f_down", **values)


def region_findings(m: Messages, ind: Indicators, region: str, name: str, year: int, years: Sequence[int]) -> list[str]:
    """Sentences for one region and year: each indicator's value (and grade), its change since
    the first year, the share of good RSEI, the land-cover change."""
    out: list[str] = []
    earlier = [y for y in years if y < year]
    for spec in available(ind):
        v = ind.value(region, year, spec.column)
        if v is None:
            continue
        label = m.t(spec.label)
        grade = _grade(ind, spec, region, year, m.lang)
        if grade:
            out.append(m.t("f_value_grade", region=name, year=year, indicator=label, value=fmt(v, spec.decimals), grade=grade))
        else:
            out.append(m.t("f_value", region=name, year=year, indicator=label, value=fmt(v, spec.decimals)))
        first = next((y for y in earlier if ind.value(region, y, spec.column) is not None), None)
        if first is not None:
            out.append(_change_sentence(m, name, label, spec, first, ind.value(region, first, spec.column), year, v))  # type: ignore[arg-type]
            if spec.change_prefix:
                for c in change_rows(ind, region):
                    if c["year_from"] == first and c["year_to"] == year:
                        cls = c.get(f"delta_{spec.change_prefix}_class" + ("" if m.lang == "zh" else "_en"))
                        if cls:
                            out.append(m.t("f_change_class", standard=spec.standard, cls=cls))
    shares = ind.shares(region, year, "rsei_grade")
    if shares:
        good = shares.get(4, 0.0) + shares.get(5, 0.0)
        out.append(m.t("f_good_share", region=name, year=year, share=f"{good * 100:.1f}%"))
    if earlier:
        sentence = landcover_sentence(m, ind.transitions.get((region, earlier[0], year), []), name, earlier[0], year)
        if sentence:
            out.append(sentence)
    elif len(years) == 1:
        out.append(m.t("f_one_year", year=year))
    return out


def landcover_sentence(m: Messages, transitions: Sequence[Transition], name: str, y0: int, y1: int) -> str | None:
    """How much land changed class, and the largest transition."""
    if not transitions:
        return None
    total = sum(t.area_km2 for t in transitions)
    moved = [t for t in transitions if t.from_class != t.to_class]
    if total <= 0 or not moved:
        return None
    changed = sum(t.area_km2 for t in moved)
    top = max(moved, key=lambda t: (t.area_km2, -t.from_class, -t.to_class))
    return m.t("f_lc_changed", region=name, y0=y0, y1=y1, km2=f"{changed:.2f}", share=f"{changed / total * 100:.1f}%",
               from_cls=m.label(top.from_name), to_cls=m.label(top.to_name), km2_top=f"{top.area_km2:.2f}")


def area_findings(m: Messages, ind: Indicators, regions: Sequence[tuple[str, str]], years: Sequence[int]) -> list[str]:
    """Sentences for an evaluation area: ranking, best and worst county, which counties improved
    or declined between the first and the last year and by how much."""
    out: list[str] = []
    if not years:
        return out
    last, first = years[-1], years[0]
    for spec in available(ind):
        label = m.t(spec.label)
        values = [(name, ind.value(slug, last, spec.column)) for slug, name in regions]
        ranked = sorted(((n, v) for n, v in values if v is not None), key=lambda nv: (-nv[1], nv[0]))
        if not ranked:
            continue
        out.append(m.t("f_ranking", year=last, indicator=label, n=len(ranked)))
        if len(ranked) > 1:
            out.append(m.t("f_best", year=last, indicator=label, best=ranked[0][0], vbest=fmt(ranked[0][1], spec.decimals),
                           worst=ranked[-1][0], vworst=fmt(ranked[-1][1], spec.decimals)))
        if first == last:
            continue
        deltas: list[tuple[str, float]] = []
        for slug, name in regions:
            v0, v1 = ind.value(slug, first, spec.column), ind.value(slug, last, spec.column)
            if v0 is not None and v1 is not None:
                deltas.append((name, round(v1, spec.decimals) - round(v0, spec.decimals)))
        sep = "、" if m.lang == "zh" else ", "
        up = sorted((d for d in deltas if d[1] > 0), key=lambda d: (-d[1], d[0]))
        down = sorted((d for d in deltas if d[1] < 0), key=lambda d: (d[1], d[0]))
        same = sorted(d[0] for d in deltas if d[1] == 0)
        def listed(items: list[tuple[str, float]], sep: str = sep, decimals: int = spec.decimals) -> str:
            return sep.join(f"{n} ({d:+.{decimals}f})" for n, d in items)

        if up:
            out.append(m.t("f_improved", y0=first, y1=last, indicator=label, n=len(up), names=listed(up)))
        if down:
            out.append(m.t("f_declined", y0=first, y1=last, indicator=label, n=len(down), names=listed(down)))
        if same:
            out.append(m.t("f_unchanged", indicator=label, n=len(same), names=sep.join(same)))
        if up and down:
            out.append(m.t("f_largest_gain", region=up[0][0], delta=f"{up[0][1]:+.{spec.decimals}f}",
                           region2=down[0][0], delta2=f"{down[0][1]:+.{spec.decimals}f}"))
    return out
