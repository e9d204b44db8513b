"""Geometry layer: CRS names, output grids and tiles, regions (AOIs), GCJ-02 conversion."""
