"""Build every report of a finished run: per region and year, per evaluation area, per project.

``build_reports(OUT)`` reads finished outputs only (items, metadata, region tables, the COGs at
display size) and writes ``OUT/reports/``::

    OUT/reports/index.<lang>.html                 links to every report
    OUT/reports/<region>_<year>.<lang>.html|.pdf  region and year
    OUT/reports/area_<area>.<lang>.html|.pdf      evaluation area: ranking of its counties
    OUT/reports/project_<name>.<lang>.html|.pdf   project impact (when OUT/projects/ has results)

HTML is self-contained (images as data: URIs, no script, no external font or link to fetch),
every text escaped by Jinja2's autoescape, and byte-identical when rebuilt from the same outputs
(no timestamps; PNGs without metadata).  PDFs are rendered from the same HTML by WeasyPrint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eqi.errors import ConfigError
from eqi.report import figures as fig
from eqi.report.document import Doc as _Doc
from eqi.report.document import cell as _cell
from eqi.report.document import figure as _figure
from eqi.report.findings import (
    INDICATORS,
    Indicator,
    area_findings,
    available,
    fmt,
    region_findings,
)
from eqi.report.indicators import Indicators, change_rows, read_indicators, transition_matrix
from eqi.report.messages import LANGS, Messages
from eqi.report.method import method_blocks
from eqi.report.outputs import RegionOutputs, RunOutputs, YearOutputs, read_run

__all__ = ["build_reports", "render_html", "ReportFile", "Built"]

FORMATS = ("html", "pdf")
_MAP_PRODUCTS = ("rsei", "rsei_grade", "landcover", "fvc")


@dataclass
class Built:
    """What :func:`build_reports` wrote: the index page, the reports, the QGIS projects."""

    index: Path
    reports: list[ReportFile]
    qgis_projects: list[Path]


@dataclass
class ReportFile:
    """One report written: kind (region/area/project/index), its HTML and PDF paths."""

    kind: str
    title: str
    html: Path
    pdf: Path | None = None


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, keep_trailing_newline=True)


def render_html(doc: _Doc, m: Messages) -> str:
    """The report as one self-contained HTML page (autoescaped)."""
    from eqi.io.stac import eqi_version

    template = _environment().get_template("report.html.j2")
    return template.render(lang=m.lang, title=doc.title, subtitle=doc.subtitle, simulated=doc.simulated,
                           banner=m.t("simulated_banner"), sections=doc.sections, links=doc.links,
                           footer=m.t("generated_by", version=eqi_version()))


# ---------------------------------------------------------------------------------------------
# pieces shared by the reports


def _outlines(regions: Sequence[RegionOutputs], lang: str) -> list[tuple[str, Any]]:
    return [(r.name(lang), r.geometry) for r in regions]


def _labeller(m: Messages) -> Callable[[str], str]:
    return m.label


def _product_map(m: Messages, out: YearOutputs, product: str, outlines: list[tuple[str, Any]], highlight: str) -> bytes | None:
    from eqi.products import spec_for

    path = out.product(product)
    if path is None:
        return None
    spec = spec_for(product)
    raster = fig.read_display(path)
    return fig.raster_map([raster], title=m.t("map_product", product=_product_label(m, product), year=out.year),
                          outlines=outlines, highlight=highlight, labeller=m.label, north=m.t("north"),
                          ramp=spec.ramp, value_range=spec.display_range, units="" if spec.units in (None, "1") else spec.units)


def _product_label(m: Messages, product: str) -> str:
    from eqi.products import spec_for

    key = f"ind_{product}"
    from eqi.report.messages import catalogue

    if key in catalogue():
        return m.t(key)
    if product == "rsei_grade":
        return m.t("ind_rsei_short") + " " + m.t("grade")
    return spec_for(product).description


def _grade_classes(out: YearOutputs) -> tuple[tuple[int, str, tuple[float, float, float]], ...]:
    path = out.product("rsei_grade")
    return fig.read_display(path, max_px=8).classes if path else ()


def _lc_labels(out: YearOutputs) -> dict[int, str]:
    """Land-cover class code -> "中文 english" label from the COG's class table."""
    path = out.product("landcover")
    return {v: label for v, label, _rgb in fig.read_display(path, max_px=8).classes} if path else {}


