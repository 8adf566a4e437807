"""`build_embedder`: the configured embedder, and the interface every embedder offers."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vidloom.pipelines.curation.embeddings.config import EmbeddingConfig
from vidloom.pipelines.curation.embeddings.descriptor import DescriptorEmbedder


class Embedder(Protocol):
    """Turns clips (lists of RGB uint8 frames) into L2-normalised vectors of one space."""

    backend: str  # names the space: vectors of different backends are never compared
    dim: int

    def embed_clips(self, clips: list[list[np.ndarray]]) -> np.ndarray: ...


def build_embedder(config: EmbeddingConfig | dict | None = None) -> Embedder:
    """The embedder `config` asks for; open_clip weights must be on this machine
    (`MissingWeightsError` naming `curation.embedding.checkpoint` otherwise)."""
    cfg = config if isinstance(config, EmbeddingConfig) else EmbeddingConfig.model_validate(config or {})
    if cfg.backend == "descriptor":
        return DescriptorEmbedder()
    from vidloom.pipelines.curation.embeddings.open_clip_backend import OpenClipEmbedder

    return OpenClipEmbedder(
        model_name=cfg.model_name,
        checkpoint=cfg.checkpoint,
        device=cfg.device,
        precision=cfg.precision,
        batch_size=cfg.batch_size,
        threads=cfg.threads,
    )


def check_embedding_weights(config: EmbeddingConfig | dict | None = None) -> None:
    """Fail at start, on the driver, when the configured weights are not on this machine
    (`MissingWeightsError` naming `curation.embedding.checkpoint`), without loading them."""
    cfg = config if isinstance(config, EmbeddingConfig) else EmbeddingConfig.model_validate(config or {})
    if cfg.backend == "open_clip":
        from vidloom.pipelines.curation.embeddings.open_clip_backend import CHECKPOINT_SETTING
        from vidloom.platform.weights import resolve_weights

        resolve_weights(cfg.checkpoint, CHECKPOINT_SETTING)
