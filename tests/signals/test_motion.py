from __future__ import annotations

import math
import time

import numpy as np
import pytest

from .synth import warp
from vidloom.pipelines.curation.signals.motion import (
    GlobalMotion,
    MotionEstimator,
    estimate_global_motion,
    to_motion_gray,
)


def test_to_motion_gray_shrinks_and_greys(photos):
    img = photos["coffee"]  # 256 x 384 RGB
    g = to_motion_gray(img)
    assert g.dtype == np.uint8 and g.ndim == 2
    assert min(g.shape) == 128 and g.shape[1] == 192
    small = to_motion_gray(g, short_side=256)  # never enlarged
    assert small.shape == g.shape


def test_to_motion_gray_of_a_full_hd_frame_is_the_area_average(photos):
    """Large frames go through whole-block means first (cheap), then the last fractional step:
    the result is close to one INTER_AREA shrink (both average boxes of the big frame)."""
    import cv2

    grey = cv2.cvtColor(photos["coffee"], cv2.COLOR_RGB2GRAY)
    big = cv2.resize(grey, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    fast = to_motion_gray(big)
    direct = cv2.resize(big, (228, 128), interpolation=cv2.INTER_AREA)
    assert fast.shape == direct.shape == (128, 228)
    assert np.abs(fast.astype(float) - direct).mean() < 3.0  # grey levels, on a detailed photo
    # Motion measured on it is the motion of the content: a shift of 12 px at 1080p is 1.42 px here.
    shifted = np.roll(big, 12, axis=1)
    m = MotionEstimator()(fast, to_motion_gray(shifted))
    assert m.tx * 228 == pytest.approx(12 * 128 / 1080, abs=0.15)


@pytest.mark.parametrize(
    "kind,params,expect",
    [
        ("tx", dict(tx=6.0), 6.0),
        ("tx", dict(tx=-2.0), -2.0),
        ("ty", dict(ty=4.0), 4.0),
        ("scale", dict(scale=1.02), 0.02),
        ("scale", dict(scale=0.99), -0.01),
        ("rotation", dict(angle_deg=1.0), -math.radians(1.0)),
    ],
)
def test_estimates_similarity_parameters(photos, kind, params, expect):
    est = MotionEstimator()
    for name, img in photos.items():
        h, w = img.shape[:2]
        m = est(img, warp(img, **params))
        got = getattr(m, kind)
        if kind == "tx":
            expect_n = expect / w
        elif kind == "ty":
            expect_n = expect / h
        else:
            expect_n = expect
        assert got == pytest.approx(expect_n, rel=0.15), (name, m)
        # Other components stay near zero.
        others = {"tx": m.tx, "ty": m.ty, "scale": m.scale, "rotation": m.rotation}
        others.pop(kind)
        assert all(abs(v) < 0.25 * abs(expect_n) + 1e-3 for v in others.values()), (name, m)


def test_identical_frames_give_zero_motion(photos):
    img = photos["astronaut"]
    m = estimate_global_motion(img, img.copy())
    assert max(abs(m.tx), abs(m.ty), abs(m.scale), abs(m.rotation)) < 1e-3
    assert m.magnitude < 1e-3 and m.residual < 1e-3


def test_moving_object_is_rejected_by_robust_fit(photos):
    bg = photos["coffee"]
    patch = photos["chelsea"][60:160, 100:220]  # 100x120 px subject, ~12 % of the frame
    a, b = bg.copy(), bg.copy()
    a[80:180, 100:220] = patch
    b[80:180, 112:232] = patch  # subject moves 12 px right, camera still
    m = estimate_global_motion(a, b)
    assert abs(m.tx) < 0.002 and abs(m.ty) < 0.002 and abs(m.scale) < 0.002
    assert m.magnitude > 0.002  # the raw flow does see the subject
    assert m.inlier_ratio < 0.97


def test_flat_frame_reports_no_motion():
    flat = np.full((144, 256, 3), 20, np.uint8)
    m = estimate_global_motion(flat, flat)
    assert m == GlobalMotion(magnitude=m.magnitude, inlier_ratio=0.0)


def test_global_motion_speed(photos):
    est = MotionEstimator()
    a = to_motion_gray(photos["astronaut"])
    b = to_motion_gray(warp(photos["astronaut"], tx=5.0))
    est(a, b)
    t0 = time.perf_counter()
    for _ in range(30):
        est(a, b)
    per_call = (time.perf_counter() - t0) / 30
    print(f"DIS ultrafast + robust fit at {a.shape[1]}x{a.shape[0]}: {per_call * 1e3:.2f} ms")
    assert per_call < 0.05


def test_deterministic(photos):
    img = photos["chelsea"]
    nxt = warp(img, tx=3.0, scale=1.01)
    first = MotionEstimator()(img, nxt)
    assert MotionEstimator()(img, nxt) == first
    assert estimate_global_motion(img, nxt) == first
