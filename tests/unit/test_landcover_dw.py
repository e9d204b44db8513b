"""Dynamic World label 0 is water: read from a file it stays water, never nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin

from eqi.errors import InputError
from eqi.io import landcover_tables
from eqi.io.landcover_reference import load_reference, reference_items
from eqi.science import landcover

# an 8 × 8 px label file at 30 m in UTM 32N; the run's grid is 12 × 12 px around it
LABELS = np.array([[0, 0, 1, 1, 4, 4, 7, 7]] * 8, dtype=np.uint8)
ORIGIN = (500_000.0, 10_000.0)


def _write(path: Path, nodata: int | None) -> Path:
    profile = {
        "driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
        "crs": "EPSG:32632", "transform": from_origin(*ORIGIN, 30, 30),
    }  # fmt: skip
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(LABELS, 1)
    return path


def _grid() -> GeoBox:
    x0, y0 = ORIGIN
    return GeoBox((12, 12), from_origin(x0 - 60, y0 + 60, 30, 30), "EPSG:32632")


def _read(path: Path, nodata: int | None):
    items = reference_items(
        str(path), year=2021, bbox=(8.9, 0.0, 9.1, 0.2), collection=None, asset="map", nodata=nodata
    )
    return load_reference(items, _grid(), "map")


def test_dynamic_world_water_survives_the_reader(tmp_path: Path) -> None:
    dw = landcover_tables.load_mapping("dynamic-world")
    table = landcover_tables.load_class_table()
    path = _write(tmp_path / "dw.tif", None)
    codes = _read(path, dw.nodata)
    assert codes.shape == (12, 12)
    inside = np.zeros((12, 12), dtype=bool)
    inside[2:10, 2:10] = True  # the file's 8 × 8 px
    assert (codes.values[~inside] == 255).all()  # outside the file: DW's nodata, not water
    np.testing.assert_array_equal(codes.values[inside].reshape(8, 8), LABELS)
    level2 = landcover.reclassify(codes, dw, 2, table=table).values
    assert (level2[~inside] == 0).all()
    # water 0 → 河渠 41, trees 1 → 21, crops 4 → 12, bare 7 → 66 (nothing lost)
    np.testing.assert_array_equal(level2[2, 2:10], [41, 41, 21, 21, 12, 12, 66, 66])
    assert (level2[inside] == 41).sum() == (LABELS == 0).sum() == 16
    # the reader's old default (0) fills the outside with DW water: the defect fixed here
    assert (_read(path, None).values[~inside] == 0).all()


def test_dynamic_world_file_declaring_water_as_nodata_is_refused(tmp_path: Path) -> None:
    dw = landcover_tables.load_mapping("dynamic-world")
    codes = _read(_write(tmp_path / "dw0.tif", 0), dw.nodata)
    with pytest.raises(InputError, match=r"0 \(water\) as nodata.*unmask\(255\)"):
        landcover.reclassify(codes, dw, 1, table=landcover_tables.load_class_table())
