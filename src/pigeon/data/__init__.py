"""Data stage: manifests of geotagged images, ingestion, benchmark import, enrichment, captions."""

from pigeon.data.benchmarks import FORMATS, import_benchmark
from pigeon.data.bluemarble import make_bluemarble_dataset
from pigeon.data.ingest import IngestResult, PhotoInfo, ingest_photos, read_photo_info
from pigeon.data.manifest import (
    REQUIRED_COLUMNS, SPLITS, image_views, read_manifest, read_table, select_split,
    validate_manifest, write_manifest, write_table,
)
from pigeon.data.stream import iter_manifest, manifest_rows, read_points

__all__ = [
    "FORMATS", "REQUIRED_COLUMNS", "SPLITS", "IngestResult", "PhotoInfo", "image_views", "import_benchmark",
    "ingest_photos", "iter_manifest", "make_bluemarble_dataset", "manifest_rows", "read_manifest", "read_photo_info",
    "read_points", "read_table", "select_split", "validate_manifest", "write_manifest", "write_table",
]
