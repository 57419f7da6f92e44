"""Embedding extraction and the sharded embedding store.

>>> from pigeon.embed import embed_manifest, Embeddings
>>> emb = embed_manifest(read_manifest("photos.parquet"), "efficientnet:lite0", "emb/")
>>> Embeddings.load("emb/").get(["id1", "id2"]).shape      # float32 (N, D), view-averaged
(2, 1280)
>>> embed_manifest_ray(df, "efficientnet:lite0", "emb/", num_workers=8)   # the same store, on a Ray cluster
>>> for ids, x in Embeddings.load("emb/").iter_batches(batch_size=65536): ...   # streamed, shard by shard
"""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "_dataset": ("EmbeddingBatches",),
    "_extract": ("default_workers", "embed_manifest", "manifest_sha256"),
    "_ray": ("embed_manifest_ray",),
    "_store": ("Embeddings",),
})
