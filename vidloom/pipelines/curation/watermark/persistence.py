"""Deterministic watermark / logo check: overlay edges that stay put while the content moves.

A channel logo or watermark is composited in post-production on top of every frame, so its
edges sit at the same pixels, with the same orientation, in every frame of a video, whatever
the camera does underneath. Content edges only do that where nothing moves. The check:

1. Per frame (grey, lightly smoothed), the Sobel gradient vector at every pixel.
2. Over a pool of frames, the *persistence* ``S(p)``: the share of frames whose gradient at
   ``p`` is strong and points the way of the pool's mean gradient there.
3. The pool is every frame the stage has for the video (all its ok clips): clips of one video
   show different shots, so content persistence across the pool is low while an overlay's stays
   near 1. That also covers static shots: a static clip's own content persists only in its own
   frames. With four frames of one clip alone, edges parallel to a pan also persist, so a single
   clip gives weaker evidence (see the baseline below). A long video's pool is an even sample of
   at most `max_pool_frames` frames, which bounds memory.
4. The content's own persistence is the baseline: for clip ``k``, ``b_k`` is the mean of ``S`` over
   the central region's pixels where clip ``k`` itself has steady edges. Evidence is
   ``(S - b_k) / (1 - b_k)``, only where clip ``k``'s own frames show the edge. A static video (one
   scene in every clip) has ``b_k`` near 1, hence no evidence: persistence means nothing there.
5. Evidence in the corner/edge bands is grouped into blobs (closing, connected components);
   blobs that are small, inside a band and not on the picture's border (letterbox/pillarbox bar
   edges are persistent too) are candidates. A blob's score is its mean evidence times how
   much of a minimum stroke area it covers; the clip's `watermark_score` is the best blob's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

BACKEND = "persistence-v1"


@dataclass(frozen=True)
class PersistenceParams:
    """Tuning of the persistence check (defaults measured on the sample corpus, 256-px frames)."""

    edge_threshold: float = 24.0  # Sobel magnitude (0-255 grey, 3x3) of a visible edge
    min_cosine: float = 0.8  # a frame's gradient counts as "the same edge" above this cosine
    own_share: float = 0.75  # share of the clip's own frames that must show the edge
    band: float = 0.25  # corner/edge bands: this fraction of width/height from each side
    max_box_w: float = 0.4  # a blob wider than this fraction of the width is not a logo
    max_box_h: float = 0.3  # ... taller than this fraction of the height
    min_area: float = 2e-3  # evidence pixels (fraction of the frame) for a full-strength blob
    blob_threshold: float = 0.5  # evidence above this joins a blob
    box_threshold: float = 0.3  # blobs scoring at least this are reported as boxes
    min_baseline_gap: float = 0.2  # 1 - b_k below this: content too static to tell anything
    max_pool_frames: int = 64  # a long video's pool is an even sample of its frames (memory)
    # A clip alone: the camera must move the content this far (px at a 256 px short side)
    # between its frames before fixed edges can be told from content edges.
    min_shift: float = 12.0


@dataclass
class PersistenceResult:
    """One clip's outcome: score in [0, 1] and boxes in the frames' pixels."""

    score: float
    boxes: list[list[int]] = field(default_factory=list)
    baseline: float = 1.0


def _gradients(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(T, H, W, 2) float32 Sobel gradients of the grey frames."""
    out = []
    for frame in frames:
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
        out.append(np.stack([cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3),
                             cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)], axis=-1))
    return np.stack(out)


def _persistence(grads: np.ndarray, p: PersistenceParams) -> np.ndarray:
    """Share of frames whose gradient is strong and aligned with the pool's mean direction."""
    # x and y components apart: NumPy reductions over a length-2 last axis are ~3x slower
    # than the same arithmetic on the two planes, and the cosine test needs no division.
    gx, gy = grads[..., 0], grads[..., 1]
    mx, my = gx.sum(axis=0), gy.sum(axis=0)
    norm = np.sqrt(mx * mx + my * my) + 1e-6
    dx, dy = mx / norm, my / norm
    mag = np.sqrt(gx * gx + gy * gy)
    aligned = gx * dx + gy * dy > p.min_cosine * (mag + 1e-6)
    return ((mag > p.edge_threshold) & aligned).mean(axis=0, dtype=np.float64)


