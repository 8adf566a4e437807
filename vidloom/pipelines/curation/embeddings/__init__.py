"""Clip embeddings: the offline visual descriptor (default) and the open_clip image tower."""

from vidloom.pipelines.curation.embeddings.config import EmbeddingConfig
from vidloom.pipelines.curation.embeddings.descriptor import (
    DESCRIPTOR_BACKEND,
    DESCRIPTOR_DIM,
    DescriptorEmbedder,
    describe_clip,
)
from vidloom.pipelines.curation.embeddings.registry import Embedder, build_embedder, check_embedding_weights
from vidloom.pipelines.curation.embeddings.table import (
    EmbeddingSpaceError,
    check_one_space,
    load_embeddings,
    vectors_from_table,
)

__all__ = [
    "DESCRIPTOR_BACKEND", "DESCRIPTOR_DIM", "DescriptorEmbedder", "Embedder", "EmbeddingConfig",
    "EmbeddingSpaceError", "build_embedder", "check_embedding_weights", "check_one_space", "describe_clip", "load_embeddings",
    "vectors_from_table",
]