def _transition_block(m: Messages, blocks: list[dict[str, Any]], ind: Indicators, slug: str, y0: int, y1: int,
                      labels_by_code: Mapping[int, str]) -> None:
    transitions = ind.transitions.get((slug, y0, y1))
    if not transitions:
        return
    matrix, classes = transition_matrix(transitions)
    labels = [m.label(labels_by_code.get(code, name)) for code, name in classes]
    title = m.t("chart_transition", y0=y0, y1=y1)
    _figure(blocks, fig.transition_chart(matrix, labels, title=title, xlabel=m.t("to_class", y1=y1),
                                         ylabel=m.t("from_class", y0=y0)), title)


def _trend_block(m: Messages, blocks: list[dict[str, Any]], ind: Indicators, regions: Sequence[RegionOutputs],
                 years: Sequence[int]) -> None:
    """Multi-year trends of every available indicator, one line per county."""
    panels = []
    for spec in available(ind):
        series = {r.name(m.lang): {y: v for y in years if (v := ind.value(r.slug, y, spec.column)) is not None}
                  for r in regions}
        panels.append((m.t(spec.label), series))
    if panels:
        title = m.t("chart_trend", indicator=" / ".join(p[0] for p in panels))
        _figure(blocks, fig.trend_chart(panels, xlabel=m.t("year")), title)


def _value_cell(ind: Indicators, spec: Indicator, slug: str, year: int, lang: str) -> dict[str, Any]:
    v = ind.value(slug, year, spec.column)
    if v is None:
        return _cell(None)
    text = fmt(v, spec.decimals)
    lo, hi = ind.value(slug, year, f"{spec.column}_ci_low"), ind.value(slug, year, f"{spec.column}_ci_high")
    if lo is not None and hi is not None:
        text += f" [{fmt(lo, spec.decimals)}, {fmt(hi, spec.decimals)}]"
    grade_col = spec.grade_zh if lang == "zh" else spec.grade_en
    grade = ind.text(slug, year, grade_col) if grade_col else None
    return _cell(f"{text} ({grade})" if grade else text, num=True)


def _inputs_blocks(m: Messages, out: YearOutputs) -> list[dict[str, Any]]:
    scenes = sorted(out.scenes, key=lambda s: (str(s.get("properties", {}).get("datetime", "")), str(s.get("id"))))
    props = out.item.get("properties", {})
    sensors = ", ".join(props.get("eqi:sensors", [])) or "—"
    rows = []
    for s in scenes:
        p = s.get("properties", {})
        cloud = p.get("eo:cloud_cover")
        rows.append([_cell(s.get("id")), _cell(str(p.get("datetime", ""))[:10]), _cell(p.get("platform")),
                     _cell(None if cloud is None else f"{float(cloud):.1f}", num=True),
                     _cell(m.t("i_simulated") if p.get("eqi:simulated") else "")])
    return [
        {"kind": "text", "text": m.t("i_count", n=len(scenes), season=props.get("eqi:season", "—"), sensors=sensors)},
        {"kind": "table", "header": [m.t("i_scene"), m.t("i_date"), m.t("i_platform"), m.t("i_cloud"), m.t("simulated_short")],
         "rows": rows},
    ]


def _indicator_table(m: Messages, ind: Indicators, slug: str, years: Sequence[int]) -> dict[str, Any]:
    rows = [[_cell(m.t(spec.label)), *(_value_cell(ind, spec, slug, y, m.lang) for y in years)] for spec in available(ind)]
    return {"kind": "table", "header": [m.t("value"), *(str(y) for y in years)], "rows": rows}


def _landcover_table(m: Messages, ind: Indicators, slug: str, years: Sequence[int], classes: Mapping[int, str]) -> dict[str, Any] | None:
    codes = sorted({c for y in years for c in ind.shares(slug, y, "landcover")})
    if not codes:
        return None
    rows = []
    for code in codes:
        cells = [_cell(m.label(classes.get(code, str(code))))]
        for y in years:
            km2 = ind.value(slug, y, f"landcover_class_{code}_km2")
            share = ind.shares(slug, y, "landcover").get(code)
            cells.append(_cell(None if share is None else f"{km2 or 0:.2f} ({share * 100:.1f}%)", num=True))
        rows.append(cells)
    return {"kind": "table", "header": [m.t("area_km2") + " / " + m.t("share"), *(str(y) for y in years)], "rows": rows}


