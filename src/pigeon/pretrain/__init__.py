"""Multi-task contrastive pretraining on synthetic geographic captions (PIGEON section 4).

>>> from pigeon.pretrain import PretrainConfig, pretrain
>>> pretrain("enriched.parquet", "efficientnet:lite0", "pretrained/", PretrainConfig(epochs=2, lr=1e-4))
>>> # then: pigeon embed enriched.parquet --backbone pretrained/ -o emb/

Symmetric image-caption InfoNCE plus the auxiliary climate / month / geodata losses on the image side, captions
sampled afresh each epoch, batches that never hold two views of one location. Towers: ``clip:`` (transformers
``CLIPModel``), ``open_clip:``, and the offline default: EfficientNet-Lite with all-MiniLM-L6-v2.
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.pretrain._config": ("LAYERS", "PretrainConfig"),
    "pigeon.pretrain._pretrain": ("CAPTION_COLUMNS", "AuxHeads", "CaptionedViews", "ContrastiveModel",
                                  "PretrainResult", "check_caption_columns", "clip_loss", "pretrain"),
    "pigeon.pretrain._towers": ("TEXT_PACKAGE", "TEXT_SHA256", "CLIPTowers", "EncoderTowers", "OpenCLIPTowers",
                                "Towers", "load_towers", "text_encoder_path"),
})
__all__ = sorted(_EXPORTS)
# lazy: PretrainConfig (help texts, configs) imports without torch; the towers when they are used
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
