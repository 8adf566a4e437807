"""Aspect buckets: every exported clip or image is one of a few fixed sizes per resolution.

A picture (the source frame, or the part inside its letterbox bars) goes to the bucket whose
aspect ratio is nearest on a log scale (so 2:1 and 1:2 are equally far from 1:1), is
centre-cropped to exactly that ratio and scaled to the bucket size: short side = the
resolution rounded up to a multiple of 16 (256 -> 256, 360 -> 368, 540 -> 544, 720 -> 720),
long side = short side x ratio rounded to the nearest multiple of 16 (16:9 at 540p is
960x544, at 720p 1280x720). Multiples of 16 keep the VAE's 8x spatial and the DiT's 2x patch
downsampling exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_ALIGN = 16


@dataclass(frozen=True)
class Bucket:
    name: str  # "16:9"
    ratio: float  # width / height
    width: int
    height: int


def _up16(value: float) -> int:
    return int(math.ceil(value / _ALIGN)) * _ALIGN


def _near16(value: float) -> int:
    return max(_ALIGN, int(math.floor(value / _ALIGN + 0.5)) * _ALIGN)


def bucket_size(resolution: int, ratio_w: int, ratio_h: int) -> tuple[int, int]:
    """(width, height) of the bucket `ratio_w:ratio_h` at `resolution` (short side)."""
    short = _up16(resolution)
    if ratio_w >= ratio_h:
        return _near16(short * ratio_w / ratio_h), short
    return short, _near16(short * ratio_h / ratio_w)


def choose_bucket(width: float, height: float, resolution: int, ratios: list[tuple[str, int, int]]) -> Bucket:
    """The bucket for a `width` x `height` picture at `resolution`."""
    if width <= 0 or height <= 0:
        raise ValueError(f"picture size must be positive, got {width}x{height}")
    aspect = math.log(width / height)
    name, rw, rh = min(ratios, key=lambda r: (abs(math.log(r[1] / r[2]) - aspect), r[0]))
    w, h = bucket_size(resolution, rw, rh)
    return Bucket(name=name, ratio=rw / rh, width=w, height=h)


def picture_box(width: int, height: int, border_box: list[int] | None) -> tuple[int, int, int, int]:
    """The picture area of a frame: inside the letterbox bars if there are any."""
    if border_box:
        x0, y0, x1, y1 = (int(v) for v in border_box)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(width, x1), min(height, y1)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            return x0, y0, x1, y1
    return 0, 0, int(width), int(height)


def centre_crop(box: tuple[int, int, int, int], ratio: float) -> tuple[int, int, int, int]:
    """The largest centred sub-box of `box` with width / height = `ratio` (whole pixels)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w / h > ratio:
        new_w = max(1, min(w, int(round(h * ratio))))
        dx = (w - new_w) // 2
        return x0 + dx, y0, x0 + dx + new_w, y1
    new_h = max(1, min(h, int(round(w / ratio))))
    dy = (h - new_h) // 2
    return x0, y0 + dy, x1, y0 + dy + new_h
