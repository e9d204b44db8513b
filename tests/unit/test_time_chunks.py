"""Several dates per read task (``dates_per_chunk``) change the task graph, never the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
import yaml
from shapely.geometry import Polygon, mapping

from eqi.cli import main
from eqi.demo.simulate import simulate_archive
from eqi.io.catalog.archive import index_archive


def _run(parquet: Path, aoi: Path, out: Path, dates_per_chunk: int, tmp_path: Path) -> None:
    config = tmp_path / f"run-{dates_per_chunk}.yaml"
    config.write_text(yaml.safe_dump({
        "source": str(parquet), "collections": ["landsat-c2-l2"], "aoi": str(aoi), "years": [2022],
        "season": "01-01/12-31", "crs": "EPSG:32648", "products": ["composite", "count", "ndvi"],
        "out": str(out), "simulated": True, "dates_per_chunk": dates_per_chunk,
    }))  # fmt: skip
    main(["run", str(config)])  # returns on success (exit 0)


def test_outputs_do_not_depend_on_dates_per_chunk(tmp_path: Path, monkeypatch) -> None:
    from eqi.io import load

    steps: list[int] = []  # the reads really are windowed, several dates per task in the second run
    real = load.native_band
    monkeypatch.setattr(load, "native_band", lambda *a, **k: steps.append(k["dates_per_chunk"]) or real(*a, **k))
    region = Polygon([(103.80, 30.69), (103.83, 30.70), (103.82, 30.73), (103.79, 30.72)])
    sim = simulate_archive(region, tmp_path / "archive", region_name="tiny", years=(2022,), margin_m=600.0)
    parquet = index_archive([sim.scenes_dir], tmp_path / "archive.parquet").out
    aoi = tmp_path / "tiny.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {"name": "tiny"}, "geometry": mapping(region)}))
    one, four = tmp_path / "one", tmp_path / "four"
    _run(parquet, aoi, one, 1, tmp_path)
    _run(parquet, aoi, four, 4, tmp_path)
    assert 1 in steps and 4 in steps, steps
    files = sorted(p.relative_to(one) for p in one.rglob("*.tif"))
    assert any(p.name == "ndvi.tif" for p in files) and any(p.name == "red.tif" for p in files)
    for rel in files:
        with rasterio.open(one / rel) as a, rasterio.open(four / rel) as b:
            x, y = a.read(), b.read()
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), rel
    # the masking summary counts every observation once, whatever the chunks
    (meta_one,) = (one / "tiles").rglob("metadata.json")
    (meta_four,) = (four / "tiles").rglob("metadata.json")
    masking = json.loads(meta_one.read_text())["masking"]
    assert masking["fractions"]["observations"] == 6 * 1024 * 1024
    assert json.loads(meta_four.read_text())["masking"] == masking
