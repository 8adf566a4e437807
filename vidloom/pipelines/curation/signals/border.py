"""Letterbox / pillarbox detection on a few frames sampled across a clip.

A bar is a run of rows (top/bottom) or columns (left/right), starting at the frame edge, whose
pixels all have one colour in every sampled frame. The colour is read from the outermost
row/column (so black, grey or coloured bars all work); a row/column belongs to the bar when
nearly all its pixels, in all frames, are within `tol` of that colour and the row is flat. Requiring this across
frames sampled over the whole clip is what separates a bar from a dark region of the scene:
scene content changes, bars do not, and a dark *textured* area is not within `tol` of a single
colour anyway, and its rows are not flat (`MAX_BAR_STD`).

Known limit: text burned into a bar (subtitles in the bottom letterbox) makes those rows
non-uniform, so that bar is only detected below/above the text.
"""

from __future__ import annotations

import numpy as np

__all__ = ["detect_border_box"]

#: Default per-channel tolerance (grey levels) around the bar colour; covers compression
#: noise and chroma ringing in flat bars.
DEFAULT_TOL = 16
#: Fraction of a row's pixels (over all frames) that must match the bar colour.
MIN_MATCH_FRACTION = 0.995
#: Largest per-channel standard deviation (grey levels) of a bar row over all frames. Encoded
#: bars are flat (std ~0-2, ringing aside); a dark textured scene region keeps std >= ~5
#: even when all its pixels sit within `tol` of black.
MAX_BAR_STD = 3.0
#: Bars thinner than this fraction of the side are ignored (encoder padding, 1-2 px edges).
MIN_BAR_FRACTION = 0.02
#: Bars are searched over at most this fraction of the side from each edge (a 9:16 video
#: pillarboxed into 16:9 has ~34 % bars on each side).
MAX_BAR_FRACTION = 0.45
#: At most this many frames (evenly spread over those given) are examined: bars are constant,
#: so more frames only add cost (the stage keeps ~2 frames per second of clip).
MAX_FRAMES = 8
_CHUNK = 8


def detect_border_box(
    frames: np.ndarray, tol: int = DEFAULT_TOL
) -> tuple[int, int, int, int] | None:
    """Content box `(x0, y0, x1, y1)` (x1, y1 exclusive) inside constant-colour bars.

    Args:
        frames: N×H×W×3 (or N×H×W grey, or a single H×W×3) uint8 frames sampled across the
            clip.
        tol: per-channel tolerance in grey levels around the bar colour.

    Returns:
        The box, or None when no side has a bar at least `MIN_BAR_FRACTION` of its side, or
        when the frames are uniform everywhere (nothing to call content).
    """
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        # Ambiguous: a single RGB frame (H×W×3) or a stack of grey frames (N×H×W).
        arr = arr[None] if arr.shape[-1] in (3, 4) else arr[..., None]
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(f"expected N×H×W×C frames, got shape {np.shape(frames)}")
    arr = arr[..., :3]
    if arr.shape[0] > MAX_FRAMES:
        arr = arr[np.linspace(0, arr.shape[0] - 1, MAX_FRAMES).round().astype(int)]
    _, h, w, _ = arr.shape

    top = _bar_rows(arr, tol)
    bottom = _bar_rows(arr[:, ::-1], tol)
    cols = arr.transpose(0, 2, 1, 3)  # columns as rows, so one scan routine serves all sides
    left = _bar_rows(cols, tol)
    right = _bar_rows(cols[:, ::-1], tol)

    if top + bottom >= h or left + right >= w:
        return None  # uniform frames: no content to box
    top, bottom = (t if t >= MIN_BAR_FRACTION * h else 0 for t in (top, bottom))
    left, right = (t if t >= MIN_BAR_FRACTION * w else 0 for t in (left, right))
    if top == bottom == left == right == 0:
        return None
    return left, top, w - right, h - bottom


def _bar_rows(arr: np.ndarray, tol: int) -> int:
    """Number of leading rows (from row 0) of N×H×W×C `arr` that are one constant colour."""
    _, h, _, c = arr.shape
    limit = int(h * MAX_BAR_FRACTION)
    if limit < 1:
        return 0
    # Bar colour: per-channel median of the outermost row over all frames.
    colour = np.median(arr[:, 0].reshape(-1, c), axis=0).astype(np.int16)
    # Scan in small chunks and stop at the first non-bar row: most clips have no bars, so
    # usually only the first chunk of each side is ever looked at.
    for lo in range(0, limit, _CHUNK):
        chunk = arr[:, lo : min(lo + _CHUNK, limit)].astype(np.int16)
        close = np.all(np.abs(chunk - colour) <= tol, axis=-1)  # N × rows × W
        match = close.mean(axis=(0, 2))  # per-row fraction of matching pixels
        spread = chunk.std(axis=(0, 2), dtype=np.float32).max(axis=-1)  # worst channel
        bad = np.flatnonzero((match < MIN_MATCH_FRACTION) | (spread > MAX_BAR_STD))
        if bad.size:
            return lo + int(bad[0])
    # Uniform up to the search limit: either a huge bar or a flat frame; report the whole
    # height for a flat frame so the caller can tell "no content".
    return h if _uniform(arr, colour, tol) else limit


def _uniform(arr: np.ndarray, colour: np.ndarray, tol: int) -> bool:
    """True when the whole N×H×W×C `arr` is within `tol` of `colour`."""
    close = np.all(np.abs(arr.astype(np.int16) - colour) <= tol, axis=-1)
    return bool(close.mean() >= MIN_MATCH_FRACTION)
