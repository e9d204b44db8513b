"""Load scenes with odc-stac onto an explicit GeoBox, as integer DN, in Dask chunks.

Items from different catalogs name their assets differently (``B04``, ``red``, ``SR_B4.TIF``);
:func:`normalise_item` renames them to eqi's sensor-neutral aliases so one load call serves all.
Items are grouped by sensor and scaling (:func:`group_items`): a group shares band names,
scale/offset and mask scheme, and is loaded as one Dataset whose values stay integer DN until the
composite stage converts them (see :mod:`eqi.science.composite`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dask.array as da
import odc.stac
import pystac
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from odc.geo.geobox import GeoBox

from eqi.errors import BandError
from eqi.io.catalog.base import item_interval
from eqi.io.native_read import NativeSource, native_band, native_sources
from eqi.sensors import ItemBands, SensorSpec, resolve_item

__all__ = ["ItemGroup", "group_items", "normalise_item", "load_group", "GraphRewriteWarning"]


@dataclass(frozen=True)
class ItemGroup:
    """Items of one sensor and one scaling, loadable together."""

    sensor: SensorSpec
    bands: tuple[str, ...]
    items: tuple[pystac.Item, ...]  # normalised items (assets keyed by alias)
    resolved: tuple[ItemBands, ...]

    @property
    def scale(self) -> dict[str, float]:
        first = self.resolved[0]
        return {a: first.bands[a].scale for a in self.bands}

    @property
    def offset(self) -> dict[str, float]:
        first = self.resolved[0]
        return {a: first.bands[a].offset for a in self.bands}

    @property
    def nodata(self) -> dict[str, int]:
        first = self.resolved[0]
        return {a: first.bands[a].nodata for a in self.bands}

    @property
    def mask_alias(self) -> str:
        return self.sensor.mask.alias

    @property
    def has_mask(self) -> bool:
        return all(r.mask is not None for r in self.resolved)

    @property
    def has_radsat(self) -> bool:
        """Every item has its saturation mask (QA_RADSAT), so it is loaded as a second mask band."""
        return self.sensor.radsat is not None and all(r.radsat is not None for r in self.resolved)


def normalise_item(item: pystac.Item, resolved: ItemBands) -> pystac.Item:
    """Copy of ``item`` whose assets are exactly the resolved bands, keyed by alias."""
    out = pystac.Item(
        id=item.id,
        geometry=item.geometry,
        bbox=item.bbox,
        datetime=item.datetime,
        properties=dict(item.properties),
        collection=item.collection_id,
        stac_extensions=list(item.stac_extensions),
    )
    entries = list(resolved.bands.values()) + [m for m in (resolved.mask, resolved.radsat) if m]
    for band in entries:
        original = item.assets[band.asset_key]
        extra = {k: v for k, v in original.extra_fields.items() if k.startswith("proj:")}
        is_mask = band.alias in {"qa_pixel", "scl", "qa_radsat"}
        dtype = "uint8" if band.alias == "scl" else "uint16"
        extra["raster:bands"] = [{"nodata": band.nodata, "data_type": dtype}]
        out.add_asset(
            band.alias,
            pystac.Asset(
                href=band.href,
                media_type=original.media_type,
                roles=["data", "cloud-mask"] if is_mask else ["data"],
                extra_fields=extra,
            ),
        )
    return out


def _names(values: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _lacking_band_message(
    alias: str, native: str, scenes: Sequence[str], needed_by: Mapping[str, Sequence[str]] | None
) -> str:
    products = list((needed_by or {}).get(alias, ()))
    if len(products) == 1:
        who = f"product '{products[0]}' needs"
    elif products:
        who = f"products {', '.join(repr(p) for p in products)} need"
    else:
        who = "the run needs"
    which = f"scene {scenes[0]} lacks" if len(scenes) == 1 else f"scenes {_names(scenes)} lack"
    return f"{who} band {alias} ({native}), which {which}"


def group_items(
    items: Iterable[pystac.Item],
    bands: Sequence[str],
    *,
    needed_by: Mapping[str, Sequence[str]] | None = None,
    s2_boa_offset: int | None = None,
    require_mask: bool = True,
) -> list[ItemGroup]:
    """Resolve items to ``bands`` and group them by sensor and scaling.

    Bands a sensor does not have at all (``lwir`` for Sentinel-2) are left out of that sensor's
    group.  A band the sensor has but a scene lacks (a partial delivery, see
    ``eqi:missing_bands``) raises :class:`BandError` naming the products that need it (from
    ``needed_by``: band alias -> product names, e.g. ``{"nir": ["ndvi", "fvc"]}``), the band and
    every such scene; so does a scene without its cloud-mask band unless ``require_mask`` is
    false (``--no-cloud-mask``).  All problems of all scenes are reported in one error.
    """
    buckets: dict[tuple[Any, ...], list[tuple[pystac.Item, ItemBands]]] = {}
    lacking: dict[tuple[str, str], list[str]] = {}  # (alias, native) -> scene ids
    unmasked: dict[str, list[str]] = {}  # mask band name -> scene ids
    for item in items:
        available = resolve_item(item, None, s2_boa_offset=s2_boa_offset, require_mask=False)
        sensor = available.sensor  # identified once, by resolve_item
        wanted = [b for b in bands if b in sensor.bands]
        if not wanted:
            raise BandError(f"item {item.id} ({sensor.title}) has none of the bands {list(bands)}")
        absent = [b for b in wanted if b not in available.bands]
        for alias in absent:
            lacking.setdefault((alias, sensor.bands[alias].native), []).append(item.id)
        if require_mask and available.mask is None:
            unmasked.setdefault(sensor.mask.native, []).append(item.id)
        if absent or (require_mask and available.mask is None):
            continue
        resolved = replace(available, bands={b: available.bands[b] for b in wanted})
        key = (sensor.id, tuple(wanted), resolved.scaling_key, resolved.mask is not None, resolved.radsat is not None)
        buckets.setdefault(key, []).append((item, resolved))
    problems = [
        _lacking_band_message(alias, native, scenes, needed_by)
        for (alias, native), scenes in lacking.items()
    ]
    if problems:
        products = list(dict.fromkeys(p for a, _ in lacking for p in (needed_by or {}).get(a, ())))
        natives = ", ".join(dict.fromkeys(native for _, native in lacking))
        advice = f"add {natives} to the deliveries and re-index them (eqi archive index)"
        if products:
            advice = f"drop {', '.join(map(repr, products))} from --products, or {advice}"
        problems[-1] += f"; {advice}"
    for native, scenes in unmasked.items():
        which = f"scene {scenes[0]} has" if len(scenes) == 1 else f"scenes {_names(scenes)} have"
        problems.append(
            f"{which} no {native} band, so clouds cannot be masked; add {native} to the delivery "
            "(and re-index it), or run with --no-cloud-mask (config 'require_mask: false') to "
            "accept scenes without a cloud mask"
        )
    if problems:
        raise BandError("\n".join(problems))
    groups = []
    for (_sensor, wanted, _scaling, _has_mask, _has_radsat), members in sorted(
        buckets.items(), key=lambda kv: (kv[0][0], str(kv[0][2]))
    ):
        members.sort(key=lambda pair: (item_interval(pair[0])[0], pair[0].id))
        groups.append(
            ItemGroup(
                sensor=members[0][1].sensor,
                bands=tuple(wanted),
                items=tuple(normalise_item(i, r) for i, r in members),
                resolved=tuple(r for _, r in members),
            )
        )
    return groups


def _sign_fresh(href: str) -> str:
    """Planetary Computer href with a current SAS token (an old, perhaps expired one is dropped).

    Saved items (``items.json``) may carry tokens from an earlier run; ``planetary_computer.sign``
    keeps an href that already has one, so the query is removed first.
    """
    import planetary_computer

    return planetary_computer.sign(href.split("?", 1)[0])


def _patch_url_for(items: Sequence[pystac.Item]) -> Any:
    """URL patcher for odc-stac: Planetary Computer blobs are signed when they are read."""
    if not any("blob.core.windows.net" in a.href for i in items for a in i.assets.values()):
        return None
    return _sign_fresh


class GraphRewriteWarning(RuntimeWarning):
    """odc-stac's Dask graph changed shape: :func:`independent_chunks` could not rewrite it."""


