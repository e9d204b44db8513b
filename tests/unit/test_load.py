"""Loading items onto an explicit grid: independent chunk tasks, values as odc-stac reads them."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import odc.stac
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from bench import fixtures
from eqi.io.load import group_items, independent_chunks, load_group


@pytest.mark.parametrize("shift_px", [0.0, 0.5], ids=["native-grid", "warped"])
def test_load_group_gives_every_chunk_its_own_reader_task(tmp_path: Path, shift_px: float) -> None:
    # Shared per-date odc-stac reader tasks made Dask read all blocks of a date before reducing
    # any block (2.2 GiB for 64 dates in make bench); load_group inlines them (odc-stac's warped
    # reads) or reads each chunk's windows itself (a grid the scenes are on: eqi.io.native_read).
    fixtures.landsat_scenes(2, 256, tmp_path)
    items = fixtures.landsat_items(2, 256, tmp_path)
    groups = group_items(items, ["red", "nir"])
    grid = fixtures.scene_geobox(256)
    geobox = GeoBox(grid.shape, grid.affine @ Affine.translation(shift_px, 0), grid.crs)
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


def test_planetary_computer_hrefs_are_signed_afresh_when_read() -> None:
    """A saved href whose SAS token expired gets a new token from the token service.

    The Planetary Computer token service is a remote SaaS: a fake one answers on 127.0.0.1.
    """
    import json
    import threading
    from datetime import datetime
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import pystac
    from planetary_computer.sas import TOKEN_CACHE
    from planetary_computer.settings import Settings

    from eqi.io.load import _patch_url_for

    asked: list[str] = []

    class TokenService(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": "st=new&se=new&sp=rl&sig=fresh"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), TokenService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = Settings.get()
    previous = settings.sas_url
    settings.sas_url = f"http://127.0.0.1:{server.server_port}/token"
    TOKEN_CACHE.clear()
    try:
        old = "https://acct.blob.core.windows.net/cont/scene/B04.tif?st=old&se=2020-01-01&sp=rl&sig=expired"
        item = pystac.Item("x", None, None, datetime(2023, 7, 1), {})
        item.add_asset("red", pystac.Asset(href=old))
        patch = _patch_url_for([item])
        signed = patch(old)
        assert signed == "https://acct.blob.core.windows.net/cont/scene/B04.tif?st=new&se=new&sp=rl&sig=fresh"
        assert asked == ["/token/acct/cont"]
        assert _patch_url_for([pystac.Item("y", None, None, item.datetime, {})]) is None
    finally:
        settings.sas_url = previous
        TOKEN_CACHE.clear()
        server.shutdown()


def test_an_unknown_odc_graph_is_reported_not_silently_ignored(tmp_path: Path, monkeypatch) -> None:
    """If odc-loader renames its reader layers, the rewrite finds nothing: eqi must say so."""
    from eqi.io import load as load_module

    fixtures.landsat_scenes(2, 256, tmp_path)
    items = fixtures.landsat_items(2, 256, tmp_path)
    groups = group_items(items, ["red", "nir"])
    monkeypatch.setattr(load_module, "_ODC_SHARED_LAYERS", ("no-such-layer-",))
    grid = fixtures.scene_geobox(256)  # half a pixel off the scenes' grid: odc-stac warps, not a windowed read
    geobox = GeoBox(grid.shape, grid.affine @ Affine.translation(0.5, 0), grid.crs)
    with pytest.warns(load_module.GraphRewriteWarning, match="could not make the chunks"):
        load_group(groups[0], geobox, chunk=128)