# ---------------------------------------------------------------------------------------------
# the reports


def _region_doc(m: Messages, run: RunOutputs, region: RegionOutputs, year: int, ind: Indicators,
                area_regions: Sequence[RegionOutputs], area_href: str) -> _Doc:
    out = region.years[year]
    name = region.name(m.lang)
    years = sorted(region.years)
    doc = _Doc(m.t("report_region_title", region=name, year=year),
               f"{m.t('region')}: {name} ({region.slug}) · {m.t('area')}: {region.area} · {m.t('run_title')}: {run.title}",
               out.simulated or ind.simulated)
    doc.links.append({"href": area_href, "text": m.t("report_area_title", area=region.area, years=_span(run.years))})
    blocks = doc.section("summary", m.t("sec_summary"))
    blocks.append({"kind": "sentences", "lines": region_findings(m, ind, region.slug, name, year, years)})
    if ind.source == "stopgap":
        blocks.append({"kind": "note", "text": m.t("f_stopgap")})
    elif ind.counted:
        blocks.append({"kind": "note", "text": m.t("f_counted")})

    maps = doc.section("maps", m.t("sec_maps"))
    main = next((s for s in available(ind) if s.column in ("ei", "eqi")), None) or next(iter(available(ind)), None)
    if main is not None:
        shapes = [(r.name(m.lang), r.geometry, ind.value(r.slug, year, main.column)) for r in area_regions]
        crs = _region_crs(out)
        if crs is not None:
            title = m.t("map_region", region=name)
            _figure(maps, fig.choropleth_map(shapes, crs=crs, title=title, label=m.t(main.label), north=m.t("north"),
                                             ramp=main.ramp, value_range=main.value_range, no_data=m.t("no_data"),
                                             highlight=name, grades=_grades(ind, main, area_regions, year, m.lang),
                                             decimals=main.decimals), title)
    for product in _MAP_PRODUCTS:
        png = _product_map(m, out, product, [(name, region.geometry)], name)
        if png:
            _figure(maps, png, m.t("map_product", product=_product_label(m, product), year=year))
    earlier = [y for y in years if y < year]
    if earlier and out.product("landcover") and region.years[earlier[0]].product("landcover"):
        before = fig.read_display(region.years[earlier[0]].product("landcover"))  # type: ignore[arg-type]
        after = fig.read_display(out.product("landcover"))  # type: ignore[arg-type]
        title = m.t("map_lc_change", y0=earlier[0], y1=year)
        _figure(maps, fig.change_map(before, after, title=title, unchanged=m.t("lc_unchanged"),
                                     outlines=[(name, region.geometry)], labeller=m.label, north=m.t("north")), title)

    charts = doc.section("charts", m.t("sec_charts"))
    classes = _grade_classes(out)
    rows = [(str(y), ind.shares(region.slug, y, "rsei_grade")) for y in years]
    if classes and any(r[1] for r in rows):
        title = f"{m.t('chart_grade_shares')} · {name}"
        _figure(charts, fig.grade_share_chart([r for r in rows if r[1]], classes, title=title, labeller=m.label,
                                              xlabel=m.t("share") + " (%)"), title)
    if len(years) > 1:
        _trend_block(m, charts, ind, area_regions, years)
    if earlier:
        _transition_block(m, charts, ind, region.slug, earlier[0], year, _lc_labels(out))

    from eqi.report.trends import trend_blocks

    trends = trend_blocks(m, run.root, region.slug, name)
    blocks.extend(b for b in trends if b["kind"] == "sentences")
    tables = doc.section("tables", m.t("sec_tables"))
    tables.append(_indicator_table(m, ind, region.slug, years))
    tables.extend(b for b in trends if b["kind"] != "sentences")
    table = _landcover_table(m, ind, region.slug, years, _lc_labels(out))
    if table:
        tables.append(table)
    for c in change_rows(ind, region.slug):
        cls = c.get("delta_ei_class" if m.lang == "zh" else "delta_ei_class_en")
        if cls:
            tables.append({"kind": "text", "text": f"ΔEI {c['year_from']}–{c['year_to']}: {c.get('delta_ei')} ({cls})"})

    doc.section("method", m.t("sec_method")).extend(method_blocks(m, out, ind))
    doc.section("inputs", m.t("sec_inputs")).extend(_inputs_blocks(m, out))
    return doc


