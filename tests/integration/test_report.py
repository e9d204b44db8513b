"""Reports of a finished run (issue 10): HTML in headless Chromium, PDF text and render, rebuilds
byte-identical without recomputing any product, the CLI in both languages.

One small finished run (two Chengdu districts, two years; tests/integration/report_support.py)
serves every test of the module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from report_support import NAMES_ZH, REGIONS, Chromium, distinct_colours, need_tool, small_run

from eqi.report import build_reports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return small_run(tmp_path_factory.mktemp("report") / "out")


@pytest.fixture(scope="module")
def built(run_dir: Path):
    return build_reports(run_dir, lang="zh", regions=[REGIONS[0]])  # its area report holds both counties


def _products(run_dir: Path) -> dict[str, tuple[int, str]]:
    """(mtime_ns, sha256) of every file the run wrote, reports and QGIS projects aside."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if path.is_file() and rel.parts[0] != "reports" and path.suffix not in (".qgs", ".qgz") \
                and path.name not in ("boundaries.gpkg", "true_colour.vrt"):  # fmt: skip
            out[str(rel)] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def test_reports_are_written_for_every_region_year_and_the_area(run_dir: Path, built) -> None:
    kinds = sorted(f.kind for f in built.reports)
    assert kinds == ["area", "region", "region"]
    for f in built.reports:
        assert f.html.is_file() and f.pdf is not None and f.pdf.is_file()
    area = next(f for f in built.reports if f.kind == "area").html.read_text(encoding="utf-8")
    for name in NAMES_ZH.values():
        assert name in area
    assert "模拟数据" in area and 'class="banner"' in area
    index = built.index.read_text(encoding="utf-8")
    assert index.count("<a href=") == 6  # 3 HTML + 3 PDF links (the other county's reports are not built)


def test_html_is_self_contained_and_escaped(built) -> None:
    for f in built.reports:
        html = f.html.read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        # every src/href is a data: URI or a sibling report; nothing to fetch
        for url in re.findall(r'(?:src|href)="([^"]*)"', html):
            assert url.startswith("data:image/png;base64,") or re.fullmatch(r"[\w.-]+\.(html|pdf)", url), url
        assert not re.search(r"url\((?!data:)", html)  # no CSS fetches (fonts, images)
        # the run title holds markup characters: escaped, never raw
        assert "<two counties>" not in html and "&lt;two counties&gt;" in html


def test_findings_state_the_numbers_of_the_products(run_dir: Path, built) -> None:
    """The sentences carry the RSEI mean and the good+excellent share of the COGs (numpy oracle)."""
    region, year = REGIONS[0], 2023
    html = (run_dir / "reports" / f"{region}_{year}.zh.html").read_text(encoding="utf-8")
    with rasterio.open(run_dir / region / str(year) / "rsei.tif") as src:
        rsei = src.read(1)
    with rasterio.open(run_dir / region / str(year) / "rsei_grade.tif") as src:
        grade = src.read(1)
    mean = float(np.nanmean(rsei))
    assert f"遥感生态指数 RSEI 为 {mean:.3f}" in html
    good = np.isin(grade, (4, 5)).sum() / (grade > 0).sum()
    assert f"面积占 {good * 100:.1f}%" in html
    with rasterio.open(run_dir / region / "2022" / "rsei.tif") as src:
        before = float(np.nanmean(src.read(1)))
    verb = "上升" if round(mean, 3) > round(before, 3) else "下降"
    assert f"由 2022 年的 {before:.3f} {verb}到 2023 年的 {mean:.3f}" in html


def test_html_opens_in_headless_chromium_without_errors_or_requests(built, tmp_path: Path) -> None:
    chromium = Chromium(need_tool("chromium"), tmp_path / "profile")
    try:
        for f in [r for r in built.reports if r.kind == "area"] + built.reports[:1]:
            url = f.html.as_uri()
            chromium.open(url)
            assert chromium.errors() == [], f.html.name
            foreign = [u for u in chromium.requests() if u != url and not u.startswith("data:")]
            assert foreign == [], foreign
            images = chromium.evaluate(
                "JSON.stringify(Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.alt,"
                " i.getBoundingClientRect().x, i.getBoundingClientRect().y + window.scrollY,"
                " i.getBoundingClientRect().width, i.getBoundingClientRect().height]))")
            images = json.loads(images)
            assert len(images) >= 4 and all(ok for ok, *_ in images)
            figures = {"map": next(i for i in images if "地图" in i[1] or "（" in i[1]), "chart": images[-1]}
            for kind, (_ok, alt, x, y, w, h) in figures.items():
                png = chromium.screenshot({"x": x, "y": y, "width": w, "height": h})
                assert distinct_colours(png) > 30, (f.html.name, kind, alt)
        page = chromium.screenshot()
        assert distinct_colours(page) > 100
    finally:
        chromium.close()


