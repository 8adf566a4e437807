from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from vidloom.pipelines.curation.signals.border import detect_border_box

from .synth import letterbox, warp


def jpeg(img: np.ndarray, quality: int = 75) -> np.ndarray:
    """Round-trip through JPEG: blocking and ringing at the bar edge, as in real video."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def clip_frames(img: np.ndarray, n: int = 4) -> list[np.ndarray]:
    """Frames sampled across a slowly panning clip."""
    return [warp(img, tx=12.0 * k, ty=3.0 * k) for k in range(n)]


def close_to(box, expect, tol=2):
    return box is not None and all(abs(a - b) <= tol for a, b in zip(box, expect))


@pytest.mark.parametrize("colour", [(0, 0, 0), (20, 20, 20), (30, 60, 200)])
def test_letterbox_found(photos, colour):
    for name, img in photos.items():
        h, w = img.shape[:2]
        bar = 32
        frames = np.stack([jpeg(letterbox(f, bar, colour, axis=0)) for f in clip_frames(img)])
        box = detect_border_box(frames)
        assert close_to(box, (0, bar, w, h - bar)), (name, colour, box)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255)])
def test_pillarbox_found(photos, colour):
    for name, img in photos.items():
        h, w = img.shape[:2]
        bar = 48
        frames = np.stack([jpeg(letterbox(f, bar, colour, axis=1)) for f in clip_frames(img)])
        box = detect_border_box(frames)
        assert close_to(box, (bar, 0, w - bar, h)), (name, colour, box)


def test_single_sided_and_thin_bars(photos):
    img = photos["coffee"]
    h, w = img.shape[:2]
    frames = np.stack(clip_frames(img))
    frames[:, :, w - 40 :] = 0  # right bar only
    frames[:, :3] = 0  # 3-px top line: under 2 % of 256, ignored
    assert close_to(detect_border_box(frames), (0, 0, w - 40, h))


def test_clean_frames_have_no_border(photos):
    for name, img in photos.items():
        frames = np.stack([jpeg(f) for f in clip_frames(img)])
        assert detect_border_box(frames) is None, name


def test_dark_textured_scene_is_not_a_border(photos):
    for name, img in photos.items():
        dark = [np.clip(f.astype(np.float32) * 0.15, 0, 255).astype(np.uint8) for f in clip_frames(img)]
        frames = np.stack([jpeg(f) for f in dark])
        assert float(frames.mean()) < 30  # genuinely dark
        assert detect_border_box(frames) is None, (name, detect_border_box(frames))


def test_uniform_frames_have_no_box():
    assert detect_border_box(np.zeros((3, 120, 200, 3), np.uint8)) is None


def test_single_frame_and_speed(photos):
    img = photos["astronaut"]
    h, w = img.shape[:2]
    assert close_to(detect_border_box(letterbox(img, 20, axis=0)), (0, 20, w, h - 20))
    # 20 frames (10 s at the stage's 2 kept frames/s): only 8 are examined.
    frames = np.stack([letterbox(cv2.resize(f, (640, 360)), 40) for f in clip_frames(img, 20)])
    assert close_to(detect_border_box(frames), (0, 40, 640, 320))
    t0 = time.perf_counter()
    for _ in range(5):
        detect_border_box(frames)
    per_call = (time.perf_counter() - t0) / 5
    print(f"detect_border_box 20x640x360: {per_call * 1e3:.1f} ms")
    assert per_call < 0.2
