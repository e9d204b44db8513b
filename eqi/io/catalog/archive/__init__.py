"""Index delivered scenes into a stac-geoparquet archive, and search that archive in-process.

``eqi archive index DIR... --out FILE.parquet`` walks folders (:mod:`.scan`) for

* USGS Landsat Collection 2 Level-2 scene folders, found by ``*_MTL.txt`` / ``*_MTL.json``
  (:mod:`.landsat`; scale/offset taken from the MTL), and
* Sentinel-2 L2A scenes stored as per-band GeoTIFF/COG files next to their STAC Item JSON
  (:mod:`.sentinel2`; assets are matched to files by file name),

and writes one STAC 1.1 Item per scene (extensions eo, raster, projection; ``proj:*`` read from the
files themselves, :mod:`.georef`; asset keys are eqi band aliases; hrefs are absolute local paths)
to a stac-geoparquet file with rustac (:mod:`.parquet`).  A folder holding only some of the band
files is indexed with those, and the absent ones are listed in the item property
``eqi:missing_bands`` and in the report's warnings.  Unreadable scenes are skipped and listed.

:class:`ArchiveCatalog` (:mod:`.search`) reads the file with rustac and filters by bbox, datetime
and collection in-process.
"""

from eqi.io.catalog.archive.georef import MISSING_BANDS
from eqi.io.catalog.archive.index import IndexReport, index_archive
from eqi.io.catalog.archive.landsat import LANDSAT_COLLECTION, landsat_item
from eqi.io.catalog.archive.parquet import read_archive, write_archive
from eqi.io.catalog.archive.scan import SkippedScene, scan_scenes
from eqi.io.catalog.archive.search import ArchiveCatalog
from eqi.io.catalog.archive.sentinel2 import SENTINEL2_COLLECTION, sentinel2_item

__all__ = [
    "ArchiveCatalog",
    "IndexReport",
    "SkippedScene",
    "index_archive",
    "scan_scenes",
    "landsat_item",
    "sentinel2_item",
    "write_archive",
    "read_archive",
    "LANDSAT_COLLECTION",
    "SENTINEL2_COLLECTION",
    "MISSING_BANDS",
]
