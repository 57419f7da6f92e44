"""GeoCLIP's published model, read as data from the ``geoclip`` package (PyPI ``geoclip==1.3.0``, MIT).

The wheel ships the trained location encoder (``model/weights/location_encoder_weights.pth``), the image-side MLP on
CLIP ViT-L/14 image features (``image_encoder_mlp_weights.pth``, 768 -> 768 -> 512), the temperature
(``logit_scale_weights.pth``) and its GPS gallery (``model/gps_gallery/coordinates_100K.csv``: 100,000 MP-16 photo
locations). They are read with ``torch.load(weights_only=True)`` and renamed onto :class:`GeoClipTowers`; none of
the package's code is imported. CLIP ViT-L/14 itself (``openai/clip-vit-large-patch14``) comes from the model hub or
a local folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pigeon.errors import InputError, MissingDependencyError
from pigeon.model.geoclip._config import GEOCLIP_SHAPES
from pigeon.model.geoclip._encoder import GeoClipTowers

#: The release whose files are read (the ``peers`` extra pins it).
VERSION = "1.3.0"
#: The wheel's files, relative to the package folder.
FILES = {"location": "model/weights/location_encoder_weights.pth",
         "image": "model/weights/image_encoder_mlp_weights.pth",
         "logit_scale": "model/weights/logit_scale_weights.pth",
         "gallery": "model/gps_gallery/coordinates_100K.csv"}
#: The image features GeoCLIP's MLP was trained on: CLIP ViT-L/14's projected image embedding (224 px).
BACKBONE = "clip_image:openai/clip-vit-large-patch14"
#: What that backbone is, in the terms of a CLIP ``config.json``'s vision config.
BACKBONE_SHAPE = {"hidden_size": 1024, "num_hidden_layers": 24, "patch_size": 14, "image_size": 224}
BACKBONE_NEEDED = ("GeoCLIP's weights need CLIP ViT-L/14 image features (openai/clip-vit-large-patch14: 224 px, "
                   "patch 14, 24 layers, 768-d projection)")
LICENCE = "MIT (geoclip 1.3.0, Vicente Vivanco Cepeda et al., https://github.com/VicenteVivan/geo-clip)"


def package_dir() -> Path:
    """The installed ``geoclip`` package folder (found, not imported); a one-line error naming the extra."""
    spec = importlib.util.find_spec("geoclip")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("geoclip", "peers", "GeoCLIP's published weights")
    version = metadata.version("geoclip")
    if version != VERSION:
        raise InputError(f"geoclip {version} is installed but pigeon reads the files of {VERSION}; "
                         f"pip install geoclip=={VERSION} (the 'peers' extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def file_digests() -> dict[str, str]:
    """sha256 of each published file (recorded in a model folder, checked when it loads)."""
    root = package_dir()
    return {name: hashlib.sha256((root / path).read_bytes()).hexdigest() for name, path in FILES.items()}


def published_state() -> dict[str, torch.Tensor]:
    """GeoCLIP's weights renamed to :class:`GeoClipTowers`' parameter names (identity standardisation)."""
    root = package_dir()
    read = lambda name: torch.load(root / FILES[name], map_location="cpu", weights_only=True)  # noqa: E731
    state = {_location_key(k): v for k, v in read("location").items()}
    state |= {f"image.mlp.{k}": v for k, v in read("image").items()}
    state["logit_scale"] = read("logit_scale").reshape(())
    dim = state["image.mlp.0.weight"].shape[1]
    state |= {"image.feature_mean": torch.zeros(dim), "image.feature_std": torch.ones(dim)}
    return state


def _location_key(key: str) -> str:
    """``LocEnc1.capsule.3.weight`` -> ``location.capsules.1.mlp.2.weight`` (GeoCLIP's names -> pigeon's)."""
    match = re.fullmatch(r"LocEnc(\d+)\.(capsule|head)\.(\d+)\.(\w+)", key)
    if match is None:
        raise InputError(f"unexpected key {key!r} in GeoCLIP's location encoder weights; pip install "
                         f"geoclip=={VERSION}")
    capsule, part, index, name = match.groups()
    if part == "head":
        return f"location.capsules.{capsule}.head.{name}"
    index = int(index)
    return (f"location.capsules.{capsule}.fourier.b" if index == 0
            else f"location.capsules.{capsule}.mlp.{index - 1}.{name}")


def published_towers() -> GeoClipTowers:
    """GeoCLIP's released towers (768-d CLIP image features in, 512-d space)."""
    towers = GeoClipTowers(768, GEOCLIP_SHAPES)
    towers.load_state_dict(published_state())
    return towers.eval()


