"""`curation.watermark`: which watermark / logo detector runs and with what weights."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from vidloom.platform.config import StrictModel

WEIGHTS_SETTING = "curation.watermark.weights"
# Weights committed with vidloom, used by `backend: yolo` / `both` when `weights` is not set
# (training command and validation figures: models/weights/README.md).
PACKAGED_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "weights" / "watermark_yolo.pt"


def default_weights() -> str | None:
    """The committed detector weights if this checkout has them, else None."""
    return str(PACKAGED_WEIGHTS) if PACKAGED_WEIGHTS.is_file() else None


class WatermarkConfig(StrictModel):
    """Settings of the watermark stage (YAML section `watermark`)."""

    backend: Literal["persistence", "yolo", "both", "combined"] = Field(
        "persistence",
        description="persistence: deterministic corner-persistence check (no weights); yolo: the "
        "trained detector; both: the higher of the two scores, boxes from both; combined: "
        "persistence, and where the camera did not move (so that motion proves nothing) the "
        "higher of it and the detector",
    )
    weights: str | None = Field(
        None, description="YOLO weights (.pt); null = the committed file if this checkout has one"
    )
    frames_per_clip: int = Field(4, ge=1, le=64, description="of the clip's shipped frames, this many are used")
    device: str = Field("cpu", description="torch device of the YOLO backend: cpu, 0, cuda:0")
    imgsz: int = Field(320, ge=32, le=2048, description="YOLO inference size, px")
    conf: float = Field(0.25, gt=0.0, lt=1.0, description="YOLO confidence threshold for boxes")
    threads: int = Field(1, ge=1, le=64, description="torch CPU threads per worker")
