"""Data stage: manifests of geotagged images, ingestion, benchmark import, enrichment, captions."""

from pigeon.data.manifest import (
    REQUIRED_COLUMNS, SPLITS, image_views, read_manifest, read_table, select_split,
    validate_manifest, write_manifest, write_table,
)

__all__ = [
    "REQUIRED_COLUMNS", "SPLITS", "image_views", "read_manifest", "read_table", "select_split",
    "validate_manifest", "write_manifest", "write_table",
]
