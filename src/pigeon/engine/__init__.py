"""One training engine for head training, fine-tuning and pretraining.

>>> from pigeon.engine import Engine, OptimConfig, ShuffleSampler
>>> engine = Engine(OptimConfig(epochs=10, lr=1e-3, warmup_epochs=1), out_dir="run/")
>>> result = engine.fit(model, ShuffleSampler(len(data), 256), collate=lambda idx: data[idx])

``model(batch)`` returns ``(loss, stats, n)``; see :class:`Engine` for checkpoints, resume, logs and curves.
"""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "pigeon._device": ("autocast_dtype", "distributed_info", "resolve_device"),
    "_config": ("SCHEDULES", "OptimConfig", "lr_factor"),
    "_curves": ("Panel", "plot_curves"),
    "_engine": ("CHECKPOINT_DIR", "CURVES", "Engine", "Sampler", "TrainResult", "read_checkpoint_state",
                "refuse_existing"),
    "_samplers": ("LocationBatchSampler", "ShuffleSampler"),
})
