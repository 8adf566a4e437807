"""Planted defects drawn onto rendered frames: burned-in text, logos, bars, blur.

All functions work on HxWx3 uint8 RGB frames and are deterministic (no randomness inside;
callers pass what varies).
"""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX

SUBTITLE_LINES: tuple[str, ...] = (
    "Where are we going?",
    "Just keep walking.",
    "I told you so.",
    "We have to leave now.",
    "Nobody saw it coming.",
    "Look at the sky!",
    "It's getting late.",
    "Trust me on this.",
)

TITLES: tuple[str, ...] = ("CHAPTER ONE", "THE END", "SUMMER 1969", "OCEAN DAYS")


def _fit_scale(text: str, target_height: float, max_width: float, thickness: int) -> float:
    """Font scale giving cap height ~target_height, shrunk if the text would exceed max_width."""
    (w1, h1), _ = cv2.getTextSize(text, _FONT, 1.0, thickness)
    scale = target_height / max(h1, 1)
    if w1 * scale > max_width:
        scale = max_width / w1
    return scale


def draw_outlined_text(frame: np.ndarray, text: str, center_x: int, baseline_y: int,
                       height: float, max_width: float) -> np.ndarray:
    """Draw white text with a dark outline, horizontally centred on center_x, in place."""
    fh = frame.shape[0]
    thick = max(1, round(height / 9))
    scale = _fit_scale(text, height, max_width, thick)
    (tw, _), _ = cv2.getTextSize(text, _FONT, scale, thick)
    org = (int(center_x - tw / 2), int(baseline_y))
    outline = thick + max(2, round(fh / 180))
    cv2.putText(frame, text, org, _FONT, scale, (16, 16, 16), outline, cv2.LINE_AA)
    cv2.putText(frame, text, org, _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return frame


def draw_subtitle(frame: np.ndarray, line: str) -> np.ndarray:
    """Burned-in subtitle: bottom centre, cap height ~5 % of the frame height."""
    h, w = frame.shape[:2]
    return draw_outlined_text(frame, line, w // 2, round(h * 0.93), h * 0.05, w * 0.92)


def draw_title(frame: np.ndarray, title: str) -> np.ndarray:
    """Large centred title text over the picture (~12 % of the height, at most 85 % wide)."""
    h, w = frame.shape[:2]
    height = h * 0.12
    return draw_outlined_text(frame, title, w // 2, round(h / 2 + height / 2), height, w * 0.85)


class Logo:
    """A static, semi-transparent (~35 %) top-right channel logo: a disc plus short text.

    Pre-rendered once per frame size so every frame gets exactly the same overlay.
    """

    def __init__(self, width: int, height: int, text: str = "VL24", opacity: float = 0.35):
        self.opacity = opacity
        size = max(16, round(min(width, height) * 0.10))  # logo box height
        (tw, th), _ = cv2.getTextSize(text, _FONT, 1.0, 2)
        scale = size * 0.6 / th
        thick = max(1, round(size / 14))
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
        box_w = size + size // 4 + tw + 4
        margin = max(6, round(min(width, height) * 0.03))
        self.x0, self.y0 = width - margin - box_w, margin
        self.x1, self.y1 = self.x0 + box_w, self.y0 + size
        art = np.zeros((size, box_w, 3), np.uint8)
        mask = np.zeros((size, box_w), np.uint8)
        r = size // 2
        cv2.circle(art, (r, r), r - 1, (255, 140, 0), -1, cv2.LINE_AA)
        cv2.circle(mask, (r, r), r - 1, 255, -1, cv2.LINE_AA)
        org = (size + size // 4, size // 2 + th // 2)
        cv2.putText(art, text, org, _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
        cv2.putText(mask, text, org, _FONT, scale, 255, thick, cv2.LINE_AA)
        self.art = art.astype(np.float32)
        self.alpha = (mask.astype(np.float32) / 255.0 * opacity)[:, :, None]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Logo bounding box x0, y0, x1, y1 (x1/y1 exclusive) in frame pixels."""
        return self.x0, self.y0, self.x1, self.y1

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Alpha-blend the logo into frame in place (only the logo ROI is touched)."""
        roi = frame[self.y0:self.y1, self.x0:self.x1]
        blended = roi.astype(np.float32) * (1.0 - self.alpha) + self.art * self.alpha
        roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return frame


def content_box(kind: str, width: int, height: int) -> tuple[int, int, int, int]:
    """Content box (x0, y0, x1, y1; x1/y1 exclusive) for 'letterbox' or 'pillarbox' bars.

    Letterbox: ~12 % black bars top and bottom. Pillarbox: 4:3 picture centred in the frame.
    Bar sizes are even so the box survives 4:2:0 chroma subsampling cleanly.
    """
    if kind == "letterbox":
        bar = 2 * round(height * 0.12 / 2)
        return 0, bar, width, height - bar
    if kind == "pillarbox":
        inner = min(width, 2 * round(height * 4 / 3 / 2))
        bar = 2 * ((width - inner) // 4)
        return bar, 0, width - bar, height
    raise ValueError(f"unknown box kind {kind!r}")


def place_in_box(content: np.ndarray, box: tuple[int, int, int, int], width: int,
                 height: int) -> np.ndarray:
    """Put `content` (box-sized) on a black width x height canvas at `box`."""
    x0, y0, x1, y1 = box
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[y0:y1, x0:x1] = content
    return canvas


def gaussian_blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Strong defocus-like blur (sigma in pixels)."""
    return cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)
