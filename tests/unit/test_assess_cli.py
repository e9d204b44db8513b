"""``eqi assess`` on small synthetic rasters: bad input -> exit 2 naming the field and nothing
written; chainage finds the disturbed stretch; DEM matching; restart skips a finished project."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from pyproj import Transformer
from rasterio.transform import from_origin

from eqi.cli import main

CRS = "EPSG:32648"
X0, Y0, RES = 400_000.0, 3_400_000.0, 30.0
H, W = 400, 1200  # 12 km x 36 km
TO_LL = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _write(path: Path, data: np.ndarray) -> None:
    cat = data.dtype.kind in "iu"
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint8" if cat else "float32",
                       crs=CRS, transform=from_origin(X0, Y0, RES, RES), nodata=0 if cat else np.nan) as dst:  # fmt: skip
        dst.write(data.astype(np.uint8) if cat else data.astype(np.float32), 1)


def _ll(x: float, y: float) -> list[float]:
    lon, lat = TO_LL.transform(x, y)
    return [lon, lat]


@pytest.fixture(scope="module")
def rasters(tmp_path_factory) -> dict:
    """NDVI 0.7 everywhere (+ small noise); in 2021 a 120 m strip along y = 6 km from x = 20-28 km
    drops to 0.1 — the one disturbed stretch; a DEM rising to the north."""
    tmp = tmp_path_factory.mktemp("assess")
    rng = np.random.default_rng(3)
    before = 0.7 + rng.normal(0, 0.01, (H, W))
    after = 0.7 + rng.normal(0, 0.01, (H, W))
    rows = slice(H // 2 - 2, H // 2 + 2)  # 4 px = 120 m around y = Y0 - 6 km
    after[rows, int(20_000 / RES) : int(28_000 / RES)] = 0.1
    _write(tmp / "ndvi_2020.tif", before)
    _write(tmp / "ndvi_2021.tif", after)
    # CAS level-2 land cover: forest (21) everywhere; the strip becomes other construction land (53)
    lc = np.full((H, W), 21, dtype=np.uint8)
    _write(tmp / "landcover_2020.tif", lc)
    lc[rows, int(20_000 / RES) : int(28_000 / RES)] = 53
    _write(tmp / "landcover_2021.tif", lc)
    dem = np.repeat(np.linspace(1500, 500, H)[:, None], W, axis=1)
    _write(tmp / "dem.tif", dem)
    y = Y0 - 6_000
    line = [_ll(X0 + 2_000, y), _ll(X0 + 34_000, y)]
    return {"tmp": tmp, "line": line}


def _config(rasters: dict, name: str, **project) -> Path:
    tmp = rasters["tmp"]
    p = {"name": "line", "type": "linear", "geometry": {"coordinates": rasters["line"]}, "footprint_m": 60,
         "rings_m": [300, 1000], "control": {"distance_m": [2000, 4000]}, "before": 2020, "after": 2021,
         "chainage_km": 4,
         "sensitive": [{"name": "reserve", "geometry": {"crs": CRS, "wkt":
                        f"POLYGON (({X0 + 10_000} {Y0 - 4_000}, {X0 + 12_000} {Y0 - 4_000}, {X0 + 12_000} {Y0 - 3_000}, "
                        f"{X0 + 10_000} {Y0 - 3_000}, {X0 + 10_000} {Y0 - 4_000}))"}}]}  # fmt: skip
    for k, v in project.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    files = {"ndvi": str(tmp / "ndvi_{year}.tif"), "landcover": str(tmp / "landcover_{year}.tif")}
    cfg = {"out": f"out-{name}", "inputs": {"files": files, "dem": str(tmp / "dem.tif")},
           "projects": [p]}  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code)


@pytest.mark.parametrize(
    ("case", "project", "field"),
    [
        ("ring0", {"rings_m": [0, 1000]}, "projects[line].rings_m"),
        ("ringneg", {"rings_m": [-300]}, "projects[line].rings_m"),
        ("years", {"before": 2021, "after": 2021}, "projects[line]"),
        ("crs", {"geometry": {"coordinates": [[1, 2], [3, 4]], "crs": "EPSG:999999"}}, "projects[line].geometry.crs"),
        ("selfx", {"geometry": {"coordinates": [[103.0, 30.0], [103.1, 30.1], [103.1, 30.0], [103.0, 30.1]]}},
         "projects[line].geometry"),
        ("outside", {"geometry": {"coordinates": [[10.0, 50.0], [10.1, 50.1]]}}, "projects[line].geometry"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(rasters: dict, capsys, case: str, project: dict, field: str) -> None:
    path = _config(rasters, case, **project)
    assert _exit(["assess", str(path)]) == 2
    err = capsys.readouterr().err
    assert field in err, err
    assert "Traceback" not in err
    if case == "years":
        assert "before (2021) must be earlier than after (2021)" in err
    if case == "outside":
        assert "outside every input raster" in err
    assert not (rasters["tmp"] / f"out-{case}").exists()


def test_unknown_project_name_exits_2(rasters: dict, capsys) -> None:
    path = _config(rasters, "unknown")
    assert _exit(["assess", str(path), "--project", "nope"]) == 2
    assert "--project 'nope'" in capsys.readouterr().err
    assert not (rasters["tmp"] / "out-unknown").exists()


def test_assessment_finds_the_disturbed_stretch_and_restarts(rasters: dict, capsys) -> None:
    path = _config(rasters, "ok")
    main(["assess", str(path)])
    folder = rasters["tmp"] / "out-ok" / "projects" / "line"
    chain = pd.read_csv(folder / "chainage.csv")
    # the drop spans x = 20-28 km, i.e. chainage 18-26 km of the line starting at x = 2 km
    assert set(chain.sort_values("rank").head(3)["segment"]) == {"km_16_20", "km_20_24", "km_24_28"}
    assert chain.loc[chain["segment"] == "km_20_24", "rank"].item() == 1  # fully disturbed 4 km
    assert chain.loc[chain["segment"] == "km_0_4", "disturbed_km2"].item() == 0
    # disturbed area: 8 km x 120 m = 0.96 km² (oracle: the planted strip), all in the footprint
    import geopandas as gpd

    dist = gpd.read_file(folder / "disturbance.gpkg", layer="disturbance")
    assert dist["area_km2"].sum() == pytest.approx(0.96, rel=0.02)
    assert set(dist["zone"]) == {"footprint"}
    assert set(dist["dominant_transition"]) == {"21->53"}
    # land cover: the footprint (120 m strip = its 4 central pixel rows) lost 0.96 km² of forest
    tr = pd.read_csv(folder / "transitions.csv").set_index(["zone", "from", "to"])["km2"]
    assert tr[("footprint", 21, 53)] == pytest.approx(0.96, rel=0.01)
    lcs = pd.read_csv(folder / "landcover.csv").set_index(["zone", "class"])
    forest = lcs.loc[("footprint", 21)]
    k = (forest["km2_2021"] - forest["km2_2020"]) / forest["km2_2020"] / 1 * 100  # dynamic degree, T = 1
    assert forest["dynamic_degree_pct_per_year"] == pytest.approx(k)
    assert forest["conversion_out_pct_per_year"] == pytest.approx(0.96 / forest["km2_2020"] * 100, rel=0.01)
    ind = pd.read_csv(folder / "indicators.csv")
    hq = ind[(ind["zone"] == "footprint") & (ind["indicator"] == "habitat_quality")].set_index("year")["value"]
    a_bio, share = 511.2642131067, 0.96 / forest["km2_2020"]  # HJ 192 weights: forest 0.35 x 0.60, 53: 0.04 x 0.30
    assert hq[2020] == 100  # 511.26 x 0.21 > 100: clipped
    assert hq[2021] == pytest.approx(min(100, a_bio * (0.35 * 0.60 * (1 - share) + 0.04 * 0.30 * share)), rel=1e-3)
    frag = ind[(ind["zone"] == "footprint") & (ind["indicator"] == "fragmentation_patches")].set_index("year")["value"]
    assert frag[2020] == 1 and frag[2021] == 2  # the strip cuts the forest of the footprint in two
    baci = pd.read_csv(folder / "baci.csv").set_index("zone")
    fp = baci.loc["footprint"]
    assert fp["baci_high"] < 0 and fp["delta_control_low"] < 0 < fp["delta_control_high"]
    # matching used the DEM: elevation and slope are covariates, balance reported
    matching = json.loads((folder / "matching.json").read_text())
    assert matching["covariates"] == ["elevation_m", "slope_deg", "landcover_before"]
    assert abs(matching["balance"]["elevation_m"]["smd_matched"]) < 0.1 and matching["impact_matched_share"] > 0.9
    # the reserve (2 km x 1 km) lies 2-3 km north of the centreline: 1940 m from the 60 m footprint
    # edge, in no ring (they reach 1060 m); the control band starts at 2060 m: 2 km x 0.94 km in it
    target = json.loads((folder / "summary.json").read_text())["sensitive_targets"][0]
    assert target["distance_from_footprint_m"] == pytest.approx(1940, rel=0.003)
    assert target["footprint_km2"] == 0 and target["control_2000_4000m_km2"] == pytest.approx(2 * 0.94, rel=0.01)
    item = json.loads((folder / "item.json").read_text())
    assert item["properties"]["eqi:task_id"].startswith("line_2021_")
    capsys.readouterr()
    main(["assess", str(path)])
    assert "skip line: done" in capsys.readouterr().out


def test_sample_project_definitions_validate() -> None:
    """configs/projects/*.yaml parse, name their provenance, and their geometries fit their types."""
    from eqi.pipeline.assess.config import load_assess_config
    from eqi.pipeline.assess.geometry import check_kind, resolve_geometry
    from eqi.resources import config_dir

    files = sorted((config_dir() / "projects").glob("*.yaml"))
    assert files
    kinds = set()
    for path in files:
        cfg = load_assess_config(path)
        for p in cfg.projects:
            geom = check_kind(resolve_geometry(p.geometry, p.name), p.type, p.name)
            assert 97 < geom.centroid.x < 109 and 26 < geom.centroid.y < 35  # in Sichuan
            assert p.approximate and len(p.provenance) > 40
            kinds.add(p.type)
    assert kinds == {"linear", "point", "area"}


def test_gcj02_geometry_is_converted(tmp_path: Path) -> None:
    """A GCJ-02 point comes back within 1 m of its WGS 84 original (oracle: the forward formula)."""
    from eqi.geo.gcj02 import wgs84_to_gcj02
    from eqi.pipeline.assess.config import GeometrySpec
    from eqi.pipeline.assess.geometry import resolve_geometry

    lon, lat = 103.6495, 28.2599
    glon, glat = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    geom = resolve_geometry(GeometrySpec(coordinates=[float(glon[0]), float(glat[0])], datum="gcj02"), "g")
    assert abs(geom.x - lon) * 98_000 < 1 and abs(geom.y - lat) * 111_000 < 1


def test_project_over_nodata_only_exits_2(rasters: dict, capsys) -> None:
    """Inside the rasters' extent but where they hold no data (beyond the scenes): exit 2."""
    tmp = rasters["tmp"]
    for year in (2020, 2021):
        data = np.full((H, W), 0.7)
        data[:, W // 2 :] = np.nan  # the eastern half: no scene
        _write(tmp / f"half_{year}.tif", data)
    y = Y0 - 6_000
    path = _config(rasters, "nodata", geometry={"coordinates": [_ll(X0 + 25_000, y), _ll(X0 + 30_000, y)]})
    cfg = yaml.safe_load(path.read_text())
    cfg["inputs"] = {"files": {"ndvi": str(tmp / "half_{year}.tif")}}
    path.write_text(yaml.safe_dump(cfg))
    assert _exit(["assess", str(path)]) == 2
    assert "projects[line].geometry: the project lies outside every input raster" in capsys.readouterr().err
    assert not (tmp / "out-nodata").exists()
