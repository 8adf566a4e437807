"""Training from pixels: tier clips and stills read and randomly cropped on the fly.

The VAE job always trains from pixels (the report's 4:1 video:image mix is two datasets with
ratios 4 and 1). Every sample of a stage is cropped to the stage's ``crop`` (frames, height,
width; stills take one frame), so all samples share one bucket; where a crop starts depends
only on (seed, step, sample), so a resumed run crops exactly as the interrupted one would.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from vidloom.platform.config import ConfigError
from vidloom.training.config import StageConfig, TrainConfig
from vidloom.training.data import latent_key

DEFAULT_CROP = (17, 64, 64)


def stage_crop(stage: StageConfig) -> tuple[int, int, int]:
    return tuple(stage.crop) if stage.crop else DEFAULT_CROP


def pixel_index(cfg: TrainConfig, data: str) -> dict[str, list[tuple[str, tuple[int, int, int], str, int]]]:
    """Per tier: (sample_id, bucket, path, 0) of every clip or still of a curated folder."""
    from vidloom.training.latents.sources import list_samples

    tiers = sorted({ref.tier for s in cfg.stages for ref in s.datasets})
    try:
        records = list_samples([data], tiers)
    except ConfigError as exc:
        raise ConfigError(f"stages[*].datasets: {exc}") from None
    by_tier: dict[str, list] = {}
    crops = {ref.tier: stage_crop(s) for s in cfg.stages for ref in s.datasets}
    for r in records:
        if r.error:
            continue
        f, h, w = crops[r.tier]
        key = latent_key(1 if r.kind == "image" else f, h, w)
        by_tier.setdefault(r.tier, []).append((r.sample_id, key, r.source_path, 0))
    return by_tier


def _offset(seed: int, step: int, path: str, limit: int) -> int:
    if limit <= 0:
        return 0
    h = hashlib.sha1(f"{seed}:{step}:{path}".encode()).hexdigest()
    return int(h[:12], 16) % (limit + 1)


def load_clip(path: str, crop: tuple[int, int, int], seed: int, step: int, centre: bool = False) -> np.ndarray:
    """(3, F, H, W) float32 in [-1, 1]: a crop of the clip or still at `path` (F = 1 for stills)."""
    from vidloom.training.latents.encode import read_image, read_video
    from vidloom.training.latents.sources import media_kind

    f, h, w = crop
    if media_kind(path) == "image":
        frames, f = read_image(path, None), 1
    else:
        frames = read_video(path, None, None)
    t, hh, ww = frames.shape[:3]
    if t < f or hh < h or ww < w:
        raise ValueError(f"{path}: {t}x{hh}x{ww} (frames x height x width) is smaller than the crop {f}x{h}x{w}")
    if centre:
        t0, y0, x0 = 0, (hh - h) // 2, (ww - w) // 2
    else:
        t0 = _offset(seed, step, path + "t", t - f)
        y0 = _offset(seed, step, path + "y", hh - h)
        x0 = _offset(seed, step, path + "x", ww - w)
    clip = frames[t0:t0 + f, y0:y0 + h, x0:x0 + w]
    return (clip.astype(np.float32) / 127.5 - 1.0).transpose(3, 0, 1, 2)


class PixelLoader:
    """Ray Data actor: plan rows -> batches of cropped clips ``pixels`` (B, 3, F, H, W), with
    their ``captions`` when `captions` (path -> caption) is given (DiT runs from pixels)."""

    def __init__(self, crops: dict[str, tuple[int, int, int]], seed: int, captions: dict[str, str] | None = None):
        self.crops, self.seed, self.captions = crops, seed, captions

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        crop = self.crops[row["dataset"]]
        step = int(row["step"])
        clips = [load_clip(p, crop, self.seed, step * 131 + int(row["micro"])) for p in row["files"]]
        out = {"step": step, "micro": int(row["micro"]), "dataset": row["dataset"], "pixels": np.stack(clips)}
        if self.captions is not None:
            out["captions"] = [self.captions.get(p, "") for p in row["files"]]
        return out


def pixel_captions(data: str, tiers: list[str]) -> dict[str, str]:
    """path -> caption of the samples of a curated folder (the text precompute would encode)."""
    from vidloom.training.latents.sources import list_samples

    return {r.source_path: r.caption for r in list_samples([data], tiers) if not r.error}


class OnTheFlyEncoder:
    """DiT runs without a latent cache (`data_mode: pixels`): the worker encodes each batch with
    the VAE (posterior mode × scaling factor, as precompute does) and the text encoder."""

    def __init__(self, vae_source: str, text_spec: Any):
        from vidloom.models import load_vae
        from vidloom.models.text import build_text_encoder

        self.vae = load_vae(vae_source).eval().requires_grad_(False)
        self.text = build_text_encoder(text_spec)
        self.scaling = float(self.vae.scaling_factor)

    @torch.no_grad()
    def batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{pixels, captions} -> {latent, text_states, text_mask, pooled}."""
        latent = self.vae.encode(batch["pixels"].float()).mode() * self.scaling
        emb = self.text.encode(list(batch["captions"]))
        return {"latent": latent.float(), "text_states": emb.states.float(), "text_mask": emb.mask,
                "pooled": emb.pooled.float()}

    @torch.no_grad()
    def sample(self, pixels: np.ndarray, caption: str) -> dict[str, Any]:
        """One clip as a held-out sample (the fields `read_items` gives for a cached one)."""
        b = self.batch({"pixels": torch.from_numpy(pixels)[None], "captions": [caption]})
        n = int(b["text_mask"][0].sum())
        return {"latent": b["latent"][0], "text_states": b["text_states"][0, :n], "pooled": b["pooled"][0],
                "caption": caption}

    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        empty = self.sample(np.zeros((3, 1, 8, 8), dtype=np.float32), "")
        return empty["text_states"], empty["pooled"]
