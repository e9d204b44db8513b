"""The Dask worker plugin that applies eqi's GDAL settings on every worker of a cluster.

Its own module so that runs without a dask.distributed cluster never import ``distributed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from eqi.io.gdal import apply_gdal_options, gdal_options
from eqi.io.read_errors import watch_read_failures

__all__ = ["GdalWorkerPlugin"]


class GdalWorkerPlugin(WorkerPlugin):
    """Apply the client's GDAL settings when a worker starts (and on restarts, and on workers
    that join later); also collect read failures there, so failed tiles name their asset."""

    name = "eqi-gdal-options"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(gdal_options() if options is None else options)

    def setup(self, worker: Any) -> None:
        apply_gdal_options(self.options)
        watch_read_failures()
