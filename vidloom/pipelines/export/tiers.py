"""Tier definitions: typed, loaded from YAML (`default_tiers.yaml` beside this file, then a
user's file, then ``key.path=value`` overrides), and checked so that every tier is at least as
strict as the one before it.

A tier is a query over ``clips.parquet`` (see `query.py`) plus how its clips are cut (size,
frame count, frame rate). Video tiers form one chain (``tiers:``, in file order) and image sets
another (``image_sets:``); a tier's candidates are the clips kept by the tier before it, so
every tier is a subset of the previous one by construction, and the load-time check makes the
thresholds say the same thing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, field_validator, model_validator

from vidloom.platform.config import StrictModel, load_config

DEFAULT_TIERS_PATH = Path(__file__).with_name("default_tiers.yaml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def four_k_plus_one_error(frames: int) -> str | None:
    """Why a clip of `frames` frames cannot go through the causal VAE, None if it can: the VAE
    keeps frame 0 alone and compresses each following group of 4 frames into one latent frame,
    so only 4k+1 frames encode without padding or dropping any."""
    if (frames - 1) % 4 == 0:
        return None
    below = frames - (frames - 1) % 4
    return f"{frames} is not 4k+1 (the causal VAE compresses time 4x); use {below} or {below + 4}"


class ConceptBalance(StrictModel):
    """Concept resampling of a tier (clips with a `cluster_id` only): at most
    `max_per_cluster` clips per concept cluster and at most `max_share` of the tier from one
    cluster; null = no limit. Both null = off."""

    max_per_cluster: int | None = Field(None, ge=1)
    max_share: float | None = Field(None, gt=0.0, le=1.0)
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_per_cluster is not None or self.max_share is not None


class TopQuality(StrictModel):
    """Keep only the best clips by `quality` (the SFT slice): a `fraction` of the tier's
    candidates or a `count`, exactly one of the two."""

    fraction: float | None = Field(None, gt=0.0, le=1.0)
    count: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> "TopQuality":
        if (self.fraction is None) == (self.count is None):
            raise ValueError("top_quality needs exactly one of fraction or count")
        return self

    def size(self, candidates: int) -> int:
        """How many of `candidates` clips the slice keeps (at least one of a non-empty set)."""
        if self.count is not None:
            return min(self.count, candidates)
        return min(candidates, max(1 if candidates else 0, int(round(self.fraction * candidates))))


class Filters(StrictModel):
    """Thresholds shared by video tiers and image sets. A null threshold is not applied; a
    clip whose signal is null (not measured yet) passes that threshold and is counted."""

    resolution: int = Field(..., ge=64, le=4096, description="output short side, px (rounded up to a multiple of 16)")
    min_short_side: int = Field(..., ge=1, le=8192, description="source picture short side (after letterbox crop), px")
    sharpness_min: float | None = Field(None, ge=0.0)
    text_ratio_max: float | None = Field(None, ge=0.0, le=1.0)
    watermark_score_max: float | None = Field(None, ge=0.0, le=1.0)
    quality_min: float | None = None
    letterbox: Literal["crop", "drop"] = "crop"


class TierConfig(Filters):
    """One video tier."""

    num_frames: int = Field(..., ge=1, le=2048, description="frames per exported clip")
    fps: float = Field(..., gt=0.0, le=240.0, description="frame rate of exported clips")
    duration_min_s: float = Field(0.0, ge=0.0, description="shortest clip, s (never below num_frames / fps)")
    motion_min: float | None = Field(None, ge=0.0)
    motion_max: float | None = Field(None, ge=0.0)
    frame_diff_min: float | None = Field(None, ge=0.0, description="frozen shots have frame_diff ~ 0")
    concepts: ConceptBalance = ConceptBalance()
    top_quality: TopQuality | None = None

    @field_validator("num_frames")
    @classmethod
    def _four_k_plus_one(cls, value: int) -> int:
        if problem := four_k_plus_one_error(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _ranges(self) -> "TierConfig":
        if self.motion_min is not None and self.motion_max is not None and self.motion_min > self.motion_max:
            raise ValueError(f"motion_min ({self.motion_min}) must not exceed motion_max ({self.motion_max})")
        return self

    @property
    def span_s(self) -> float:
        """Seconds of source a clip must cover to give `num_frames` frames at `fps`."""
        return self.num_frames / self.fps

    @property
    def min_duration_s(self) -> float:
        return max(self.duration_min_s, self.span_s)


class ImageSetConfig(Filters):
    """One image set: each kept clip's clearest frame (`best_start_frame`) as a still."""

    jpeg_quality: int = Field(92, ge=50, le=100)


