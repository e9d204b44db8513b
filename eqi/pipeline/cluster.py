"""Dask execution context: local threads by default, local worker processes, or a remote cluster."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.threaded

from eqi.errors import ConfigError
from eqi.io.gdal import apply_gdal_options, gdal_options
from eqi.io.native_read import release_handles
from eqi.io.read_errors import watch_read_failures

__all__ = ["dask_context", "configure_gdal", "current_client"]


@contextmanager
def dask_context(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """Run the enclosed computations on the chosen Dask backend; yields the client or None.

    * ``scheduler`` (``tcp://host:8786``): use that existing dask.distributed cluster unchanged.
    * ``workers`` (N): a local cluster of N single-threaded worker processes on 127.0.0.1.
    * neither: Dask's threaded scheduler in this process.

    GDAL settings are applied here and on every worker.  Outputs do not depend on the choice.
    """
    if scheduler and workers:
        raise ConfigError("give either --scheduler or --workers, not both")
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            configure_gdal(client)
            yield client
        finally:
            client.close()
        return
    if workers:
        from distributed import Client, LocalCluster

        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster, Client(cluster) as client:
            configure_gdal(client)
            yield client
        return
    configure_gdal(None)
    # the threaded scheduler as a function, not by name, and rechunks by tasks (what dask picks
    # without a client): otherwise every compute and rechunk imports dask.distributed to look for
    # a client (about 10 MiB and 0.1 s that a threaded run never uses)
    try:
        with dask.config.set({"scheduler": dask.threaded.get, "array.rechunk.method": "tasks"}):
            yield None
    finally:
        release_handles()  # the scene files the reads kept open (eqi.io.native_read)


def configure_gdal(client: Any | None = None) -> None:
    """Apply :data:`eqi.io.gdal.GDAL_OPTIONS` here and, given a dask.distributed client, on every worker.

    odc-stac reads through its own rasterio environment, configured per process by
    ``configure_rio``; worker processes are configured by a WorkerPlugin, which also runs on
    workers that join later.
    """
    options = gdal_options()
    apply_gdal_options(options)
    watch_read_failures()
    if client is not None:  # a cluster: distributed is loaded already, the plugin costs nothing
        from eqi.io.gdal_plugin import GdalWorkerPlugin

        client.register_plugin(GdalWorkerPlugin(options))  # the client's settings, on every worker


def current_client() -> Any | None:
    """The dask.distributed client this run uses (``--scheduler``/``--workers``), or None.

    None without one, so the threaded path never imports ``distributed``.
    """
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    return client if client.status == "running" else None
