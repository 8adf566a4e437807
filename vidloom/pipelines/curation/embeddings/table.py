"""Reading `OUT/manifest/embeddings.parquet` back as one matrix of one embedding space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class EmbeddingSpaceError(ValueError):
    """Vectors from different embedders (or of different sizes) were to be compared."""


def check_one_space(backends: list[str | None], expected: str | None = None) -> str:
    """The single backend among `backends` (and equal to `expected` if given), else raise."""
    found = sorted({b for b in backends if b is not None}, key=str)
    if None in backends:
        raise EmbeddingSpaceError("some vectors do not record the embedder that produced them")
    if len(found) > 1:
        raise EmbeddingSpaceError(f"vectors from {len(found)} embedders cannot be compared: {found}")
    if expected is not None and found and found[0] != expected:
        raise EmbeddingSpaceError(f"vectors come from {found[0]!r}, not from {expected!r}")
    return found[0] if found else (expected or "")


def vectors_from_table(table: pa.Table, backend: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """(clip_ids, float32 matrix, backend) from a table with clip_id, backend, vector."""
    space = check_one_space(table.column("backend").to_pylist(), backend)
    ids = table.column("clip_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 0), np.float32), space
    column = table.column("vector").combine_chunks()
    sizes = column.value_lengths().to_numpy(zero_copy_only=False)
    if sizes.min() != sizes.max():
        raise EmbeddingSpaceError(f"vectors have different lengths ({sizes.min()} to {sizes.max()})")
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, flat.reshape(len(ids), int(sizes[0])), space


def load_embeddings(path: str | Path, backend: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """(clip_ids, vectors, backend) of an embeddings.parquet holding one embedding space."""
    return vectors_from_table(pq.read_table(path), backend)
