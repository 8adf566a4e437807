"""The global steps: near-duplicate removal and k-means concepts over every clip at once.

They run on the driver after the streaming pass (and again after a resumed run, since a
new clip can change any group): read the embeddings, find duplicate groups, fit concept
centroids on the kept clips (on a sample), assign every clip in a Ray actor pool, and write
`dup_of` and `cluster_id` back into ``clips.parquet``.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from vidloom.pipelines.curation.concepts import assign_clusters, default_num_clusters, fit_centroids, nearest_centroid
from vidloom.pipelines.curation.config import CurationConfig
from vidloom.pipelines.curation.dedup import find_duplicates
from vidloom.pipelines.curation.embeddings.table import load_embeddings
from vidloom.pipelines.curation.manifest import ManifestStore

log = logging.getLogger(__name__)


def apply_global_steps(store: ManifestStore, clips: pa.Table, config: CurationConfig) -> pa.Table:
    """Fill `dup_of` and `cluster_id` of the ok clips that have an embedding; returns and
    writes the updated clips table."""
    ids, vectors, backend = load_embeddings(store.embeddings_path)
    rows = clips.to_pylist()
    by_id = {r["clip_id"]: r for r in rows}
    # Clip order (source, start frame), not input order: the same clips give the same
    # duplicate groups and concepts however the inputs were listed or resumed.
    position = {r["clip_id"]: i for i, r in enumerate(rows)}
    keep = sorted((i for i, c in enumerate(ids) if by_id.get(c, {}).get("status") == "ok"),
                  key=lambda i: position[ids[i]])
    ids = [ids[i] for i in keep]
    vectors = vectors[keep] if len(keep) else vectors[:0]
    for row in rows:
        row["dup_of"], row["cluster_id"] = None, None
    if ids:
        dup_of = find_duplicates([by_id[c] for c in ids], vectors, ids, backend, config.dedup.threshold, config.dedup)
        originals = [i for i, c in enumerate(ids) if dup_of.get(c) is None]
        k = config.concepts.num_clusters or default_num_clusters(len(originals), config.concepts.max_clusters)
        k = max(1, min(k, len(originals)))
        centroids = fit_centroids(vectors[originals], k, config.concepts)
        if len(ids) >= config.concepts.ray_min_vectors:
            clusters = assign_clusters((ids, vectors), centroids, config.concepts)
        else:  # the vectors are in this process already: an actor pool would cost seconds
            clusters = dict(zip(ids, nearest_centroid(vectors, centroids, config.concepts.batch_size).tolist()))
        for c in ids:
            by_id[c]["dup_of"] = dup_of.get(c)
            by_id[c]["cluster_id"] = clusters.get(c)
        log.info("global steps: %d clips, %d duplicates, %d concepts", len(ids),
                 sum(v is not None for v in dup_of.values()), k)
    table = pa.Table.from_pylist(rows, schema=clips.schema)
    store.write_clips(table)
    return table
