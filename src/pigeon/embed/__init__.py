"""Embedding extraction and the sharded embedding store.

>>> from pigeon.embed import embed_manifest, Embeddings
>>> emb = embed_manifest(read_manifest("photos.parquet"), "efficientnet:lite0", "emb/")
>>> Embeddings.load("emb/").get(["id1", "id2"]).shape      # float32 (N, D), view-averaged
(2, 1280)
>>> embed_manifest_ray(df, "efficientnet:lite0", "emb/", num_workers=8)   # the same store, on a Ray cluster
>>> for ids, x in Embeddings.load("emb/").iter_batches(batch_size=65536): ...   # streamed, shard by shard
>>> embed_shards_from("shards/{000000..000099}.tar", "efficientnet:lite0", "emb/")   # WebDataset shards in
>>> export_shards("emb/", "emb-wds/", size=10000)                                    # ... and out
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.data.manifest": ("manifest_sha256",),
    "pigeon.embed._dataset": ("EmbeddingBatches",),
    "pigeon.embed._extract": ("default_workers", "embed_manifest"),
    "pigeon.embed._ray": ("embed_manifest_ray", "embed_shards_ray"),
    "pigeon.embed._store": ("Embeddings", "pool_views"),
    "pigeon.embed._wds": ("embed_shards_from", "export_shards"),
})
__all__ = sorted(_EXPORTS)
# lazy: the embedding defaults (help texts) import without torch; extraction when it is used
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
