"""Issue 7 acceptance at the science level, on real Landsat 8 C2 L2 crops (Brumadinho, Liverpool).

The crops' DN are read with rasterio and go through eqi's own grouping, masking (prepare_inputs),
compositing and indices.  Oracles: the USGS valid range of SR DN (7273-43636) applied with plain
NumPy to the raw DN, and the index formulas of spec §5.3 / §6.1 applied to the raw reflectance,
which show the out-of-range values the masking removes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import rasterio
from scene_stacks import groups_for, landsat_item, loaded

from eqi.pipeline.stack import composite_options, prepare_inputs
from eqi.resources import load_profile
from eqi.science import indices
from eqi.science import rsei as R
from eqi.science.composite import composite, mask_summary
from eqi.science.mask import MaskRules

RULES = MaskRules.from_profile(load_profile("mask"))
IDX = load_profile("indices")
ALIASES = {"SR_B1": "coastal", "SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir",
           "SR_B6": "swir16", "SR_B7": "swir22", "ST_B10": "lwir"}  # fmt: skip
SIX = ["blue", "green", "red", "nir", "swir16", "swir22"]
BRUMADINHO = ("LC08_L2SP_218074_20190114_20200829_02_T1", "LC08_L2SP_218074_20190130_20200829_02_T1")
LIVERPOOL = "LC08_L2SP_204023_20200927_20201006_02_T1"
VALID = (7273, 43636)


def _read(sample_data, scene: str) -> dict[str, np.ndarray]:
    path = sample_data / "landsat-c2l2-xlandsat-crops" / scene / f"{scene}_stack.tif"
    with rasterio.open(path) as src:
        return {ALIASES[d]: src.read(i + 1) for i, d in enumerate(src.descriptions)}


def _when(scene: str) -> datetime:
    return datetime.strptime(scene.split("_")[3], "%Y%m%d").replace(hour=13, tzinfo=UTC)


def _composite(stacks: list[dict[str, np.ndarray]], scenes: list[str], bands: list[str], wet: bool = False):
    items = [landsat_item("landsat8", _when(s), bands, qa=False) for s in scenes]
    (group,) = groups_for(items, bands, require_mask=False)  # the crops have no QA_PIXEL
    arrays = {b: np.stack([s[b] for s in stacks]) for b in bands}
    inputs = prepare_inputs([group], [loaded(group, arrays, chunk=128)], bands, rules=RULES)
    comp = composite(inputs, **composite_options(inputs, IDX, wet=wet)).compute()
    comp.attrs["sensor"] = "landsat8"
    return inputs, comp


def _raw_reflectance(dn: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {b: np.where(v == 0, np.nan, v * 2.75e-5 - 0.2) for b, v in dn.items()}


def _raw_indices(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s1, n, red, g, b = r["swir16"], r["nir"], r["red"], r["green"], r["blue"]
    with np.errstate(all="ignore"):
        built, vw = 2 * s1 / (s1 + n), n / (n + red) + g / (g + s1)
        ibi = (built - vw) / (built + vw)
        si = ((s1 + red) - (n + b)) / ((s1 + red) + (n + b))
        return {"ndvi": (n - red) / (n + red), "mndwi": (g - s1) / (g + s1), "ibi": ibi, "ndbsi": (si + ibi) / 2}


@pytest.mark.parametrize("scene", [*BRUMADINHO, LIVERPOOL])
def test_no_index_outside_its_range_after_masking(sample_data, scene: str) -> None:
    dn = _read(sample_data, scene)
    inputs, comp = _composite([dn], [scene], SIX)
    # oracle 1: exactly the pixels with a DN outside the USGS valid range (or fill) are masked
    bad = np.zeros(dn["red"].shape, bool)
    for b in SIX:
        bad |= (dn[b] < VALID[0]) | (dn[b] > VALID[1])
    assert bad.any()
    np.testing.assert_array_equal(np.isnan(comp["red"].values), bad)
    summary = mask_summary(inputs)
    fill = np.zeros_like(bad)
    for b in SIX:
        fill |= dn[b] == 0
    assert summary["fill"] == pytest.approx(fill.mean())
    assert summary["out_of_range"] == pytest.approx((bad & ~fill).mean())
    assert summary["usable"] == pytest.approx((~bad).mean())
    # oracle 2: the same formulas on the unmasked reflectance leave [-1, 1] (issue 7, Why 3) ...
    raw = _raw_indices(_raw_reflectance({b: dn[b] for b in SIX}))
    assert any(np.nanmax(np.abs(v)) > 1.0 + 1e-6 for v in raw.values())
    # ... after masking, no NDVI, MNDWI, NDBSI or IBI pixel does, and valid pixels equal the oracle
    for name in ("ndvi", "mndwi", "ndbsi", "ibi"):
        values = indices.compute_index(name, comp, IDX).values
        finite = values[np.isfinite(values)]
        assert finite.size > 0.3 * values.size, name
        assert finite.min() >= -1.0 and finite.max() <= 1.0, name
        keep = ~bad
        np.testing.assert_allclose(values[keep], raw[name][keep], atol=2e-5, err_msg=name)


def test_brumadinho_raw_ndvi_is_far_outside_the_range(sample_data) -> None:
    # the figure: NDVI from -85 to +85 on the Brumadinho crop without the valid range
    dn = _read(sample_data, BRUMADINHO[0])
    raw = _raw_indices(_raw_reflectance(dn))["ndvi"]
    assert np.nanmin(raw) < -50 and np.nanmax(raw) > 50


def test_brumadinho_two_dates_aligned_composite(sample_data) -> None:
    # the 01-30 crop starts 900 m (30 px) east of the 01-14 crop: composite the common window
    a, b = (_read(sample_data, s) for s in BRUMADINHO)
    a = {k: v[:, 30:] for k, v in a.items()}
    b = {k: v[:, :-30] for k, v in b.items()}
    inputs, comp = _composite([a, b], list(BRUMADINHO), SIX, wet=True)
    ok = [np.all([(s[k] >= VALID[0]) & (s[k] <= VALID[1]) for k in SIX], axis=0) for s in (a, b)]
    np.testing.assert_array_equal(comp["count"].values, ok[0].astype(int) + ok[1].astype(int))
    seen = [np.all([s[k] != 0 for k in SIX], axis=0) for s in (a, b)]  # DN 0 = fill (26 px on 01-14)
    np.testing.assert_array_equal(comp["observed"].values, seen[0].astype(int) + seen[1].astype(int))
    assert (comp["observed"].values == 2).mean() > 0.99
    for name in ("ndvi", "mndwi", "ndbsi", "ibi"):
        values = indices.compute_index(name, comp, IDX).values
        assert np.nanmin(values) >= -1.0 and np.nanmax(values) <= 1.0, name
    assert np.isfinite(comp["wet"].values).mean() > 0.9


def test_liverpool_one_scene_rsei_minmax_keeps_ndbsi_loading(sample_data) -> None:
    dn = _read(sample_data, LIVERPOOL)
    _, comp = _composite([dn], [LIVERPOOL], [*SIX, "lwir"], wet=True)
    profile = load_profile("rsei")
    # the pipeline's way (eqi.products): components by compute_index, then components_from_indices
    layers = {n: indices.compute_index(n, comp, IDX) for n in R.VARIANTS["rsei"]}
    comps = R.components_from_indices(
        layers, indices.compute_index("mndwi", comp, IDX), variant="rsei",
        obs_count=comp["count"], observed=comp["observed"], params=profile,
    )  # fmt: skip
    # one scene, default profile (min_observations 2, multi-scene scope): RSEI is computed
    _, _, model = R.compute_rsei(comps, normalisation="minmax", params=profile)
    load = model.loadings
    assert load["ndvi"] > 0 and load["wet"] > 0
    assert load["ndbsi"] < 0 and abs(load["ndbsi"]) > 0.3, load
