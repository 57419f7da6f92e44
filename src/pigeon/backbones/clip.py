"""CLIP vision towers through ``transformers`` (the paper's backbone).

``clip:<hub id or folder>`` loads ``CLIPVisionModel.from_pretrained`` and the folder's image-processor settings.
The embedding follows PIGEON: the **mean over all tokens** (CLS + patches) of ``last_hidden_state``, before
the post-layernorm and projection (1024-d for ViT-L/14-336). ``clip_image:<hub id or folder>`` gives CLIP's own
image embedding instead (``get_image_features``: the projected CLS token, 768-d for ViT-L/14), what GeoCLIP reads.
Without a model hub, pass a folder written by ``save_pretrained`` (e.g. downloaded elsewhere with
``huggingface-cli download openai/clip-vit-large-patch14-336``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import nn

from pigeon.backbones._base import Backbone
from pigeon.backbones._config import CLIP_MEAN, CLIP_STD, BackboneCfg
from pigeon.backbones._registry import register_backbone, register_pretrained
from pigeon.errors import ArtifactNotFoundError, InputError

_POOLING = "mean over all tokens of last_hidden_state"
_PROJECTED = "CLIP's image embedding: the visual projection of the layer-normed CLS token"
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}  # PIL resample codes
_HINT = ("pass a local folder saved with save_pretrained, or download it where a model hub is reachable "
         "(huggingface-cli download ID) and pass that folder")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "name" or "namespace/name"
_CONNECT_TIMEOUT_S = 3.0
_MAX_REASON = 200


class CLIPVisionBackbone(Backbone):
    """A ``transformers`` ``CLIPVisionModel`` pooled by the mean of all output tokens."""

    def __init__(self, name: str, cfg: BackboneCfg, model: nn.Module) -> None:
        super().__init__(name, cfg)
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, hidden_size)``."""
        return self.model(pixel_values=pixels).last_hidden_state.mean(dim=1)

    def last_block(self) -> nn.Module:
        """The last transformer layer of the vision encoder (PIGEON unfreezes only this one)."""
        return getattr(self.model, "vision_model", self.model).encoder.layers[-1]  # transformers 4 / 5


def read_clip_cfg(spec: str, download: bool = False) -> BackboneCfg:
    """The :class:`BackboneCfg` of a CLIP folder or hub id, from its config and processor files.

    Hub files are read from the local cache, or fetched when ``download`` and a hub is reachable.
    """
    config = _read_json(spec, "config.json", required=True, download=download)
    vision = config.get("vision_config", config)
    processor = _read_json(spec, "preprocessor_config.json", required=False, download=download) or {}
    image_size = int(vision.get("image_size", 224))
    crop = processor.get("crop_size", image_size)
    crop = int(crop["height"] if isinstance(crop, dict) else crop)
    size = processor.get("size", crop)
    short = int(size.get("shortest_edge", size.get("height", crop)) if isinstance(size, dict) else size)
    return BackboneCfg(
        source=spec,
        embed_dim=int(vision.get("hidden_size", 768)),
        image_size=crop,
        mean=tuple(processor.get("image_mean", CLIP_MEAN)),
        std=tuple(processor.get("image_std", CLIP_STD)),
        interpolation=_RESAMPLE.get(int(processor.get("resample", 3)), "bicubic"),
        license="see the model card",
        crop_pct=crop / short,
        pooling=_POOLING,
    )


@register_backbone("clip", cfg_reader=read_clip_cfg)
def load_clip(spec: str) -> CLIPVisionBackbone:
    """Load ``clip:<hub id or local folder>`` (a CLIP or CLIP-vision checkpoint)."""
    from transformers import CLIPVisionModel

    online = _check_source(spec)
    with quiet_transformers():  # "some weights not used" when loading a full CLIP checkpoint
        try:
            model = CLIPVisionModel.from_pretrained(spec, local_files_only=not online)
        except OSError as exc:
            raise ArtifactNotFoundError(spec, f"cannot load CLIP weights ({_first_line(exc)}); {_HINT}") from None
    return CLIPVisionBackbone(f"clip:{spec}", read_clip_cfg(spec, download=online), model)


class CLIPImageFeatures(CLIPVisionBackbone):
    """A ``transformers`` ``CLIPVisionModelWithProjection``: CLIP's own image embedding (the projected, layer-normed
    CLS token, ``CLIPModel.get_image_features``), the input of CLIP-space methods such as GeoCLIP."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, projection_dim)``."""
        return self.model(pixel_values=pixels).image_embeds


def read_clip_image_cfg(spec: str, download: bool = False) -> BackboneCfg:
    """The :class:`BackboneCfg` of ``clip_image:<spec>``: the CLIP folder's, with the projection's size."""
    config = _read_json(spec, "config.json", required=True, download=download)
    dim = config.get("projection_dim", config.get("vision_config", {}).get("projection_dim", 512))
    return dataclasses.replace(read_clip_cfg(spec, download), embed_dim=int(dim), pooling=_PROJECTED)


