"""EQI (2021 method profile) in eqi.science.eqi_index: a small hand-computed profile, the default
profile's worked example, every grade / ΔEQI boundary, missing indicators named (never imputed)."""

from __future__ import annotations

import math

import pytest

from eqi.errors import ConfigError
from eqi.params import Profile
from eqi.resources import load_profile
from eqi.science import eqi_index as eq

DEFAULT = load_profile("eqi-2021")


def _small(**over) -> Profile:
    data = {
        "id": "tiny",
        "version": "1",
        "dimensions": {
            "A": {"name_zh": "甲", "name_en": "a", "orientation": "positive", "weight": {"value": 0.6, "tag": "[D]"}},
            "S": {"name_zh": "胁迫", "name_en": "s", "orientation": "negative", "weight": {"value": 0.4, "tag": "[U]"}},
        },
        "indicators": {
            "a1": {"dimension": "A", "name_zh": "一", "direction": "positive", "source_kind": "remote_sensing",
                   "input": "rs.a1", "weight": {"value": 0.5, "tag": "[D]"}, "reference": {"min": 0, "max": 50}},
            "a2": {"dimension": "A", "name_zh": "二", "direction": "negative", "source_kind": "table",
                   "input": "table.fam.a2", "weight": 0.5, "reference": {"min": 10, "max": 20}},
            "s1": {"dimension": "S", "name_zh": "三", "direction": "negative", "source_kind": "table",
                   "input": "table.hazards.km2", "per_area_percent": True, "weight": 1.0,
                   "reference": {"min": 0, "max": 100}},
            "off": {"dimension": "S", "name_zh": "关", "direction": "negative", "source_kind": "table",
                    "input": "table.x.y", "weight": 0.0, "reference": {"min": 0, "max": 1}, "enabled": False},
        },
        "grades": DEFAULT.to_dict()["grades"],
        "change_classes": DEFAULT.to_dict()["change_classes"],
    }  # fmt: skip
    data.update(over)
    return Profile("tiny", data)


def test_small_profile_hand_computed():
    p = _small()
    values = eq.gather_values(p, area_km2=50.0, rs={"a1": 40.0}, tables={"fam": {"a2": 12.0}, "hazards": {"km2": 5.0}})
    # a1: 100·(40−0)/50 = 80; a2: 100·(12−10)/10 = 20, opposite to A's orientation -> 100−20 = 80
    # A = 0.5·80 + 0.5·80 = 80
    # s1: 5 km² of 50 km² = 10 % -> norm 10 (same orientation as S) -> S = 10
    # EQI = 0.6·80 + 0.4·(100 − 10) = 48 + 36 = 84
    assert values == {"a1": 40.0, "a2": 12.0, "s1": 10.0}
    r = eq.compute_eqi(values, p)
    assert r.normalised == {"a1": 80.0, "a2": 20.0, "s1": 10.0}
    assert r.dimensions == {"A": 80.0, "S": 10.0}
    assert r.eqi == 84.0 and r.complete and r.grade == "一类"
    assert r.sources == {"a1": "remote_sensing", "a2": "table", "s1": "table"}
    assert "off" not in r.raw  # disabled indicators are not part of the index
    assert r.tags["weight_S"] == "[U]"


def test_normalisation_is_clipped_to_fixed_bounds():
    p = _small()
    r = eq.compute_eqi({"a1": 60.0, "a2": 5.0, "s1": 150.0}, p)
    # a1 60 > 50 -> 100; a2 5 < 10 -> 0 -> contributes 100; A = 100; s1 -> 100, S = 100
    # EQI = 0.6·100 + 0.4·0 = 60
    assert r.normalised == {"a1": 100.0, "a2": 0.0, "s1": 100.0}
    assert r.eqi == 60.0 and r.grade == "二类"


def test_missing_indicator_marks_incomplete_and_names_it():
    p = _small()
    values = eq.gather_values(p, area_km2=50.0, rs={"a1": 40.0}, tables={"hazards": {"km2": 5.0}})  # no "fam"
    assert values["a2"] is None
    r = eq.compute_eqi(values, p)
    assert not r.complete and math.isnan(r.eqi) and r.grade is None
    assert r.missing == ("a2 (二, table)",)
    assert math.isnan(r.dimensions["A"]) and r.dimensions["S"] == 10.0


