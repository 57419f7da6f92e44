"""Where computation runs: the one device resolver, mixed precision per device, and the process's rank.

Multi-process training (``torchrun --nproc-per-node N -m pigeon ...``) is set up here, in one place:
:func:`init_distributed` joins the process group that torchrun's environment describes (gloo on CPU, NCCL for
CUDA tensors), and the helpers below are no-ops in a single process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from pigeon._config import PRECISIONS
from pigeon.errors import InputError

#: ``precision`` names accepted by :func:`autocast_dtype`.


#: The device names ``--device`` takes (``cuda:N``: GPU number N).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_name(device: str | None, allowed: tuple[str, ...] = DEVICE_NAMES, where: str = "") -> str | None:
    """``device`` (None: auto) when it is one of ``allowed``; else a one-line error that lists them."""
    name = "auto" if device is None else str(device)
    if name in allowed or ("cuda:N" in allowed and re.fullmatch(r"cuda:\d+", name)):
        return device
    raise InputError(f"unknown device {device!r}{where}; use {', '.join(allowed[1:])} or {allowed[0]}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or ``"auto"`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str):
        check_device_name(device)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use {', '.join(DEVICE_NAMES[1:])} or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {str(device)!r} requested but CUDA is not available here; use --device cpu")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means full float32.

    ``"auto"`` is bfloat16 on CUDA devices that support it, float16 on older CUDA devices and float32
    elsewhere (CPU autocast is often slower than float32). ``"bf16"``/``"fp16"`` force a dtype.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def distributed_info() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from ``torch.distributed`` when initialised, else ``(0, 1)``."""
    if _initialised():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return distributed_info()[0] == 0


#: Seconds a collective (a barrier included) may wait: rank 0 alone builds the refiner after training while the
#: other ranks wait, which can take long on a large gallery. ``PIGEON_DIST_TIMEOUT`` overrides it.
DEFAULT_TIMEOUT_S = 4 * 3600


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1), once; return the device
    this process trains on.

    In a single process (no ``WORLD_SIZE``, or 1) nothing happens and ``device`` is returned unchanged. Under
    torchrun, a CUDA device without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process), and the group uses
    NCCL for CUDA tensors and gloo for CPU ones.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not _initialised():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise InputError(f"WORLD_SIZE is {world} but {', '.join(missing)} is not set; start multi-process "
                             "training with 'torchrun --nproc-per-node N -m pigeon ...'")
        timeout = datetime.timedelta(seconds=float(os.environ.get("PIGEON_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, timeout=timeout)
    return device


def _initialised() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def barrier() -> None:
    """Wait for every process (e.g. until rank 0 has written a file the others read)."""
    if _initialised() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


@contextlib.contextmanager
def main_process_writes() -> Iterator[bool]:
    """Rank 0 writes, the others wait: yields whether this process is the one to write, and after the block every
    process meets at a barrier (also when the block fails, so that the others do not wait forever).

    >>> with main_process_writes() as writer:
    ...     if writer:
    ...         geo.save_pretrained(out_dir)
    """
    try:
        yield is_main_process()
    finally:
        barrier()


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Element-wise sum of a float64 array over every process (the array itself in a single process)."""
    values = np.asarray(values, np.float64)
    if distributed_info()[1] == 1:
        return values
    t = torch.from_numpy(values.copy())
    torch.distributed.all_reduce(t)
    return t.numpy()


def all_reduce_counts(counts: torch.Tensor) -> torch.Tensor:
    """Sum of an integer tensor over every process, on its device, outside autograd (a copy; unchanged in a single
    process). Every process must call it at the same point."""
    counts = counts.detach().clone()
    if distributed_info()[1] > 1:
        torch.distributed.all_reduce(counts)
    return counts


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (so that a decision is the same everywhere)."""
    if distributed_info()[1] == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` in a single process)."""
    if distributed_info()[1] == 1:
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out