def _grades(ind: Indicators, spec: Indicator, regions: Sequence[RegionOutputs], year: int, lang: str) -> dict[str, str]:
    """County display name -> grade text of ``spec`` in ``year`` (EI/EQI grades of the table)."""
    column = spec.grade_zh if lang == "zh" else spec.grade_en
    if not column:
        return {}
    return {r.name(lang): g for r in regions if (g := ind.text(r.slug, year, column))}


def _region_crs(out: YearOutputs) -> Any:
    from pyproj import CRS

    wkt = out.metadata.get("grid", {}).get("crs")
    return CRS.from_user_input(wkt) if wkt else None


def _span(years: Sequence[int]) -> str:
    return f"{years[0]}–{years[-1]}" if len(years) > 1 else str(years[0]) if years else ""


def _area_doc(m: Messages, run: RunOutputs, area: str, regions: Sequence[RegionOutputs], ind: Indicators,
              region_hrefs: Mapping[tuple[str, int], str]) -> _Doc:
    years = sorted({y for r in regions for y in r.years})
    last = years[-1]
    doc = _Doc(m.t("report_area_title", area=area, years=_span(years)),
               f"{m.t('area')}: {area} · {m.t('n_counties', n=len(regions))} · {m.t('run_title')}: {run.title}",
               run.simulated or ind.simulated)
    named = [(r.slug, r.name(m.lang)) for r in regions]
    blocks = doc.section("summary", m.t("sec_summary"))
    blocks.append({"kind": "sentences", "lines": area_findings(m, ind, named, years)})
    if ind.source == "stopgap":
        blocks.append({"kind": "note", "text": m.t("f_stopgap")})
    elif ind.counted:
        blocks.append({"kind": "note", "text": m.t("f_counted")})

    specs = available(ind)
    ranking = doc.section("ranking", m.t("sec_ranking"))
    if specs:
        key = next((s for s in specs if s.column in ("ei", "eqi")), specs[0])
        order = sorted(regions, key=lambda r: (-(ind.value(r.slug, last, key.column) or float("-inf")), r.slug))
        header = [m.t("rank"), m.t("county"), m.t("adcode"), *(f"{m.t(s.label)} {last}" for s in specs)]
        if len(years) > 1:
            header += [f"{m.t('change')} {m.t(s.label)} {years[0]}–{last}" for s in specs]
        rows = []
        for rank, r in enumerate(order, start=1):
            cells = [_cell(rank, num=True), _cell(r.name(m.lang), href=region_hrefs.get((r.slug, last))), _cell(r.adcode)]
            cells += [_value_cell(ind, s, r.slug, last, m.lang) for s in specs]
            if len(years) > 1:
                for s in specs:
                    v0, v1 = ind.value(r.slug, years[0], s.column), ind.value(r.slug, last, s.column)
                    cells.append(_cell(None if v0 is None or v1 is None else f"{v1 - v0:+.{s.decimals}f}", num=True))
            rows.append(cells)
        ranking.append({"kind": "text", "text": m.t("f_ranking", year=last, indicator=m.t(key.label), n=len(order))})
        ranking.append({"kind": "table", "header": header, "rows": rows})

    maps = doc.section("maps", m.t("sec_maps"))
    first_out = regions[0].years[min(regions[0].years)]
    crs = _region_crs(first_out)
    for spec in specs[:2]:
        if crs is None:
            break
        shapes = [(r.name(m.lang), r.geometry, ind.value(r.slug, last, spec.column)) for r in regions]
        title = m.t("map_choropleth", indicator=m.t(spec.label), year=last)
        _figure(maps, fig.choropleth_map(shapes, crs=crs, title=title, label=m.t(spec.label), north=m.t("north"),
                                         ramp=spec.ramp, value_range=spec.value_range, no_data=m.t("no_data"),
                                         grades=_grades(ind, spec, regions, last, m.lang), decimals=spec.decimals), title)
    outlines = _outlines(regions, m.lang)
    for product in ("rsei_grade", "landcover"):
        rasters = [fig.read_display(p) for r in regions if last in r.years and (p := r.years[last].product(product))]
        if rasters:
            title = m.t("map_product", product=_product_label(m, product), year=last)
            _figure(maps, fig.raster_map(rasters, title=title, outlines=outlines, highlight=None, labeller=m.label,
                                         north=m.t("north")), title)

    charts = doc.section("charts", m.t("sec_charts"))
    panels = [(m.t(spec.label), values, spec.ramp, spec.value_range) for spec in specs
              if (values := [(r.name(m.lang), v) for r in regions if (v := ind.value(r.slug, last, spec.column)) is not None])]
    if panels:
        title = m.t("chart_bars", indicator=" / ".join(p[0] for p in panels), year=last)
        _figure(charts, fig.bar_chart(panels), title)
    classes = _grade_classes(first_out)
    rows = [(r.name(m.lang), ind.shares(r.slug, last, "rsei_grade")) for r in regions]
    if classes and any(s for _n, s in rows):
        title = f"{m.t('chart_grade_shares')} ({last})"
        _figure(charts, fig.grade_share_chart([r for r in rows if r[1]], classes, title=title, labeller=m.label,
                                              xlabel=m.t("share") + " (%)"), title)
    if len(years) > 1:
        _trend_block(m, charts, ind, regions, years)
        merged: dict[tuple[int, str, int, str], float] = {}
        for r in regions:
            for t in ind.transitions.get((r.slug, years[0], last), []):
                k = (t.from_class, t.from_name, t.to_class, t.to_name)
                merged[k] = merged.get(k, 0.0) + t.area_km2
        if merged:
            from eqi.report.indicators import Transition

            key = ("__area__", years[0], last)
            ind.transitions[key] = [Transition(a, b, c, d, v) for (a, b, c, d), v in sorted(merged.items())]
            _transition_block(m, charts, ind, "__area__", years[0], last, _lc_labels(first_out))
            del ind.transitions[key]

    tables = doc.section("tables", m.t("sec_tables"))
    for r in regions:
        tables.append({"kind": "heading", "text": f"{r.name(m.lang)} ({r.slug})"})
        tables.append(_indicator_table(m, ind, r.slug, years))
    doc.section("method", m.t("sec_method")).extend(method_blocks(m, first_out, ind))
    inputs = doc.section("inputs", m.t("sec_inputs"))
    for y in years:
        outs = [r.years[y] for r in regions if y in r.years]
        inputs.append({"kind": "heading", "text": str(y)})
        inputs.extend(_inputs_blocks(m, outs[0]))
    links = doc.section("reports", m.t("sec_reports"))
    links.append({"kind": "table", "header": [m.t("county"), m.t("year")], "rows": [
        [_cell(r.name(m.lang), href=region_hrefs.get((r.slug, y))), _cell(y)] for r in regions for y in sorted(r.years)]})
    return doc


