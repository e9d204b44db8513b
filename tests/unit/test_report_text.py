"""Report text without a run: the message catalogue, sentences from numbers, escaping, method tags."""

from __future__ import annotations

import string

import pytest

from eqi.errors import ConfigError
from eqi.report.document import Doc
from eqi.report.findings import area_findings, landcover_sentence, region_findings
from eqi.report.indicators import Indicators, Transition, transition_matrix
from eqi.report.messages import LANGS, Messages, catalogue
from eqi.report.method import tagged_parameters


def test_catalogue_has_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, texts in catalogue().items():
        assert set(texts) == set(LANGS), key
        names = [{f for _t, f, _s, _c in fields.parse(texts[lang]) if f} for lang in LANGS]
        assert names[0] == names[1], key


def test_labels_and_languages() -> None:
    assert Messages("zh").label("较差 fair") == "较差" and Messages("en").label("较差 fair") == "fair"
    assert Messages("en").label("城乡、工矿、居民用地 built-up") == "built-up"
    assert Messages("zh").label("plain") == "plain"
    with pytest.raises(ConfigError, match="--lang 'fr'"):
        Messages("fr")


def _indicators() -> Indicators:
    ind = Indicators("regions.json")
    rows = {  # EI by hand: a rises 50.00 -> 55.50 (+11.0 %), b falls 60.00 -> 58.25, c stays 40.00
        ("a", 2020): 50.0, ("a", 2021): 55.5, ("b", 2020): 60.0, ("b", 2021): 58.25, ("c", 2020): 40.0, ("c", 2021): 40.001,
    }
    for (slug, year), ei in rows.items():
        ind.rows[(slug, year)] = {"region": slug, "year": year, "ei": ei, "ei_grade": "良", "ei_grade_en": "good",
                                  "rsei_grade_class_4_frac": 0.25, "rsei_grade_class_5_frac": 0.125}
    ind.changes.append({"region": "a", "year_from": 2020, "year_to": 2021, "delta_ei": 5.5,
                        "delta_ei_class": "略微变好", "delta_ei_class_en": "slightly better"})
    return ind


def test_area_sentences_say_who_improved_and_declined_by_how_much() -> None:
    ind = _indicators()
    names = [("a", "甲区"), ("b", "乙区"), ("c", "丙区")]
    zh = area_findings(Messages("zh"), ind, names, [2020, 2021])
    text = "\n".join(zh)
    assert "2021 年 生态环境状况指数 EI 最高的是 乙区（58.25），最低的是 丙区（40.00）。" in text
    assert "提高的区县（1 个）：甲区 (+5.50)" in text
    assert "下降的区县（1 个）：乙区 (-1.75)" in text
    assert "未变化的区县（1 个）：丙区" in text  # 40.000 vs 40.001: equal at the printed 2 decimals
    en = "\n".join(area_findings(Messages("en"), ind, [(s, s.upper()) for s, _n in names], [2020, 2021]))
    assert "The largest rise is A (+5.50), the largest fall B (-1.75)." in en


def test_region_sentences_give_value_grade_change_and_class() -> None:
    ind = _indicators()
    lines = region_findings(Messages("en"), ind, "a", "Alpha", 2021, [2020, 2021])
    assert "Ecological status index (EI) of Alpha in 2021 is 55.50 (grade “good”)." in lines
    assert "Ecological status index (EI) of Alpha rose from 50.00 in 2020 to 55.50 in 2021, up 5.50 (11.0%)." in lines
    assert "By the change classes of HJ 192-2015 this is “slightly better”." in lines
    assert "In 2021, 37.5% of Alpha has an RSEI grade of good or excellent." in lines


