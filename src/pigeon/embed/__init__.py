"""Embedding extraction and the sharded embedding store.

>>> from pigeon.embed import embed_manifest, Embeddings
>>> emb = embed_manifest(read_manifest("photos.parquet"), "efficientnet:lite0", "emb/")
>>> Embeddings.load("emb/").get(["id1", "id2"]).shape      # float32 (N, D), view-averaged
(2, 1280)
"""

from pigeon.embed._extract import default_workers, embed_manifest, manifest_sha256
from pigeon.embed._store import Embeddings

__all__ = ["Embeddings", "default_workers", "embed_manifest", "manifest_sha256"]
