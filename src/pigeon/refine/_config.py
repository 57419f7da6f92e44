"""How the refiner is built and how it refines (every field is saved in ``refiner/meta.json``)."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.errors import InputError

NOISE_POLICIES = ("singletons", "drop")
METRICS = ("cosine", "euclidean")
SEARCHES = ("auto", "exact", "index")


@dataclass(frozen=True)
class RefineConfig(JsonConfig):
    """Retrieval refinement over location clusters inside the top geocells (PIGEON section 5).

    The defaults are the street-view set-up (PIGEON); :data:`pigeon.presets.PRESETS` holds the photo one.

    Attributes:
        top_k: candidate cells the refiner chooses among (the head's most probable ones).
        temperature: T of ``p_cell * softmax(score / T)``; large T leaves the head's ranking unchanged.
        max_move_km: a refined guess farther than this from the head's guess (the top cell's centroid) falls
            back to the top cell; None: no limit.
        min_samples, xi: OPTICS parameters of the location clusters inside each cell (great-circle distances).
        noise: ``"singletons"`` keeps OPTICS noise points as one-member clusters; ``"drop"`` leaves them out
            of retrieval (the reference code).
        metric: embedding similarity: ``"euclidean"`` (score = minus the distance, the paper's) or ``"cosine"``.
        search: how candidate cells are scored: ``"exact"`` (batched matrix products over the candidates'
            clusters), ``"index"`` (a FAISS index over all clusters, then grouped by cell) or ``"auto"`` (exact up
            to ``exact_max_prototypes`` clusters).
        exact_max_prototypes: cluster count up to which ``auto`` scores exactly. Exact scoring only touches the
            clusters of each batch's candidate cells, and ``benchmarks/refine.py speed`` measured it faster than an
            IVF index over all clusters at 250,000 clusters (3 vs 21 ms per image), hence the high default.
        index: FAISS index type (an ``index_factory`` string such as ``"Flat"``, ``"IVF4096,Flat"``,
            ``"HNSW32"``, ``"IVF4096,PQ64"``) for the cluster search and the nearest-neighbour baseline; ``"auto"``:
            exact ``Flat`` up to ``flat_max_vectors`` vectors, an inverted file with ``4 sqrt(n)`` lists up to
            ``pq_min_vectors``, and beyond the same with product-quantised codes of ``dim / 16`` bytes.
        flat_max_vectors: size up to which ``index="auto"`` stays exact.
        pq_min_vectors: size above which ``index="auto"`` stores product-quantised codes instead of the vectors
            (an ``IVF,Flat`` index holds 4 bytes a dimension while it is built: 4 GB for 1M 1024-d vectors).
        nprobe: inverted lists visited per query (IVF indexes); HNSW uses ``4 * nprobe`` as its search depth.
        index_neighbours: with the index search, clusters retrieved per query before grouping them by cell.
        rerank: with a lossy index (PQ, SQ), the nearest-neighbour search re-scores this many candidates exactly
            against the memory-mapped embeddings (and the cluster search all it retrieves); 0: never.
    """

    top_k: int = 5
    temperature: float = 1.6
    max_move_km: float | None = 1000.0
    min_samples: int = 3
    xi: float = 0.15
    noise: str = "singletons"
    metric: str = "euclidean"
    search: str = "auto"
    exact_max_prototypes: int = 20_000_000
    index: str = "auto"
    flat_max_vectors: int = 200_000
    pq_min_vectors: int = 1_000_000
    nprobe: int = 32
    index_neighbours: int = 256
    rerank: int = 64

    def validate(self) -> RefineConfig:
        """Check values; raise :class:`InputError` naming the bad one and the fix."""
        checks = [
            (self.top_k >= 1, f"refine top_k must be >= 1, got {self.top_k}"),
            (self.temperature > 0, f"refine temperature must be > 0, got {self.temperature}"),
            (self.max_move_km is None or self.max_move_km > 0,
             f"max_move_km must be > 0 km (or None for no limit), got {self.max_move_km}"),
            (self.min_samples >= 2, f"OPTICS min_samples must be >= 2, got {self.min_samples}"),
            (0 < self.xi < 1, f"OPTICS xi must be in (0, 1), got {self.xi}"),
            (self.noise in NOISE_POLICIES, f"noise must be one of {', '.join(NOISE_POLICIES)}, got {self.noise!r}"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (self.search in SEARCHES, f"search must be one of {', '.join(SEARCHES)}, got {self.search!r}"),
            (self.exact_max_prototypes >= 1, f"exact_max_prototypes must be >= 1, got {self.exact_max_prototypes}"),
            (self.index_neighbours >= 1, f"index_neighbours must be >= 1, got {self.index_neighbours}"),
            (self.nprobe >= 1, f"nprobe must be >= 1, got {self.nprobe}"),
            (self.rerank >= 0, f"rerank must be >= 0, got {self.rerank}"),
            (bool(self.index), "index must be 'auto' or a FAISS index_factory string such as 'Flat'"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self

    def index_type(self, n: int, dim: int) -> str:
        """The FAISS index type for ``n`` vectors of size ``dim``."""
        from pigeon.refine._index import auto_factory

        if self.index != "auto":
            return self.index
        return auto_factory(n, dim, self.flat_max_vectors, self.pq_min_vectors)
