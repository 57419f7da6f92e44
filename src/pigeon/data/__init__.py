"""Data stage: manifests of geotagged images, ingestion, benchmark import, splits, decontamination."""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon._io": ("read_table", "write_table"),
    "pigeon.data._config": ("SPLITS", "SPLIT_METHODS", "VIEW_COUNTS", "BlueMarbleConfig", "SplitConfig"),
    "pigeon.data.benchmarks": ("FORMATS", "MissingImagesWarning", "import_benchmark"),
    "pigeon.data.bluemarble": ("make_bluemarble_dataset",),
    "pigeon.data.decontaminate": ("decontaminate",),
    "pigeon.data.ingest": ("IngestResult", "PhotoInfo", "ingest_photos", "read_photo_info"),
    "pigeon.data.manifest": ("REQUIRED_COLUMNS", "VIEW_COLUMNS", "distance_to_rows_km", "image_views",
                             "location_points", "read_manifest", "select_split", "training_rows",
                             "validate_manifest", "write_manifest"),
    "pigeon.data.split": ("split_manifest",),
    "pigeon.data.stream": ("iter_manifest", "manifest_rows", "read_points"),
})
__all__ = sorted(_EXPORTS)
# lazy: SplitConfig and BlueMarbleConfig (help texts) import without pandas; the readers when they are used
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
