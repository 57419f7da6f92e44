"""Registry names, listing, errors for unknown names and absent optional libraries, device/dtype, CLI."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from pigeon.backbones import (
    BackboneCfg, backbone_cfg, list_backbones, load, register_backbone, resolve_device, resolve_dtype, split_name,
)
from pigeon.errors import InputError, MissingDependencyError, UnknownNameError
from tests.support import assert_clean_error


def test_list_is_filtered_and_naturally_sorted():
    names = list_backbones()
    assert {"efficientnet:lite0", "clip:openai/clip-vit-large-patch14-336", "clip:geolocal/StreetCLIP"} <= set(names)
    assert list_backbones("efficientnet:*") == ["efficientnet:lite0", "efficientnet:lite2"]
    assert all(n.startswith("clip:") for n in list_backbones("clip:*"))
    assert list_backbones("nothing*") == []


def test_split_name_routes_by_scheme():
    assert split_name("clip:openai/clip-vit-base-patch16") == ("clip", "openai/clip-vit-base-patch16")
    assert split_name("open_clip:ViT-B-16:/w/ckpt.pt") == ("open_clip", "ViT-B-16:/w/ckpt.pt")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean 'efficientnet:lite0'"):
        load("efficientnet-lite0")


def test_registering_a_new_scheme_makes_it_loadable(tiny_clip_dir):
    from pigeon.backbones import _registry
    from pigeon.backbones.clip import load_clip

    register_backbone("myclip")(load_clip)
    try:
        assert load(f"myclip:{tiny_clip_dir}", device="cpu").embed_dim == 32
    finally:
        del _registry._LOADERS["myclip"]


@pytest.mark.parametrize("scheme,package", [("open_clip", "open_clip_torch"), ("timm", "timm")])
def test_optional_libraries_missing_give_the_pip_line(tmp_path, scheme, package):
    if importlib.util.find_spec(scheme) is not None:
        pytest.skip(f"{scheme} is installed")
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"")
    with pytest.raises(MissingDependencyError) as info:
        load(f"{scheme}:ViT-B-16:{ckpt}")
    assert str(info.value) == f"{package} is needed for {scheme} backbones: pip install {package}"


@pytest.mark.parametrize("name", ["open_clip:ViT-B-16", "timm:resnet50", "timm::w.pt"])
def test_external_names_need_arch_and_checkpoint(name):
    with pytest.raises(InputError, match="CHECKPOINT"):
        load(name)


def test_device_and_dtype_resolution():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype(None) is torch.float32 and resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_dtype("int8")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device cpu"):
            resolve_device("cuda")


def test_cfg_roundtrips_through_json():
    cfg = backbone_cfg("clip:geolocal/StreetCLIP")
    assert cfg.embed_dim == 1024 and cfg.image_size == 336 and cfg.pooling.startswith("mean over all tokens")
    assert BackboneCfg.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(Exception):
        cfg.embed_dim = 3  # frozen


def test_cli_list(cli):
    res = cli("backbones", "list")
    assert res.exit_code == 0, res
    line = next(l for l in res.stdout.splitlines() if l.startswith("efficientnet:lite0"))
    assert "1280" in line and "yes" in line and "[default]" in line
    assert "needs model hub" in next(l for l in res.stdout.splitlines() if l.startswith("clip:geolocal/StreetCLIP"))
    filtered = cli("backbones", "list", "clip:*").stdout
    assert "StreetCLIP" in filtered and "efficientnet:lite0" not in filtered


def test_cli_info(cli, tiny_clip_dir):
    info = json.loads(cli("backbones", "info", "efficientnet:lite0", "--json").stdout)
    assert info["embed_dim"] == 1280 and info["available"] is True and info["source"].startswith("pypi:")
    text = cli("backbones", "info", f"clip:{tiny_clip_dir}").stdout
    assert "embed_dim     32" in text and "crop_pct      0.8" in text


def test_cli_info_unknown_name(cli):
    assert_clean_error(cli("backbones", "info", "clip"), "unknown backbone", "pigeon backbones list")
