"""Clarity on real material: photographs that ship in PyPI packages (not the scikit-image ones
the thresholds were calibrated on) and frames of PySceneDetect's real test video, each in
focus and blurred, at brightness/contrast levels from very dark to washed out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vidloom.pipelines.curation.signals.clarity import clarity, clip_clarity
from vidloom.pipelines.curation.signals.clarity_calibration import (
    LEVELS, adjust, auc, calibration_images, labelled_frames, read_rgb, held_out_images, video_frames,
)

TIERS = Path(__file__).resolve().parents[2] / "vidloom" / "pipelines" / "export" / "default_tiers.yaml"


@pytest.fixture(scope="module")
def held_out(pyscenedetect_dir) -> list[np.ndarray]:
    """Held-out real images: other packages' photographs plus real video frames with edges."""
    photos = [read_rgb(p) for p in held_out_images()]
    frames = [f for f in video_frames(pyscenedetect_dir / "testvideo.mp4", 8) if f.std() > 10]
    assert len(frames) >= 4
    return photos + frames


def _tier_threshold(name: str) -> float:
    return float(yaml.safe_load(TIERS.read_text())["tiers"][name]["sharpness_min"])


def test_calibration_and_held_out_images_are_disjoint():
    assert not {p.name for p in calibration_images()} & {p.name for p in held_out_images()}


def test_in_focus_beats_its_blurred_copy_at_every_brightness_and_contrast(held_out):
    rng = np.random.default_rng(5)
    for k, rgb in enumerate(held_out):
        base = cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(base, (0, 0), 3.0)
        for gain, offset in LEVELS:
            # As a clip scores one frame: no edges left to judge (a very dark blurred frame) is 0.
            sharp = clip_clarity([clarity(cv2.resize(adjust(base, gain, offset, rng), (456, 256), interpolation=cv2.INTER_AREA))])
            soft = clip_clarity([clarity(cv2.resize(adjust(blurred, gain, offset, rng), (456, 256), interpolation=cv2.INTER_AREA))])
            assert sharp > soft + 0.1, (k, gain, offset, sharp, soft)


def test_blurred_vs_in_focus_auc_and_tier_defaults_on_held_out_images(held_out):
    pairs = list(labelled_frames(held_out, seed=11, crops=1))
    scores = [(y, clarity(f)) for y, f in pairs]
    scores = [(y, c) for y, c in scores if np.isfinite(c)]
    y, c = np.array([s[0] for s in scores]), np.array([s[1] for s in scores])
    assert auc(y, c) >= 0.95
    # The broadest tiers keep the in-focus frames and drop nearly every blurred one.
    for tier in ("256p", "360p"):
        threshold = _tier_threshold(tier)
        assert np.mean(c[y == 1] >= threshold) >= 0.98, tier
        assert np.mean(c[y == 0] < threshold) >= 0.9, tier


def test_brightness_and_contrast_barely_move_the_score(held_out):
    rng = np.random.default_rng(3)
    for rgb in held_out[:5]:
        base = cv2.resize(rgb, (456, 256), interpolation=cv2.INTER_AREA)
        values = [clarity(adjust(base, gain, offset, rng)) for gain, offset in LEVELS]
        assert max(values) - min(values) < 0.12, values


def test_frames_without_edges_are_not_judged():
    black = np.zeros((256, 456, 3), np.uint8)
    noise = np.clip(np.random.default_rng(0).normal(20, 1.5, (256, 456)), 0, 255).astype(np.uint8)
    assert np.isnan(clarity(black)) and np.isnan(clarity(noise))
    assert clip_clarity([float("nan"), 0.4, 0.5]) == pytest.approx(0.45)
    assert clip_clarity([float("nan")]) == 0.0


def test_a_caption_on_a_flat_background_is_judged_on_its_own_edges(pyscenedetect_dir):
    """counter.mp4 (PySceneDetect): white text over ~4% of a flat grey 1080p frame. The top
    decile of edge strength reaches into the flat background there; clarity must still see
    sharp text as sharp and its blurred copy as blurred, not call the frame edge-less."""
    frames = video_frames(pyscenedetect_dir / "counter.mp4", 4)
    assert frames
    for frame in frames:
        small = cv2.resize(frame, (456, 256), interpolation=cv2.INTER_AREA)
        sharp, soft = clarity(small), clarity(cv2.GaussianBlur(small, (0, 0), 2.0))
        assert sharp >= _tier_threshold("540p"), sharp
        assert soft < _tier_threshold("360p") and sharp - soft > 0.2, (sharp, soft)
