"""What the offline `signals` caption is built from: plain measurements of a clip's frames.

All statistics are taken inside the clip's content box (letterbox/pillarbox bars excluded),
on the RGB frames the analysis stage shipped. Nothing here recognises objects.

* luminance: Rec. 601 luma, mean (brightness) and standard deviation (contrast);
* warmth: mean red minus mean blue, in grey levels;
* palette: the share of pixels per named colour (hue ranges of saturated pixels; black, grey
  and white for unsaturated ones; brown for dark orange/red) and the mean saturation of the
  coloured pixels;
* face scale: height of the largest frontal face OpenCV's ``frontalface_alt2`` Haar cascade
  finds (none smaller than `MIN_FACE_HEIGHT`), relative to the content height, when it is
  found in at least half of the frames. It
  is the only evidence used for a shot scale. (The ``default`` cascade fires on blurred coins
  in the sample corpus; ``alt2`` does not, and still finds the astronaut's face.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# (name, first hue, end hue) in degrees; a saturated pixel takes the name of its hue range.
HUE_NAMES: tuple[tuple[str, float, float], ...] = (
    ("red", 0, 15), ("orange", 15, 40), ("yellow", 40, 70), ("green", 70, 160), ("cyan", 160, 200),
    ("blue", 200, 255), ("purple", 255, 290), ("magenta", 290, 345), ("red", 345, 360),
)
#: Saturation (0-1) from which a pixel counts as coloured rather than black/grey/white.
MIN_SATURATION = 0.25
#: Value (0-1) below which a pixel is black whatever its hue.
BLACK_VALUE = 0.2
#: Value (0-1) above which an unsaturated pixel is white.
WHITE_VALUE = 0.8
#: Orange/red pixels darker than this value (0-1) are named brown.
BROWN_VALUE = 0.6
#: Smallest frontal face searched, as a fraction of the content height: the medium-shot
#: threshold (a smaller face gives no shot scale, so searching for it would be wasted work;
#: the cascade's cost is mostly in its smallest windows).
MIN_FACE_HEIGHT = 0.12


@dataclass(frozen=True)
class FrameStats:
    """Measured appearance of a clip's frames (inside the content box)."""

    luma_mean: float
    luma_std: float
    warmth: float
    palette: tuple[tuple[str, float], ...]  # (colour name, share of pixels), largest first
    colour_share: float  # share of coloured (saturated, not black) pixels
    saturation: float  # mean saturation (0-1) of the coloured pixels
    face_height: float | None  # largest frontal face / content height; None = no consistent face


def content_crop(frame: np.ndarray, border_box: list[int] | None, width: int | None, height: int | None) -> np.ndarray:
    """`frame` without its bars; `border_box` is in display pixels of a `width`×`height` video."""
    if not border_box or not width or not height:
        return frame
    h, w = frame.shape[:2]
    sx, sy = w / float(width), h / float(height)
    x0, y0, x1, y1 = border_box
    x0, x1 = int(round(x0 * sx)), int(round(x1 * sx))
    y0, y1 = int(round(y0 * sy)), int(round(y1 * sy))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return frame
    return frame[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]


COLOUR_NAMES: tuple[str, ...] = tuple(dict.fromkeys([n for n, _, _ in HUE_NAMES] + ["brown", "black", "grey", "white"]))
_CODE = {name: i for i, name in enumerate(COLOUR_NAMES)}


def _palette(rgb: np.ndarray) -> tuple[tuple[tuple[str, float], ...], float, float]:
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)
    hue = hsv[:, 0].astype(np.float32) * (360.0 / 256.0)
    sat, val = hsv[:, 1].astype(np.float32) / 255.0, hsv[:, 2].astype(np.float32) / 255.0
    codes = np.full(hue.shape, _CODE["grey"], dtype=np.uint8)
    codes[(sat < MIN_SATURATION) & (val > WHITE_VALUE)] = _CODE["white"]
    coloured = (sat >= MIN_SATURATION) & (val >= BLACK_VALUE)
    for name, lo, hi in HUE_NAMES:
        codes[coloured & (hue >= lo) & (hue < hi)] = _CODE[name]
    codes[coloured & ((hue < 40) | (hue >= 345)) & (val < BROWN_VALUE)] = _CODE["brown"]
    codes[val < BLACK_VALUE] = _CODE["black"]
    shares = np.bincount(codes, minlength=len(COLOUR_NAMES)) / codes.size
    order = sorted(((n, round(float(shares[i]), 4)) for i, n in enumerate(COLOUR_NAMES) if shares[i] > 0),
                   key=lambda kv: (-kv[1], kv[0]))
    saturation = float(sat[coloured].mean()) if coloured.any() else 0.0
    return tuple(order), float(coloured.mean()), saturation


@lru_cache(maxsize=1)
def _face_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's frontal-face Haar cascade could not be loaded")
    return cascade


def face_height(frames: list[np.ndarray]) -> float | None:
    """Mean height of the largest frontal face / frame height, if a face of at least
    `MIN_FACE_HEIGHT` is in both the first and the last frame: a face that stays through the
    clip. Two looks at most, one for most clips (the search stops at the first frame without a
    face): the cascade is most of the captioner's time."""
    picks = frames[:1] + frames[-1:] if len(frames) > 1 else frames
    heights: list[float] = []
    for rgb in picks:
        gray = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
        side = max(24, math.ceil(MIN_FACE_HEIGHT * gray.shape[0]))
        faces = _face_cascade().detectMultiScale(gray, scaleFactor=1.15, minNeighbors=6, minSize=(side, side))
        if not len(faces):
            return None
        heights.append(max(int(f[3]) for f in faces) / gray.shape[0])
    return float(np.mean(heights)) if heights else None


def frame_stats(frames: list[np.ndarray], border_box: list[int] | None = None,
                width: int | None = None, height: int | None = None) -> FrameStats:
    """Brightness, contrast, warmth, palette and face scale of a clip's frames."""
    if not frames:
        raise ValueError("frame_stats needs at least one frame")
    crops = [content_crop(f, border_box, width, height) for f in frames]
    pixels = np.concatenate([c.reshape(-1, 3) for c in crops]).astype(np.float32)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    palette, share, saturation = _palette(np.concatenate([c.reshape(1, -1, 3) for c in crops], axis=1))
    return FrameStats(
        luma_mean=float(luma.mean()),
        luma_std=float(luma.std()),
        warmth=float(pixels[:, 0].mean() - pixels[:, 2].mean()),
        palette=palette,
        colour_share=share,
        saturation=saturation,
        face_height=face_height(crops),
    )
