"""Contrastive pretraining: it learns, its folder is a backbone, every tower kind, captions, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pigeon.backbones import load
from pigeon.data import image_views
from pigeon.errors import InputError
from pigeon.pretrain import CaptionedViews, PretrainConfig, clip_loss, load_towers, pretrain
from tests.support import assert_clean_error

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(epochs=1, lr=1e-3, head_lr=1e-2, batch_size=4, grad_accum=1, warmup_ratio=0.0, device="cpu")


def _first_views(df, n=6):
    return [v[0] for v in image_views(df)[:n]]


def test_clip_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    loss, acc = clip_loss(img, txt, torch.tensor(0.0))
    logits = torch.nn.functional.normalize(img) @ torch.nn.functional.normalize(txt).T
    expected = (torch.nn.functional.cross_entropy(logits, torch.arange(5))
                + torch.nn.functional.cross_entropy(logits.T, torch.arange(5))) / 2
    torch.testing.assert_close(loss, expected)
    perfect, acc = clip_loss(img, img, torch.tensor(4.0))
    assert acc == 1.0 and perfect < loss


def test_loss_decreases_when_captions_match_images(captioned, tiny_clip_full, tmp_path):
    config = PretrainConfig(**{**FAST, "epochs": 6, "layers": "all", "aux": False})
    result = pretrain(captioned, f"clip:{tiny_clip_full}", tmp_path / "pre", config)
    losses = [r["train_contrastive_loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.history[-1]["train_retrieval_acc"] > result.history[0]["train_retrieval_acc"]
    # the log and curves are written; the meta records the captions' settings and the config
    assert len((tmp_path / "pre" / "pretrain_log.jsonl").read_text().splitlines()) == 6
    assert (tmp_path / "pre" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((tmp_path / "pre" / "meta.json").read_text())
    assert meta["kind"] == "pretrained-backbone" and meta["config"]["config"]["epochs"] == 6
    captions = meta["config"]["captions"]
    assert captions["keep_probability"]["climate"] == 0.4 and captions["style"] == "streetview"


def test_clip_folder_loads_through_the_registry_with_the_same_embeddings(captioned, tiny_clip_full, tmp_path, cli):
    result = pretrain(captioned, f"clip:{tiny_clip_full}", tmp_path / "pre", PretrainConfig(**FAST, layers="last"))
    paths = _first_views(captioned)
    trained = result.towers.backbone.embed(paths)
    loaded = load(str(tmp_path / "pre"), device="cpu")
    np.testing.assert_allclose(loaded.embed(paths), trained, atol=1e-5)
    before = load(f"clip:{tiny_clip_full}", device="cpu").embed(paths)
    assert np.abs(before - trained).max() > 1e-4  # pretraining changed the image tower
    # the saved towers load back and compare images with captions as before
    again = load_towers(str(tmp_path / "pre"))
    pixels = torch.stack([again.backbone.preprocess(p) for p in paths])
    texts = ["A Street View photo in France.", "A Street View photo in Kenya."]
    torch.testing.assert_close(again.similarity(pixels, texts), result.towers.similarity(pixels, texts), atol=1e-5,
                               rtol=0)
    # and 'pigeon embed --backbone FOLDER' uses it
    out = cli("embed", captioned.attrs["root"] + "/manifest.parquet", "--backbone", tmp_path / "pre", "-o",
              tmp_path / "emb", "--device", "cpu", "--workers", "0")
    assert out.exit_code == 0, out.stderr
    from pigeon.embed import Embeddings

    emb = Embeddings.load(tmp_path / "emb")
    np.testing.assert_allclose(emb.get_views([captioned["id"].iloc[0]])[0][0], trained[0], atol=2e-3)  # float16 store


def test_offline_towers_pretrain_and_reload(captioned, tmp_path):
    small = captioned.iloc[:12].copy()
    small.attrs = dict(captioned.attrs)
    config = PretrainConfig(**{**FAST, "lr": 1e-3}, layers="last")
    result = pretrain(small, "efficientnet:lite0", tmp_path / "pre", config)
    assert result.history[0]["train_aux_loss"] > 0  # climate and month and elevation heads were trained
    paths = _first_views(small, 3)
    loaded = load(str(tmp_path / "pre"), device="cpu")
    np.testing.assert_allclose(loaded.embed(paths), result.towers.backbone.embed(paths), atol=1e-5)
    assert not np.allclose(loaded.embed(paths), load("efficientnet:lite0", device="cpu").embed(paths), atol=1e-4)
    marker = json.loads((tmp_path / "pre" / "backbone.json").read_text())
    assert marker["base"] == "efficientnet:lite0" and marker["cfg"]["embed_dim"] == 1280
    assert (tmp_path / "pre" / "text" / "config.json").is_file()


def test_open_clip_pretrains_and_reloads(captioned, tiny_open_clip, tmp_path):
    config_path, weights = tiny_open_clip
    name = f"open_clip:{config_path}:{weights}"
    result = pretrain(captioned, name, tmp_path / "pre", PretrainConfig(**FAST, layers="last"))
    paths = _first_views(captioned)
    np.testing.assert_allclose(load(str(tmp_path / "pre"), device="cpu").embed(paths),
                               result.towers.backbone.embed(paths), atol=1e-5)
    assert not np.allclose(load(name, device="cpu").embed(paths), result.towers.backbone.embed(paths), atol=1e-5)


def test_open_clip_and_timm_backbones_load_real_checkpoints(tiny_open_clip, tmp_path):
    import open_clip
    import timm
    from safetensors.torch import save_file

    config_path, weights = tiny_open_clip
    bb = load(f"open_clip:{config_path}:{weights}", device="cpu")
    reference = open_clip.create_model(config_path.stem, pretrained=str(weights)).eval()
    pixels = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(bb.embed_pixels(pixels), reference.encode_image(pixels).detach().numpy(), atol=1e-5,
                               rtol=0, check_dtype=False)
    assert bb.embed_dim == 16 and bb.cfg.image_size == 32

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()  # with its classifier, as real checkpoints are
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    bb = load(f"timm:test_vit:{tmp_path / 'vit.safetensors'}", device="cpu")
    pixels = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(pixels), pre_logits=True).numpy()
    np.testing.assert_allclose(bb.embed_pixels(pixels), expected, atol=1e-5)
    assert bb.embed_dim == model.num_features and bb.cfg.image_size == 160
    trainable = bb.unfreeze_last_block()
    assert trainable and all(p.requires_grad for p in trainable)


def test_captions_per_view_are_seeded_per_epoch_and_follow_templates(captioned):
    views = CaptionedViews(captioned, "streetview", seed=3)
    views.set_epoch(0)
    first = list(views.texts)
    views.set_epoch(1)
    assert list(views.texts) != first  # sampled afresh each epoch
    views.set_epoch(0)
    assert list(views.texts) == first  # and seeded
    assert len(views) == 2 * len(captioned) and list(views.groups[:4]) == [0, 0, 1, 1]
    # the two views of a location face opposite directions
    h = views.table["heading"].to_numpy()
    assert np.allclose((h[1::2] - h[0::2]) % 360, 180)
    texts = [t for e in range(12) for t in (views.set_epoch(e) or views.texts)]
    table = views.table
    rows = [table.iloc[i % len(table)] for i in range(len(texts))]
    for text, row in zip(texts, rows):
        if "United Kingdom" in text:
            assert "in the United Kingdom." in text
        if "drive on the" in text:
            assert f"drive on the {row['drive_side']} side" in text
        if "The photo was taken in" in text:  # hemisphere-aware: July is winter in Chile, summer in France
            south = {7: "winter", 1: "summer"}
            if row["lat"] < 0 and row["month"] in south:
                assert f", in {south[row['month']]}." in text
            if row["lat"] > 0 and row["month"] == 7:
                assert ", in summer." in text
    assert any("in the United Kingdom." in t for t in texts)
    assert any(", in winter." in t for t, r in zip(texts, rows) if r["lat"] < 0)


def test_bad_input(captioned, vision_only_clip, tmp_path, cli):
    manifest = captioned.attrs["root"] + "/manifest.parquet"
    bare = captioned.drop(columns=["koppen", "drive_side"])
    with pytest.raises(InputError, match="koppen, drive_side.*pigeon data enrich"):
        pretrain(bare, "efficientnet:lite0", tmp_path / "a", PretrainConfig(**FAST))
    with pytest.raises(InputError, match="batch size 64 is larger than the 40 distinct locations"):
        pretrain(captioned, "efficientnet:lite0", tmp_path / "b", PretrainConfig(**{**FAST, "batch_size": 64}))
    with pytest.raises(InputError, match="no text side.*efficientnet.*open_clip"):
        load_towers("timm:test_vit:nothing.safetensors")
    result = cli("pretrain", manifest, "--backbone", f"clip:{vision_only_clip}", "-o", tmp_path / "c", "--epochs", "1")
    assert_clean_error(result, "only a CLIP vision model", "efficientnet")
    result = cli("pretrain", manifest, "--backbone", "efficientnet:lite0", "-o", tmp_path / "d", "--batch-size", "41")
    assert_clean_error(result, "batch size 41", "40 distinct locations", "--batch-size")
    result = cli("pretrain", manifest, "--backbone", "efficientnet:lite0", "-o", tmp_path / "e", "--preset", "drone")
    assert_clean_error(result, "preset", "streetview")
    # without --backbone: the offline default, like pigeon embed (not "Missing option --backbone")
    result = cli("pretrain", manifest, "-o", tmp_path / "f", "--batch-size", "41")
    assert_clean_error(result, "batch size 41", "40 distinct locations")


def test_cli_pretrains_and_resumes_with_more_epochs(captioned, tiny_clip_full, tmp_path, cli):
    manifest = captioned.attrs["root"] + "/manifest.parquet"
    args = ("pretrain", manifest, "--backbone", f"clip:{tiny_clip_full}", "-o", tmp_path / "pre", "--batch-size", "8",
            "--grad-accum", "1", "--lr", "1e-3", "--layers", "last", "--device", "cpu", "--warmup", "0")
    first = cli(*args, "--epochs", "1")
    assert first.exit_code == 0, first.stderr
    assert "pigeon embed" in first.stdout and (tmp_path / "pre" / "backbone.json").is_file()
    assert_clean_error(cli(*args, "--epochs", "1"), "--overwrite", "--resume")
    more = cli(*args, "--epochs", "2", "--resume")
    assert more.exit_code == 0, more.stderr
    log = [json.loads(line) for line in (tmp_path / "pre" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    meta = json.loads((tmp_path / "pre" / "meta.json").read_text())["config"]["config"]
    assert meta["betas"] == [0.9, 0.98] and meta["eps"] == 1e-6 and meta["weight_decay"] == 1e-3  # the paper's


@pytest.mark.slow
def test_demo_runs_pretraining_as_a_stage(tmp_path, cli):
    out = tmp_path / "demo"
    result = cli("demo", "-o", out, "--n", "30", "--views", "1", "--epochs", "3", "--min-size", "2", "--max-size", "6",
                 "--pretrain")
    assert result.exit_code == 0, result.stderr
    assert (out / "pretrained" / "backbone.json").is_file() and (out / "report" / "metrics.json").is_file()
    assert json.loads((out / "embeddings" / "meta.json").read_text())["config"]["backbone"] == str(out / "pretrained")
