"""Data stage: manifests of geotagged images, ingestion, benchmark import, splits, decontamination."""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "pigeon._io": ("read_table", "write_table"),
    "_config": ("SPLITS", "SPLIT_METHODS", "VIEW_COUNTS", "BlueMarbleConfig", "SplitConfig"),
    "benchmarks": ("FORMATS", "import_benchmark"),
    "bluemarble": ("make_bluemarble_dataset",),
    "decontaminate": ("decontaminate",),
    "ingest": ("IngestResult", "PhotoInfo", "ingest_photos", "read_photo_info"),
    "manifest": ("REQUIRED_COLUMNS", "VIEW_COLUMNS", "distance_to_rows_km", "image_views", "location_points",
                 "read_manifest", "select_split", "training_rows", "validate_manifest", "write_manifest"),
    "split": ("split_manifest",),
    "stream": ("iter_manifest", "manifest_rows", "read_points"),
})
