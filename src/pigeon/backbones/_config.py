"""What travels with a backbone's weights: its source, output size and preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig

#: ImageNet normalisation (torchvision / timm convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: OpenAI CLIP normalisation.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class BackboneCfg(JsonConfig):
    """Pretrained configuration of an image backbone (like timm's ``PretrainedCfg``).

    Attributes:
        source: where the weights come from (package, hub id or folder).
        embed_dim: size D of the pooled embedding.
        image_size: side of the square model input, pixels.
        mean: per-channel RGB mean on the [0, 1] scale.
        std: per-channel RGB standard deviation on the [0, 1] scale.
        interpolation: resize filter, ``"bicubic"`` or ``"bilinear"``.
        license: licence of the weights.
        crop_pct: the shortest edge is resized to ``floor(image_size / crop_pct)`` before the centre crop.
        pooling: how the feature map or tokens become one vector.
    """

    source: str
    embed_dim: int
    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    license: str = "unknown"
    crop_pct: float = 1.0
    pooling: str = "mean"
