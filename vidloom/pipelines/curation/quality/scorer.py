"""`DoverScorer`: DOVER's views, model and fusion for one clip's shipped frames."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vidloom.pipelines.curation.quality.config import QualityConfig
from vidloom.pipelines.curation.quality.dover import DOVER, DoverScores, fuse
from vidloom.pipelines.curation.quality.loading import find_checkpoint, load_dover
from vidloom.pipelines.curation.quality.views import aesthetic_view, technical_view


def pick_device(setting: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("curation.quality.device is cuda but no CUDA device is visible to this worker")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


class DoverScorer:
    """Scores clips with a loaded `DOVER`; deterministic for given frames and settings."""

    def __init__(
        self,
        model: DOVER,
        checkpoint_hash: str,
        device: torch.device | str = "cpu",
        technical_clips: int = 3,
        clip_len: int = 32,
        fragment_size: int = 32,
        aesthetic_size: int = 224,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # The label names the input as well as the weights: DOVER is defined on 32 consecutive
        # native-resolution frames per segment, and this scorer sees the few analysis-size
        # stills the pipeline ships per clip, each held for its segment (quality/views.py).
        # Its scores are therefore not DOVER's published numbers, and the label says so.
        self.backend = f"dover-stills:{checkpoint_hash}"
        self.technical_clips = technical_clips
        self.clip_len = clip_len
        self.fragment_size = fragment_size
        self.aesthetic_size = aesthetic_size

    @classmethod
    def from_config(cls, config: QualityConfig) -> "DoverScorer":
        """Load the checkpoint named by ``curation.quality.dover_checkpoint`` (raises
        MissingWeightsError naming that setting when it is absent)."""
        device = pick_device(config.device)
        model, digest = load_dover(config.dover_checkpoint, device)
        return cls(
            model,
            digest,
            device,
            technical_clips=config.technical_clips,
            clip_len=config.clip_len,
            fragment_size=config.fragment_size,
            aesthetic_size=config.aesthetic_size,
        )

    @torch.inference_mode()
    def score(self, frames: Sequence[np.ndarray]) -> DoverScores:
        """DOVER's technical, aesthetic and fused scores of one clip from its RGB frames."""
        tech = technical_view(frames, self.technical_clips, self.clip_len, self.fragment_size).to(self.device)
        aes = aesthetic_view(frames, self.clip_len, self.aesthetic_size).to(self.device)
        # one score per technical segment: DOVER averages them (and every position)
        technical_raw, aesthetic_raw = self.model(tech, aes)
        return fuse(float(technical_raw.mean()), float(aesthetic_raw.mean()))


def check_quality_weights(config: QualityConfig | dict | None = None) -> None:
    """Fail at start, on the driver, when the dover backend's checkpoint is not on this
    machine (`MissingWeightsError` naming ``curation.quality.dover_checkpoint``), without
    loading it. The proxy backend needs no weights."""
    cfg = config if isinstance(config, QualityConfig) else QualityConfig.model_validate(config or {})
    if cfg.backend == "dover":
        find_checkpoint(cfg.dover_checkpoint)