def test_pdf_has_county_names_maps_and_a_rendered_first_page(built, tmp_path: Path) -> None:
    pdftotext, pdftoppm = need_tool("pdftotext"), need_tool("pdftoppm")
    area = next(f for f in built.reports if f.kind == "area")
    text = subprocess.run([pdftotext, str(area.pdf), "-"], capture_output=True, text=True, check=True).stdout
    for name in NAMES_ZH.values():
        assert name in text
    assert "模拟数据" in text
    images = subprocess.run([need_tool("pdfimages"), "-list", str(area.pdf)], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert len(images) >= 6  # maps and charts
    subprocess.run([pdftoppm, "-f", "1", "-l", "1", "-r", "40", "-png", str(area.pdf), str(tmp_path / "page")], check=True)
    (page,) = tmp_path.glob("page*.png")
    assert distinct_colours(page.read_bytes()) > 30


def test_rebuild_is_byte_identical_and_recomputes_nothing(run_dir: Path, built, monkeypatch) -> None:
    from eqi.pipeline import region_stage, run, tile_stage
    from eqi.products import REGISTRY

    def forbidden(*_a, **_k):
        raise AssertionError("a report rebuild called a compute function")

    for module, name in ((run, "run"), (tile_stage, "run_tile"), (region_stage, "run_region"), (region_stage, "run_apply")):
        monkeypatch.setattr(module, name, forbidden)
    for name, product in list(REGISTRY.items()):
        if product.compute is not None:
            monkeypatch.setitem(REGISTRY, name, dataclasses.replace(product, compute=forbidden))
    before = {f.html: f.html.read_bytes() for f in built.reports}
    files = _products(run_dir)
    again = build_reports(run_dir, lang="zh", regions=[REGIONS[0]], formats=("html",))
    assert {f.html: f.html.read_bytes() for f in again.reports} == before
    assert _products(run_dir) == files  # no product (or any other run output) rewritten


def test_cli_english_report_and_bad_options(run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def eqi(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "eqi", "report", *args], capture_output=True, text=True,
                              env=env, timeout=600)

    res = eqi(str(run_dir), "--lang", "en", "--format", "html", "--region", REGIONS[0])
    assert res.returncode == 0, res.stderr
    assert "index.en.html" in res.stdout
    html = (run_dir / "reports" / f"{REGIONS[0]}_2023.en.html").read_text(encoding="utf-8")
    assert "Ecological quality report: Jinjiang, 2023" in html and "SIMULATED DATA" in html
    assert "Remote Sensing Ecological Index (RSEI) of Jinjiang rose" in html or "of Jinjiang fell" in html
    assert not (run_dir / "reports" / f"{REGIONS[1]}_2023.en.html").exists()  # --region: that one only
    for args, words in (((str(run_dir), "--lang", "fr"), "--lang 'fr'"),
                        ((str(run_dir), "--region", "nowhere"), "nowhere"),
                        ((str(run_dir / "missing"),), "does not exist")):
        res = eqi(*args)
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not list((run_dir / "reports").glob("*.fr.*"))


def test_project_report_from_eqi_assess(run_dir: Path, tmp_path: Path) -> None:
    """`eqi assess` on the run (a road through 锦江区), then the project report: BACI sentences
    whose verdict follows the bootstrap interval of baci.csv (the oracle), a zones map, a chart."""
    import csv

    import yaml

    from eqi.cli import main
    from eqi.geo.regions import load_regions
    from eqi.report import figures
    from eqi.report.build import _write
    from eqi.report.messages import Messages
    from eqi.report.outputs import read_run
    from eqi.report.project import project_reports

    (county,) = load_regions("sichuan:510104")
    c = county.geometry.representative_point()
    project = {"name": "road", "type": "linear", "geometry": {"coordinates": [[c.x - 0.01, c.y - 0.005], [c.x + 0.01, c.y + 0.005]]},
               "footprint_m": 120, "rings_m": [500], "control": {"distance_m": [1500, 3000]}, "before": 2022, "after": 2023}  # fmt: skip
    config = tmp_path / "assess.yaml"
    config.write_text(yaml.safe_dump({"out": str(run_dir), "simulated": True, "inputs": {"run": str(run_dir)},
                                      "projects": [project]}))  # fmt: skip
    main(["assess", str(config)])
    m = Messages("en")
    with figures.figure_style("en"):
        ((doc, name),) = list(project_reports(m, read_run(run_dir)))
        html_path, pdf_path = _write(doc, m, tmp_path / f"project_{name}.en.html", True)
    html = html_path.read_text(encoding="utf-8")
    assert "Project impact report: road" in html and "SIMULATED DATA" in html
    with (run_dir / "projects" / "road" / "baci.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        low, high = float(row["baci_low"]), float(row["baci_high"])
        verdict = "a decline relative" if high < 0 else "a rise relative" if low > 0 else "no difference from the control"
        assert f"{row['zone']}: the BACI effect on" in html and verdict in html
    assert html.count("data:image/png;base64,") >= 2 and pdf_path.stat().st_size > 10_000
