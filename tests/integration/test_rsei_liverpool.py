"""RSEI on a real Landsat 8 C2 L2 crop (Liverpool / Mersey estuary, 2020-09-27).

Checks the spec §6.6 pitfalls on real data: orientation (greenness and wetness load positively),
solver-sign independence, water masking, and bytes independent of chunking and Dask workers.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from eqi.resources import load_profile
from eqi.science import indices
from eqi.science import rsei as R

RSEI = load_profile("rsei")
INDICES = load_profile("indices")


def _components(ds: xr.Dataset, label: str = "") -> R.RseiComponents:
    """The components built the pipeline's way (eqi/pipeline/tile_stage.py, eqi/products.py):
    indices.compute_index of each component, MNDWI for water, rsei.components_from_indices."""
    R.require_thermal(ds)

    def index(name: str) -> xr.DataArray:
        return indices.compute_index(name, ds, INDICES)

    layers = {name: index(name) for name in R.VARIANTS["rsei"]}
    return R.components_from_indices(
        layers, index("mndwi"), variant="rsei", sensor=ds.attrs.get("sensor"), label=label,
        params=RSEI,
    )  # fmt: skip


pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_204023_20200927_20201006_02_T1"
ALIASES = {
    "SR_B1": "coastal", "SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir",
    "SR_B6": "swir16", "SR_B7": "swir22", "ST_B10": "lwir",
}  # fmt: skip


@pytest.fixture(scope="module")
def liverpool(sample_data) -> xr.Dataset:
    path = sample_data / "landsat-c2l2-xlandsat-crops" / SCENE / f"{SCENE}_stack.tif"
    with rasterio.open(path) as src:
        dn = src.read()
        t = src.transform
        variables = {}
        for i, name in enumerate(src.descriptions):
            scale, offset = np.float32(src.scales[i]), np.float32(src.offsets[i])
            values = (dn[i] * scale + offset).astype(np.float32)
            values[dn[i] == src.nodatavals[i]] = np.nan
            variables[ALIASES[name]] = (("y", "x"), values)
    coords = {
        "y": t.f + t.e * (np.arange(dn.shape[1]) + 0.5),
        "x": t.c + t.a * (np.arange(dn.shape[2]) + 0.5),
    }
    return xr.Dataset(variables, coords=coords, attrs={"sensor": "landsat8"})


def test_liverpool_rsei_orientation_sign_and_water(liverpool):
    comps = _components(liverpool, label="2020")
    rsei, grade, model = R.compute_rsei(comps, params=RSEI)
    flipped, grade_f, model_f = R.compute_rsei(comps, params=RSEI, _solver_sign=-1)

    load = model.loadings
    assert load["ndvi"] > 0 and load["wet"] > 0
    assert load["lst"] < 0 and load["ndbsi"] < 0
    assert rsei.values.tobytes() == flipped.values.tobytes()
    assert grade.values.tobytes() == grade_f.values.tobytes() and model == model_f

    water = (indices.mndwi(liverpool) > 0).values
    assert water.mean() > 0.3  # the estuary and the sea are a large part of the crop
    assert np.isnan(rsei.values[water]).all()
    assert (grade.values[water] == 0).all()
    valid = ~np.isnan(rsei.values)
    assert valid.sum() == model.n_valid[0] > 10_000
    assert float(np.nanmin(rsei)) == 0.0 and float(np.nanmax(rsei)) == 1.0
    # RSEI rises with greenness on real land pixels
    assert np.corrcoef(rsei.values[valid], indices.ndvi(liverpool).values[valid])[0, 1] > 0.8


def test_liverpool_same_bytes_for_any_chunking_and_workers(liverpool):
    distributed = pytest.importorskip("distributed")
    kwargs = {"sample_size": 5_000}  # fewer than the valid pixels: exercises the seeded sample
    ref, gref, mref = R.compute_rsei(_components(liverpool), params=RSEI, **kwargs)
    assert mref.sample_size == 5_000 < mref.n_valid[0]
    results = []
    for workers in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=workers,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster),
        ):
            comps = _components(liverpool.chunk({"y": 128, "x": 128}))
            rsei, grade, model = R.compute_rsei(comps, params=RSEI, **kwargs)
            assert rsei.chunks is not None
            results.append((rsei.values.tobytes(), grade.values.tobytes(), model))
    assert results[0] == results[1]
    assert results[0] == (ref.values.tobytes(), gref.values.tobytes(), mref)
