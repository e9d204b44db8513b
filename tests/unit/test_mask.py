"""Clear-pixel masks from real Collection 2 QA_PIXEL values and SCL classes."""

from __future__ import annotations

import numpy as np

from eqi.science.mask import buffer_bad, qa_pixel_clear, scl_clear

# Real Landsat 8-9 C2 QA_PIXEL values (USGS product guide table): meaning -> value
QA = {
    "fill": 1,
    "clear_land": 21824,
    "clear_water": 21952,
    "cloud_high": 22280,
    "cloud_high_2": 55052,
    "shadow": 23888,
    "cirrus_dilated": 54596,
    "snow": 30048,
}


def test_qa_pixel_defaults() -> None:
    values = np.array(list(QA.values()), dtype=np.uint16)
    clear = dict(zip(QA, qa_pixel_clear(values), strict=True))
    assert clear["clear_land"] and clear["clear_water"]
    for bad in ("fill", "cloud_high", "cloud_high_2", "shadow", "cirrus_dilated", "snow"):
        assert not clear[bad], bad


def test_qa_pixel_configurable_keeps_snow() -> None:
    snow = np.array([QA["snow"]], dtype=np.uint16)
    assert qa_pixel_clear(snow, ["cloud", "cloud_shadow"])[0]
    assert not qa_pixel_clear(np.array([1], dtype=np.uint16), [])[0]  # fill is always bad


def test_scl_classes() -> None:
    scl = np.arange(12, dtype=np.uint8)
    clear = scl_clear(scl)
    assert list(np.flatnonzero(clear)) == [2, 4, 5, 6, 7]
    assert not scl_clear(scl, [])[0]  # class 0 no data is always bad


def test_buffer_grows_bad_area() -> None:
    clear = np.ones((7, 7), dtype=bool)
    clear[3, 3] = False
    grown = buffer_bad(clear, 1)
    assert (~grown).sum() == 5 and not grown[2, 3] and grown[1, 1]
    assert buffer_bad(clear, 0) is clear
