"""Run code in several local processes joined by gloo, as ``torchrun`` does (for the multi-process tests).

``spawn(fn, 2, *args)`` calls ``fn(rank, *args)`` in 2 fresh processes with torchrun's environment variables set,
so ``pigeon._device.init_distributed`` joins them exactly as under torchrun; ``torchrun(2, "train", ...)`` runs the
real ``torchrun --nproc-per-node 2 -m pigeon train ...`` command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch

    torch.set_num_threads(1)
    try:
        fn(rank, *args)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def spawn(fn, world: int, *args) -> None:
    """``fn(rank, *args)`` in ``world`` processes (``fn`` must be a module-level function); re-raises a failure."""
    import torch.multiprocessing as mp

    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)


def torchrun(world: int, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node world -m pigeon ARGS`` (one CPU thread a process)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
           "-m", "pigeon", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
