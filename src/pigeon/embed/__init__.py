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

from pigeon.data.manifest import manifest_sha256
from pigeon.embed._dataset import EmbeddingBatches
from pigeon.embed._extract import default_workers, embed_manifest
from pigeon.embed._ray import embed_manifest_ray, embed_shards_ray
from pigeon.embed._store import Embeddings
from pigeon.embed._wds import embed_shards_from, export_shards

__all__ = ["EmbeddingBatches", "Embeddings", "default_workers", "embed_manifest", "embed_manifest_ray",
           "embed_shards_from", "embed_shards_ray", "export_shards", "manifest_sha256"]
