from __future__ import annotations

import time

import cv2
import numpy as np

from vidloom.pipelines.curation.signals.sharpness import best_start_frame, laplacian_variance


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def test_blur_scores_far_below_sharp(photos):
    for name, img in photos.items():
        sharp = laplacian_variance(_gray(img))
        blurred = laplacian_variance(_gray(cv2.GaussianBlur(img, (0, 0), 2.0)))
        assert blurred < 0.2 * sharp, (name, sharp, blurred)
        # Monotone in the blur strength.
        more = laplacian_variance(_gray(cv2.GaussianBlur(img, (0, 0), 4.0)))
        assert more < blurred, name


def test_rgb_input_and_flat_frame(photos):
    img = photos["coffee"]
    assert laplacian_variance(img) == laplacian_variance(_gray(img))
    assert laplacian_variance(np.full((64, 64), 128, np.uint8)) == 0.0


def test_best_start_frame_picks_sharp_frame(photos):
    img = photos["chelsea"]
    frames = [cv2.GaussianBlur(img, (0, 0), s) for s in (3.0, 2.0, 1.5)] + [img] + [
        cv2.GaussianBlur(img, (0, 0), 1.0)
    ] * 4
    scores = np.array([laplacian_variance(_gray(f)) for f in frames])
    # Clip starting at frame 0: the sharp frame (3) is inside a 5-frame window.
    assert best_start_frame(scores, 0, 5) == 3
    # A window that ends before the sharp frame picks the best of the blurred ones.
    assert best_start_frame(scores, 0, 3) == 2
    # Clip starting later: absolute index comes back; end_frame bounds the search.
    video = np.concatenate([np.zeros(10), scores])
    assert best_start_frame(video, 10, 8) == 13
    assert best_start_frame(video, 10, 8, end_frame=12) == 11


def test_best_start_frame_nan_and_ties():
    assert best_start_frame(np.array([np.nan, 2.0, 2.0, 1.0]), 0, 4) == 1
    assert best_start_frame(np.array([np.nan, np.nan]), 0, 2) == 0


def test_laplacian_variance_is_fast(photos):
    gray = _gray(cv2.resize(photos["astronaut"], (640, 360)))
    laplacian_variance(gray)
    t0 = time.perf_counter()
    for _ in range(50):
        laplacian_variance(gray)
    per_call = (time.perf_counter() - t0) / 50
    print(f"laplacian_variance 640x360: {per_call * 1e3:.2f} ms")
    assert per_call < 0.01
