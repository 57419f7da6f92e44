"""One training engine for head training, fine-tuning and pretraining.

>>> from pigeon.engine import Engine, OptimConfig, ShuffleSampler
>>> engine = Engine(OptimConfig(epochs=10, lr=1e-3, warmup_epochs=1), out_dir="run/")
>>> result = engine.fit(model, ShuffleSampler(len(data), 256), collate=lambda idx: data[idx])

``model(batch)`` returns ``(loss, stats, n)``; see :class:`Engine` for checkpoints, resume, logs and curves.
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon._device": ("autocast_dtype", "distributed_info", "resolve_device"),
    "pigeon.engine._config": ("SCHEDULES", "OptimConfig", "lr_factor"),
    "pigeon.engine._curves": ("Panel", "plot_curves"),
    "pigeon.engine._engine": ("CHECKPOINT_DIR", "CURVES", "Engine", "Sampler", "TrainResult",
                              "read_checkpoint_state", "refuse_existing"),
    "pigeon.engine._samplers": ("LocationBatchSampler", "ShuffleSampler"),
})
__all__ = sorted(_EXPORTS)
# lazy: OptimConfig (help texts, configs) imports without torch; the engine itself when it is used
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
