"""Output writers: COGs (:mod:`.cog`), QGIS styles and colour tables (:mod:`.styles`) and STAC
metadata (:mod:`.stac`).

Typical use for one product of a task::

    from eqi.outputs import cog, stac, styles

    classes = [(1, "#1a9641", "forest"), (2, "#ffffbf", "grassland")]
    tif = cog.write_cog(lc, paths.product("landcover"), nodata=0, description="Land cover",
                        kind="categorical", colormap=styles.colormap_from_classes(classes),
                        category_names=styles.names_from_classes(classes))
    styles.write_qml(tif, styles.categorical_qml(classes, nodata=0))
    ...
    stac.write_item_atomic(stac.product_item(...), paths.item)   # last: the done marker
    stac.update_catalog(out_root, "eqi outputs")
"""
