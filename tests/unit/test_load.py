"""Loading items onto an explicit grid: independent chunk tasks, values as odc-stac reads them."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import odc.stac

from bench import fixtures
from eqi.load import group_items, independent_chunks, load_group


def test_load_group_gives_every_chunk_its_own_reader_task(tmp_path: Path) -> None:
    # Shared per-date odc-stac reader tasks made Dask read all blocks of a date before reducing
    # any block (2.2 GiB for 64 dates in make bench); load_group inlines them.
    fixtures.landsat_scenes(2, 256, tmp_path)
    items = fixtures.landsat_items(2, 256, tmp_path)
    groups = group_items(items, ["red", "nir"])
    geobox = fixtures.scene_geobox(256)
    loaded = load_group(groups[0], geobox, chunk=128)
    for name in ("red", "nir", "qa_pixel"):
        layers = loaded[name].data.dask.layers
        assert not any(n.startswith(("open-", "cfg-")) for n in layers), name
    plain = odc.stac.load(list(groups[0].items), bands=["red", "nir"], geobox=geobox, groupby="solar_day")
    np.testing.assert_array_equal(loaded["nir"].values, plain["nir"].values)
    assert loaded["red"].dtype == np.uint16


def test_arrays_not_made_by_odc_stac_are_left_alone() -> None:
    plain = da.ones((4, 4), chunks=2)
    assert independent_chunks(plain) is plain
