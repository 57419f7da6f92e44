"""Tiny random CLIP checkpoints with both towers (what ``clip_image:`` and GeoCLIP's image encoder load)."""

from __future__ import annotations


def tiny_clip_config(projection_dim: int, image_size: int = 32, patch_size: int = 8):
    """A ``CLIPConfig`` of a 1-layer text tower and a 2-layer vision tower projecting to ``projection_dim``."""
    from transformers import CLIPConfig

    return CLIPConfig(projection_dim=projection_dim,
                      text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, vocab_size=50, bos_token_id=0, eos_token_id=2),
                      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=image_size, patch_size=patch_size))


def save_tiny_full_clip(path, projection_dim: int):
    """A tiny random CLIP (seeded) saved to ``path`` with a processor that crops 32 px of a 40 px shortest edge;
    returns the model."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(projection_dim)).eval()
    model.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return model
