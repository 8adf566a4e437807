"""Clarity: how much of a frame's edge strength lives at the finest scale (0 = blurred).

Laplacian variance, the usual sharpness number, is absolute: it scales with the square of the
frame's contrast, so an in-focus dark or low-contrast shot scores like a blurred bright one.
Clarity compares a frame with itself instead. At the frame's strongest edges (the top decile
of gradient magnitude, never weaker than `MIN_EDGE`) it measures the gradient once as decoded and once after an extra
Gaussian blur of `REBLUR_SIGMA` px:

    clarity = 1 - sum(|grad(blur(I))|) / sum(|grad(I)|)      over the strongest edges

A sharp edge loses much of its slope when blurred again; an edge that is already soft loses
little. Multiplying the frame by a contrast factor or adding a brightness offset scales or
leaves both sums alike, so the ratio does not change (up to clipping and 8-bit quantisation).
Calibration, thresholds and the measured separation: docs/clarity.md.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidloom.platform.media import as_gray

__all__ = ["clarity", "clip_clarity", "REBLUR_SIGMA", "EDGE_QUANTILE", "MIN_EDGE", "MIN_EDGE_FRACTION"]

# Extra blur that tells sharp from soft edges at analysis size (short side 256); larger sigmas
# separate strong blur better and weak blur worse (docs/clarity.md has the sweep).
REBLUR_SIGMA = 1.5
# Only the strongest edges count: flat areas carry no information about focus, only noise.
EDGE_QUANTILE = 0.9
# Weaker edges than this (|Sobel x| + |Sobel y|, about 4x the height of a step in grey levels)
# are never counted: sensor noise of sd 1.5 grey levels stays below it in 99.5% of pixels.
MIN_EDGE = 24.0
# A frame needs at least this share of its pixels on counted edges to be judged at all; with
# fewer it is black, a flat wall or sensor noise, and gets NaN. A caption or a counter on a
# flat background (3-5% of the pixels) is judged on its own edges.
MIN_EDGE_FRACTION = 0.02


def _gradient_l1(img: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    # |gx| + |gy|: the ratio below needs a monotone edge strength, not the Euclidean norm,
    # and the L1 form is one fused OpenCV call cheaper.
    return cv2.add(cv2.absdiff(gx, 0), cv2.absdiff(gy, 0))


def clarity(frame: np.ndarray) -> float:
    """Clarity in [0, 1) of an RGB or grey uint8 frame: higher = sharper; NaN when the frame
    has no edges to judge (black, flat), so a fade does not read as blur.

    Measured at analysis size (short side 256); values at very different sizes are not
    comparable, since downscaling sharpens.
    """
    img = as_gray(frame)
    if img.size == 0 or min(img.shape) < 8:
        return float("nan")
    f = img.astype(np.float32)
    fine = _gradient_l1(f)
    coarse = _gradient_l1(cv2.GaussianBlur(f, (0, 0), REBLUR_SIGMA))
    flat = fine.ravel()
    k = int(EDGE_QUANTILE * (flat.size - 1))
    # The top decile, but never below MIN_EDGE: on a mostly flat frame the decile reaches
    # down into the flat background, which only dilutes the measure.
    threshold = max(float(np.partition(flat, k)[k]), MIN_EDGE)
    edges = fine >= threshold
    if int(edges.sum()) < MIN_EDGE_FRACTION * flat.size:
        return float("nan")
    total = float(fine[edges].sum())
    return float(max(0.0, 1.0 - float(coarse[edges].sum()) / total))


def clip_clarity(scores: list[float] | np.ndarray) -> float:
    """A clip's clarity from its frames' scores: the median of the frames that have edges
    (a fade or a cut to black inside the clip does not drag it down), 0 when none has."""
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else 0.0
