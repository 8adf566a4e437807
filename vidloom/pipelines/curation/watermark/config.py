"""`curation.watermark`: which watermark / logo detector runs and with what weights."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from vidloom.platform.config import StrictModel

WEIGHTS_SETTING = "curation.watermark.weights"
# Weights committed with vidloom, used by the detector backends when `weights` is not set
# (training command and validation figures: models/weights/README.md). The stage runs the ONNX
# file; the .pt beside it is the training checkpoint (`vidloom train-watermark-detector --init`).
PACKAGED_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "weights" / "watermark_yolo.onnx"


def default_weights() -> str | None:
    """The committed detector weights if this checkout has them, else None."""
    return str(PACKAGED_WEIGHTS) if PACKAGED_WEIGHTS.is_file() else None


def not_onnx_message(path: str | Path) -> str:
    """Why a non-ONNX file cannot be the stage's detector, and how to make the ONNX file."""
    return (f"curation.watermark.weights must be an ONNX file (.onnx), got {str(path)!r}: an Ultralytics .pt "
            "is a pickle, which vidloom does not load at run time. `vidloom train-watermark-detector` writes "
            "watermark_yolo.onnx next to its .pt; for another .pt you trust, run "
            "`vidloom train-watermark-detector --export-onnx FILE.pt`.")


class WatermarkConfig(StrictModel):
    """Settings of the watermark stage (YAML section `watermark`)."""

    backend: Literal["persistence", "yolo", "both", "combined"] = Field(
        "both",
        description="both: the higher of the persistence check's and the detector's scores (on a clip the "
        "camera moved, a detection counts as far as persistence sees a fixed layer inside its box), boxes from "
        "both; persistence: the fixed-layer check alone (no weights); yolo: the detector alone; "
        "combined: persistence, and the detector only where the camera did not move",
    )
    weights: str | None = Field(
        None, description="detector weights as ONNX (.onnx, as `vidloom train-watermark-detector` writes "
        "them); null = the committed file if this checkout has one"
    )
    frames_per_clip: int = Field(4, ge=1, le=64, description="of the clip's shipped frames, this many are used")
    detector_frames: int = Field(
        2, ge=1, le=64, description="of those, this many (evenly, first and last included) go to the detector: a "
        "mark must be at the same place in all of them")
    precision: Literal["int8", "fp32"] = Field(
        "int8", description="int8: an int8 copy of the ONNX file, made on this machine on first use and cached "
        "(1.5x as fast on CPU); fp32: the file as it is (use it with a GPU `device`)")
    device: str = Field("cpu", description="where the detector runs: cpu, or a CUDA device (0, cuda:0) when "
                        "onnxruntime has its CUDA provider")
    imgsz: int = Field(448, ge=32, le=2048, description="detector input long side, px (448: the analysis frames' "
                       "own size, so that small marks are not shrunk)")
    conf: float = Field(0.25, gt=0.0, lt=1.0, description="YOLO confidence threshold for boxes")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime CPU threads per worker")

    @field_validator("weights")
    @classmethod
    def _onnx_only(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix.lower() in (".pt", ".pth"):
            raise ValueError(not_onnx_message(value))
        return value
