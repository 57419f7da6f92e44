"""Geography layer: what is where, offline.

Countries (Natural Earth 1:10m), admin-1 units (Natural Earth 1:10m states and provinces, vendored), admin-2 areas
(derived from GeoNames inside each unit) or GADM 4.1 levels, reverse geocoding, auxiliary geodata for the
multi-task heads (Köppen-Geiger, elevation, climate, population, driving side, land) and the paper's synthetic
captions. Sources and licences: ``DATA.md``.
"""

from pigeon.geography._admin import ADMIN_COLUMNS, admin_areas
from pigeon.geography._captions import (
    STYLES, THE_COUNTRIES, caption_settings, captions, compass_direction, country_phrase,
)
from pigeon.geography._countries import LEFT_HAND_TRAFFIC, countries, country_of, drive_side
from pigeon.geography._enrich import ENRICH_COLUMNS, RASTER_COLUMNS, enrich, season
from pigeon.geography._places import LOCATE_COLUMNS, locate, nearest_place, places
from pigeon.geography._rasters import (
    KOPPEN_CLASSES, KOPPEN_NAMES, Grid, climate_grids, elevation_grid, is_land, koppen, koppen_grid,
    pop_density, population_grid, sample_raster,
)

__all__ = [
    "ADMIN_COLUMNS", "ENRICH_COLUMNS", "KOPPEN_CLASSES", "KOPPEN_NAMES", "LEFT_HAND_TRAFFIC", "LOCATE_COLUMNS",
    "RASTER_COLUMNS", "STYLES", "THE_COUNTRIES", "Grid", "admin_areas", "caption_settings", "captions", "climate_grids",
    "compass_direction", "countries", "country_of", "country_phrase", "drive_side", "elevation_grid", "enrich",
    "is_land", "koppen", "koppen_grid", "locate", "nearest_place", "places", "pop_density", "population_grid",
    "sample_raster", "season",
]
