"""Geocells: the classes a geolocation head predicts (PIGEON section 3.1).

Semantic cells follow admin boundaries (one cell per populated admin area, small cells fused within a
country, large cells split with OPTICS + Voronoi); naive cells are the reference's adaptive rectangles.
"""

from pigeon.cells._config import OPTICS_PARAMS_PHOTO, OPTICS_PARAMS_STREETVIEW, PRESETS, RULES, CellPreset
from pigeon.cells._geocells import METHODS, TABLE_COLUMNS, GeoCells, read_areas
from pigeon.cells._report import cell_stats, export_geojson, plot_cells

__all__ = [
    "METHODS", "OPTICS_PARAMS_PHOTO", "OPTICS_PARAMS_STREETVIEW", "PRESETS", "RULES", "TABLE_COLUMNS", "CellPreset",
    "GeoCells", "cell_stats", "export_geojson", "plot_cells", "read_areas",
]