def _index_doc(m: Messages, run: RunOutputs, entries: Sequence[tuple[str, Path]]) -> _Doc:
    """Links to every report of the run present on disk (title, HTML path)."""
    doc = _Doc(m.t("index_title", title=run.title), str(run.root.name), run.simulated)
    rows = []
    for title, html in entries:
        if not html.is_file():
            continue
        pdf = html.with_suffix(".pdf")
        rows.append([_cell(title, href=html.name), _cell("PDF", href=pdf.name) if pdf.is_file() else _cell(None)])
    doc.section("reports", m.t("sec_reports")).append({"kind": "table", "header": [m.t("sec_reports"), "PDF"], "rows": rows})
    return doc


# ---------------------------------------------------------------------------------------------


def _write(doc: _Doc, m: Messages, html_path: Path, pdf: bool) -> tuple[Path, Path | None]:
    from eqi.io.atomic import atomic_write_text

    html = render_html(doc, m)
    atomic_write_text(html_path, html)
    pdf_path = None
    if pdf:
        from eqi.report.pdf import write_pdf

        pdf_path = write_pdf(html, html_path.with_suffix(".pdf"))
    return html_path, pdf_path


def build_reports(root: Path, *, lang: str = "zh", regions: Sequence[str] | None = None,
                  formats: Sequence[str] = FORMATS, progress: Callable[[str], None] | None = None,
                  qgis: bool = True) -> Built:
    """Write every report of the finished run in ``root`` (see module docstring); returns them.

    Reads outputs only: item/metadata/items JSON, the area tables and the COGs at display size.
    """
    if lang not in LANGS:
        raise ConfigError(f"--lang '{lang}' is not supported; use one of: {', '.join(LANGS)}")
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise ConfigError(f"--format {','.join(formats)}: use html, pdf or html,pdf")
    say = progress or (lambda _msg: None)
    m = Messages(lang)
    pdf = "pdf" in formats
    root = Path(root).resolve()
    run = read_run(root)
    if regions:
        read_run(root, regions=regions)  # names the regions that have no finished outputs
    selected = set(regions or run.regions)
    reports_dir = root / "reports"
    reports_dir.mkdir(exist_ok=True)
    files: list[ReportFile] = []
    entries: list[tuple[str, Path]] = []
    with fig.figure_style(lang):
        for area, members in run.areas.items():
            ind = read_indicators(run, area, [r.slug for r in members])
            _relabel(ind, _lc_labels(members[0].years[min(members[0].years)]))
            if ind.names and ind.source == "regions.json":  # the table's names win
                members = [_renamed(r, ind.names.get(r.slug)) for r in members]
            area_html = reports_dir / f"area_{area}.{lang}.html"
            hrefs = {(r.slug, y): f"{r.slug}_{y}.{lang}.html" for r in members for y in r.years}
            entries.append((m.t("report_area_title", area=area, years=_span(sorted({y for r in members for y in r.years}))), area_html))
            for region in members:
                for year in region.years:
                    path = reports_dir / hrefs[(region.slug, year)]
                    entries.append((m.t("report_region_title", region=region.name(lang), year=year), path))
                    if region.slug not in selected:
                        continue
                    doc = _region_doc(m, run, region, year, ind, members, area_html.name)
                    html, pdf_path = _write(doc, m, path, pdf)
                    files.append(ReportFile("region", doc.title, html, pdf_path))
                    say(f"report {region.slug} {year}: {html}")
            if not selected & {r.slug for r in members}:
                continue
            doc = _area_doc(m, run, area, members, ind, hrefs)
            html, pdf_path = _write(doc, m, area_html, pdf)
            files.append(ReportFile("area", doc.title, html, pdf_path))
            say(f"report area {area}: {html}")
        from eqi.report.project import project_reports

        for doc, name in project_reports(m, run):
            path = reports_dir / f"project_{name}.{lang}.html"
            html, pdf_path = _write(doc, m, path, pdf)
            entries.append((doc.title, path))
            files.append(ReportFile("project", doc.title, html, pdf_path))
            say(f"report project {name}: {html}")
    index = reports_dir / f"index.{lang}.html"
    _write(_index_doc(m, run, entries), m, index, False)
    projects = _qgis_projects(run, selected, say) if qgis else []
    return Built(index, files, projects)


