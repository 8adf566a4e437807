from __future__ import annotations

import numpy as np
import pytest

from .synth import warp
from vidloom.pipelines.curation.signals.camera_motion import (
    CAMERA_MOTIONS,
    classify_camera_motion,
)
from vidloom.pipelines.curation.signals.motion import GlobalMotion, MotionEstimator

# Sample points: every 8th frame of a ~2 s, 30 fps clip (~4 per second), motion to next frame.
SAMPLE_FRAMES = range(0, 64, 8)


def clip_samples(img, pose, noise: float = 1.5, seed: int = 0) -> list[GlobalMotion]:
    """Per-sample GlobalMotion for a synthetic clip whose frame i is `warp(img, **pose(i))`,
    plus sensor noise (two fixed noise fields, alternating, so consecutive frames never share
    their noise)."""
    est = MotionEstimator()
    rng = np.random.default_rng(seed)
    fields = rng.normal(0, noise, (2, *img.shape)).astype(np.float32)

    def frame(i):
        f = warp(img, **pose(i)).astype(np.float32) + fields[i % 2]
        return np.clip(f, 0, 255).astype(np.uint8)

    return [est(frame(i), frame(i + 1)) for i in SAMPLE_FRAMES]


def test_labels_are_the_fourteen():
    assert len(CAMERA_MOTIONS) == 14 and len(set(CAMERA_MOTIONS)) == 14
    assert {"pan up", "pan down", "tilt left", "tilt right"} <= set(CAMERA_MOTIONS)


# Speeds are per frame at analysis size (short side 256 px).
CASES = [
    ("pan left", lambda v: (lambda i: dict(tx=v * i)), [1.0, 3.0, 8.0]),
    ("pan right", lambda v: (lambda i: dict(tx=-v * i)), [1.0, 3.0, 8.0]),
    ("tilt up", lambda v: (lambda i: dict(ty=v * i)), [1.0, 3.0, 6.0]),
    ("tilt down", lambda v: (lambda i: dict(ty=-v * i)), [1.0, 3.0, 6.0]),
    ("zoom in", lambda v: (lambda i: dict(scale=(1 + v) ** i)), [0.004, 0.01, 0.02]),
    ("zoom out", lambda v: (lambda i: dict(scale=(1 - v) ** i)), [0.004, 0.01, 0.02]),
    # OpenCV's positive angle turns content counter-clockwise on screen -> "around right".
    ("around right", lambda v: (lambda i: dict(angle_deg=v * i)), [0.3, 1.0]),
    ("around left", lambda v: (lambda i: dict(angle_deg=-v * i)), [0.3, 1.0]),
]


@pytest.mark.parametrize("label,make_pose,speeds", CASES, ids=[c[0] for c in CASES])
def test_directional_motions(photos, label, make_pose, speeds):
    for name, img in photos.items():
        for v in speeds:
            got, conf = classify_camera_motion(clip_samples(img, make_pose(v)))
            assert got == label, (name, v, got, conf)
            assert 0.5 < conf <= 1.0, (name, v, conf)


def test_static_shot(photos):
    for name, img in photos.items():
        got, conf = classify_camera_motion(clip_samples(img, lambda i: {}, noise=3.0))
        assert got == "static shot" and conf > 0.5, (name, got, conf)


def test_static_camera_with_moving_subject_is_static(photos):
    """A still camera filming a moving subject (~12 % of the frame) is a static shot: the
    robust fit ignores the subject's flow."""
    bg, subject = photos["coffee"], photos["chelsea"][60:160, 100:220]

    def frame(i):
        f = bg.copy()
        x = 20 + 4 * i  # subject walks 4 px/frame to the right
        f[80:180, x : x + 120] = subject
        return f

    est = MotionEstimator()
    samples = [est(frame(i), frame(i + 1)) for i in range(0, 60, 6)]
    got, conf = classify_camera_motion(samples)
    assert got == "static shot", (got, conf, samples[0])


def test_handheld_shot(photos):
    for name, img in photos.items():
        for amp in (2.0, 5.0):
            rng = np.random.default_rng(7)
            jitter = rng.normal(0, amp, size=(100, 3))

            def pose(i, j=jitter, a=amp):
                return dict(tx=j[i, 0], ty=j[i, 1], angle_deg=0.1 * j[i, 2] / a)

            got, conf = classify_camera_motion(clip_samples(img, pose))
            assert got == "handheld shot", (name, amp, got, conf)
            assert conf > 0.3, (name, amp, conf)


def test_no_samples_is_unknown_static():
    assert classify_camera_motion([]) == ("static shot", 0.0)


def test_large_residual_is_handheld():
    samples = [GlobalMotion(tx=0.01, residual=0.03)] * 5
    assert classify_camera_motion(samples)[0] == "handheld shot"


def test_pan_with_slight_shake_is_still_a_pan(photos):
    img = photos["chelsea"]
    jitter = np.random.default_rng(3).normal(0, 0.5, size=(100, 2))
    got, conf = classify_camera_motion(
        clip_samples(img, lambda i: dict(tx=-3.0 * i + jitter[i, 0], ty=jitter[i, 1]))
    )
    assert got == "pan right" and conf > 0.5, (got, conf)
