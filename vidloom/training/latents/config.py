"""Settings of one precompute run, typed and checked before any worker starts."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from vidloom.pipelines.export.tiers import four_k_plus_one_error
from vidloom.platform.config import StrictModel, validate


class PrecomputeConfig(StrictModel):
    """What `run_precompute` / `vidloom precompute` do; every field can be set with ``--set``."""

    vae: str = Field("tiny", description="anything load_vae accepts: tiny (seeded random init), an export folder, a diffusers folder")
    text_encoder: str | dict[str, Any] = Field("minilm", description="anything build_text_encoder accepts")
    tiers: list[str] | None = Field(None, description="tiers and image sets of curated inputs to encode (default: all)")
    resize: int | None = Field(None, ge=16, le=4096, description="short side, px (rounded to a multiple of 16)")
    frames: int | None = Field(None, ge=1, le=2048, description="keep the first N frames of each video (4k+1)")
    posterior: Literal["sample", "mode"] = "mode"
    seed: int = Field(0, ge=0, description="random-init seed of a named VAE; seed of posterior samples")
    batch_size: int = Field(4, ge=1, le=1024, description="samples per model call")
    workers: int = Field(1, ge=1, le=1024, description="encoder actors (each holds the VAE and text encoder)")
    cpus_per_worker: float = Field(1.0, gt=0.0, le=256.0)
    gpus_per_worker: float = Field(0.0, ge=0.0, le=8.0, description="> 0 puts the models on the GPU")
    decode_cpus: float = Field(1.0, gt=0.0, le=64.0, description="CPUs per decode task")
    shard_rows: int = Field(1024, ge=1, description="samples per Parquet shard at most")
    shard_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="bytes per shard at most")
    tile_px: int = Field(256, ge=32, le=4096, description="spatial VAE tile size (stride 3/4 of it); larger pictures are tiled")
    tile_frames: int = Field(64, ge=8, le=4096, description="temporal VAE tile size in frames (stride 3/4 of it)")
    vae_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: int | None) -> int | None:
        if value is not None and (problem := four_k_plus_one_error(value)):
            raise ValueError(problem)
        return value

    @field_validator("resize")
    @classmethod
    def _resize(cls, value: int | None) -> int | None:
        return None if value is None else round16(value)

    @field_validator("tile_px", "tile_frames")
    @classmethod
    def _tiles(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"{value} must be a multiple of 8 (the VAE compresses 8x in space, 4x in time)")
        return value


def round16(value: float) -> int:
    """Nearest multiple of 16, at least 16: the VAE's 8x and the DiT's 2x patch divide it exactly."""
    return max(16, int(math.floor(value / 16.0 + 0.5)) * 16)  # halves round up, not to even


def make_config(**values: Any) -> PrecomputeConfig:
    """A config from keyword values (None = the default), with the usual readable errors."""
    return validate(PrecomputeConfig, {k: v for k, v in values.items() if v is not None})
