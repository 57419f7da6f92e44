"""Geocells: the classes a geolocation head predicts (PIGEON section 3.1).

Semantic cells follow admin boundaries (one cell per populated admin area, small cells fused within a
country, large cells split with OPTICS + Voronoi); naive cells are the reference's adaptive rectangles.

>>> from pigeon.cells import CellConfig, GeoCells
>>> cells = GeoCells.build(lat, lon, preset="photo")          # or GeoCells.build(lat, lon, CellConfig(...))
"""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "_config": ("METHODS", "OPTICS_PARAMS_PHOTO", "OPTICS_PARAMS_STREETVIEW", "CellConfig"),
    "_geocells": ("TABLE_COLUMNS", "GeoCells", "read_areas"),
    "_report": ("cell_stats", "export_geojson", "plot_cells"),
})
