"""The benchmark harness on tiny inputs: subprocess runs, equality check, results merging.

Only mechanics and equality are tested here; no timing is asserted (performance is measured by
``make bench``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bench import archive_fixtures, bench_composite, bench_e2e, bench_rsei, bench_tiles, fixtures
from bench.harness import (
    BenchError,
    BenchMismatch,
    Side,
    compare_results,
    format_table,
    merge_rows,
    run_case,
    run_side,
)
from bench.proc_harness import ProcCase, ProcSide, run_proc_case, run_process


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


# ------------------------------------------------------------------ whole-process cases (e2e, tiles)


def _proc_side(code: str) -> ProcSide:
    return ProcSide("py", (sys.executable, "-c", code))


def test_process_runner_reports_the_childs_own_peak(tmp_path):
    ballast = np.ones(300 * 1024 * 1024 // 8)  # 300 MiB resident in this (parent) process
    small = run_process(_proc_side("pass"), tmp_path / "a", threads=2, mem_cap_mib=4096, timeout_s=60)
    code = "import numpy as np; a = np.ones(200 * 2**20 // 8); print(a.sum())"
    big = run_process(_proc_side(code), tmp_path / "b", threads=2, mem_cap_mib=4096, timeout_s=60)
    assert ballast.sum() > 0
    assert small.peak_mib < 100 and not small.out_of_memory
    assert 200 < big.peak_mib < 400, big.peak_mib
    assert big.seconds > 0 and "26214400.0" in big.stdout


def test_process_runner_kills_at_the_memory_cap(tmp_path):
    code = "import numpy as np, time; a = np.ones(600 * 2**20 // 8); time.sleep(30)"
    m = run_process(_proc_side(code), tmp_path / "oom", threads=2, mem_cap_mib=300, timeout_s=60)
    assert m.out_of_memory and m.seconds < 25
    row = run_proc_case(
        ProcCase("toy", "1", _proc_side("pass"), _proc_side(code), repeats=2, mem_cap_mib=300),
        workdir=tmp_path, log=None,
    )  # fmt: skip
    assert row["baseline_out_of_memory"] and row["baseline_s"] is None and row["ratio"] is None
    assert len(row["baseline_runs_s"]) == 1 and len(row["ours_runs_s"]) == 2  # not rerun
    assert "OOM" in format_table([row])


def test_process_runner_raises_on_failure(tmp_path):
    with pytest.raises(BenchError, match="exit 3"):
        run_process(_proc_side("import sys; sys.exit(3)"), tmp_path, threads=2, mem_cap_mib=4096,
                    timeout_s=60)  # fmt: skip


def test_aoi_gives_exactly_the_scene_grid(tmp_path):
    from eqi.geo.grid import region_geobox
    from eqi.geo.regions import load_regions

    for pixels in (256, 1024):
        (region,) = load_regions(str(archive_fixtures.aoi_file(pixels, tmp_path / f"{pixels}.geojson")))
        box = region_geobox(region.geometry, archive_fixtures.CRS, archive_fixtures.RES_M)
        assert box.shape == (pixels, pixels)
        x0, y0 = archive_fixtures.ORIGIN
        assert (box.affine.c, box.affine.f) == (x0, y0)
        assert x0 % (1024 * 30) == 0 and y0 % (1024 * 30) == 0  # on a 1024-px tile grid corner


def test_e2e_case_runs_eqi_and_the_plain_script_and_they_agree(tmp_path):
    bench_e2e.prepare(tmp_path, size=256, dates=(3,))
    (case,) = bench_e2e.cases(tmp_path, size=256, dates=(3,), repeats=1, jobs=("composite,ndvi,rsei",))
    row = run_proc_case(case, workdir=tmp_path, log=None)  # raises BenchMismatch on a difference
    assert row["name"] == "e2e_composite_ndvi_rsei" and row["size"] == "3x256x256"
    assert row["max_abs_diff"] == {b: 0.0 for b in bench_e2e.JOBS["composite,ndvi,rsei"][:-1]}
    assert row["rsei_r"] >= 0.99
    for side in ("ours", "baseline"):
        assert row[f"{side}_s"] > 0 and row[f"{side}_peak_mib"] > 50
    assert [c[1] for c in bench_e2e.checks([row])] in ([True], [False])


def test_e2e_check_fails_on_a_different_output(tmp_path):
    import rasterio

    ours, base = tmp_path / "ours" / "bench-area" / "2021", tmp_path / "base"
    for folder in (ours, base):
        folder.mkdir(parents=True)
    values = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "float32",
               "crs": "EPSG:32648", "transform": rasterio.Affine(30, 0, 0, 0, -30, 0)}  # fmt: skip
    for folder, data in ((ours, values), (base, values + np.float32(1e-3))):
        with rasterio.open(folder / "ndvi.tif", "w", **profile) as dst:
            dst.write(data, 1)
    with pytest.raises(BenchMismatch, match="ndvi: values differ"):
        bench_e2e.check_outputs(tmp_path / "ours", base, products=("ndvi",))


def test_tiles_rows_relative_to_the_one_tile_run():
    rows = [
        {"name": "tiles_scaling", "size": f"{n}", "tiles": n, "ours_s": s, "ours_peak_mib": p,
         "tiles_in_config": True}
        for n, s, p in ((1, 2.0, 400.0), (4, 8.8, 480.0), (16, 40.0, 600.0))
    ]  # fmt: skip
    rows = bench_tiles.annotate(rows)
    assert [r["time_per_tile_vs_1"] for r in rows] == [1.0, 1.1, 1.25]
    assert [r["peak_vs_1"] for r in rows] == [1.0, 1.2, 1.5]
    assert rows[1]["baseline_s"] == 8.0 and rows[1]["ratio"] == round(8.0 / 8.8, 3)
    verdicts = [ok for _text, ok, _detail in bench_tiles.checks(rows)]
    assert verdicts == [True, True, False, False]  # 4 tiles pass; 16 tiles fail time and peak
    startup = {"name": "tiles_scaling", "size": "start-up", "tiles": 0, "ours_s": 1.0,
               "ours_peak_mib": 300.0}  # fmt: skip
    rows = bench_tiles.annotate([*rows, startup])
    assert rows[1]["s_per_tile_net"] == round((8.8 - 1.0) / 4, 3) and rows[1]["net_time_per_tile_vs_1"] == 1.95
    assert "peak_vs_1" not in startup


def test_trend_bench_sides_agree_and_the_oracle_time_is_scaled(tmp_path, monkeypatch):
    from bench import bench_trend

    monkeypatch.setattr(bench_trend, "SAMPLE", 40)
    got = bench_trend.ours(64, str(tmp_path))()
    want = bench_trend.oracle_loop(64, str(tmp_path))()
    assert np.isfinite(want["slope"]).sum() > 20
    for key in ("slope", "p"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-6, rtol=0, equal_nan=True)
    row = {"name": bench_trend.NAME, "ours_s": 2.0, "baseline_s": 4.0, "pixels": 4096, "sample": 40}
    (out,) = bench_trend.annotate([row])
    assert out["baseline_s"] == 4.0 * 4096 / 40 and out["ratio"] == round(out["baseline_s"] / 2.0, 1)
    assert bench_trend.annotate([out])[0]["baseline_s"] == out["baseline_s"]  # idempotent
