"""Data whose captions match its images, and tiny randomly initialised CLIP / open_clip checkpoints."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pytest
from PIL import Image

#: Four "countries", each with its own colour, hemisphere and driving side.
COUNTRIES = [
    ("France", "Île-de-France", "Paris", "Cfb", "right", 48.8, 2.3, (220, 40, 40)),
    ("Kenya", "Nairobi", "Nairobi", "Aw", "left", -1.3, 36.8, (40, 200, 40)),
    ("Chile", "Santiago", "Santiago", "Csb", "right", -33.4, -70.6, (40, 40, 220)),
    ("United Kingdom", "England", "London", "Cfb", "left", 51.5, -0.1, (230, 230, 40)),
]


@pytest.fixture(scope="session")
def captioned(tmp_path_factory):
    """48 locations x 2 views of 32 px: each image is its country's colour plus noise; enriched columns set."""
    root = tmp_path_factory.mktemp("captioned")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        name, admin1, city, koppen, drive, lat, lon, colour = COUNTRIES[i % 4]
        views = []
        for k in range(2):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"l{i}_{k}.png")
            views.append(f"images/l{i}_{k}.png")
        rows.append(dict(id=f"l{i}", image=views, lat=lat + rng.normal(0, 0.5), lon=lon + rng.normal(0, 0.5),
                         heading=float(rng.uniform(0, 360)), split="train" if i < 40 else "test",
                         country_name=name, admin1=admin1, city=city, koppen=koppen, drive_side=drive,
                         elevation_m=float(rng.uniform(0, 500)), month=int(1 + i % 12)))
    df = pd.DataFrame(rows)
    from pigeon.data import read_manifest, write_manifest

    write_manifest(df, root / "manifest.parquet")
    return read_manifest(root / "manifest.parquet")


def _char_tokenizer(folder):
    """A real CLIP BPE tokenizer over single characters (no merges): offline and tiny."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,'-":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>"), len(vocab)


@pytest.fixture(scope="session")
def tiny_clip_full(tmp_path_factory):
    """A full CLIPModel (vision + text), its tokenizer and image processor, saved like a hub checkpoint."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("tiny_clip_full")
    tokenizer, n_vocab = _char_tokenizer(folder)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=128, eos_token_id=1, bos_token_id=0,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    """``(config.json, checkpoint)`` of a randomly initialised open_clip CLIP (ViT image + text tower)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_open_clip")
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
              "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    path = folder / "pigeon-test-clip.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    model = open_clip.create_model("pigeon-test-clip")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "weights.safetensors"))
    return path, folder / "weights.safetensors"


@pytest.fixture(scope="session")
def vision_only_clip(tmp_path_factory):
    """A CLIP checkpoint with the vision tower only (what 'clip:' embeds with, but cannot pretrain)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("vision_only_clip")
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(folder)
    return folder

