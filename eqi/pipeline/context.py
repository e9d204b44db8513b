"""The :class:`~eqi.products.ProductContext` of one tile: composites, tile-store reads, models.

In the tile stage the context holds the tile's composites in memory and computes products in
dependency order; in the apply stage it reads the tile store back lazily and holds the area models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from eqi.errors import InputError
from eqi.io.raster import read_layer
from eqi.params import Profile
from eqi.products import REGISTRY, Role

__all__ = ["TileContext"]


class TileContext:
    """Products of one tile (see :class:`eqi.products.ProductContext`).

    Parameters
    ----------
    geobox
        The tile's grid.
    composites
        ``{role: Dataset}`` for ``main``, ``specific`` and ``thermal`` (the same Dataset where the
        run does not mix sensor families); empty in the apply stage.
    profiles
        Method profiles of the run.
    models
        Area models by name (apply stage).
    stored
        ``{product: file}`` of products already in the tile store, read lazily on demand.
    references
        ``{name: loader(geobox) -> DataArray}`` for auxiliary layers (land-cover reference).
    """

    def __init__(
        self,
        geobox: GeoBox,
        *,
        composites: Mapping[str, xr.Dataset] | None = None,
        profiles: Mapping[str, Profile],
        models: Mapping[str, Any] | None = None,
        stored: Mapping[str, Path] | None = None,
        references: Mapping[str, Callable[[GeoBox], xr.DataArray]] | None = None,
        chunk: int = 512,
    ) -> None:
        self.geobox = geobox
        self._composites = dict(composites or {})
        self._profiles = profiles
        self._models = dict(models or {})
        self._stored = dict(stored or {})
        self._references = dict(references or {})
        self._chunk = chunk
        self._cache: dict[str, xr.DataArray] = {}

    # ---------------------------------------------------------------- ProductContext
    def composite(self, role: Role = "main") -> xr.Dataset:
        if role not in self._composites:
            raise InputError(f"no {role} composite here (composites: {', '.join(self._composites)})")
        return self._composites[role]

    def band(self, name: str) -> xr.DataArray:
        ds = self.composite("main")
        if name not in ds:
            raise InputError(f"band {name!r} is not in the composite (has {', '.join(map(str, ds.data_vars))})")
        return ds[name]

    def profile(self, name: str) -> Profile:
        return self._profiles[name]

    def model(self, name: str) -> Any:
        if name not in self._models:
            raise InputError(f"model {name!r} has not been fitted for this run")
        return self._models[name]

    def reference(self, name: str) -> xr.DataArray:
        if name not in self._references:
            raise InputError(f"no {name!r} reference layer is configured for this run")
        return self._references[name](self.geobox)

    def get(self, name: str) -> xr.DataArray:
        if name not in self._cache:
            if name in self._stored:
                self._cache[name] = read_layer(self._stored[name], chunk=self._chunk)
            else:
                entry = REGISTRY[name]
                if entry.compute is None:
                    self._cache[name] = self.composite(entry.role)[name]
                else:
                    self._cache[name] = entry.compute(self)
        return self._cache[name]

    # ---------------------------------------------------------------- helpers
    def with_coords(self, da: xr.DataArray) -> xr.DataArray:
        """``da`` with the tile's coordinates (for arrays computed without them)."""
        return da.assign_coords(xr_coords(self.geobox))