def _qgis_projects(run: RunOutputs, selected: set[str], say: Callable[[str], None]) -> list[Path]:
    """Refresh the QGIS project of every region and year (``write_qgis_project`` of the QGIS
    helper module, when this eqi has it); the projects only reference finished outputs."""
    try:
        from eqi.io.qgis_project import write_qgis_project
    except ImportError:
        return []
    from eqi.geo.regions import Region

    written = []
    for region in run.regions.values():
        if region.slug not in selected:
            continue
        members = [Region(r.slug, r.geometry, "EPSG:4326", {"name": r.name_zh, "adcode": r.adcode or ""})
                   for r in run.areas[region.area]]  # labelled boundaries, as the region stage writes them
        for year in region.years:
            path = Path(write_qgis_project(run.root, next(r for r in members if r.name == region.slug), year,
                                           regions=[r for r in members if year in run.regions[r.name].years],
                                           area=region.area))
            say(f"qgis {region.slug} {year}: {path}")
            written.append(path)
    return written


def _relabel(ind: Indicators, labels: Mapping[int, str]) -> None:
    """Bilingual class names ("中文 english", from the land-cover COG) on the transitions."""
    from dataclasses import replace

    for key, moves in ind.transitions.items():
        ind.transitions[key] = [replace(t, from_name=labels.get(t.from_class, t.from_name),
                                        to_name=labels.get(t.to_class, t.to_name)) for t in moves]


def _renamed(region: RegionOutputs, names: tuple[str, str] | None) -> RegionOutputs:
    if not names:
        return region
    from dataclasses import replace

    return replace(region, name_zh=names[0], name_en=names[1] if names[1] != names[0] else region.name_en)


_ = INDICATORS  # re-exported for the templates' readers
