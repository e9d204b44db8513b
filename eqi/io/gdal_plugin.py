"""The Dask worker plugin that applies eqi's GDAL settings on every worker of a cluster.

Its own module so that runs without a dask.distributed cluster never import ``distributed``.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from eqi.io.gdal import apply_gdal_options

__all__ = ["GdalWorkerPlugin"]


class GdalWorkerPlugin(WorkerPlugin):
    """Apply :data:`eqi.io.gdal.GDAL_OPTIONS` when a worker starts (and on restarts)."""

    name = "eqi-gdal-options"

    def setup(self, worker: Any) -> None:
        apply_gdal_options()