_ODC_SHARED_LAYERS = ("open-", "cfg-")  # odc-stac/odc-loader: per-date reader, load config


def independent_chunks(arr: da.Array) -> da.Array:
    """Copy odc-stac's shared per-date reader tasks into each chunk task of a loaded band.

    odc-stac makes every chunk of one date depend on one shared ``open-<band>`` task (plus
    ``cfg-`` constants).  With these shared roots Dask's ordering reads a date's chunks for all
    spatial blocks before reducing any block, so memory grows with the whole stack (measured:
    2.2 GiB for 64 dates of 2048 x 2048 px, ``bench/``).  Inlined, every chunk is an independent
    root and the scheduler finishes one spatial block's time series after another.  The inlined
    tasks only build a reader object (no I/O); arrays not made by odc-stac are returned unchanged.
    """
    graph = arr.__dask_graph__()
    layers = getattr(graph, "layers", None)
    if not layers or arr.name not in layers:
        return arr
    shared = [n for n in layers if n != arr.name and n.startswith(_ODC_SHARED_LAYERS)]
    if not shared or set(layers) != {arr.name, *shared}:
        return arr
    try:
        from dask._task_spec import convert_legacy_graph

        tasks = convert_legacy_graph(dict(graph))
        resolved: dict[Any, Any] = {}

        # the node with its own (shared) dependencies inlined, memoised
        def inline(key: Any) -> Any:
            if key not in resolved:
                node = tasks[key]
                deps = node.dependencies
                resolved[key] = node.substitute({d: inline(d) for d in deps}) if deps else node
            return resolved[key]

        own = {k: inline(k) for k in layers[arr.name]}
    except (ImportError, AttributeError, KeyError, TypeError):  # another dask version: no-op
        return arr
    if any(t.dependencies for t in own.values()):
        return arr
    hlg = HighLevelGraph.from_collections(arr.name, own, dependencies=())
    return da.Array(hlg, arr.name, arr.chunks, meta=arr._meta)


