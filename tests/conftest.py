"""Shared fixtures: where the real sample data lives, and skips when it is absent.

Also builders of delivery folders from the sample data (fixtures ``copy_scene`` and
``xlandsat_delivery``), for tests of partial deliveries.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest
import rasterio

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sample_data_root() -> Path:
    env = os.environ.get("EQI_SAMPLE_DATA")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """Root of the real sample data (env ``EQI_SAMPLE_DATA``, default ``../shared/data``)."""
    root = _sample_data_root()
    if not root.is_dir():
        message = f"sample data not found at {root} (set EQI_SAMPLE_DATA)"
        if os.environ.get("CI"):  # CI has ../shared beside the clone: absence is a failure
            pytest.fail(message)
        pytest.skip(message)
    return root


def _copy_scene(src: Path, dst_root: Path, drop: tuple[str, ...] = ()) -> Path:
    """A real copy of a delivery folder without the files whose names end with ``drop``."""
    dst = dst_root / src.name
    shutil.copytree(src, dst)
    for path in dst.iterdir():
        if path.name.endswith(drop):
            path.unlink()
        else:
            path.chmod(0o644)
    return dst


def _xlandsat_delivery(sample_data: Path, scene: str, dst_root: Path, drop: tuple[str, ...] = ()) -> Path:
    """A USGS-style folder for an xlandsat crop: its published MTL and one GeoTIFF per band.

    The bands come from ``<scene>_stack.tif`` (georeferenced, pixel values unchanged); ``drop``
    leaves some out.  Returns the folder.
    """
    src = sample_data / "landsat-c2l2-xlandsat-crops" / scene
    folder = dst_root / scene
    folder.mkdir(parents=True)
    with tarfile.open(src / f"{scene}-cropped.tar.gz") as tar:
        member = tar.getmember(f"{scene}_MTL.txt")
        (folder / member.name).write_bytes(tar.extractfile(member).read())
    with rasterio.open(src / f"{scene}_stack.tif") as stack:
        profile = {
            "driver": "GTiff", "width": stack.width, "height": stack.height, "count": 1,
            "dtype": "uint16", "crs": stack.crs, "transform": stack.transform, "nodata": 0,
        }  # fmt: skip
        for index, name in enumerate(stack.descriptions, start=1):
            if name in drop:
                continue
            with rasterio.open(folder / f"{scene}_{name}.TIF", "w", **profile) as dst:
                dst.write(stack.read(index), 1)
    return folder


@pytest.fixture(scope="session")
def copy_scene():
    """``copy_scene(src, dst_root, drop=())``: a real copy of a scene folder minus some files."""
    return _copy_scene


@pytest.fixture(scope="session")
def xlandsat_delivery(sample_data: Path):
    """``xlandsat_delivery(scene, dst_root, drop=())``: a USGS-style folder of an xlandsat crop."""
    return lambda scene, dst_root, drop=(): _xlandsat_delivery(sample_data, scene, dst_root, drop)
