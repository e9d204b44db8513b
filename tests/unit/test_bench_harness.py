"""The benchmark harness on tiny inputs: subprocess runs, equality check, results merging.

Only mechanics and equality are tested here; no timing is asserted (performance is measured by
``make bench``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import bench_composite, bench_rsei, fixtures
from bench.harness import (
    BenchMismatch,
    Side,
    compare_results,
    format_table,
    merge_rows,
    run_case,
    run_side,
)


def _row(name: str, size: str, ours_s: float) -> dict:
    return {
        "name": name,
        "size": size,
        "ours_s": ours_s,
        "ours_peak_mib": 100.0,
        "baseline": "plain",
        "baseline_s": 2.0,
        "baseline_peak_mib": 200.0,
        "ratio": 2.0 / ours_s,
    }


def test_merge_rows_replaces_same_name_and_size_and_keeps_others(tmp_path):
    path = tmp_path / "results.json"
    merge_rows([_row("a", "1", 1.0), _row("b", "1", 1.0), _row("a", "2", 1.0)], path)
    rows = merge_rows([_row("a", "1", 4.0), _row("c", "1", 1.0)], path)
    assert [(r["name"], r["size"]) for r in rows] == [
        ("a", "1"),
        ("b", "1"),
        ("a", "2"),
        ("c", "1"),
    ]
    assert rows[0]["ours_s"] == 4.0 and rows[0]["ratio"] == 0.5
    assert json.loads(path.read_text()) == rows


def test_compare_results_treats_nan_as_equal_and_fails_on_difference(tmp_path):
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    np.savez(a, x=np.array([1.0, np.nan], np.float32))
    np.savez(b, x=np.array([1.0 + 1e-8, np.nan], np.float32))
    np.savez(c, x=np.array([1.0, 0.0], np.float32))
    compare_results(a, b, rtol=1e-6, atol=0.0, what="t")
    with pytest.raises(BenchMismatch, match="'x' differs"):
        compare_results(a, c, rtol=1e-6, atol=0.0, what="t")
    np.savez(c, y=np.zeros(2, np.float32))
    with pytest.raises(BenchMismatch, match="returns"):
        compare_results(a, c, rtol=1e-6, atol=0.0, what="t")


def test_composite_case_runs_both_sides_in_subprocesses_and_they_agree(tmp_path):
    bench_composite.prepare(tmp_path, size=256, dates=(3,))
    (case,) = bench_composite.cases(tmp_path, size=256, dates=(3,), repeats=1)
    row = run_case(case, workdir=tmp_path, log=None)  # raises BenchMismatch if results differ
    assert row["name"] == "composite_median" and row["size"] == "3x256x256"
    for side in ("ours", "baseline"):
        assert row[f"{side}_peak_mib"] >= row[f"{side}_rss_before_mib"] > 10
    assert "composite_median" in format_table([row])


def test_composite_ours_matches_baseline_with_nan_where_never_clear(tmp_path):
    fixtures.landsat_scenes(3, 256, tmp_path)
    ours = bench_composite.ours(3, 256, str(tmp_path))()
    base = bench_composite.baseline(3, 256, str(tmp_path))()
    assert np.isnan(ours["red"][:, 0]).all()  # left edge is fill on every date
    assert (ours["count"][:, 0] == 0).all()
    assert np.isfinite(ours["nir"]).mean() > 0.5
    for key in ("red", "nir", "count"):
        np.testing.assert_allclose(ours[key], base[key], rtol=1e-6, atol=1e-6, equal_nan=True)


def test_rsei_numpy_baseline_reproduces_eqi(tmp_path):
    bench_rsei.prepare(tmp_path, sizes=(512,))  # 262 144 px > the 100 000-pixel PCA sample
    ours = bench_rsei.ours(512, str(tmp_path))()
    base = bench_rsei.baseline(512, str(tmp_path))()
    assert np.isnan(ours["rsei"]).any() and (ours["grade"] == 0).any()  # NaN wedge and water
    assert np.nanmin(ours["rsei"]) == 0.0 and np.nanmax(ours["rsei"]) == 1.0
    np.testing.assert_allclose(ours["rsei"], base["rsei"], rtol=0, atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(ours["grade"], base["grade"])
    eager = bench_rsei.ours_in_memory(512, str(tmp_path))()
    np.testing.assert_array_equal(eager["rsei"], ours["rsei"])


def test_lazy_band_reads_blocks_equal_to_the_file(tmp_path):
    paths = fixtures.reflectance_bands(300, tmp_path)
    lazy = fixtures.lazy_band(paths["nir"], chunk=128)
    assert lazy.chunks == ((128, 128, 44), (128, 128, 44))
    np.testing.assert_array_equal(lazy.compute(), fixtures.load_band(paths["nir"]))


def test_child_peak_memory_is_not_the_parents(tmp_path):
    # ru_maxrss of a child inherits the parent's high-water mark across exec on Linux; the
    # harness must report the child's own peak.
    ballast = np.ones(300 * 1024 * 1024 // 8)  # 300 MiB resident in this (parent) process
    m = run_side(Side("probe", "bench.harness:probe", {"n": 1000}), tmp_path / "probe")
    assert ballast.sum() > 0
    assert 1 < m.peak_mib < 200 and m.rss_before_mib <= m.peak_mib
    with np.load(m.result) as result:
        np.testing.assert_array_equal(result["x"], np.arange(1000))
