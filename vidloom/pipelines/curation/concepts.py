"""Concept clustering and resampling (the report's k-means concept balancing).

Clip embeddings are clustered with faiss k-means (spherical: centroids stay unit vectors,
so assignment is the largest inner product). The centroids are fit on a sample on the
driver (`fit_centroids`); every clip is then assigned in a Ray Data actor pool
(`assign_clusters`), giving `cluster_id`. `balance_concepts` is the per-tier sampling rule
that caps over-represented concepts. `global_steps_benchmark` times dedup + fit +
assignment on synthetic vectors. See docs/dedup_and_concepts.md.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from vidloom.platform.config import StrictModel

# The report clusters into ~10K concepts; smaller corpora get ~sqrt(N/2) (at least 2).
MAX_CLUSTERS = 10_000


class ConceptsConfig(StrictModel):
    """The `concepts` section of the curation configuration (`curation.concepts.*`)."""

    num_clusters: int = Field(0, ge=0, le=1_000_000, description="k-means centroids; 0 = about sqrt(N/2), at most max_clusters")
    max_clusters: int = Field(MAX_CLUSTERS, ge=1, le=1_000_000)
    niter: int = Field(20, ge=1, le=1000, description="k-means iterations")
    points_per_centroid: int = Field(256, ge=8, le=100_000, description="fit sample size = this x centroids")
    seed: int = Field(0, description="seed of the fit sample and k-means initialisation")
    batch_size: int = Field(8192, ge=1, le=1_000_000, description="vectors per assignment batch")
    workers: int = Field(2, ge=1, le=10_000, description="assignment actors (max of the pool)")
    ray_min_vectors: int = Field(
        1_000_000, ge=0, description="from this many vectors the assignment runs in a Ray actor pool; "
        "fewer are assigned on the driver, which holds them already (0 = always the pool)")
    max_per_cluster: int | None = Field(None, ge=1, description="balance: at most this many clips per concept")
    max_share: float | None = Field(None, gt=0.0, le=1.0, description="balance: at most this share of the tier per concept")


def default_num_clusters(n: int, max_clusters: int = MAX_CLUSTERS) -> int:
    """~sqrt(N/2) centroids, at least 2 and at most `max_clusters` (and never more than N)."""
    if n <= 1:
        return max(n, 0)
    return int(min(n, max_clusters, max(2, round(math.sqrt(n / 2)))))


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def fit_centroids(vectors: np.ndarray, num_clusters: int = 0, config: ConceptsConfig | None = None) -> np.ndarray:
    """Unit-norm k-means centroids (k, d) fit on at most `points_per_centroid * k` vectors
    drawn with the seed; the same vectors and seed give the same centroids."""
    import faiss

    cfg = config or ConceptsConfig()
    v = _unit(vectors)
    n, d = v.shape
    k = num_clusters or cfg.num_clusters or default_num_clusters(n, cfg.max_clusters)
    k = min(k, n)
    if k < 1:
        raise ValueError("k-means needs at least one vector")
    limit = cfg.points_per_centroid * k
    if n > limit:  # our own seeded sample, so the fit does not depend on faiss' sampler
        v = v[np.sort(np.random.default_rng(cfg.seed).choice(n, size=limit, replace=False))]
    km = faiss.Kmeans(d, k, niter=cfg.niter, seed=cfg.seed, spherical=True,
                      max_points_per_centroid=cfg.points_per_centroid, min_points_per_centroid=1, verbose=False)
    km.train(v)
    return _unit(km.centroids)


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Index of the nearest (largest inner product) centroid of each vector, int32."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(_unit(centroids))
    v = _unit(vectors)
    out = np.empty(len(v), np.int32)
    for start in range(0, len(v), batch_size):
        _, ids = index.search(v[start:start + batch_size], 1)
        out[start:start + batch_size] = ids[:, 0]
    return out


class ClusterAssigner:
    """Ray Data actor: keeps the centroid index and labels batches of embeddings."""

    def __init__(self, centroids: Any):
        import faiss
        import ray

        if isinstance(centroids, ray.ObjectRef):
            centroids = ray.get(centroids)
        self.index = faiss.IndexFlatIP(centroids.shape[1])
        self.index.add(_unit(centroids))

    def __call__(self, batch: pa.Table) -> pa.Table:
        column = batch.column("vector").combine_chunks()
        dim = int(column.value_lengths()[0].as_py()) if len(column) else self.index.d
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        _, ids = self.index.search(_unit(flat.reshape(len(column), dim)), 1)
        return pa.table({"clip_id": batch.column("clip_id"), "cluster_id": pa.array(ids[:, 0], pa.int32())})


def _as_dataset(embeddings: Any):
    import ray

    if isinstance(embeddings, ray.data.Dataset):
        return embeddings
    if isinstance(embeddings, (str, Path)):
        return ray.data.read_parquet(str(embeddings), columns=["clip_id", "vector"])
    if isinstance(embeddings, pa.Table):
        return ray.data.from_arrow(embeddings.select(["clip_id", "vector"]))
    if isinstance(embeddings, tuple) and len(embeddings) == 2:  # (clip_ids, matrix)
        ids, vectors = embeddings
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
        table = pa.table({"clip_id": pa.array(list(ids), pa.string()), "vector": vec.cast(pa.list_(pa.float32()))})
        return ray.data.from_arrow(table)
    raise TypeError(f"cannot read embeddings from {type(embeddings).__name__}")


def assign_clusters(embeddings: Any, centroids: np.ndarray, config: ConceptsConfig | None = None) -> dict[str, int]:
    """clip_id -> cluster_id for every embedding, computed in a Ray Data actor pool.

    `embeddings`: a Ray Dataset or Arrow table with clip_id and vector columns, a path to
    embeddings.parquet, or a (clip_ids, matrix) pair. Ray must be initialised.
    """
    import ray

    cfg = config or ConceptsConfig()
    ref = ray.put(np.ascontiguousarray(centroids, dtype=np.float32))
    ds = _as_dataset(embeddings).map_batches(
        ClusterAssigner,
        fn_constructor_kwargs={"centroids": ref},
        batch_size=cfg.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cfg.workers),
        num_cpus=1,
    )
    out: dict[str, int] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        out.update(zip(batch.column("clip_id").to_pylist(), batch.column("cluster_id").to_pylist()))
    return out


def _tie_break(clip_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{clip_id}".encode()).hexdigest()


def _rank_key(row: dict[str, Any], seed: int) -> tuple:
    """Best first: measured quality, then sharpness, then a seeded hash (ties only)."""
    quality = row.get("quality")
    sharpness = row.get("sharpness")
    return (
        -(quality if quality is not None else -math.inf),
        -(sharpness if sharpness is not None else -math.inf),
        _tie_break(str(row["clip_id"]), seed),
    )


def cluster_cap(total: int, max_per_cluster: int | None, max_share: float | None) -> int | None:
    """The most clips one concept may keep in a tier of `total` clips (None = no cap)."""
    caps = []
    if max_per_cluster is not None:
        caps.append(int(max_per_cluster))
    if max_share is not None:
        caps.append(max(1, int(math.floor(max_share * total))))
    return min(caps) if caps else None


def balance_concepts(rows: list[dict[str, Any]], max_per_cluster: int | None, max_share: float | None, seed: int) -> set[str]:
    """The clip_ids of a tier kept after capping over-represented concepts.

    Each concept (`cluster_id`) keeps at most `cluster_cap(len(rows), ...)` clips: its best
    by `quality` (where measured), then `sharpness`; exact ties are broken by a hash of
    (seed, clip_id), so the result does not depend on row order. Clips without a cluster_id
    are kept. With neither cap set every clip is kept.
    """
    cap = cluster_cap(len(rows), max_per_cluster, max_share)
    by_cluster: dict[Any, list[dict[str, Any]]] = {}
    kept: set[str] = set()
    for row in rows:
        if row.get("cluster_id") is None or cap is None:
            kept.add(row["clip_id"])
        else:
            by_cluster.setdefault(row["cluster_id"], []).append(row)
    for members in by_cluster.values():
        members.sort(key=lambda r: _rank_key(r, seed))
        kept.update(r["clip_id"] for r in members[:cap])
    return kept


def synthetic_embeddings(n: int, dim: int, seed: int = 0, concepts: int = 1000, copy_share: float = 0.01) -> np.ndarray:
    """Unit vectors with concept structure (a Gaussian mixture on the sphere) and a share of
    planted near-copies, for benchmarks and scale tests."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((concepts, dim), dtype=np.float32))
    v = centres[rng.integers(0, concepts, n)] + rng.standard_normal((n, dim), dtype=np.float32) * (1.2 / math.sqrt(dim))
    copies = int(n * copy_share)
    if copies:
        src = rng.choice(n, size=copies, replace=False)
        dst = rng.choice(np.setdiff1d(np.arange(n), src), size=copies, replace=False)
        v[dst] = v[src] + rng.standard_normal((copies, dim), dtype=np.float32) * (0.1 / math.sqrt(dim))
    return _unit(v)


