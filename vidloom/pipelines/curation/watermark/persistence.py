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

from vidloom.platform.media import as_gray

BACKEND = "persistence-v3"  # v2: a clip alone is judged by its fixed-layer residual; v3: recalibrated, weighs detections


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
    # across its frames before a fixed layer can be told from the content.
    min_shift: float = 4.0
    # Grey levels of a fixed layer's residual that count as nothing, and the span above that to
    # full evidence; calibrated on the held-out draws' calibration seeds (docs/watermark.md).
    residual_floor: float = 1.5
    residual_span: float = 4.0
    # px: the floor adds this times the edge's slope (a zoom's scale, measured to a fraction of
    # a percent, still misplaces a corner of the frame by a pixel or more)
    registration_error: float = 1.0
    # A detection on a clip judged alone keeps this share of its confidence where the clip shows
    # no fixed layer inside its box, and all of it where the evidence there is full
    # (`PersistenceResult.detection_weight`).
    unconfirmed_weight: float = 0.3


@dataclass
class PersistenceResult:
    """One clip's outcome: score in [0, 1] and boxes in the frames' pixels."""

    score: float
    boxes: list[list[int]] = field(default_factory=list)
    baseline: float = 1.0
    # Whether the camera moved the content enough for the clip to be judged alone; where it did
    # not, nothing but the video's other clips tells a mark from the content.
    moved: bool = False
    # Where it did: the fixed-layer evidence (`_fixed_layer_evidence`, frame pixels, [0, 1], NaN
    # where fewer than two other frames see the place), and the weights of `detection_weight`.
    evidence: np.ndarray | None = field(default=None, repr=False)
    unconfirmed_weight: float = 1.0
    blobs: list[tuple[float, list[int]]] = field(default_factory=list, repr=False)  # (score, box), best first

    def detection_weight(self, box: Sequence[float]) -> float:
        """The share of a detector's confidence that a box ([x0, y0, x1, y1], frame px) keeps on
        this clip: all of it where the camera did not move (the clip alone proves nothing);
        else from `unconfirmed_weight`, where nothing inside the box stayed put while the content
        moved (a look-alike in the content), to 1 where the strongest evidence there is full (a
        layer at fixed pixels, however faint its look)."""
        if self.evidence is None:
            return 1.0
        h, w = self.evidence.shape
        x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        inside = self.evidence[y0:y1, x0:x1]
        inside = inside[np.isfinite(inside)]
        support = float(inside.max()) if inside.size else 0.0
        return self.unconfirmed_weight + (1.0 - self.unconfirmed_weight) * min(1.0, support)

    def detection_score(self, box: Sequence[float], confidence: float) -> float:
        """A detector's confidence at `box` once this check has had its say: weighed by
        `detection_weight`, and on a clip the camera moved, joined with the best blob of this
        check that overlaps the box as two independent witnesses of one mark are
        (``1 - (1 - a) (1 - b)``): a faint mark that each check half sees, at the same place,
        is surer than either says alone."""
        score = confidence * self.detection_weight(box)
        if self.evidence is None:
            return score
        agree = max((s for s, b in self.blobs
                     if b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3]), default=0.0)
        return 1.0 - (1.0 - score) * (1.0 - min(1.0, agree))


def _gradients(greys: Sequence[np.ndarray]) -> np.ndarray:
    """(T, H, W, 2) float32 Sobel gradients of the grey frames."""
    out = []
    for grey in greys:
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


