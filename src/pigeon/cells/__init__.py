"""Geocells: the classes a geolocation head predicts (PIGEON section 3.1).

Semantic cells follow admin boundaries (one cell per populated admin area, small cells fused within a
country, large cells split with OPTICS + Voronoi); naive cells are the reference's adaptive rectangles.
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.cells._config": ("METHODS", "OPTICS_PARAMS_PHOTO", "OPTICS_PARAMS_STREETVIEW", "RULES", "CellConfig"),
    "pigeon.cells._geocells": ("TABLE_COLUMNS", "GeoCells", "read_areas"),
    "pigeon.cells._report": ("cell_stats", "export_geojson", "plot_cells"),
})
__all__ = sorted(_EXPORTS)
# lazy: CellConfig (help texts) and loading a model's cells must not import the builders (geopandas, scipy)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