def published_gallery() -> np.ndarray:
    """(100000, 2) float64 (lat, lon) of GeoCLIP's gallery."""
    from pigeon.model.geoclip._gallery import read_gallery

    return read_gallery(package_dir() / FILES["gallery"])


def load_geoclip(folder: str | Path):
    """The :class:`GeoClip` of a geoclip artefact folder: one written by :meth:`GeoClip.save`, or one whose
    ``config.json`` names GeoCLIP's published files (read from the installed wheel)."""
    from pigeon.model.geoclip._model import GeoClip, is_published, read_config

    folder = Path(folder)
    config = read_config(folder)
    return load_published(folder, config) if is_published(config) else GeoClip.load(folder)


def load_published(folder: Path, config: dict[str, Any]):
    """The :class:`GeoClip` of a folder whose ``config.json`` names GeoCLIP's files (checked by digest)."""
    from pigeon._io import read_table
    from pigeon.model.geoclip._gallery import gallery_table
    from pigeon.model.geoclip._model import GALLERY, GeoClip

    expected = config["weights"].get("sha256", {})
    found = file_digests()
    changed = [name for name, digest in expected.items() if found.get(name) != digest]
    if changed:
        raise InputError(f"the installed geoclip package's {FILES[changed[0]]} differs from the one {folder} was "
                         f"made with; pip install --force-reinstall geoclip=={VERSION}")
    coords = published_gallery()
    cells = read_table(folder / GALLERY, "gallery")["cell"].to_numpy()
    if len(cells) != len(coords):
        raise InputError(f"{folder / GALLERY} has {len(cells)} rows for GeoCLIP's {len(coords)} gallery points; "
                         "rebuild it with tools/build_geoclip_model.py")
    config = {**config, "cache_key": found["location"]}
    return GeoClip(published_towers(), gallery_table(coords, cells), config)


def published_config(digests: dict[str, str]) -> dict[str, Any]:
    """The artefact config of a folder that reads GeoCLIP's published files."""
    return {"backbone": BACKBONE, "in_dim": 768, "encoder": GEOCLIP_SHAPES.to_dict(), "train": None,
            "weights": {"package": "geoclip", "version": VERSION, "files": FILES, "sha256": digests},
            "gallery": {"source": f"geoclip {VERSION} {FILES['gallery']}", "n_points": 100_000},
            "licence": LICENCE}


def check_published_backbone(backbone):
    """``backbone`` as GeoCLIP's towers can use it: a loaded backbone giving 768-d features, or the name of CLIP
    ViT-L/14 (``clip:DIR`` or ``clip_image:DIR`` with a local folder, or the hub id) as ``clip_image:...``."""
    if not isinstance(backbone, str):
        if backbone.embed_dim != 768:
            raise InputError(f"{BACKBONE_NEEDED}; backbone {backbone.name!r} gives {backbone.embed_dim}-d embeddings")
        return backbone
    scheme, _, spec = backbone.partition(":")
    if scheme not in ("clip", "clip_image") or not spec:
        raise InputError(f"{BACKBONE_NEEDED}; got {backbone!r}: pass --backbone clip:DIR with a local folder of "
                         "openai/clip-vit-large-patch14")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        from pigeon._io import read_json

        config = read_json(folder / "config.json", hint="pass a folder saved with save_pretrained")
        _check_vision(backbone, config.get("vision_config", config), config.get("projection_dim"))
    elif spec != BACKBONE.split(":", 1)[1]:
        raise InputError(f"{BACKBONE_NEEDED}; {spec!r} is neither that hub id nor a local folder")
    return f"clip_image:{spec}"


def _check_vision(name: str, vision: dict[str, Any], projection: int | None) -> None:
    """Refuse a CLIP whose vision tower is not ViT-L/14 at 224 px, naming the one GeoCLIP needs."""
    wrong = {k: vision.get(k) for k, v in BACKBONE_SHAPE.items() if vision.get(k, v) != v}
    if projection not in (None, 768):
        wrong["projection_dim"] = projection
    if wrong:
        found = ", ".join(f"{k} {v}" for k, v in wrong.items())
        raise InputError(f"{BACKBONE_NEEDED}; {name} has {found}: pass --backbone clip:DIR with a folder of "
                         "openai/clip-vit-large-patch14")