def _camera_warps(greys: Sequence[np.ndarray], track: np.ndarray | None = None) -> tuple[list[np.ndarray], float]:
    """3x3 similarity warps taking each grey frame onto the clip's first (the camera's motion),
    and the largest displacement of a frame corner they apply, px. Empty when the motion cannot
    be measured.

    Consecutive frames are matched and the warps chained: a fast pan moves the content a third
    of the frame between shipped frames, too far for the first frame's corners to be found in
    the last. Each step starts from the global translation (phase correlation), refines tracked
    corners (pyramidal LK) from it and from no guess, and fits a similarity with RANSAC (the fit
    with more inliers is kept), so a fixed overlay's corners are outliers. `track` (bool, frame size) limits where corners are picked: outside
    the places an overlay may sit, else a mark with more corners than the content (text over a
    smooth scene) wins the vote and the camera looks static."""
    h, w = greys[0].shape
    mask = None if track is None else track.astype(np.uint8) * 255
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    frame_corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
    warps, shift = [np.eye(3)], 0.0
    floats = [g.astype(np.float32) for g in greys]  # phase correlation's input, once a frame
    for i, (prev, grey) in enumerate(zip(greys[:-1], greys[1:])):
        points = cv2.goodFeaturesToTrack(prev, 400, 0.01, 7, mask=mask)
        if points is None or len(points) < 10:
            return [], 0.0
        (dx, dy), _ = cv2.phaseCorrelate(floats[i], floats[i + 1], window)
        best, best_inliers = None, 0
        # From the global translation and from none: a repetitive texture (coins, tiles) can
        # fool the correlation, and a zoom has no single translation; the fit with more
        # RANSAC inliers wins.
        for guess in ((points + np.array([dx, dy], np.float32)).astype(np.float32), None):
            moved, status, _ = cv2.calcOpticalFlowPyrLK(
                prev, grey, points, None if guess is None else guess, winSize=(21, 21), maxLevel=3,
                flags=0 if guess is None else cv2.OPTFLOW_USE_INITIAL_FLOW)
            ok = status.ravel() == 1
            if ok.sum() < 10:
                continue
            step, inliers = cv2.estimateAffinePartial2D(moved[ok], points[ok], method=cv2.RANSAC,
                                                        ransacReprojThreshold=2.0)
            if step is not None and int(inliers.sum()) >= max(10, 0.3 * ok.sum()) and int(inliers.sum()) > best_inliers:
                best, best_inliers = step, int(inliers.sum())
        if best is None:
            return [], 0.0
        warps.append(warps[-1] @ np.vstack([best, [0.0, 0.0, 1.0]]))
        m = warps[-1]
        shift = max(shift, float(np.abs(frame_corners @ m[:2, :2].T + m[:2, 2] - frame_corners).max()))
    return warps, shift


def _fixed_layer_evidence(greys: Sequence[np.ndarray], warps: Sequence[np.ndarray], ref: int,
                          inside: np.ndarray, p: PersistenceParams) -> np.ndarray:
    """Evidence in [0, 1] (NaN where fewer than two other frames see the place) that frame
    `ref` carries, at each pixel, a layer that does not move with the content.

    Every other frame, warped onto `ref` by the camera's motion, predicts `ref`'s content. At an
    overlay's pixels the prediction shows the content under it (the overlay moved away with the
    frame), so the residual is ``opacity * (content - overlay colour)``: the same sign and
    about the same size from every other frame. Content residuals are near zero; a moving
    overlay's ghosts and an independently moving object's fall in different places from
    different frames. Evidence is the smallest same-signed residual, mapped from
    `residual_floor` .. `residual_floor + residual_span` grey levels to 0 .. 1. A prediction
    counts only where it comes from inside the picture (`inside`, bool): letterbox and
    pillarbox bars are fixed too, and a zoom would carry their edge into the content."""
    h, w = greys[ref].shape
    onto_ref = np.linalg.inv(warps[ref])
    picture = inside.astype(np.float32)
    residuals, seen = [], []
    for i, grey in enumerate(greys):
        if i == ref:
            continue
        m = (onto_ref @ warps[i])[:2]
        residuals.append(cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                         - greys[ref])
        seen.append(cv2.warpAffine(picture, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) > 0.999)
    d, valid = np.stack(residuals), np.stack(seen)
    above = np.where(valid, d, np.inf).min(axis=0)  # all residuals at least this (same sign: > 0)
    below = np.where(valid, -d, np.inf).min(axis=0)
    smallest = np.maximum(np.where(np.isfinite(above), above, 0.0), np.where(np.isfinite(below), below, 0.0))
    # The camera's motion is measured to a fraction of a pixel, and at a strong edge such an
    # error leaves a residual of one sign too: the floor rises with the edge's slope.
    ref_grey = greys[ref]
    slope = np.sqrt(cv2.Sobel(ref_grey, cv2.CV_32F, 1, 0, ksize=3) ** 2
                    + cv2.Sobel(ref_grey, cv2.CV_32F, 0, 1, ksize=3) ** 2) / 8.0  # grey levels per px
    floor = p.residual_floor + p.registration_error * slope
    evidence = np.clip((smallest - floor) / p.residual_span, 0.0, 1.0)
    evidence[valid.sum(axis=0) < 2] = np.nan
    return evidence


