"""The latent cache: VAE latents and text embeddings precomputed once into Parquet shards.

`run_precompute` writes a cache (a Ray Data job; `vidloom precompute` is its command);
`LatentCache`, `read_rows` and `decode_sample` read one without Ray. The format is in
`format.py` and docs/latent_cache.md.
"""

from vidloom.training.latents.config import PrecomputeConfig
from vidloom.training.latents.encode import vae_digest
from vidloom.training.latents.format import (
    FORMAT, SHARD_SCHEMA, LatentCache, NotALatentCacheError, decode_sample, read_rows,
)
from vidloom.training.latents.precompute import CacheMismatchError, PrecomputeSummary, precompute, run_precompute

__all__ = [
    "CacheMismatchError",
    "FORMAT",
    "LatentCache",
    "NotALatentCacheError",
    "PrecomputeConfig",
    "PrecomputeSummary",
    "SHARD_SCHEMA",
    "decode_sample",
    "precompute",
    "read_rows",
    "run_precompute",
    "vae_digest",
]
