"""One training engine for head training, fine-tuning and pretraining.

>>> from pigeon.engine import Engine, OptimConfig, ShuffleSampler
>>> engine = Engine(OptimConfig(epochs=10, lr=1e-3, warmup_epochs=1), out_dir="run/")
>>> result = engine.fit(model, ShuffleSampler(len(data), 256), collate=lambda idx: data[idx])

``model(batch)`` returns ``(loss, stats, n)``; see :class:`Engine` for checkpoints, resume, logs and curves.
"""

from pigeon._device import autocast_dtype, distributed_info, resolve_device
from pigeon.engine._config import SCHEDULES, OptimConfig, lr_factor
from pigeon.engine._curves import Panel, plot_curves
from pigeon.engine._engine import CHECKPOINT_DIR, CURVES, Engine, Sampler, TrainResult, read_checkpoint_state
from pigeon.engine._samplers import LocationBatchSampler, ShuffleSampler

__all__ = [
    "CHECKPOINT_DIR", "CURVES", "SCHEDULES", "Engine", "LocationBatchSampler", "OptimConfig", "Panel", "Sampler",
    "ShuffleSampler", "TrainResult", "autocast_dtype", "distributed_info", "lr_factor", "plot_curves",
    "read_checkpoint_state", "resolve_device",
]