def _fixed_while_content_moves(greys: Sequence[np.ndarray], where: np.ndarray, inside: np.ndarray,
                               p: PersistenceParams) -> tuple[list[tuple[float, list[int]]], np.ndarray] | None:
    """Blobs of a mark on this clip alone (a stock-footage mark, a channel bug on one shot),
    which the video's other clips cannot reveal: a layer that stays at fixed pixels while the
    camera moves the content under it (`_fixed_layer_evidence`), with the first and the last
    frame as reference (each sees the corners the other loses in a pan or zoom; where both see
    a place, both must agree). `where` is where a mark may be; `inside` the picture without
    its bars. Returns the blobs and the evidence map (everywhere, not only in `where`: a
    detector's box may reach past it), or None when the camera barely moves (or its motion
    cannot be measured): then the clip alone proves nothing. `greys`: the clip's grey frames."""
    warps, shift = _camera_warps(greys, ~where)
    if not warps or shift < p.min_shift * min(greys[0].shape) / 256.0:
        return None
    # A zoom magnifies some frames onto others, and a magnified prediction lacks the fine detail
    # of the frame it predicts: every edge would leave a residual of one sign. All frames are
    # smoothed to the coarsest detail any prediction has.
    scales = [float(np.sqrt(abs(np.linalg.det(m[:2, :2])))) for m in warps]
    sigma = max(1.0, max(scales) / min(scales))
    smooth = [cv2.GaussianBlur(g.astype(np.float32), (0, 0), sigma) for g in greys]
    evidence = np.fmin(_fixed_layer_evidence(smooth, warps, 0, inside, p),
                       _fixed_layer_evidence(smooth, warps, len(smooth) - 1, inside, p))
    return _blobs(np.nan_to_num(evidence, nan=0.0) * where, p), evidence


def join_distance(h: int, w: int) -> int:
    """Boxes this close (px) in an h x w frame are one mark: 3 % of the short side."""
    return max(2, round(min(h, w) * 0.03))


def merged_boxes(boxes: list[list[float]], gap: float) -> list[list[float]]:
    """Boxes that overlap or lie within `gap` px of each other, or that are words of one line
    (level, at most 1.5 heights apart), joined into their union, in the order of their first
    member: one box per mark, though the checks may find its logo and its words apart, or find
    it twice."""
    out = [list(b) for b in boxes]
    joined = True
    while joined:
        joined = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                near = a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]
                # Words of one line of text: level with each other, a few letters apart.
                tall = max(a[3] - a[1], b[3] - b[1])
                level = min(a[3], b[3]) - max(a[1], b[1]) >= 0.5 * min(a[3] - a[1], b[3] - b[1])
                line = level and max(a[0], b[0]) - min(a[2], b[2]) <= 1.5 * tall
                if near or line:
                    out[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del out[j]
                    joined = True
                    break
            if joined:
                break
    return out


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
    # Grey once: both checks below work on the grey frames.
    usable = {k: [as_gray(f) for f in v] for k, v in clips_frames.items() if len(v) >= 2}
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
    inside = _content_mask(h, w, content_box)
    where = _band_mask(h, w, p) & inside
    # A clip judged alone only looks in the corners, where channel bugs and stock marks sit:
    # subtitles and lower thirds are fixed overlays too, and the text stage measures those.
    corners = np.zeros((h, w), bool)
    bh, bw = max(1, int(round(h * p.band))), max(1, int(round(w * p.band)))
    for rows in (slice(0, bh), slice(h - bh, h)):
        for cols in (slice(0, bw), slice(w - bw, w)):
            corners[rows, cols] = True
    join_px = join_distance(h, w)
    for k, own in own_masks.items():
        alone = _fixed_while_content_moves(usable[k], where & corners, inside, p)
        ref = own & centre
        # The content's own persistence in the pool; too few steady central edges to measure it
        # means a flat centre, where an overlay in the corners is judged against nothing moving.
        baseline = float(pool[ref].mean()) if ref.sum() >= 0.002 * h * w else float(pool[centre].mean())
        gap = 1.0 - baseline
        blobs = []
        if gap >= p.min_baseline_gap:
            evidence = np.clip((pool - baseline) / gap, 0.0, 1.0) * (own & where)
            blobs = _blobs(evidence, p)
        blobs = sorted(blobs + (alone[0] if alone else []), key=lambda t: -t[0])
        score = blobs[0][0] if blobs else 0.0
        boxes = merged_boxes([box for s, box in blobs if s >= p.box_threshold], join_px)
        results[k] = PersistenceResult(float(np.clip(score, 0.0, 1.0)), boxes, baseline, moved=alone is not None,
                                       evidence=alone[1] if alone else None,
                                       unconfirmed_weight=p.unconfirmed_weight, blobs=blobs)
    return results