def global_steps_benchmark(
    n: int = 100_000,
    dim: int = 512,
    seed: int = 0,
    threshold: float = 0.9,
    num_clusters: int | None = None,
    use_ray: bool | None = None,
) -> dict[str, float | int | str]:
    """Time near-duplicate search, k-means fit and assignment on `n` synthetic vectors.

    Assignment runs through the Ray Data actor pool when Ray is initialised (or
    `use_ray=True`), else in-process with the same faiss index. Returns wall times (`*_s`)
    and this process' CPU times (`*_cpu_s`, all threads: on a shared machine the honest
    figure), and what was found.
    """
    from vidloom.pipelines.curation.dedup import DedupConfig, find_duplicates

    vectors = synthetic_embeddings(n, dim, seed)
    ids = [f"{i:012x}" for i in range(n)]
    rows = [{"clip_id": c, "width": 640, "height": 360, "duration_s": 5.0} for c in ids]
    dedup_cfg = DedupConfig(threshold=threshold, seed=seed)
    c0, t0 = time.process_time(), time.perf_counter()
    dup_of = find_duplicates(rows, vectors, ids, "synthetic", threshold, dedup_cfg)
    c1, t1 = time.process_time(), time.perf_counter()
    cfg = ConceptsConfig(seed=seed)
    k = num_clusters or default_num_clusters(n)
    centroids = fit_centroids(vectors, k, cfg)
    c2, t2 = time.process_time(), time.perf_counter()
    if use_ray is None:
        import ray

        use_ray = ray.is_initialized()
    if use_ray:
        labels = assign_clusters((ids, vectors), centroids, cfg)
        clusters_used = len(set(labels.values()))
    else:
        clusters_used = len(np.unique(nearest_centroid(vectors, centroids, cfg.batch_size)))
    c3, t3 = time.process_time(), time.perf_counter()
    return {
        "n": n,
        "dim": dim,
        "dedup_index": "IndexIVFFlat" if n >= dedup_cfg.ivf_min_size else "IndexFlatIP",
        "dedup_s": round(t1 - t0, 3),
        "dedup_cpu_s": round(c1 - c0, 3),
        "duplicates_removed": sum(v is not None for v in dup_of.values()),
        "kmeans_k": int(k),
        "kmeans_fit_s": round(t2 - t1, 3),
        "kmeans_fit_cpu_s": round(c2 - c1, 3),
        "assign": "ray_actor_pool" if use_ray else "in_process",
        "assign_s": round(t3 - t2, 3),
        "assign_cpu_s": round(c3 - c2, 3),  # driver process only when the Ray pool assigns
        "clusters_used": int(clusters_used),
        "total_s": round(t3 - t0, 3),
    }
