"""Per-frame sharpness: variance of the Laplacian.

The decode stage calls `laplacian_variance` on every analysis-size grey frame, so it must stay
a single OpenCV pass. `best_start_frame` then picks the clearest frame near a clip's start,
which the pipeline uses as the clip's first frame (the HunyuanVideo report starts clips on a
sharp frame so the first frame used for image-to-video conditioning is not motion-blurred).

Values are only comparable between frames of the same resolution: the Laplacian response of a
downscaled frame is larger (downscaling sharpens), so always score at one analysis size.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidloom.platform.media import as_gray

__all__ = ["laplacian_variance", "best_start_frame"]


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a uint8 grey frame (higher = sharper).

    An RGB H×W×3 frame is accepted too and converted to grey first. A signed output keeps the
    full range of the second derivative (uint8 output would clip negative responses); the
    variance is accumulated in float64 by meanStdDev.
    """
    img = as_gray(gray)
    if img.size == 0:
        return 0.0
    # On uint8 the 3x3 Laplacian is an integer in [-1020, 1020]: int16 holds it exactly and is
    # ~40 % cheaper than float32 (the decode pass calls this on every frame).
    lap = cv2.Laplacian(img, cv2.CV_16S if img.dtype == np.uint8 else cv2.CV_32F, ksize=1)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def best_start_frame(
    scores: np.ndarray, start_frame: int, window: int, end_frame: int | None = None
) -> int:
    """Absolute index of the sharpest frame among the first `window` frames of a clip.

    `scores` holds one sharpness value per frame of the whole video, indexed by absolute frame
    number; the clip starts at `start_frame` (and ends before `end_frame` when given, so the
    search never leaves the clip). NaN scores (frames that failed to decode) never win; ties
    go to the earliest frame, so the result is deterministic and loses as little of the clip
    as possible. When every candidate is NaN, `start_frame` is returned.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= start_frame < len(values):
        raise ValueError(f"start_frame {start_frame} outside the {len(values)} scored frames")
    stop = min(len(values), start_frame + window)
    if end_frame is not None:
        stop = min(stop, max(end_frame, start_frame + 1))
    candidates = values[start_frame:stop]
    if np.all(np.isnan(candidates)):
        return start_frame
    # np.argmax returns the first maximum, which gives the earliest-frame tie-break.
    return start_frame + int(np.argmax(np.where(np.isnan(candidates), -np.inf, candidates)))
