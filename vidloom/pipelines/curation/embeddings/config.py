"""The `embedding` section of the curation configuration (`curation.embedding.*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vidloom.platform.config import StrictModel


class EmbeddingConfig(StrictModel):
    """Which embedder turns a clip's frames into one vector, and how it runs."""

    backend: Literal["descriptor", "open_clip"] = Field(
        "descriptor",
        description="descriptor: offline visual descriptor (no weights); open_clip: CLIP image tower",
    )
    model_name: str = Field(
        "ViT-B-32",
        description="open_clip architecture name (ignored when the checkpoint folder has open_clip_config.json)",
    )
    checkpoint: str | None = Field(
        None,
        description="open_clip weights: a local file or folder, or a Hugging Face repo id in the local cache",
    )
    frames_per_clip: int = Field(4, ge=1, le=64, description="of the clip's shipped frames, this many are embedded")
    batch_size: int = Field(32, ge=1, le=4096, description="frames per open_clip forward pass")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when the worker has a GPU")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="open_clip compute precision on GPU")
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads per worker")
