"""I/O layer: catalogs, loading scenes, writing COGs, QGIS styles, STAC items, atomic files."""
