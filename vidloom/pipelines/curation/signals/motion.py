"""Global (camera) motion between two frames: dense flow + robust similarity fit.

At each sample point the decode stage takes a frame and the one right after it, shrinks both
to a small grey image (`to_motion_gray`), computes dense optical flow with OpenCV's DIS
(Kroeger et al. 2016; "ultrafast" preset finished at pyramid level 1, ~1-2 ms at 128 px) and fits

    x' = s·R(θ)·x + t        (x measured from the frame centre, image y pointing down)

to a grid subsample of the flow by iteratively reweighted least squares (Huber, then Tukey
biweight), weighting each point by local image texture because flow in flat regions is
extrapolated rather than measured. Points on independently moving objects get zero weight
once the fit settles, so a static camera filming a moving subject still yields ~zero global
motion; the leftover misfit of the points kept is reported as `residual`.

All returned quantities are normalised per frame and by frame size, so they do not depend on
the analysis resolution: see `GlobalMotion`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from vidloom.platform.media import as_gray

__all__ = ["GlobalMotion", "MotionEstimator", "estimate_global_motion", "to_motion_gray"]

#: Default short side (px) of the grey frames flow is computed on. Camera motion is a
#: low-frequency signal; 128 px keeps DIS around a millisecond per pair.
MOTION_SHORT_SIDE = 128
#: DIS finest pyramid level. The ultrafast preset stops at level 2 (32 px for a 128-px frame),
#: which smooths the small flows of slow zooms/rotations and underestimates them by ~20 %;
#: level 1 brings that to ~5 % for ~1 ms more.
DIS_FINEST_SCALE = 1
#: Target number of grid points the similarity model is fitted to (the flow field is dense;
#: a couple of thousand points pin down 4 parameters with plenty of redundancy).
FIT_POINTS = 1500
#: Fraction of the short side dropped at each edge: flow there is unreliable (content enters
#: or leaves the frame, and DIS patches are clamped at the border).
EDGE_MARGIN = 0.05
#: Gradient magnitude (Sobel, uint8 grey levels per px) at which a point gets half weight.
TEXTURE_HALF_WEIGHT = 12.0
#: Floor (px) of the robust residual scale, so an exact synthetic flow field does not make the
#: Tukey cut-off collapse to zero and drop good points on rounding noise.
MIN_SIGMA_PX = 0.05
#: IRLS iterations: Huber ones converge from the median-translation start, Tukey ones then
#: reject independently moving objects completely.
HUBER_ITERS = 2
TUKEY_ITERS = 4
HUBER_K = 1.345
TUKEY_C = 4.685


@dataclass(frozen=True)
class GlobalMotion:
    """Similarity motion from one frame to the next, normalised by frame size.

    Attributes:
        tx: horizontal translation of the content per frame, fraction of frame width
            (> 0: content moves right).
        ty: vertical translation per frame, fraction of frame height (> 0: content moves
            down, image y grows downward).
        scale: per-frame zoom factor minus 1 (> 0: content grows, i.e. zoom in).
        rotation: in-plane rotation per frame in radians, in image coordinates with y down
            (> 0: content turns clockwise on screen).
        residual: RMS length of the flow left after the fit, over the points the robust fit
            kept, as a fraction of the frame diagonal (parallax, shake blur, non-rigid motion).
        magnitude: mean length of the raw flow, fraction of the frame diagonal (all motion,
            camera and subject).
        inlier_ratio: fraction of the fitted grid points the robust fit kept (low when a
            large part of the frame moves differently from the camera model).
    """

    tx: float = 0.0
    ty: float = 0.0
    scale: float = 0.0
    rotation: float = 0.0
    residual: float = 0.0
    magnitude: float = 0.0
    inlier_ratio: float = 1.0

    def as_dict(self) -> dict[str, float]:
        """Plain dict, for Arrow/Ray Data records."""
        return asdict(self)


def to_motion_gray(frame: np.ndarray, short_side: int = MOTION_SHORT_SIDE) -> np.ndarray:
    """Grey uint8 copy of an RGB (H×W×3) or grey (H×W) frame with its short side shrunk to
    `short_side` px (never enlarged). INTER_AREA averages, which also suppresses the noise and
    compression blocking that would otherwise show up as spurious flow."""
    img = as_gray(frame)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape
    short = min(h, w)
    if short > short_side:
        f = short_side / short
        size = (max(1, round(w * f)), max(1, round(h * f)))
        k = short // short_side
        if k >= 2:
            # Average k×k blocks first: OpenCV's INTER_AREA at a whole factor is a cheap block
            # mean, at a fractional one a weighted table ~4x slower per source pixel, so the
            # large frame goes through the cheap path and only the last < 2x step through the
            # general one (0.76 ms instead of 3.1 ms for a 720p frame). Both are box filters; the
            # k - 1 edge rows/columns dropped to make the blocks whole are inside EDGE_MARGIN.
            img = cv2.resize(img[: h - h % k, : w - w % k], ((w - w % k) // k, (h - h % k) // k),
                             interpolation=cv2.INTER_AREA)
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class MotionEstimator:
    """Reusable global-motion estimator (one DIS instance; not thread-safe, keep one per
    thread/actor).

    Args:
        preset: DIS preset, "ultrafast" (default), "fast" or "medium".
        short_side: frames larger than this are shrunk with `to_motion_gray` first.
        finest_scale: DIS pyramid level the flow is finished at (None keeps the preset's).
    """

    def __init__(
        self,
        preset: str = "ultrafast",
        short_side: int = MOTION_SHORT_SIDE,
        finest_scale: int | None = DIS_FINEST_SCALE,
    ):
        if preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose from {sorted(_PRESETS)}")
        self.preset = preset
        self.short_side = short_side
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
        if finest_scale is not None:
            self._dis.setFinestScale(finest_scale)
        self._grid_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def flow(self, prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
        """Dense flow (H×W×2 float32, px) from `prev_gray` to `next_gray` at motion size."""
        prev = to_motion_gray(prev_gray, self.short_side)
        nxt = to_motion_gray(next_gray, self.short_side)
        if prev.shape != nxt.shape:
            raise ValueError(f"frame shapes differ: {prev.shape} vs {nxt.shape}")
        return self._dis.calc(prev, nxt, None)

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Row/column indices of the fit grid (cached per frame size)."""
        key = (h, w)
        if key not in self._grid_cache:
            margin = max(1, int(round(EDGE_MARGIN * min(h, w))))
            inner_h, inner_w = max(1, h - 2 * margin), max(1, w - 2 * margin)
            step = max(1, int(math.sqrt(inner_h * inner_w / FIT_POINTS)))
            ys = np.arange(margin, h - margin, step) if h > 2 * margin else np.arange(h)
            xs = np.arange(margin, w - margin, step) if w > 2 * margin else np.arange(w)
            gy, gx = np.meshgrid(ys, xs, indexing="ij")
            self._grid_cache[key] = (gy.ravel(), gx.ravel())
        return self._grid_cache[key]

    def __call__(self, prev_gray: np.ndarray, next_gray: np.ndarray) -> GlobalMotion:
        """Global motion from `prev_gray` to `next_gray` (grey or RGB, any size)."""
        prev = to_motion_gray(prev_gray, self.short_side)
        nxt = to_motion_gray(next_gray, self.short_side)
        if prev.shape != nxt.shape:
            raise ValueError(f"frame shapes differ: {prev.shape} vs {nxt.shape}")
        flow = self._dis.calc(prev, nxt, None)
        h, w = prev.shape
        gy, gx = self._grid(h, w)

        gxx = cv2.Sobel(prev, cv2.CV_32F, 1, 0, ksize=3)[gy, gx]
        gyy = cv2.Sobel(prev, cv2.CV_32F, 0, 1, ksize=3)[gy, gx]
        # Sobel (ksize 3) is 8x a unit-step derivative; bring it to grey levels per px.
        g2 = (gxx * gxx + gyy * gyy) / 64.0
        texture = g2 / (g2 + TEXTURE_HALF_WEIGHT**2)
        u = flow[gy, gx, 0].astype(np.float64)
        v = flow[gy, gx, 1].astype(np.float64)
        return fit_similarity(u, v, gx, gy, texture, w, h)


def fit_similarity(
    u: np.ndarray,
    v: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    prior_weight: np.ndarray,
    width: int,
    height: int,
) -> GlobalMotion:
    """Robust fit of x' = s·R·x + t to flow vectors (u, v) at pixel positions (px, py).

    Positions are taken about the frame centre and normalised by the half diagonal, so the
    4 unknowns (s·cosθ − 1, s·sinθ, tx, ty) are on comparable scales.
    """
    diag = math.hypot(width, height)
    half = diag / 2.0
    x = (px.astype(np.float64) - (width - 1) / 2.0) / half
    y = (py.astype(np.float64) - (height - 1) / 2.0) / half
    magnitude = float(np.mean(np.hypot(u, v))) / diag if u.size else 0.0
    prior = np.asarray(prior_weight, dtype=np.float64)
    if u.size < 4 or float(prior.sum()) < 1e-6:
        # Flat frame (black, fade): nothing to measure, report no camera motion.
        return GlobalMotion(magnitude=magnitude, inlier_ratio=0.0)

    un, vn = u / half, v / half
    # Start from the (weighted-)median translation: robust to a moving subject from step one.
    # Robust statistics (start, residual scale) use the textured points only: plain medians
    # (O(n) selection) over them are as good as weighted medians at a fraction of the cost.
    textured = prior >= 0.25
    if textured.sum() < 4:
        textured = prior > 0
    p = np.array([0.0, 0.0, np.median(un[textured]), np.median(vn[textured])])
    min_sigma = MIN_SIGMA_PX / half
    for it in range(HUBER_ITERS + TUKEY_ITERS):
        r = np.hypot(*_residual(p, x, y, un, vn))
        # Median length of a 2-D Gaussian residual is 1.1774·sigma.
        sigma = max(float(np.median(r[textured])) / 1.1774, min_sigma)
        if it < HUBER_ITERS:
            k = HUBER_K * sigma
            robust = np.where(r <= k, 1.0, k / np.maximum(r, 1e-12))
        else:
            c = TUKEY_C * sigma
            robust = np.where(r < c, (1.0 - (r / c) ** 2) ** 2, 0.0)
        weights = prior * robust
        if weights.sum() < 1e-6:
            break
        p = _solve_similarity(x, y, un, vn, weights)

    ru, rv = _residual(p, x, y, un, vn)
    r = np.hypot(ru, rv)
    sigma = max(float(np.median(r[textured])) / 1.1774, min_sigma)
    inliers = r < TUKEY_C * sigma
    residual = float(np.sqrt(np.mean(r[inliers] ** 2))) * half / diag if inliers.any() else 0.0
    a, b = 1.0 + p[0], p[1]
    return GlobalMotion(
        tx=float(p[2] * half / width),
        ty=float(p[3] * half / height),
        scale=float(math.hypot(a, b) - 1.0),
        rotation=float(math.atan2(b, a)),
        residual=residual,
        magnitude=magnitude,
        inlier_ratio=float(inliers.mean()),
    )


def _residual(
    p: np.ndarray, x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flow minus the similarity model p = (s·cosθ − 1, s·sinθ, tx, ty) at points (x, y)."""
    return u - (p[0] * x - p[1] * y + p[2]), v - (p[1] * x + p[0] * y + p[3])


def _solve_similarity(
    x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Weighted least squares for p in u = p0·x − p1·y + p2, v = p1·x + p0·y + p3.

    The 4×4 normal equations have a closed structure, so they are built from a handful of
    weighted sums (microseconds) instead of a 2N×4 dense solve.
    """
    s, sx, sy = w.sum(), w @ x, w @ y
    sr = w @ (x * x + y * y)
    normal = np.array(
        [[sr, 0.0, sx, sy], [0.0, sr, -sy, sx], [sx, -sy, s, 0.0], [sy, sx, 0.0, s]]
    )
    rhs = np.array([w @ (x * u + y * v), w @ (x * v - y * u), w @ u, w @ v])
    try:
        return np.linalg.solve(normal, rhs)
    except np.linalg.LinAlgError:  # all weight on one point: translation only
        return np.array([0.0, 0.0, rhs[2] / s, rhs[3] / s])


_local = threading.local()


def estimate_global_motion(prev_gray: np.ndarray, next_gray: np.ndarray) -> GlobalMotion:
    """Global motion from `prev_gray` to `next_gray` with a per-thread default
    `MotionEstimator` (DIS "ultrafast", 128 px), so repeated calls reuse one DIS object."""
    est = getattr(_local, "estimator", None)
    if est is None:
        est = _local.estimator = MotionEstimator()
    return est(prev_gray, next_gray)