def _native_sources(ds: xr.Dataset, name: Any, plan: Any, geobox: GeoBox) -> tuple[tuple[NativeSource, ...], ...] | None:
    """The sources of band ``name`` of ``ds`` when all lie on ``geobox``'s grid (read by windows,
    :mod:`eqi.io.native_read`; resampling is then moot), else None."""
    try:
        slices = [[plan.srcs[i][name] for i in members] for members in plan.grouped_idx]
    except (AttributeError, KeyError, TypeError, IndexError):  # no load plan from this odc-stac
        return None
    return native_sources(ds[name].data, slices, geobox, fill=ds[name].attrs.get("nodata"))


def load_group(
    group: ItemGroup,
    geobox: GeoBox,
    *,
    chunk: int = 512,
    resampling: str = "nearest",
    dates_per_chunk: int = 1,
) -> xr.Dataset:
    """Lazily load a group's bands and mask onto ``geobox`` as integer DN.

    Dims ``(time, y, x)``; chunks of ``chunk`` pixels in y and x, and in time of
    ``dates_per_chunk`` slices for bands read by windows on their own grid
    (:mod:`eqi.io.native_read`), of one slice for bands odc-stac warps.  Items of the same solar
    day (adjacent tiles) are fused into one time slice.  Mask bands always use nearest resampling.
    """
    names = list(group.bands)
    if group.has_mask:
        names.append(group.mask_alias)
    if group.has_radsat:
        names.append("qa_radsat")
    resampling_map = {b: resampling for b in group.bands}
    resampling_map[group.mask_alias] = "nearest"
    resampling_map["qa_radsat"] = "nearest"
    ds = odc.stac.load(
        list(group.items),
        bands=names,
        geobox=geobox,
        groupby="solar_day",
        chunks={"time": 1, "x": chunk, "y": chunk},
        resampling=resampling_map,
        patch_url=_patch_url_for(group.items),
        fail_on_error=True,
        debug=True,  # odc-stac's load plan (time slices, sources) in ds.encoding["debug"]
    )
    plan = ds.encoding.pop("debug", None)
    sources = {name: _native_sources(ds, name, plan, geobox) for name in ds.data_vars}
    # several dates per chunk only where every band is read by windows: mixed with odc-stac's
    # one-date chunks, dask would split each read again to align them
    step = dates_per_chunk if all(s is not None for s in sources.values()) else 1
    for name in ds.data_vars:
        native = sources[name]
        if native is not None:  # already on the grid: windowed reads, independent chunks
            ds[name].data = native_band(ds[name].data, native, fill=ds[name].attrs.get("nodata"),
                                        name=str(name), dates_per_chunk=step)
            continue
        # one spatial block's time series after another, not date by date
        rewritten = independent_chunks(ds[name].data)
        if rewritten is ds[name].data and ds.sizes["time"] > 1:
            warnings.warn(
                f"eqi could not make the chunks of '{name}' independent: odc-stac's task graph is not "
                f"the one eqi knows (layers {sorted(ds[name].data.__dask_graph__().layers)}). Results are "
                "unchanged, but composite memory may grow with the number of dates; report this "
                "with your odc-stac and dask versions",
                GraphRewriteWarning,
                stacklevel=2,
            )
        ds[name].data = rewritten
    ds.attrs["sensor"] = group.sensor.id
    ds.attrs["item_ids"] = [i.id for i in group.items]
    return ds
