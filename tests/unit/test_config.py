"""Run configuration: YAML in, flags override, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from eqi.config import SeasonWindow, build_config, config_hash, load_config
from eqi.errors import ConfigError
from eqi.geo.crs import ALBERS_CHINA

BASE = {"source": "a.parquet", "collections": ["landsat-c2-l2"], "aoi": "sichuan:510115", "years": [2023], "out": "out"}


def test_season_window_ranges() -> None:
    assert SeasonWindow.parse("06-01/09-30").datetime_range(2023) == "2023-06-01T00:00:00Z/2023-09-30T23:59:59Z"
    assert SeasonWindow.parse("11-01/02-28").datetime_range(2023).endswith("2024-02-28T23:59:59Z")
    with pytest.raises(ValueError, match="MM-DD/MM-DD"):
        SeasonWindow.parse("June")


def test_defaults_and_albers() -> None:
    cfg = build_config(dict(BASE))
    assert cfg.crs_string == ALBERS_CHINA and cfg.resolution == 30 and cfg.season == "06-01/09-30"
    assert cfg.products == ["composite", "count", "ndvi"]


def test_collections_are_optional_but_not_empty() -> None:
    without = {k: v for k, v in BASE.items() if k != "collections"}
    assert build_config(without).collections is None  # = all the source offers
    with pytest.raises(ConfigError, match="collections"):
        build_config({**BASE, "collections": []})


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"crs": "EPSG:999999"}, "crs: unknown CRS"),
        ({"crs": "EPSG:4326"}, "degrees"),
        ({"season": "13-01/09-30"}, "season"),
        ({"collections": ["modis"]}, "modis"),
        ({"products": ["ndvi", "happiness"]}, "happiness"),
        ({"bands": ["ultraviolet"]}, "ultraviolet"),
        ({"chunk": 300}, "multiple of 512"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_values_name_the_field(change: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({**BASE, **change})
    assert needle.lower() in str(info.value).lower()


def test_yaml_paths_relative_to_file_and_flags_override(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(
        "source: ../archive.parquet\ncollections: [landsat-c2-l2]\naoi: sichuan:510115\n"
        "years: [2022, 2022, 2021]\nout: results\nlandcover: {reference: \"wc_{year}.tif\"}\n"
    )
    cfg = load_config(path, {"resolution": 60.0, "season": None})
    assert cfg.source == str(tmp_path / "archive.parquet")
    assert cfg.out == folder / "results"
    assert cfg.aoi == "sichuan:510115"  # a library name, not a path
    assert cfg.years == [2021, 2022]
    assert cfg.resolution == 60.0 and cfg.season == "06-01/09-30"
    assert cfg.landcover.reference == str(folder / "wc_{year}.tif")


def test_config_hash_ignores_output_folder() -> None:
    a = build_config({**BASE, "out": "x"})
    b = build_config({**BASE, "out": "y"})
    c = build_config({**BASE, "resolution": 10})
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
