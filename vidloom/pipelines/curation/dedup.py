"""Near-duplicate removal over clip embeddings (a global step on the driver).

Two clips are near-duplicates when the cosine similarity of their embeddings is at least
`threshold`. Pairs come from faiss range search on inner products of unit vectors, in
query batches, so no N x N matrix is ever formed: exact `IndexFlatIP` up to
`ivf_min_size` vectors, `IndexIVFFlat` (`nlist` lists, `nprobe` searched) above. Groups are
the connected components of the pairs (a sparse graph); each group keeps its best copy, by
resolution (short side), then `quality` (where measured), then length, then sharpness, and
every other member gets `dup_of` = the kept clip. See docs/dedup_and_concepts.md for how the default
threshold was chosen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from vidloom.pipelines.curation.embeddings.table import EmbeddingSpaceError, check_one_space
from vidloom.platform.config import StrictModel

# descriptor-v1 on the sample corpus: planted copies >= 0.970, other clips <= 0.815.
DEFAULT_THRESHOLD = 0.90


class DedupConfig(StrictModel):
    """The `dedup` section of the curation configuration (`curation.dedup.*`)."""

    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, le=1.0, description="cosine similarity that makes two clips duplicates")
    ivf_min_size: int = Field(20_000, ge=1, description="from this many clips on, search an IVF index instead of a flat one")
    nlist: int = Field(0, ge=0, le=1_000_000, description="IVF lists; 0 = about sqrt(N)")
    nprobe: int = Field(8, ge=1, le=65_536, description="IVF lists searched per query")
    query_batch: int = Field(4096, ge=1, le=1_000_000, description="queries per range search (bounds memory)")
    seed: int = Field(0, description="seed of the IVF quantiser's training sample")


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def _build_index(v: np.ndarray, cfg: DedupConfig):
    import faiss

    n, d = v.shape
    if n < cfg.ivf_min_size:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = cfg.nlist or int(min(max(16, round(math.sqrt(n))), max(1, n // 39)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        # 64 training points per list is plenty for the coarse quantiser, and bounded.
        rng = np.random.default_rng(cfg.seed)
        sample = v[np.sort(rng.choice(n, size=min(n, nlist * 64), replace=False))]
        index.cp.seed = cfg.seed
        index.train(sample)
        index.nprobe = min(cfg.nprobe, nlist)
    index.add(v)
    return index


def similar_pairs(vectors: np.ndarray, threshold: float, config: DedupConfig | None = None) -> np.ndarray:
    """All pairs (i, j), i < j, whose cosine similarity is >= `threshold`, as an (M, 2) int64
    array (approximate above `ivf_min_size`: pairs in unprobed lists are missed)."""
    cfg = config or DedupConfig()
    v = _unit(vectors)
    n = len(v)
    if n < 2:
        return np.zeros((0, 2), np.int64)
    index = _build_index(v, cfg)
    # faiss keeps inner products strictly above the radius; a hair below keeps ">=".
    radius = float(np.nextafter(np.float32(threshold), np.float32(-1)))
    pairs = []
    for start in range(0, n, cfg.query_batch):
        q = v[start:start + cfg.query_batch]
        lims, _, ids = index.range_search(q, radius)
        rows = np.repeat(np.arange(start, start + len(q), dtype=np.int64), np.diff(lims).astype(np.int64))
        keep = ids > rows  # each pair once, never a vector with itself
        if keep.any():
            pairs.append(np.stack([rows[keep], ids[keep]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label of each of `n` nodes linked by `pairs` (sparse graph, linear time)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return components(graph, directed=False)[1].astype(np.int64)


def _keep_key(row: dict[str, Any]) -> tuple:
    """Sort key: the best copy first. Resolution, measured quality, length, then sharpness
    (an upscaled or re-compressed copy is softer than its source); clip_id last so the
    choice never depends on input order."""
    w, h = row.get("width") or 0, row.get("height") or 0
    quality = row.get("quality")
    length = row.get("duration_s")
    if length is None:
        length = row.get("num_frames") or 0
    sharpness = row.get("sharpness") or 0.0
    return (
        -min(w, h),
        -(quality if quality is not None else -math.inf),
        -round(float(length), 3),
        -float(sharpness),
        str(row["clip_id"]),
    )


def find_duplicates(
    clip_rows: list[dict[str, Any]],
    vectors: np.ndarray,
    clip_ids: list[str],
    backend: str,
    threshold: float = DEFAULT_THRESHOLD,
    config: DedupConfig | None = None,
) -> dict[str, str | None]:
    """clip_id -> dup_of (the kept clip of its duplicate group; None for kept clips).

    `vectors[i]` is the embedding of `clip_ids[i]`, made by `backend`. `clip_rows` are clip
    records (clip_id, width, height, quality, duration_s; `embedding_backend` if present
    must equal `backend`). `threshold` overrides `config.threshold`. Clips without a vector
    are not in the result.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(clip_ids):
        raise ValueError(f"vectors {vectors.shape} do not match {len(clip_ids)} clip ids")
    if len(set(clip_ids)) != len(clip_ids):
        raise ValueError("clip_ids must be unique")
    by_id = {r["clip_id"]: r for r in clip_rows}
    missing = [c for c in clip_ids if c not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} clip ids have no clip record, e.g. {missing[0]}")
    recorded = [by_id[c].get("embedding_backend") for c in clip_ids]
    if any(b is not None and b != backend for b in recorded):
        check_one_space([b for b in recorded if b is not None] + [backend])
        raise EmbeddingSpaceError(f"clips were embedded by another backend than {backend!r}")
    cfg = (config or DedupConfig()).model_copy(update={"threshold": threshold})
    labels = connected_components(len(clip_ids), similar_pairs(vectors, cfg.threshold, cfg))
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    out: dict[str, str | None] = {}
    for members in groups.values():
        kept = min((by_id[clip_ids[i]] for i in members), key=_keep_key)["clip_id"]
        for i in members:
            out[clip_ids[i]] = None if clip_ids[i] == kept else kept
    return out


def duplicate_groups(dup_of: dict[str, str | None]) -> dict[str, list[str]]:
    """kept clip_id -> its removed copies, for groups with at least one copy."""
    groups: dict[str, list[str]] = {}
    for clip, kept in dup_of.items():
        if kept is not None:
            groups.setdefault(kept, []).append(clip)
    return {k: sorted(v) for k, v in groups.items()}