def test_profile_checks():
    bad = _small()
    data = bad.to_dict()
    data["dimensions"]["A"]["weight"] = 0.5
    with pytest.raises(ConfigError, match="sum to 0.9"):
        eq.dimensions(Profile("x", data))
    data = _small().to_dict()
    data["indicators"]["a2"]["weight"] = 0.4
    with pytest.raises(ConfigError, match="dimension A"):
        eq.indicator_registry(Profile("x", data))
    data = _small().to_dict()
    data["indicators"]["a1"]["dimension"] = "Z"
    with pytest.raises(ConfigError, match="unknown dimension"):
        eq.indicator_registry(Profile("x", data))


def test_default_profile_registry_tags():
    reg = eq.indicator_registry(DEFAULT)
    assert set(reg) == {"ep_ecoland_ratio", "ep_habitat_quality", "ef_fvc", "bd_species", "bd_invasive", "es_land_dev", "es_natural"}
    assert {i.source_kind for i in reg.values()} == {"remote_sensing", "table"}
    assert DEFAULT.param("dimensions", "EP", "weight").tag == "[U]"
    assert DEFAULT["grades"]["tag"] == "[U]"
    every = eq.indicator_registry(DEFAULT, enabled_only=False)
    assert "ef_npp" in every and not every["ef_npp"].enabled


def test_default_profile_worked_example():
    # 400 km²: 320 km² ecological land (80 %), construction 20 + 0.5 × cropland 80 = 60 km² (15 %)
    areas = {21: 200.0, 31: 100.0, 42: 20.0, 51: 20.0, 12: 80.0}
    lcq = eq.landcover_quantities(areas, 400.0, DEFAULT)
    assert lcq == {"ecoland_ratio": 80.0, "land_development": 15.0}
    values = eq.gather_values(
        DEFAULT,
        area_km2=400.0,
        rs={**lcq, "habitat_quality": 60.0, "fvc_mean_percent": 70.0},
        tables={"biodiversity": {"biodiversity_index": 65.0, "invasive_species": 6.0}, "disasters": {"affected_km2": 2.0}},
    )
    r = eq.compute_eqi(values, DEFAULT)
    # EP = 0.5·80 + 0.5·60 = 70; EF = 70; BD = 0.7·65 + 0.3·(100 − 100·6/30) = 45.5 + 24 = 69.5
    # ES = 0.7·15 + 0.3·(100·0.5/10) = 10.5 + 1.5 = 12
    # EQI = 0.35·70 + 0.35·70 + 0.20·69.5 + 0.10·(100 − 12) = 24.5 + 24.5 + 13.9 + 8.8 = 71.7
    assert r.dimensions == pytest.approx({"EP": 70.0, "EF": 70.0, "BD": 69.5, "ES": 12.0}, abs=1e-9)
    assert r.eqi == pytest.approx(71.7, abs=1e-9)
    assert r.grade == "一类" and r.profile_id == "eqi-2021-proxy"
    row = r.to_row()
    assert row["bd_species_source"] == "table" and row["ef_fvc_source"] == "remote_sensing"


def test_default_profile_missing_biodiversity_table():
    values = eq.gather_values(
        DEFAULT,
        area_km2=400.0,
        rs={"ecoland_ratio": 80.0, "land_development": 15.0, "habitat_quality": 60.0, "fvc_mean_percent": 70.0},
        tables={"disasters": {"affected_km2": 2.0}},
    )
    r = eq.compute_eqi(values, DEFAULT)
    assert not r.complete and math.isnan(r.eqi)
    assert r.missing == ("bd_species (物种多样性, table)", "bd_invasive (外来入侵物种, table)")


@pytest.mark.parametrize(
    ("value", "grade"),
    [(70.0, "一类"), (69.99, "二类"), (55.0, "二类"), (54.99, "三类"), (40.0, "三类"), (39.99, "四类"),
     (30.0, "四类"), (29.99, "五类")],
)  # fmt: skip
def test_every_eqi_grade_boundary(value, grade):
    assert eq.eqi_grade(value, DEFAULT) == grade


@pytest.mark.parametrize(
    ("delta", "label"),
    [
        (4.01, "明显变好"), (4.0, "一般变好"), (2.01, "一般变好"), (2.0, "轻微变好"), (1.01, "轻微变好"),
        (1.0, "基本稳定"), (0.0, "基本稳定"), (-1.0, "基本稳定"), (-1.01, "轻微变差"), (-2.0, "轻微变差"),
        (-2.01, "一般变差"), (-4.0, "一般变差"), (-4.01, "明显变差"),
    ],
)  # fmt: skip
def test_every_delta_eqi_class_boundary(delta, label):
    assert eq.delta_eqi_class(50.0, 50.0 + delta, DEFAULT)[1] == label
