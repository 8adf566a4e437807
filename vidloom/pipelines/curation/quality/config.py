"""`curation.quality`: the settings of the quality stage (a section of CurationConfig)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vidloom.platform.config import StrictModel


class QualityConfig(StrictModel):
    """Which quality backend scores clips, and how DOVER's views are built."""

    backend: Literal["proxy", "dover"] = Field(
        "proxy", description="proxy: offline formula over part-1 signals; dover: DOVER checkpoint"
    )
    dover_checkpoint: str | None = Field(
        None, description="DOVER.pth file, a folder holding it, or a cached Hugging Face repo id (teowu/DOVER)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="dover backend: auto = cuda when available")
    technical_clips: int = Field(3, ge=1, le=16, description="dover: temporal segments of the technical view")
    clip_len: int = Field(32, ge=2, le=64, description="dover: frames per view (even: 2-frame temporal patches)")
    fragment_size: int = Field(32, ge=4, le=64, description="dover: side of each of the 7×7 fragments, px")
    aesthetic_size: int = Field(224, ge=32, le=512, description="dover: side of the aesthetic view, px")

    @field_validator("clip_len")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"quality.clip_len must be even (DOVER's patches span 2 frames), got {value}")
        return value
