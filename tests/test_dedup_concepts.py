"""Near-duplicate removal and concept clustering on the real sample corpus (embedded by
EmbeddingStage inside a Ray Data pipeline), plus scale paths on synthetic vectors."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from vidloom.pipelines.curation.concepts import (
    ConceptsConfig,
    assign_clusters,
    balance_concepts,
    cluster_cap,
    default_num_clusters,
    fit_centroids,
    global_steps_benchmark,
    nearest_centroid,
    synthetic_embeddings,
)
from vidloom.pipelines.curation.dedup import (
    DEFAULT_THRESHOLD,
    DedupConfig,
    duplicate_groups,
    find_duplicates,
)
from vidloom.pipelines.curation.embeddings import (
    DESCRIPTOR_BACKEND,
    EmbeddingSpaceError,
    vectors_from_table,
)
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.stages.embedding import EmbeddingStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.pipelines.ray_data import apply_stage
from vidloom.pipelines.stage import StageResources


@pytest.fixture(scope="module")
def embedded(ray_session, sample_corpus):
    """Every decodable corpus video through VideoAnalysisStage then EmbeddingStage, as
    Ray Data actor-pool stages; the clip records and their embeddings."""
    ray = ray_session
    truth = {v["file"]: v for v in json.loads((sample_corpus / "truth.json").read_text())["videos"]}
    files = [f for f, v in truth.items() if v["expected_status"] == "ok"]
    one = StageResources(num_cpus=1, batch_size=1, min_workers=1, max_workers=1)
    ds = ray.data.from_items([new_video_row(str(sample_corpus / f)) for f in files], override_num_blocks=len(files))
    ds = apply_stage(ds, VideoAnalysisStage, {"config": {}}, one)
    ds = apply_stage(ds, EmbeddingStage, {"config": {}}, one)
    clips, embeddings = [], []
    for row in ds.select_columns(["source", "clips_json", "embeddings"]).iter_rows():
        name = row["source"].rsplit("/", 1)[-1]
        for c in loads(row["clips_json"]):
            shot = truth[name]["shots"][c["shot_index"]]
            clips.append({**c, "file": name, "image": shot["image"], "original": truth[name]["duplicate_of"] or name})
        embeddings.extend(row["embeddings"])
    table = pa.Table.from_pylist(embeddings, schema=pa.schema(
        [("clip_id", pa.string()), ("backend", pa.string()), ("vector", pa.list_(pa.float32()))]))
    ids, vectors, backend = vectors_from_table(table)
    return {"clips": clips, "by_id": {c["clip_id"]: c for c in clips}, "table": table,
            "ids": ids, "vectors": vectors, "backend": backend}


def test_every_ok_clip_is_embedded_once_in_one_space(embedded):
    ok = [c for c in embedded["clips"] if c["status"] == "ok"]
    assert len(ok) >= 30
    assert sorted(embedded["ids"]) == sorted(c["clip_id"] for c in ok)
    assert embedded["backend"] == DESCRIPTOR_BACKEND
    assert all(c["embedding_backend"] == DESCRIPTOR_BACKEND for c in ok)
    assert np.allclose(np.linalg.norm(embedded["vectors"], axis=1), 1.0, atol=1e-5)


def test_planted_copies_collapse_onto_the_original_and_nothing_else_groups(embedded):
    by_id, ids, vectors = embedded["by_id"], embedded["ids"], embedded["vectors"]
    rows = [by_id[i] for i in ids]
    dup_of = find_duplicates(rows, vectors, ids, DESCRIPTOR_BACKEND, DEFAULT_THRESHOLD)
    assert set(dup_of) == set(ids)
    for cid, kept in dup_of.items():
        clip = by_id[cid]
        if clip["file"] in ("v01_motorcycle_small.mp4", "v01_motorcycle_crop.mp4"):
            assert kept is not None, clip["file"]
            original = by_id[kept]
            assert (original["file"], original["shot_index"]) == ("v01_motorcycle.mp4", clip["shot_index"])
        else:
            assert kept is None, (clip["file"], clip["shot_index"], by_id[kept]["file"])
    groups = duplicate_groups(dup_of)
    assert len(groups) == 3 and all(len(v) == 2 for v in groups.values())

    # the margin on both sides of the threshold
    sims = vectors @ vectors.T
    dup, same_photo, other = [], [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            a, b = rows[i], rows[j]
            if a["original"] == b["original"] and a["shot_index"] == b["shot_index"]:
                dup.append(sims[i, j])
            elif a["image"] == b["image"]:
                same_photo.append(sims[i, j])
            else:
                other.append(sims[i, j])
    print(f"copies >= {min(dup):.3f}; same photo, other shot <= {max(same_photo):.3f}; other <= {max(other):.3f}")
    assert len(dup) == 9 and len(same_photo) > 20
    assert min(dup) - DEFAULT_THRESHOLD > 0.04
    assert DEFAULT_THRESHOLD - max(same_photo) > 0.04
    assert max(other) < max(same_photo)


def test_dedup_never_mixes_embedding_spaces(embedded):
    by_id, ids, vectors = embedded["by_id"], embedded["ids"], embedded["vectors"]
    rows = [dict(by_id[i]) for i in ids]
    with pytest.raises(EmbeddingSpaceError):
        find_duplicates(rows, vectors, ids, "open_clip:ViT-B-32:0123456789ab", 0.9)
    rows[0]["embedding_backend"] = "open_clip:ViT-B-32:0123456789ab"
    with pytest.raises(EmbeddingSpaceError):
        find_duplicates(rows, vectors, ids, DESCRIPTOR_BACKEND, 0.9)
    table = embedded["table"]
    mixed = table.set_column(1, "backend", pa.array(["descriptor-v1"] * (len(table) - 1) + ["open_clip:x:y"]))
    with pytest.raises(EmbeddingSpaceError, match="2 embedders"):
        vectors_from_table(mixed)


def test_kmeans_is_deterministic_and_every_clip_gets_a_cluster(embedded, ray_session):
    ids, vectors = embedded["ids"], embedded["vectors"]
    k = default_num_clusters(len(ids))
    assert k == round((len(ids) / 2) ** 0.5)
    cfg = ConceptsConfig(seed=3)
    centroids = fit_centroids(vectors, k, cfg)
    assert centroids.shape == (k, vectors.shape[1])
    assert np.array_equal(centroids, fit_centroids(vectors, k, cfg))
    labels = assign_clusters(embedded["table"], centroids, cfg)
    assert set(labels) == set(ids)
    assert all(0 <= c < k for c in labels.values())
    assert [labels[i] for i in ids] == nearest_centroid(vectors, centroids).tolist()
    assert assign_clusters((ids, vectors), centroids, cfg) == labels
    # the planted copies share their original's concept
    by_id = embedded["by_id"]
    for kept, copies in duplicate_groups(find_duplicates([by_id[i] for i in ids], vectors, ids, DESCRIPTOR_BACKEND)).items():
        assert {labels[c] for c in copies} == {labels[kept]}


def test_balance_concepts_caps_a_crowded_concept():
    rows = [{"clip_id": f"a{i}", "cluster_id": 0, "quality": i / 10, "sharpness": 5.0} for i in range(10)]
    rows += [{"clip_id": "b0", "cluster_id": 1, "quality": 0.0}, {"clip_id": "b1", "cluster_id": 1, "quality": None}]
    rows += [{"clip_id": "c0", "cluster_id": None}]
    kept = balance_concepts(rows, max_per_cluster=3, max_share=None, seed=0)
    assert kept == {"a9", "a8", "a7", "b0", "b1", "c0"}
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert balance_concepts(shuffled, 3, None, seed=0) == kept
    # a share of the tier: 13 clips x 0.2 -> at most 2 per concept
    assert cluster_cap(13, None, 0.2) == 2
    assert balance_concepts(rows, None, 0.2, seed=0) == {"a9", "a8", "b0", "b1", "c0"}
    assert balance_concepts(rows, 5, 0.2, seed=0) == balance_concepts(rows, 2, None, seed=0)
    assert balance_concepts(rows, None, None, seed=0) == {r["clip_id"] for r in rows}
    # without quality, sharpness decides; exact ties go by a seeded hash, same for a seed
    flat = [{"clip_id": f"s{i}", "cluster_id": 7, "quality": None, "sharpness": float(i % 3)} for i in range(9)]
    one = balance_concepts(flat, 3, None, seed=0)
    assert one == {"s2", "s5", "s8"}
    ties = [{"clip_id": f"t{i}", "cluster_id": 7} for i in range(20)]
    assert balance_concepts(ties, 5, None, seed=4) == balance_concepts(ties[::-1], 5, None, seed=4)
    assert len(balance_concepts(ties, 5, None, seed=4)) == 5


def test_ivf_search_finds_the_same_groups_as_flat():
    rng = np.random.default_rng(0)
    base = synthetic_embeddings(4000, 64, seed=1, concepts=50, copy_share=0.0)
    # planted near-copies: pairs, and chains of three (a copy of a copy)
    src = rng.choice(4000, size=150, replace=False)
    copies = base[src] + rng.standard_normal((150, 64), dtype=np.float32) * 0.02
    chain = copies[:30] + rng.standard_normal((30, 64), dtype=np.float32) * 0.02
    vectors = np.concatenate([base, copies, chain])
    ids = [f"v{i:05d}" for i in range(len(vectors))]
    rows = [{"clip_id": c, "width": 640, "height": 360, "duration_s": 4.0} for c in ids]
    flat = find_duplicates(rows, vectors, ids, "synthetic", 0.9, DedupConfig())
    ivf = find_duplicates(rows, vectors, ids, "synthetic", 0.9, DedupConfig(ivf_min_size=1000, nlist=64, nprobe=8))
    assert ivf == flat
    groups = duplicate_groups(flat)
    assert sum(len(v) for v in groups.values()) == 180 and len(groups) == 150
    # within a group the larger copy wins
    rows[int(src[0])]["height"] = 300  # the original is now smaller than its copy
    again = find_duplicates(rows, vectors, ids, "synthetic", 0.9)
    assert again[ids[int(src[0])]] == ids[4000]


def test_global_steps_benchmark_runs_small():
    result = global_steps_benchmark(n=3000, dim=32, use_ray=False)
    assert result["dedup_index"] == "IndexFlatIP" and result["kmeans_k"] == 39
    assert result["duplicates_removed"] == 30 and result["clusters_used"] > 30
    assert all(result[k] >= 0 for k in ("dedup_s", "kmeans_fit_s", "assign_s"))
