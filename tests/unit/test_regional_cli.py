"""Regional assessment through the CLI: bad tabular inputs end `eqi run` / `eqi validate` with
exit 2 naming file, row and column, before anything is written; zone layers are imported,
listed and selected; bad zone files are refused naming file, feature and field."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from eqi.cli import main

GOOD = "adcode,year,biodiversity_index,invasive_species\n510115,2022,40,3\n510115,2023,41,3\n"


def _eqi(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _config(tmp: Path, tables: Path) -> Path:
    cfg = tmp / "run.yaml"
    cfg.write_text(
        "source: missing-archive.parquet\ncollections: [landsat-c2-l2]\naoi: sichuan:510115\nyears: [2022, 2023]\n"
        f"products: [ndvi, ei, eqi]\nout: out\nassess:\n  tables: {tables.name}\n",
        encoding="utf-8",
    )
    return cfg


@pytest.mark.parametrize(
    ("text", "row", "column", "what"),
    [
        ("adcode,year,biodiversity_index\n510115,2022,40\n519999,2022,40\n", "row 3", "'adcode'", "unknown adcode '519999'"),
        ("adcode,year\n510115,2022\n", None, "'biodiversity_index'", "missing column"),
        ("adcode,year,biodiversity_index\n510115,2022,forty\n", "row 2", "'biodiversity_index'", "'forty' is not a number"),
        ("adcode,year,biodiversity_index\n510115,2022,-4\n", "row 2", "'biodiversity_index'", "negative value -4"),
    ],
    ids=["unknown-adcode", "missing-column", "non-numeric", "negative"],
)
def test_bad_table_exits_2_naming_file_row_column_and_writes_nothing(tmp_path, capsys, text, row, column, what):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "biodiversity.csv").write_text(text, encoding="utf-8")
    cfg = _config(tmp_path, tables)
    for command in ("run", "validate"):
        assert _eqi(command, str(cfg)) == 2
        err = capsys.readouterr().err
        assert "biodiversity.csv" in err and column in err and what in err, err
        if row:
            assert row in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_validate_lists_good_tables(tmp_path, capsys):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "biodiversity.csv").write_text(GOOD, encoding="utf-8")
    cfg = _config(tmp_path, tables)
    _eqi("validate", str(cfg))  # fails later on the missing archive, after the tables
    out = capsys.readouterr().out
    assert "table biodiversity:" in out and "(2 row(s)) ok" in out


@pytest.fixture
def library(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    monkeypatch.setenv("EQI_AOI_LIBRARY", str(lib))
    return lib


def _zones(path: Path, **changes) -> Path:
    data = {"id": ["gp-1", "ws-1"], "name": ["大熊猫国家公园", "水源地"], "type": ["国家公园", "water_source"],
            "parent_adcode": ["510115", None]}  # fmt: skip
    geoms = [shapely.box(103.70, 30.65, 103.75, 30.70), shapely.box(103.76, 30.65, 103.80, 30.70)]
    for k, v in changes.items():
        if k == "geometry":
            geoms = v
        elif v is None:
            data.pop(k)
        else:
            data[k] = v
    gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326").to_file(path)
    return path


def test_import_list_and_select_zones(tmp_path, library, capsys):
    src = _zones(tmp_path / "panda.gpkg")
    assert _eqi("aoi", "import", str(src), "--as", "zones", "--name", "panda") == 0
    assert (library / "zones" / "panda.gpkg").is_file()
    assert library not in Path(__file__).parents and "site-packages" not in str(library)
    capsys.readouterr()
    assert _eqi("aoi", "list", "--level", "zone") == 0
    out = capsys.readouterr().out
    assert "zones:panda\t2 zone(s)\tprotected_area,water_source" in out
    from eqi.geo.regions import load_regions

    assert [r.name for r in load_regions("zones:panda")] == ["panda-gp-1", "panda-ws-1"]
    assert [r.name for r in load_regions("zones:panda:protected_area")] == ["panda-gp-1"]
    assert [r.name for r in load_regions("zones:panda:自然保护地")] == ["panda-gp-1"]
    assert [r.name for r in load_regions("zones:panda:水源地")] == ["panda-ws-1"]
    assert [r.name for r in load_regions("zones:panda:510115")] == ["panda-gp-1"]
    assert [r.name for r in load_regions("zones:panda:ws-1")] == ["panda-ws-1"]
    r = load_regions("zones:panda:gp-1")[0]
    assert r.attrs["zone_type"] == "protected_area" and r.attrs["level"] == "zone"
    assert _eqi("aoi", "import", str(src), "--as", "zones", "--name", "panda") == 2  # exists: --replace
    assert "--replace" in capsys.readouterr().err
    assert _eqi("aoi", "show", "zones:panda:nothing") == 2
    assert "no zone of 'zones:panda'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ({"type": None}, "missing field(s) 'type'"),
        ({"type": ["国家公园", "lake"]}, "feature 2 (id 'ws-1'), field 'type': unknown zone type 'lake'"),
        ({"id": ["a", "a"]}, "feature 2 (id 'a'), field 'id': id 'a' already used by feature 1"),
        ({"parent_adcode": ["51011", None]}, "feature 1 (id 'gp-1'), field 'parent_adcode': '51011' is not a 6-digit adcode"),
        ({"name": ["x", None]}, "feature 2 (id 'ws-1'), field 'name': empty value"),
        ({"geometry": [shapely.Point(103.7, 30.6), shapely.box(103.76, 30.65, 103.80, 30.70)]}, "feature 1 (id 'gp-1'), geometry: a Point"),
    ],
    ids=["missing-field", "bad-type", "duplicate-id", "bad-parent", "empty-name", "point"],
)
def test_bad_zone_file_is_refused_naming_file_feature_field(tmp_path, library, capsys, changes, expect):
    src = _zones(tmp_path / "bad.geojson", **changes)
    assert _eqi("aoi", "import", str(src), "--as", "zones") == 2
    err = capsys.readouterr().err
    assert str(src) in err and expect in err, err
    assert not (library / "zones" / "bad.gpkg").exists()
