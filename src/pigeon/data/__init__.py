"""Data stage: manifests of geotagged images, ingestion, benchmark import, splits, decontamination."""

from pigeon._io import read_table, write_table
from pigeon.data.benchmarks import FORMATS, import_benchmark
from pigeon.data.bluemarble import make_bluemarble_dataset
from pigeon.data.decontaminate import decontaminate
from pigeon.data.ingest import IngestResult, PhotoInfo, ingest_photos, read_photo_info
from pigeon.data.manifest import (
    REQUIRED_COLUMNS, SPLITS, VIEW_COLUMNS, distance_to_rows_km, image_views, location_points, read_manifest,
    select_split, training_rows, validate_manifest, write_manifest,
)
from pigeon.data.split import SPLIT_METHODS, SplitConfig, split_manifest
from pigeon.data.stream import iter_manifest, manifest_rows, read_points

__all__ = [
    "FORMATS", "REQUIRED_COLUMNS", "SPLITS", "SPLIT_METHODS", "VIEW_COLUMNS", "IngestResult", "PhotoInfo",
    "SplitConfig", "decontaminate", "distance_to_rows_km", "image_views", "import_benchmark", "ingest_photos",
    "iter_manifest", "location_points", "make_bluemarble_dataset", "manifest_rows", "read_manifest",
    "read_photo_info", "read_points", "read_table", "select_split", "split_manifest", "training_rows", "validate_manifest",
    "write_manifest", "write_table",
]
