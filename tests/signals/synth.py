"""Synthetic inputs for the signal tests: real photographs from scikit-image, warped with OpenCV
to simulate camera motion, letterboxing and burned-in text."""

from __future__ import annotations

import cv2
import numpy as np


def analysis_size(img: np.ndarray, short_side: int = 256) -> np.ndarray:
    """Resize an RGB photo so its short side is `short_side` (the decode stage's size)."""
    h, w = img.shape[:2]
    f = short_side / min(h, w)
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def warp(
    img: np.ndarray, tx: float = 0.0, ty: float = 0.0, scale: float = 1.0, angle_deg: float = 0.0
) -> np.ndarray:
    """Similarity warp about the image centre: content moves by (tx, ty) px, grows by
    `scale`, and turns by `angle_deg` (OpenCV convention: positive = counter-clockwise on
    screen). BORDER_REFLECT keeps the edges textured, like a real camera that keeps seeing
    scene content."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
    m[0, 2] += tx
    m[1, 2] += ty
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)




def letterbox(img: np.ndarray, bar: int, colour=(0, 0, 0), axis: int = 0) -> np.ndarray:
    """Copy of `img` with `bar`-px constant bars on both ends of `axis` (0: top/bottom
    letterbox, 1: left/right pillarbox), as if a narrower/wider picture were padded."""
    out = img.copy()
    if axis == 0:
        out[:bar], out[out.shape[0] - bar :] = colour, colour
    else:
        out[:, :bar], out[:, out.shape[1] - bar :] = colour, colour
    return out


def burn_text(img: np.ndarray, lines: list[str], y0: float, scale: float, thickness: int) -> np.ndarray:
    """Draw white text with a black outline (the usual subtitle style), centred horizontally,
    lines stacked from `y0` (fraction of height) down."""
    out = img.copy()
    h, w = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    y = int(y0 * h)
    for line in lines:
        (tw, th), base = cv2.getTextSize(line, font, scale, thickness)
        x = max(0, (w - tw) // 2)
        y += th
        cv2.putText(out, line, (x, y), font, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
        cv2.putText(out, line, (x, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        y += base + th // 2
    return out
