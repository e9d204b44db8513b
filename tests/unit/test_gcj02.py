"""GCJ-02 ↔ WGS 84: published reference values, round trips, domain edge."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from pyproj import Geod

import eqi.geo.gcj02 as gcj02
from eqi.geo.gcj02 import gcj02_to_wgs84, out_of_china, wgs84_to_gcj02

# (wgs lat, wgs lon, gcj lat, gcj lon) from the test suite of googollee/eviltransform
# (python/test.py), an independent implementation of the same formula.
REFERENCE = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), REFERENCE)
def test_forward_matches_published_values(
    wlat: float, wlon: float, glat: float, glon: float
) -> None:
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert lon == pytest.approx(glon, abs=1e-12)
    assert lat == pytest.approx(glat, abs=1e-12)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), REFERENCE)
def test_inverse_recovers_published_wgs84(
    wlat: float, wlon: float, glat: float, glon: float
) -> None:
    lon, lat = gcj02_to_wgs84(glon, glat)
    assert abs(lon - wlon) < 1e-9 and abs(lat - wlat) < 1e-9


def test_round_trip_over_sichuan_within_1e7_degree() -> None:
    rng = np.random.default_rng(0)
    lon = rng.uniform(97.3, 108.6, 20_000)
    lat = rng.uniform(26.0, 34.4, 20_000)
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    flon, flat = wgs84_to_gcj02(wlon, wlat)
    assert np.max(np.abs(flon - lon)) < 1e-7
    assert np.max(np.abs(flat - lat)) < 1e-7
    # and the other way round
    blon, blat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.max(np.abs(blon - lon)) < 1e-7 and np.max(np.abs(blat - lat)) < 1e-7


def test_offset_in_sichuan_is_hundreds_of_metres() -> None:
    lon = np.array([104.066, 102.2, 100.3])  # Chengdu, Xichang-ish, Garzê plateau
    lat = np.array([30.66, 27.9, 31.6])
    glon, glat = wgs84_to_gcj02(lon, lat)
    _, _, dist = Geod(ellps="WGS84").inv(lon, lat, glon, glat)
    assert np.all((dist > 100) & (dist < 700))


def test_outside_china_is_unchanged_and_shapes_are_kept() -> None:
    lon = np.array([[2.35, 104.0], [-74.0, 150.0]])  # Paris, Sichuan / New York, Pacific
    lat = np.array([[48.85, 30.0], [40.7, -30.0]])
    assert out_of_china(lon, lat).tolist() == [[True, False], [True, True]]
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon.shape == (2, 2)
    np.testing.assert_array_equal(np.where(out_of_china(lon, lat), glon - lon, 0.0), 0.0)
    assert glon[0, 1] != lon[0, 1]
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    assert wlon[1, 0] == -74.0 and wlat[1, 0] == 40.7


def test_empty_input() -> None:
    lon, lat = gcj02_to_wgs84(np.array([]), np.array([]))
    assert lon.size == 0 and lat.size == 0


def test_docstring_examples() -> None:
    result = doctest.testmod(gcj02)
    assert result.attempted > 0 and result.failed == 0
