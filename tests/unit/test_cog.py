"""write_cog / write_array_cog: valid COGs with the metadata QGIS users see, written atomically."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import dask.array as dsa
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr, xr_zeros
from rasterio.enums import ColorInterp
from rasterio.shutil import copy as rio_copy
from rio_cogeo.cogeo import cog_validate

from eqi.io.atomic import TEMP_MARKER
from eqi.io.cog import aux_xml_path, overview_factors, write_array_cog, write_cog
from eqi.io.qml import colormap_from_classes, names_from_classes

CLASSES = [(1, "#1a9641", "forest"), (2, "#ffffbf", "grassland"), (5, "#2c7bb6", "water")]


def _geobox(npix: int) -> GeoBox:
    """npix × npix grid of 30 m pixels (bbox on multiples of 30 m, so no snapping)."""
    x0, y0 = 399_990, 3_399_990
    gbox = GeoBox.from_bbox(
        (x0, y0, x0 + 30 * npix, y0 + 30 * npix), crs="EPSG:32648", resolution=30
    )
    assert gbox.shape == (npix, npix)
    return gbox


def _continuous(npix: int = 200, chunks: int | None = None, dtype: str = "float32"):
    gbox = _geobox(npix)
    rng = np.random.default_rng(42)
    data = rng.normal(0.4, 0.2, gbox.shape).astype(dtype)
    data[:7, :] = np.nan
    if chunks:
        return wrap_xr(dsa.from_array(data, chunks=chunks), gbox)
    return wrap_xr(data, gbox)


def _validate(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        valid, errors, warns = cog_validate(path, quiet=True)
    assert valid and errors == [] and warns == [], (errors, warns)


def _no_temps(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if TEMP_MARKER in p.name] == []


def test_continuous_cog_metadata_and_statistics(tmp_path: Path) -> None:
    da = _continuous(chunks=(64, 90))
    out = write_cog(
        da,
        tmp_path / "ndvi.tif",
        nodata=np.nan,
        description="NDVI growing-season median",
        kind="continuous",
        units="1",
        scale=0.5,
        offset=1.0,
        tags={"EQI_SIMULATED": "true", "EQI_PRODUCT": "ndvi"},
    )
    _validate(out)
    with rasterio.open(out) as src:
        assert src.count == 1 and src.dtypes == ("float32",)
        assert np.isnan(src.nodata)
        assert src.descriptions == ("NDVI growing-season median",)
        assert src.scales == (0.5,) and src.offsets == (1.0,)
        assert src.tags()["EQI_SIMULATED"] == "true" and src.tags()["EQI_PRODUCT"] == "ndvi"
        assert src.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        assert src.block_shapes == [(512, 512)]
        assert src.crs.to_epsg() == 32648
        assert src.transform == da.odc.geobox.affine
        band = src.tags(1)
        data = src.read(1)
    np.testing.assert_array_equal(data, da.values)  # lossless, same grid
    valid = data[np.isfinite(data)].astype(np.float64)
    assert band["UNITS"] == "1"
    assert float(band["STATISTICS_MINIMUM"]) == valid.min()
    assert float(band["STATISTICS_MAXIMUM"]) == valid.max()
    assert float(band["STATISTICS_MEAN"]) == pytest.approx(valid.mean(), rel=1e-12)
    assert float(band["STATISTICS_STDDEV"]) == pytest.approx(valid.std(), rel=1e-12)
    assert float(band["STATISTICS_VALID_PERCENT"]) == pytest.approx(100 * valid.size / data.size)
    assert not aux_xml_path(out).exists()
    _no_temps(tmp_path)


def test_integer_nodata_excluded_from_statistics(tmp_path: Path) -> None:
    gbox = _geobox(50)
    data = np.arange(2500, dtype="int16").reshape(50, 50)
    data[0, :10] = -9999
    out = write_cog(
        wrap_xr(data, gbox),
        tmp_path / "lst.tif",
        nodata=-9999,
        description="LST",
        kind="continuous",
    )
    _validate(out)
    with rasterio.open(out) as src:
        assert src.nodata == -9999 and src.dtypes == ("int16",)
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        band = src.tags(1)
    valid = data[data != -9999]
    assert float(band["STATISTICS_MINIMUM"]) == 10
    assert float(band["STATISTICS_MEAN"]) == pytest.approx(valid.mean())
    assert float(band["STATISTICS_VALID_PERCENT"]) == pytest.approx(99.6)


def test_float64_is_written_as_float32(tmp_path: Path) -> None:
    da = _continuous(npix=40, dtype="float64")
    out = write_cog(da, tmp_path / "x.tif", nodata=np.nan, description="x", kind="continuous")
    with rasterio.open(out) as src:
        assert src.dtypes == ("float32",)
        np.testing.assert_array_equal(src.read(1), da.values.astype("float32"))


def test_overviews_only_when_larger_than_a_tile(tmp_path: Path) -> None:
    small = write_cog(
        _continuous(npix=300), tmp_path / "s.tif", nodata=np.nan, description="s", kind="continuous"
    )
    big = write_cog(
        _continuous(npix=1100, chunks=(512, 512)),
        tmp_path / "b.tif",
        nodata=np.nan,
        description="b",
        kind="continuous",
    )
    _validate(big)
    with rasterio.open(small) as s, rasterio.open(big) as b:
        assert s.overviews(1) == []
        assert b.overviews(1) == [2, 4]  # down to the first level within one 512 tile
        assert b.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"


@pytest.mark.parametrize("kind", ["continuous", "categorical"])
def test_overviews_equal_those_the_cog_driver_builds_itself(tmp_path: Path, kind: str) -> None:
    """Oracle: GDAL's COG driver generating the overviews of the same pixels (what write_cog did
    before it built them in the staged file): same levels, same pixels (AVERAGE ignoring NaN,
    MODE ignoring nodata 0)."""
    npix = 2048
    gbox = _geobox(npix)
    rng = np.random.default_rng(7)
    if kind == "continuous":
        data = rng.normal(0.4, 0.2, gbox.shape).astype("float32")
        data[rng.random(gbox.shape) < 0.2] = np.nan
        data[:300, :300] = np.nan
        nodata, resampling = np.nan, "average"
    else:
        data = rng.choice(np.array([0, 1, 2, 5], dtype="uint8"), size=gbox.shape, p=[0.3, 0.3, 0.3, 0.1])
        nodata, resampling = 0, "mode"
    ours = write_cog(wrap_xr(dsa.from_array(data, chunks=512), gbox), tmp_path / "ours.tif",
                     nodata=nodata, description="x", kind=kind)  # fmt: skip
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=npix, height=npix, count=1, dtype=data.dtype.name,
                       crs="EPSG:32648", transform=gbox.affine, nodata=nodata, tiled=True) as dst:  # fmt: skip
        dst.write(data, 1)
    driver = tmp_path / "driver.tif"
    with rasterio.open(plain) as src:
        rio_copy(src, driver, driver="COG", compress="deflate", blocksize=512, overview_resampling=resampling)
    _validate(ours)
    with rasterio.open(ours) as a, rasterio.open(driver) as b:
        assert a.overviews(1) == b.overviews(1) == [2, 4]
    for level in range(2):
        with rasterio.open(ours, overview_level=level) as a, rasterio.open(driver, overview_level=level) as b:
            assert a.shape == b.shape
            np.testing.assert_array_equal(a.read(1), b.read(1))


def test_overview_factors_follow_the_cog_driver() -> None:
    """The COG driver halves (rounding down) until the image fits one tile."""
    assert overview_factors(512, 512) == []
    assert overview_factors(513, 10) == [2]
    assert overview_factors(1100, 1100) == [2, 4]  # 550 > 512, 275
    assert overview_factors(2049, 300) == [2, 4]  # 1024, then 512 fits
    assert overview_factors(3452, 3115) == [2, 4, 8]  # 1726, 863, 431


def test_categorical_colour_table_and_attribute_table(tmp_path: Path) -> None:
    gbox = _geobox(600)
    rng = np.random.default_rng(1)
    data = rng.choice(np.array([0, 1, 2, 5], dtype="uint8"), size=gbox.shape)
    cmap = colormap_from_classes(CLASSES)
    out = write_cog(
        wrap_xr(data, gbox),
        tmp_path / "landcover.tif",
        nodata=0,
        description="Land cover",
        kind="categorical",
        colormap=cmap,
        category_names=names_from_classes(CLASSES),
    )
    _validate(out)
    with rasterio.open(out) as src:
        assert src.colorinterp == (ColorInterp.palette,)
        table = src.colormap(1)
        assert src.tags()["OVERVIEW_RESAMPLING"] == "MODE"
        assert src.overviews(1) == [2]
    for value, rgba in cmap.items():
        assert table[value] == rgba
    # the PAM sidecar holds the attribute table ...
    rat = ET.parse(aux_xml_path(out)).getroot().find("PAMRasterBand/GDALRasterAttributeTable")
    assert rat is not None and rat.get("tableType") == "thematic"
    names = [f.findtext("Name") for f in rat.findall("FieldDefn")]
    assert names == ["Value", "Class_Name", "Red", "Green", "Blue", "Alpha"]
    rows = [[f.text for f in row.findall("F")] for row in rat.findall("Row")]
    assert rows[2] == ["5", "water", "44", "123", "182", "255"]
    # ... and GDAL itself reads it: a VRT copy of the file carries the table over
    rio_copy(out, tmp_path / "copy.vrt", driver="VRT")
    vrt = (tmp_path / "copy.vrt").read_text()
    assert "<GDALRasterAttributeTable" in vrt and "grassland" in vrt
    _no_temps(tmp_path)


def test_rewrite_as_continuous_removes_stale_sidecar(tmp_path: Path) -> None:
    target = tmp_path / "p.tif"
    gbox = _geobox(20)
    write_cog(
        wrap_xr(np.ones(gbox.shape, "uint8"), gbox),
        target,
        nodata=0,
        description="c",
        kind="categorical",
        category_names={1: "one"},
    )
    assert aux_xml_path(target).exists()
    write_cog(_continuous(npix=20), target, nodata=np.nan, description="v", kind="continuous")
    assert not aux_xml_path(target).exists()


def test_failed_write_leaves_existing_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "ndvi.tif"
    write_cog(_continuous(npix=100), target, nodata=np.nan, description="old", kind="continuous")
    before = target.read_bytes()

    def boom(block: np.ndarray) -> np.ndarray:
        if block.shape[0] < 40:  # the last row of blocks fails, after others were written
            raise RuntimeError("simulated failure during compute")
        return block

    gbox = _geobox(100)
    lazy = dsa.ones(tuple(gbox.shape), dtype="float32", chunks=(40, 40)).map_blocks(
        boom, dtype="float32"
    )
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_cog(wrap_xr(lazy, gbox), target, nodata=np.nan, description="new", kind="continuous")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ndvi.tif"]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    gbox = _geobox(10)
    with pytest.raises(ValueError, match="not representable"):
        write_cog(
            xr_zeros(gbox, "uint8"),
            tmp_path / "a.tif",
            nodata=300,
            description="a",
            kind="categorical",
        )
    with pytest.raises(ValueError, match="colour tables need"):
        write_cog(
            xr_zeros(gbox, "int16"),
            tmp_path / "a.tif",
            nodata=-1,
            description="a",
            kind="categorical",
            colormap={1: (1, 2, 3, 255)},
        )
    with pytest.raises(ValueError, match="kind"):
        write_cog(
            xr_zeros(gbox, "float32"),
            tmp_path / "a.tif",
            nodata=np.nan,
            description="a",
            kind="ordinal",
        )  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_bytes_do_not_depend_on_scheduler(tmp_path: Path) -> None:
    import dask
    from distributed import Client, LocalCluster

    def lazy():
        da = _continuous(npix=700, chunks=(256, 512))
        return da - da.mean() + 0.25  # a global reduction feeding every block

    kwargs = dict(nodata=np.nan, description="x", kind="continuous")
    write_cog(lazy(), tmp_path / "threads.tif", **kwargs)
    with dask.config.set(scheduler="sync"):
        write_cog(lazy(), tmp_path / "sync.tif", **kwargs)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        write_cog(lazy(), tmp_path / "distributed.tif", **kwargs)
    ref = (tmp_path / "threads.tif").read_bytes()
    assert (tmp_path / "sync.tif").read_bytes() == ref
    assert (tmp_path / "distributed.tif").read_bytes() == ref


def test_products_and_delivery_files_share_gdal_cog_driver(tmp_path: Path) -> None:
    """Both writers go through GDAL's COG driver (it marks its files LAYOUT=COG)."""
    product = write_cog(_continuous(600), tmp_path / "p.tif", nodata=np.nan, description="p", kind="continuous")
    dn = np.random.default_rng(7).integers(7273, 43636, (600, 600), dtype=np.uint16)
    transform = rasterio.transform.from_origin(399_990, 3_417_990, 30, 30)
    delivery = write_array_cog(
        tmp_path / "SR_B4.TIF", dn, transform=transform, crs="EPSG:32648", nodata=0,
        blocksize=256, overviews=False, level=1, tags={"AREA_OR_POINT": "Point"},
    )  # fmt: skip
    _validate(product)
    valid, errors, warns = cog_validate(delivery, quiet=True)
    assert valid and errors == [] and "overviews" in warns[0]  # like a USGS file: none
    for path in (product, delivery):
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    with rasterio.open(product) as p, rasterio.open(delivery) as d:
        assert p.block_shapes == [(512, 512)] and p.overviews(1) == [2]
        assert p.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"  # floating point
        # the USGS-like file: 256 tiles, no overviews, PixelIsPoint, values as given, no stats
        assert d.block_shapes == [(256, 256)] and d.overviews(1) == []
        assert d.tags()["AREA_OR_POINT"] == "Point" and d.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert np.array_equal(d.read(1), dn) and d.transform == transform and d.nodata == 0
        assert not any(k.startswith("STATISTICS_") for k in d.tags(1))
    _no_temps(tmp_path)


def test_array_cog_same_arrays_same_bytes_and_atomic(tmp_path: Path) -> None:
    classes = np.random.default_rng(3).choice([10, 20, 80], (700, 700)).astype(np.uint8)
    kwargs = {
        "transform": rasterio.transform.from_origin(0, 21_000, 30, 30), "crs": "EPSG:32648",
        "nodata": 0, "resampling": "nearest", "colormap": {10: (0, 100, 0, 255), 80: (0, 0, 255, 255)},
    }  # fmt: skip
    a = write_array_cog(tmp_path / "a.tif", classes, **kwargs)
    b = write_array_cog(tmp_path / "b.tif", classes, **kwargs)
    assert a.read_bytes() == b.read_bytes()
    with rasterio.open(a) as src:
        assert src.overviews(1) == [2] and src.colormap(1)[80] == (0, 0, 255, 255)
        with rasterio.open(a, overview_level=0) as ovr:  # nearest: only real class values
            assert set(np.unique(ovr.read(1))) <= {10, 20, 80}
    with pytest.raises(ValueError, match="2-D"):
        write_array_cog(tmp_path / "a.tif", classes[None], **kwargs)
    assert a.read_bytes() == b.read_bytes()  # the refused write left the file alone
    _no_temps(tmp_path)