class EncodeConfig(StrictModel):
    """H.264 settings of the exported clips (libx264, yuv420p, MP4)."""

    crf: int = Field(18, ge=0, le=51)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"] = "veryfast"
    threads: int = Field(1, ge=0, le=64, description="x264 threads per clip; 0 = FFmpeg's choice")


class RunConfig(StrictModel):
    """How the cutting runs on Ray."""

    num_cpus_per_task: float = Field(1.0, gt=0.0, le=64.0, description="CPUs reserved per source-video task")
    decoder_threads: int = Field(0, ge=0, le=64)
    shard_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="WebDataset shard size limit")


class ExportConfig(StrictModel):
    """Everything `vidloom export` needs; `tiers` and `image_sets` keep their file order."""

    buckets: list[str] = Field(default_factory=lambda: ["16:9", "9:16", "4:3", "3:4", "1:1"])
    encode: EncodeConfig = EncodeConfig()
    run: RunConfig = RunConfig()
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    image_sets: dict[str, ImageSetConfig] = Field(default_factory=dict)

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one aspect bucket is needed, e.g. ['16:9', '1:1']")
        for text in value:
            m = _RATIO.match(text)
            if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
                raise ValueError(f"aspect bucket {text!r} must look like W:H with positive integers, e.g. 16:9")
        return [text.replace(" ", "") for text in value]

    @field_validator("tiers")
    @classmethod
    def _tier_chain(cls, value: dict[str, TierConfig]) -> dict[str, TierConfig]:
        _check_names(value)
        _check_chain(value, _TIER_RULES)
        return value

    @field_validator("image_sets")
    @classmethod
    def _image_chain(cls, value: dict[str, ImageSetConfig]) -> dict[str, ImageSetConfig]:
        _check_names(value)
        _check_chain(value, _IMAGE_RULES)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> "ExportConfig":
        both = set(self.tiers) & set(self.image_sets)
        if both:
            raise ValueError(f"names used both as a tier and an image set: {sorted(both)} (each gets its own folder)")
        return self

    def bucket_ratios(self) -> list[tuple[str, int, int]]:
        out = []
        for text in self.buckets:
            w, h = _RATIO.match(text).groups()
            out.append((text, int(w), int(h)))
        return out


# How "at least as strict" reads for each key: "ge" = may only grow, "le" = may only shrink;
# null means "no threshold", the loosest value.
_COMMON_RULES: list[tuple[str, str]] = [
    ("resolution", "ge"), ("min_short_side", "ge"), ("sharpness_min", "ge"), ("text_ratio_max", "le"),
    ("watermark_score_max", "le"), ("quality_min", "ge"), ("letterbox", "letterbox"),
]
_TIER_RULES = _COMMON_RULES + [
    ("duration_min_s", "ge"), ("motion_min", "ge"), ("motion_max", "le"), ("frame_diff_min", "ge"),
    ("concepts.max_per_cluster", "le"), ("concepts.max_share", "le"),
]
_IMAGE_RULES = _COMMON_RULES


def _check_names(value: dict[str, Any]) -> None:
    for name in value:
        if not _NAME.match(name):
            raise ValueError(f"name {name!r} must be letters, digits, '-' or '_' (it names a folder)")


def _get(model: StrictModel, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def _looser(rule: str, prev: Any, cur: Any) -> bool:
    if rule == "letterbox":
        return prev == "drop" and cur == "crop"
    if prev is None:
        return False
    if cur is None:
        return True
    return cur < prev if rule == "ge" else cur > prev


def _check_chain(value: dict[str, Filters], rules: list[tuple[str, str]]) -> None:
    names = list(value)
    for before, name in zip(names, names[1:]):
        prev, cur = value[before], value[name]
        for key, rule in rules:
            a, b = _get(prev, key), _get(cur, key)
            if _looser(rule, a, b):
                want = {"ge": "at least", "le": "at most", "letterbox": "'drop' as in"}[rule]
                shown = "null (no threshold)" if b is None else repr(b)
                raise ValueError(
                    f"tier '{name}': {key} {shown} is looser than in tier '{before}' ({a!r}); "
                    f"each tier must be at least as strict as the one before (use {want} {a!r})"
                    if rule != "letterbox" else
                    f"tier '{name}': letterbox 'crop' is looser than in tier '{before}' ('drop'); "
                    "each tier must be at least as strict as the one before"
                )


def load_export_config(tiers_file: str | Path | None = None, overrides: Iterable[str] = ()) -> ExportConfig:
    """The packaged default tiers, or `tiers_file` instead of them when given, then
    ``key.path=value`` overrides (e.g. ``tiers.360p.sharpness_min=80``)."""
    base = tiers_file if tiers_file is not None else DEFAULT_TIERS_PATH
    return load_config(ExportConfig, base, None, overrides)
