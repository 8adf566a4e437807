"""Config sections of the analysis and text-detection stages (`decode`, `split`, `signals`,
`ocr`). They live apart from `config.py` because the stages declare them and `config.py`
builds the whole config from the stages' declarations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vidloom.platform.config import StrictModel


class DecodeConfig(StrictModel):
    analysis_short_side: int = Field(256, ge=64, le=2160, description="short side of analysis frames, px")
    threads: int = Field(0, ge=0, le=64, description="decoder threads per video; 0 = the worker's CPU share (FFmpeg's choice outside a pipeline worker)")
    interpolation: Literal["FAST_BILINEAR", "BILINEAR", "AREA", "BICUBIC"] = "AREA"


class SplitConfig(StrictModel):
    detector: Literal["content", "adaptive"] = "content"
    threshold: float = Field(27.0, gt=0.0, le=255.0, description="content detector threshold")
    adaptive_threshold: float = Field(3.0, gt=0.0, le=255.0)
    min_content_val: float = Field(15.0, ge=0.0, le=255.0)
    min_scene_frames: int = Field(15, ge=1, le=10_000)
    detect_width: int = Field(256, ge=32, le=1920, description="longer side of the frames the detector sees, px")
    min_clip_s: float = Field(2.0, ge=0.1, le=600.0)
    max_clip_s: float = Field(10.0, ge=0.5, le=3600.0)

    @model_validator(mode="after")
    def _lengths(self) -> "SplitConfig":
        if self.max_clip_s < 2 * self.min_clip_s:
            raise ValueError(
                f"split.max_clip_s ({self.max_clip_s}) must be at least twice split.min_clip_s "
                f"({self.min_clip_s}) so that long shots cut into windows no shorter than the minimum"
            )
        return self


class SignalsConfig(StrictModel):
    motion_short_side: int = Field(128, ge=32, le=720, description="short side for optical flow, px")
    motion_samples_per_s: float = Field(4.0, gt=0.0, le=60.0)
    frames_per_s: float = Field(2.0, gt=0.0, le=60.0, description="RGB frames kept per second for border/OCR")
    best_start_window_s: float = Field(0.5, ge=0.0, le=10.0)
    frames_per_clip: int = Field(4, ge=1, le=64, description="frames per clip passed to the model stages")


class OcrConfig(StrictModel):
    backend: Literal["rapidocr", "paddleocr"] = "rapidocr"
    model_dir: str | None = Field(None, description="local PP-OCR model folder (paddleocr backend)")
    det_limit_side_len: int = Field(320, ge=64, le=2048)
    frames_per_clip: int = Field(2, ge=1, le=32)
    threads: int = Field(1, ge=1, le=64)
    precision: Literal["auto", "int8", "fp32"] = Field(
        "auto", description="rapidocr: int8 (quantized here from the wheel's model, 3-4x faster) or fp32; "
        "auto = int8 for rapidocr, fp32 for paddleocr")

    @model_validator(mode="after")
    def _precision(self) -> "OcrConfig":
        if self.precision == "int8" and self.backend != "rapidocr":
            raise ValueError(
                f"ocr.precision 'int8' is made from the rapidocr backend's ONNX model; with "
                f"ocr.backend {self.backend!r} set ocr.precision to 'fp32' or 'auto'"
            )
        return self

    @property
    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "int8" if self.backend == "rapidocr" else "fp32"
