"""Shared fixtures (the helpers themselves live in :mod:`tests.support`). Everything runs offline on CPU."""

from __future__ import annotations

import os

import matplotlib
import pytest

import pigeon  # noqa: F401  (first: makes torchvision importable beside the CPU torch, see pigeon._compat)
from tests.support import assert_clean_error, invoke, write_store  # noqa: F401  (older imports keep working)

matplotlib.use("Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    """With several pytest-xdist workers, one thread each (and in the processes they start): the workers already
    fill the cores, and torch's threads competing with them run slower than one."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture
def cli():
    """``cli("data", "ingest", ...)`` -> CliResult(exit_code, stdout, stderr)."""
    return invoke


@pytest.fixture(autouse=True)
def _pixel_limit_restored():
    """Every test starts with the default decompression-bomb limit (``pigeon embed --max-pixels`` run in-process
    and the embedding workers set the process-wide one)."""
    from PIL import Image

    from pigeon import images

    limit, pil = images.get_max_pixels(), Image.MAX_IMAGE_PIXELS
    yield
    images.set_max_pixels(limit)
    Image.MAX_IMAGE_PIXELS = pil


@pytest.fixture
def one_thread():
    """One torch thread for the test: on the shared 2-core machine two threads fight other jobs and run ~10x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP vision model saved like a hub checkpoint: config.json, weights and
    preprocessor_config.json (32 px crop of a 40 px shortest edge)."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPVisionModel(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path
