"""Tabular inputs (eqi.io.tables): CSV/XLSX read with the documented schema; every bad input
ends with an InputError naming file, row and column."""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from eqi.errors import InputError
from eqi.io.tables import (
    SCHEMAS,
    ei_table_values,
    eqi_table_rows,
    find_tables,
    read_table,
    read_tables,
)
from eqi.science.ei import EiInputs

KNOWN = {"510104", "510105", "510106"}


def _csv(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


POLLUTION = (
    "adcode,year,cod_t,nh3n_t,so2_t,dust_t,nox_t,solid_waste_t,precipitation_mm\n"
    "510104,2020,2000,200,500,300,800,100,1000\n"
    "510105,2020,\"1,200.5\",20,50,30,80,10,950\n"
)


def test_read_csv_english_headers(tmp_path):
    t = read_table(_csv(tmp_path / "pollution.csv", POLLUTION), "pollution", known_adcodes=KNOWN)
    assert list(t["adcode"]) == ["510104", "510105"] and list(t["year"]) == [2020, 2020]
    assert t.loc[1, "cod_t"] == 1200.5  # thousands separator accepted
    assert list(t["_row"]) == [2, 3] and t.attrs["family"] == "pollution"


def test_chinese_headers_with_units_and_gb18030(tmp_path):
    text = "行政区划代码,年份,化学需氧量 (t),氨氮（t）,二氧化硫(吨),烟(粉)尘 (t),氮氧化物 (t),固体废物丢弃量 (t),年降水量 (mm),县名\n510104,2021,1,2,3,4,5,6,900,锦江区\n"
    t = read_table(_csv(tmp_path / "p.csv", text, encoding="gb18030"), "pollution")
    assert t.loc[0, "dust_t"] == 4.0 and t.loc[0, "precipitation_mm"] == 900.0


def test_wrong_unit_is_refused(tmp_path):
    text = POLLUTION.replace("cod_t", "COD (kg)")
    with pytest.raises(InputError, match=r"(?s)p\.csv.*row 1, column 'COD \(kg\)': unit 'kg' differs"):
        read_table(_csv(tmp_path / "p.csv", text), "pollution")


def test_unknown_adcode_names_file_row_column(tmp_path):
    text = POLLUTION + "510199,2020,1,1,1,1,1,1,1\n"
    with pytest.raises(InputError, match=r"(?s)pollution\.csv: 1 problem.*row 4, column 'adcode': unknown adcode '510199'"):
        read_table(_csv(tmp_path / "pollution.csv", text), "pollution", known_adcodes=KNOWN)


def test_missing_column(tmp_path):
    text = POLLUTION.replace(",nox_t", "").replace(",800,", ",").replace(",80,", ",")
    with pytest.raises(InputError, match=r"(?s)pollution\.csv.*missing column 'nox_t' \(氮氧化物, t\)"):
        read_table(_csv(tmp_path / "pollution.csv", text), "pollution")


def test_non_numeric_and_negative_values_all_listed(tmp_path):
    text = POLLUTION.replace("2000,200", "abc,200").replace("950", "-950")
    with pytest.raises(InputError) as err:
        read_table(_csv(tmp_path / "pollution.csv", text), "pollution")
    msg = str(err.value)
    assert "2 problem(s)" in msg
    assert "row 2, column 'cod_t': 'abc' is not a number" in msg
    assert "row 3, column 'precipitation_mm': negative value -950" in msg


def test_row_numbers_count_blank_lines_and_empty_required_value(tmp_path):
    text = "adcode,year,affected_km2\n510104,2020,1.5\n\n510105,2020,\n"
    with pytest.raises(InputError, match=r"(?s)row 4, column 'affected_km2': empty value"):
        read_table(_csv(tmp_path / "d.csv", text), "disasters")


def test_duplicates_years_and_levels(tmp_path):
    text = "adcode,year,affected_km2\n510104,2020,1\n510104,2020,2\n51010,2020.5,3\n"
    with pytest.raises(InputError) as err:
        read_table(_csv(tmp_path / "d.csv", text), "disasters")
    msg = str(err.value)
    assert "row 3: adcode 510104 year 2020 already given in row 2" in msg
    assert "row 4, column 'adcode': adcode '51010' is not a 6-digit" in msg
    assert "row 4, column 'year': year '2020.5'" in msg
    bad = "adcode,year,level\n510104,2020,4\n"
    with pytest.raises(InputError, match=r"(?s)row 2, column 'level': restriction level '4' must be an integer 0..3"):
        read_table(_csv(tmp_path / "r.csv", bad), "restriction")


def test_xlsx_workbook_with_a_sheet_per_family(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "biodiversity"
    ws.append(["adcode", "year", "生物多样性指数", "外来入侵物种数 (种)"])
    ws.append([510104, 2020, 62.5, 4])
    ws.append([510105, 2020, 58.0, None])  # optional column: empty allowed
    ws2 = wb.create_sheet("水资源")
    ws2.append(["行政区划代码", "年份", "水资源量 (10⁶ m³)"])
    for year, w in ((2017, 400), (2018, 500), (2019, 600), (2020, 900)):
        ws2.append(["510104", year, w])
    ws3 = wb.create_sheet("restriction")
    ws3.append(["adcode", "year", "level", "event"])
    ws3.append(["510104", 2020, 1, "一般突发环境事件"])
    ws3.append(["510104", 2020, 2, "较大突发环境事件"])
    path = tmp_path / "inputs.xlsx"
    wb.save(path)
    tables = read_tables(path, known_adcodes=KNOWN)
    assert set(tables) == {"biodiversity", "water_resources", "restriction"}
    assert pd.isna(tables["biodiversity"].loc[1, "invasive_species"])
    kw = ei_table_values(tables, "510104", 2020)
    assert kw["biodiversity_index"] == 62.5 and kw["water_resources"] == 900.0
    assert kw["water_resources_history"] == (400.0, 500.0, 600.0)
    assert kw["restriction_level"] == 2  # highest level of the year
    assert kw["pollution_t"] is None  # no pollution table: EI will name it missing
    EiInputs(area_km2=10.0, **kw)  # the keywords fit
    rows = eqi_table_rows(tables, "510105", 2020)
    assert rows["biodiversity"]["biodiversity_index"] == 58.0 and rows["disasters"] is None


def test_bad_xlsx_cell_names_sheet_and_row(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "erosion"
    ws.append(["adcode", "year", "severe_erosion_km2", "moderate_erosion_km2", "other_stress_km2"])
    ws.append(["510104", 2020, 1, "n/a", 0])
    wb.save(tmp_path / "e.xlsx")
    with pytest.raises(InputError, match=r"(?s)e\.xlsx \(sheet 'erosion'\).*row 2, column 'moderate_erosion_km2': 'n/a' is not a number"):
        read_tables(tmp_path / "e.xlsx")


def test_find_tables_in_a_folder(tmp_path):
    _csv(tmp_path / "pollution.csv", POLLUTION)
    _csv(tmp_path / "自然灾害.csv", "adcode,year,affected_km2\n510104,2020,1\n")
    found = find_tables(tmp_path)
    assert set(found) == {"pollution", "disasters"}
    assert set(read_tables(tmp_path)) == {"pollution", "disasters"}
    assert {"biodiversity", "pollution", "water_resources", "erosion", "restriction", "disasters"} <= set(SCHEMAS)