def test_landcover_transitions() -> None:
    moves = [Transition(1, "耕地 cropland", 1, "耕地 cropland", 8.0), Transition(1, "耕地 cropland", 5, "城乡 built-up", 1.5),
             Transition(2, "林地 forest", 5, "城乡 built-up", 0.5)]
    matrix, classes = transition_matrix(moves)
    assert [c for c, _n in classes] == [1, 2, 5]
    assert matrix.tolist() == [[8.0, 0.0, 1.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]
    sentence = landcover_sentence(Messages("en"), moves, "Alpha", 2020, 2021)
    assert sentence == ("2.00 km² (20.0%) of Alpha changed land-cover class 2020–2021; "
                        "the largest transition is cropland→built-up (1.50 km²).")


def test_html_escapes_every_text() -> None:
    from eqi.report.build import render_html

    evil = "<script>alert('x')</script> & \"q\""
    doc = Doc(evil, evil, True)
    doc.section("s", evil).append({"kind": "sentences", "lines": [evil]})
    doc.sections[0]["blocks"].append({"kind": "table", "header": [evil],
                                      "rows": [[{"text": evil, "num": False, "href": None}]]})
    html = render_html(doc, Messages("zh"))
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 5
    assert "模拟数据" in html


def test_tagged_parameters_walk_nested_entries() -> None:
    profile = {"id": "x", "a": {"value": 1, "tag": "[V]", "source": "S1"},
               "b": {"method": "robust", "tag": "[D]", "source": "S2", "p": {"value": 2, "tag": "[U]"}}, "c": 3}
    assert list(tagged_parameters(profile)) == [("a", 1, "[V]", "S1"), ("b", "robust", "[D]", "S2"), ("b.p", 2, "[U]", "")]


def test_region_table_rows_changes_and_transitions_are_read(tmp_path) -> None:
    """regions.json as docs/tables.md gives it: the run's counties only, None for missing numbers."""
    import json

    from eqi.report.indicators import _from_table

    rows = [{"region": "a-510104", "name": "锦江区", "adcode": "510104", "level": "county", "year": 2022, "ei": None,
             "eqi": 47.8, "eqi_grade": "三类", "eqi_grade_en": "class 3", "landcover_class_12_frac": 0.5},
            {"region": "chengdu-510100", "name": "成都市", "adcode": "510100", "level": "prefecture", "year": 2022, "eqi": None}]
    changes = [{"region": "a-510104", "year_from": 2022, "year_to": 2023, "delta_eqi": 1.5, "delta_eqi_class": "稳定"}]
    transitions = [{"region": "a-510104", "year_from": 2022, "year_to": 2023, "from_class": 12, "from_name": "旱地",
                    "to_class": 51, "to_name": "城镇用地", "area_km2": 0.25}]
    path = tmp_path / "regions.json"
    path.write_text(json.dumps({"schema": "eqi-regions/1", "simulated": True, "rows": rows, "changes": changes,
                                "transitions": transitions, "profiles": {}}), encoding="utf-8")
    ind = _from_table(path, ["a-510104"])
    assert list(ind.rows) == [("a-510104", 2022)] and ind.simulated
    assert ind.value("a-510104", 2022, "eqi") == 47.8 and ind.value("a-510104", 2022, "ei") is None
    assert ind.text("a-510104", 2022, "eqi_grade") == "三类"
    assert ind.shares("a-510104", 2022, "landcover") == {12: 0.5}
    assert ind.names["a-510104"] == ("锦江区", "A")
    assert ind.transitions[("a-510104", 2022, 2023)] == [Transition(12, "旱地", 51, "城镇用地", 0.25)]
    assert ind.changes == changes


def test_project_sentences_follow_the_bootstrap_interval() -> None:
    from eqi.report.project import _sentences

    summary = {"baci": [
        {"zone": "footprint", "indicator": "fvc", "baci": -0.3, "baci_low": -0.4, "baci_high": -0.2, "delta_impact": -0.25, "delta_control": 0.05},
        {"zone": "ring", "indicator": "fvc", "baci": 0.01, "baci_low": -0.02, "baci_high": 0.04, "delta_impact": 0.0, "delta_control": -0.01},
        {"zone": "far", "indicator": "ndvi", "baci": 0.1, "baci_low": 0.05, "baci_high": 0.2, "delta_impact": 0.1, "delta_control": 0.0},
    ], "disturbance": {"polygons": 2, "km2": 0.1234}}
    lines = _sentences(Messages("en"), summary)
    assert "footprint: the BACI effect on Fractional vegetation cover (FVC) is -0.300 (95% interval -0.400 to -0.200" in lines[0]
    assert lines[0].endswith("a decline relative to the control.")
    assert lines[1].endswith("no difference from the control can be told.")
    assert lines[2].endswith("a rise relative to the control.")
    assert lines[3] == "2 disturbance polygons were found, 0.123 km² in all."


def test_trend_summaries_become_sentences_and_a_table(tmp_path) -> None:
    import json

    from eqi.report.trends import trend_blocks

    folder = tmp_path / "a-510104" / "trends" / "2019-2023"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"region": "a-510104", "years": [2019, 2020, 2021, 2022, 2023],
        "alpha": 0.05, "products": {"ndvi": {"improving_km2": 12.345, "no_trend_km2": 40.0, "degrading_km2": 1.5,
                                             "not_evaluated_km2": 0.25, "region_km2": 54.095, "slope_mean_per_year": 0.0042}}}))
    blocks = trend_blocks(Messages("en"), tmp_path, "a-510104", "Alpha")
    sentences = next(b for b in blocks if b["kind"] == "sentences")["lines"]
    assert sentences == ["NDVI of Alpha, 2019–2023: 12.35 km² improving significantly, 1.50 km² degrading "
                         "significantly, 40.00 km² without a significant trend (α = 0.05)."]
    table = next(b for b in blocks if b["kind"] == "table")
    assert [c["text"] for c in table["rows"][0]] == ["NDVI", "12.35", "40.00", "1.50", "0.25", "+0.0042"]
    assert trend_blocks(Messages("en"), tmp_path, "other", "Other") == []