@register_backbone("clip_image", cfg_reader=read_clip_image_cfg)
def load_clip_image(spec: str) -> CLIPImageFeatures:
    """Load ``clip_image:<hub id or local folder>`` (a CLIP checkpoint with its visual projection)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    online = _check_source(spec)
    cfg = read_clip_image_cfg(spec, download=online)
    with quiet_transformers():
        try:
            config = CLIPVisionConfig.from_pretrained(spec, local_files_only=not online)
            config.projection_dim = cfg.embed_dim  # a full CLIP's size lives in its top-level config
            model = CLIPVisionModelWithProjection.from_pretrained(spec, config=config, local_files_only=not online)
        except OSError as exc:
            raise ArtifactNotFoundError(spec, f"cannot load CLIP weights ({_first_line(exc)}); {_HINT}") from None
    return CLIPImageFeatures(f"clip_image:{spec}", cfg, model)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence ``transformers``' loading warnings and progress bars for the duration."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _check_source(spec: str) -> bool:
    """Fail fast, on one line, when ``spec`` can load from nowhere; True when the hub must be asked.

    A local folder loads offline. Anything else must be a hub id that is cached or reachable: without this
    check, ``from_pretrained`` spends about 30 s retrying an unreachable hub before it gives up.
    """
    from pigeon.backbones._registry import _hub_cached

    if Path(spec).is_dir():
        return False
    if spec.startswith((".", "/", "~")) or "\\" in spec or not _HUB_ID.fullmatch(spec):
        raise ArtifactNotFoundError(spec, f"no such CLIP folder; {_HINT}")
    if _hub_reachable():
        return True
    if _hub_cached(spec):
        return False
    raise ArtifactNotFoundError(spec, f"it is not a local folder, not in the model-hub cache, and the hub "
                                      f"({_hub_endpoint()}) cannot be reached from here; {_HINT}")


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _hub_reachable() -> bool:
    """Whether the model hub answers a TCP connection within a few seconds (False in offline mode)."""
    from huggingface_hub import constants

    offline = {os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if constants.HF_HUB_OFFLINE or offline & {"1", "ON", "YES", "TRUE"}:
        return False
    url = urlsplit(_hub_endpoint())
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=_CONNECT_TIMEOUT_S):
            return True
    except OSError:  # no DNS, refused, timed out
        return False


def _hub_file(repo_id: str, filename: str, download: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        found = hf_hub_download(repo_id, filename) if download else try_to_load_from_cache(repo_id, filename)
    except Exception:  # offline, unknown repo, invalid id, missing file: all mean "not available here"
        return None
    return Path(found) if isinstance(found, str) else None


def _first_line(exc: BaseException) -> str:
    """The first line of an error message, shortened at a word boundary (never mid-word)."""
    line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if len(line) <= _MAX_REASON:
        return line
    return line[:_MAX_REASON].rsplit(" ", 1)[0] + " ..."


def _read_json(spec: str, filename: str, required: bool, download: bool) -> dict | None:
    """A JSON file from a local folder, else from the hub cache (or the hub itself when ``download``)."""
    path = Path(spec) / filename
    if not Path(spec).is_dir():
        path = _hub_file(spec, filename, download) or path
    if not path.is_file():
        if required:
            raise ArtifactNotFoundError(path, f"{spec!r} is neither a CLIP folder nor a cached hub model; {_HINT}")
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is not valid JSON; re-save the model with save_pretrained") from None


_L14_336 = dict(embed_dim=1024, image_size=336, mean=CLIP_MEAN, std=CLIP_STD, pooling=_POOLING)
register_pretrained("clip:openai/clip-vit-large-patch14-336",
                    BackboneCfg(source="hf:openai/clip-vit-large-patch14-336", license="MIT", **_L14_336),
                    "OpenAI CLIP ViT-L/14 at 336 px: the PIGEOTTO backbone", requires="model hub")
register_pretrained("clip:geolocal/StreetCLIP",
                    BackboneCfg(source="hf:geolocal/StreetCLIP", license="CC-BY-NC-4.0", **_L14_336),
                    "StreetCLIP (PIGEON authors; CLIP ViT-L/14-336 pretrained for geolocation)", requires="model hub")
register_pretrained("clip_image:openai/clip-vit-large-patch14",
                    BackboneCfg(source="hf:openai/clip-vit-large-patch14", embed_dim=768, image_size=224,
                                mean=CLIP_MEAN, std=CLIP_STD, license="MIT", pooling=_PROJECTED),
                    "OpenAI CLIP ViT-L/14 image embeddings (224 px, 768-d): what GeoCLIP's published weights read",
                    requires="model hub")
register_pretrained("clip:openai/clip-vit-base-patch16",
                    BackboneCfg(source="hf:openai/clip-vit-base-patch16", embed_dim=768, image_size=224,
                                mean=CLIP_MEAN, std=CLIP_STD, license="MIT", pooling=_POOLING),
                    "OpenAI CLIP ViT-B/16 at 224 px (smaller, faster)", requires="model hub")