def write_reference(folder: Path, cells: np.ndarray, config: dict[str, Any] | None = None) -> Path:
    """The ``geoclip/`` folder of a model that reads GeoCLIP's published files: ``config.json`` (the files and
    their digests), ``gallery.parquet`` (the cell of each of the wheel's gallery points, in its order)."""
    import pandas as pd

    from pigeon._io import provenance, write_json, write_table
    from pigeon.model.geoclip._model import CONFIG, GALLERY, META

    config = config or published_config(file_digests())
    folder.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame({"cell": np.asarray(cells, np.int32)}), folder / GALLERY)
    write_json(folder / CONFIG, {**config, "kind": "geoclip"})
    write_json(folder / META, provenance("geoclip", config))
    return folder


def published_model_config(n_cells: int, cells_config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of the pigeon model made of GeoCLIP's published weights (``tools/build_geoclip_model.py``)."""
    return {
        "kind": "geolocator", "preset": "photo", "backbone": BACKBONE,
        "backbone_hint": "GeoCLIP needs CLIP ViT-L/14: download openai/clip-vit-large-patch14 where the model hub "
                         "is reachable (huggingface-cli download openai/clip-vit-large-patch14 --local-dir DIR) "
                         "and pass --backbone clip:DIR",
        "embed_dim": 768, "head": {"kind": "geoclip", "in_dim": 768, "n_cells": n_cells},
        "cells": {"n_cells": n_cells, **{k: cells_config.get(k) for k in ("method", "preset", "min_size", "max_size")},
                  "built_on": "GeoCLIP's 100K gallery"},
        "train": {"views": "first"}, "default_method": "geoclip", "climate_classes": [],
        "data": {"n_train": 0, "n_val": 0, "views_per_location": 1.0,
                 "note": "GeoCLIP was trained by its authors on MP-16 (4.7M Flickr photos); nothing here was "
                         "trained by pigeon"},
        "licence": LICENCE,
    }


def published_card(n_cells: int, uses: str) -> str:
    """The model card of the pigeon model made of GeoCLIP's published weights; ``uses``: the intended and forbidden
    uses every pigeon model card states (:mod:`pigeon.model._card` passes them, so this module needs nothing of it)."""
    return "\n".join([
        "---", "library_name: pigeon-geo", "license: mit", "tags: [image-geolocation, geoclip, pigeon]", "---", "",
        "# GeoCLIP (published weights) as a pigeon model", "",
        "GeoCLIP (Vivanco Cepeda, Nayak & Shah, NeurIPS 2023) aligns CLIP ViT-L/14 image features with a location "
        "encoder (Equal Earth projection, random Fourier features at three scales, MLP capsules) and places a photo "
        "on a gallery of 100,000 GPS coordinates by the softmax of their similarities.", "",
        "```python", "import pigeon", "geo = pigeon.Geolocator.from_pretrained(\"geoclip\")  # backbone=\"clip:DIR\" "
        "offline", "[pred] = geo.predict(\"photo.jpg\", top_k=5)   # method geoclip: top gallery points", "```", "",
        "## Provenance and licence",
        f"- weights and gallery: PyPI `geoclip=={VERSION}` ({LICENCE}), files "
        + ", ".join(f"`{p}`" for p in FILES.values()) + ", read as data (`torch.load(weights_only=True)`) with "
        "their sha256 checked; none of the package's code runs",
        "- gallery: 100,000 MP-16 (YFCC100M Flickr) photo locations, dense in Europe and North America",
        "- backbone: `openai/clip-vit-large-patch14` (MIT) from the model hub or a local folder; its projected "
        "image embedding (768-d)",
        f"- geocells: {n_cells} semantic cells built by pigeon over the gallery points (photo preset), each "
        "holding the posterior mass of its points: they draw the probability map and give the `cell` method",
        "", "## Methods", "- `geoclip` (default): the most probable gallery points, with their gallery-softmax "
        "probabilities (a posterior over points)", "- `cell`: the centroid of the most probable cell", "",
        "## Metrics", "GeoCLIP's paper reports 14.1 / 34.5 / 50.7 / 69.7 / 83.8 % within 1 / 25 / 200 / 750 / "
        "2,500 km on IM2GPS3k. Not measured by pigeon (no CLIP weights offline).", "", uses,
        "## Limits", "- Guesses can only be gallery points: places far from any MP-16 photo cannot be named exactly.",
        "- Probabilities are GeoCLIP's softmax, not calibrated by pigeon.", ""])