def _band_mask(h: int, w: int, p: PersistenceParams) -> np.ndarray:
    bh, bw = max(1, int(round(h * p.band))), max(1, int(round(w * p.band)))
    mask = np.zeros((h, w), bool)
    mask[:bh], mask[-bh:], mask[:, :bw], mask[:, -bw:] = True, True, True, True
    return mask


def _content_mask(h: int, w: int, content_box: Sequence[int] | None) -> np.ndarray:
    """Pixels inside the picture, a few pixels clear of its border (bar edges persist too)."""
    mask = np.zeros((h, w), bool)
    x0, y0, x1, y1 = content_box if content_box is not None else (0, 0, w, h)
    m = max(2, round(min(h, w) * 0.012))
    mask[max(0, y0 + m):max(0, y1 - m), max(0, x0 + m):max(0, x1 - m)] = True
    return mask


def _blobs(evidence: np.ndarray, p: PersistenceParams) -> list[tuple[float, list[int]]]:
    """(score, [x0, y0, x1, y1]) of candidate blobs, best first."""
    h, w = evidence.shape
    strong = (evidence > p.blob_threshold).astype(np.uint8)
    if not strong.any():
        return []
    k = max(3, int(round(min(h, w) * 0.02)) | 1)
    joined = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    full_area = p.min_area * h * w
    bh, bw = h * p.band, w * p.band
    out = []
    for i in range(1, count):
        x, y, bwid, bhei, _ = (int(v) for v in stats[i])
        x1, y1 = x + bwid, y + bhei
        if bwid > p.max_box_w * w or bhei > p.max_box_h * h:
            continue
        in_band = x1 <= bw or x >= w - bw or y1 <= bh or y >= h - bh
        if not in_band:
            continue
        member = (labels == i) & (strong > 0)
        n = int(member.sum())
        score = float(evidence[member].mean()) * min(1.0, n / full_area)
        out.append((score, [x, y, x1, y1]))
    out.sort(key=lambda t: -t[0])
    return out


