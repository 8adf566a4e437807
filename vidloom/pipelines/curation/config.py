"""Typed configuration of the curation pipeline. Defaults live in `defaults.yaml` beside
this file; a user's YAML and ``key=value`` overrides are merged on top and validated here."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

from pydantic import Field, model_validator

from vidloom.pipelines.curation.captions.config import CaptionConfig
from vidloom.pipelines.curation.concepts import ConceptsConfig
from vidloom.pipelines.curation.dedup import DedupConfig
from vidloom.pipelines.curation.embeddings.config import EmbeddingConfig
from vidloom.pipelines.curation.quality.config import QualityConfig
from vidloom.pipelines.curation.watermark.config import WatermarkConfig
from vidloom.pipelines.stage import StageResources
from vidloom.platform.config import StrictModel, load_config

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")


class DecodeConfig(StrictModel):
    analysis_short_side: int = Field(256, ge=64, le=2160, description="short side of analysis frames, px")
    threads: int = Field(0, ge=0, le=64, description="decoder threads per video; 0 = FFmpeg's choice")
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


class StagesConfig(StrictModel):
    """Resources per worker and actor-pool size range of each stage, in pipeline order.

    Decoding dominates, so the analysis stage gets most of a CPU per actor and scales out. The
    model stages' offline defaults look at a few frames per clip and are busy a small share of
    the time, so their CPU requests are scheduling weights that let two analysis actors and
    one actor of every other stage fit on a 2-core machine (a whole CPU for text detection
    starved the second analysis actor and halved throughput, measured). Raise them, and
    `num_gpus`, when a stage runs a real model (DOVER, open_clip, YOLO, a VLM).
    Measured resident size per actor on the sample corpus (set `memory_gb` to reserve it on a
    cluster): analysis ~0.6 GB, text ~0.6, quality ~0.4, watermark ~0.2, embedding ~0.15,
    captioning ~0.3. No reservation by default: node types that do not list their memory (a
    fake local cluster) would otherwise never be chosen by the autoscaler.
    """

    video_analysis: StageResources = StageResources(num_cpus=0.8, max_workers=8)
    text_detection: StageResources = StageResources(num_cpus=0.15, max_workers=4)
    quality: StageResources = StageResources(num_cpus=0.05, max_workers=2)
    watermark: StageResources = StageResources(num_cpus=0.05, max_workers=2)
    embedding: StageResources = StageResources(num_cpus=0.05, max_workers=2)
    captioning: StageResources = StageResources(num_cpus=0.1, max_workers=2)


STAGE_ORDER = ("video_analysis", "text_detection", "quality", "watermark", "embedding", "captioning")
StageName = Literal["video_analysis", "text_detection", "quality", "watermark", "embedding", "captioning"]


class CurationConfig(StrictModel):
    # The pipeline is data: which stages run, in their fixed order (decode first, the VLM last).
    pipeline: list[StageName] = list(STAGE_ORDER)
    decode: DecodeConfig = DecodeConfig()
    split: SplitConfig = SplitConfig()
    signals: SignalsConfig = SignalsConfig()
    ocr: OcrConfig = OcrConfig()
    quality: QualityConfig = QualityConfig()
    watermark: WatermarkConfig = WatermarkConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    caption: CaptionConfig = CaptionConfig()
    dedup: DedupConfig = DedupConfig()
    concepts: ConceptsConfig = ConceptsConfig()
    stages: StagesConfig = StagesConfig()

    @model_validator(mode="after")
    def _pipeline_order(self) -> "CurationConfig":
        stages = list(self.pipeline)
        if not stages or stages[0] != "video_analysis":
            raise ValueError("pipeline must start with video_analysis (the one stage that decodes)")
        if stages != [s for s in STAGE_ORDER if s in stages]:
            raise ValueError(f"pipeline must keep the stage order {list(STAGE_ORDER)}, got {stages}")
        return self


def load_curation_config(config_file: str | Path | None = None, overrides: Iterable[str] = ()) -> CurationConfig:
    """The packaged defaults, then `config_file`, then ``key=value`` overrides."""
    return load_config(CurationConfig, DEFAULTS_PATH, config_file, overrides)