def _aligned_to_first(greys: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """The clip's grey frames warped onto its first by the camera's similarity motion (tracked
    corners, RANSAC, so a fixed overlay's corners are outliers), and the largest displacement of
    a frame corner the warps apply, px. An empty list when the motion cannot be measured."""
    first = greys[0]
    points = cv2.goodFeaturesToTrack(first, 400, 0.01, 7)
    if points is None or len(points) < 10:
        return [], 0.0
    h, w = first.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
    out, shift = [first], 0.0
    for grey in greys[1:]:
        moved, status, _ = cv2.calcOpticalFlowPyrLK(first, grey, points, None, winSize=(21, 21), maxLevel=4)
        ok = status.ravel() == 1
        if ok.sum() < 10:
            return [], 0.0
        warp, _ = cv2.estimateAffinePartial2D(moved[ok], points[ok], method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if warp is None:
            return [], 0.0
        out.append(cv2.warpAffine(grey, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        shift = max(shift, float(np.abs(corners @ warp[:, :2].T + warp[:, 2] - corners).max()))
    return out, shift


def _fixed_while_content_moves(frames: Sequence[np.ndarray], where: np.ndarray,
                               p: PersistenceParams) -> list[tuple[float, list[int]]]:
    """Blobs of a mark on this clip alone (a stock-footage mark, a channel bug on one shot),
    which the video's other clips cannot reveal. Within the clip, an overlay's edges persist at
    fixed pixels but not once the frames are aligned on the content; content edges persist once
    aligned (and, parallel to a pan, at fixed pixels too, which cancels). Evidence is the
    fixed-pixel persistence minus the aligned one. A camera that barely moves gives none."""
    greys = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    aligned, shift = _aligned_to_first(greys)
    if not aligned or shift < p.min_shift * min(greys[0].shape) / 256.0:
        return []
    fixed = _persistence(_gradients(greys), p)
    moving = _persistence(_gradients(aligned), p)
    return _blobs(np.clip(fixed - moving, 0.0, 1.0) * where, p)


def _distinct(blobs: list[tuple[float, list[int]]]) -> list[tuple[float, list[int]]]:
    """Best-first blobs without the weaker copies of one mark (both checks may find it)."""
    kept: list[tuple[float, list[int]]] = []
    for score, box in blobs:
        for _, other in kept:
            ix = max(0, min(box[2], other[2]) - max(box[0], other[0]))
            iy = max(0, min(box[3], other[3]) - max(box[1], other[1]))
            union = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - ix * iy
            if union > 0 and ix * iy / union >= 0.5:
                break
        else:
            kept.append((score, box))
    return kept


def persistence_scores(
    clips_frames: dict[int, Sequence[np.ndarray]],
    content_box: Sequence[int] | None = None,
    params: PersistenceParams | None = None,
) -> dict[int, PersistenceResult]:
    """Score every clip of one video from its frames (all at one size).

    `clips_frames` maps clip index -> RGB (or grey) uint8 frames in time order; all clips of the
    video should be passed together, since other clips' frames are what tells overlay from
    content. `content_box` ([x0, y0, x1, y1] in frame pixels) excludes letterbox/pillarbox bars.
    Boxes are in frame pixels.
    """
    p = params or PersistenceParams()
    usable = {k: list(v) for k, v in clips_frames.items() if len(v) >= 2}
    results = {k: PersistenceResult(0.0) for k in clips_frames}
    if not usable:
        return results
    shapes = {f.shape[:2] for v in usable.values() for f in v}
    if len(shapes) != 1:
        raise ValueError(f"clip frames differ in size: {sorted(shapes)}")
    h, w = shapes.pop()
    total = sum(len(v) for v in usable.values())
    keep = set(np.linspace(0, total - 1, num=min(total, p.max_pool_frames)).round().astype(int).tolist())
    own_masks: dict[int, np.ndarray] = {}
    pooled: list[np.ndarray] = []
    first = 0
    for k, v in usable.items():
        g = _gradients(v)
        own_masks[k] = _persistence(g, p) >= p.own_share
        pooled += [g[i] for i in range(len(v)) if first + i in keep]
        first += len(v)
    pool = _persistence(np.stack(pooled), p)
    centre = np.zeros((h, w), bool)
    centre[int(h * p.band):h - int(h * p.band), int(w * p.band):w - int(w * p.band)] = True
    where = _band_mask(h, w, p) & _content_mask(h, w, content_box)
    # A clip judged alone only looks in the corners, where channel bugs and stock marks sit:
    # subtitles and lower thirds are fixed overlays too, and the text stage measures those.
    corners = np.zeros((h, w), bool)
    bh, bw = max(1, int(round(h * p.band))), max(1, int(round(w * p.band)))
    for rows in (slice(0, bh), slice(h - bh, h)):
        for cols in (slice(0, bw), slice(w - bw, w)):
            corners[rows, cols] = True
    for k, own in own_masks.items():
        alone = _fixed_while_content_moves(usable[k], where & corners, p)
        ref = own & centre
        # The content's own persistence in the pool; too few steady central edges to measure it
        # means a flat centre, where an overlay in the corners is judged against nothing moving.
        baseline = float(pool[ref].mean()) if ref.sum() >= 0.002 * h * w else float(pool[centre].mean())
        gap = 1.0 - baseline
        blobs = []
        if gap >= p.min_baseline_gap:
            evidence = np.clip((pool - baseline) / gap, 0.0, 1.0) * (own & where)
            blobs = _blobs(evidence, p)
        blobs = _distinct(sorted(blobs + alone, key=lambda t: -t[0]))
        score = blobs[0][0] if blobs else 0.0
        boxes = [box for s, box in blobs if s >= p.box_threshold]
        results[k] = PersistenceResult(float(np.clip(score, 0.0, 1.0)), boxes, baseline)
    return results
