"""Camera-motion label of a clip from its per-sample `GlobalMotion` records.

Label conventions (camera verb → what the content does on screen, image y grows downward):

* pan left  = camera turns left  → content moves right (tx > 0); pan right → tx < 0.
* tilt up   = camera turns up    → content moves down  (ty > 0); tilt down → ty < 0.
* zoom in   → content grows (scale > 0); zoom out → scale < 0.
* around left  = content turns clockwise on screen (rotation > 0), i.e. the camera rolls /
  orbits to its left; around right = counter-clockwise (rotation < 0).

A 2-D similarity fit of the flow cannot tell a vertical camera translation ("pan up/down",
a crane move) from a vertical rotation ("tilt up/down"), nor a roll from an orbit. So vertical
translation is always labelled "tilt up"/"tilt down", horizontal translation "pan left/right",
and in-plane rotation "around left/right". "pan up", "pan down", "tilt left" and "tilt right"
are never emitted here; they stay in `CAMERA_MOTIONS` because captions written by a VLM use
the same vocabulary.

Decision (thresholds below; every motion component is first divided by its "moving"
threshold, so 1.0 means "just noticeably moving" for all of them):

1. static shot: every component's RMS over the samples is below 1 and the fit residual is
   small. A subject moving in front of a still camera is rejected by the robust fit, so it
   stays "static shot".
2. handheld shot: the median residual is large (the frame does not move rigidly), or the
   strongest component has no consistent drift: its median is below 1, or under
   `HANDHELD_DRIFT_RATIO` of its RMS (jitter dominates), or fewer than
   `MIN_SIGN_AGREEMENT` of the samples move in the drift direction (the sign flips).
3. otherwise the component with the largest normalised median drift names the label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidloom.pipelines.curation.signals.motion import GlobalMotion
from vidloom.platform.caption_schema import CAMERA_MOVEMENTS

__all__ = ["CAMERA_MOTIONS", "classify_camera_motion"]

# The 14 labels of the report's camera-movement taxonomy are defined once, with the caption
# schema they belong to.
CAMERA_MOTIONS: tuple[str, ...] = CAMERA_MOVEMENTS

#: Translation per frame (fraction of frame width / height) from which content is "moving":
#: 0.0015 · 30 fps ≈ 4.5 % of the frame per second, or ~3 px per frame on a 1080p frame.
MOVE_TRANSLATION = 0.0015
#: Zoom speed (per-frame scale − 1) from which the camera is "zooming": ≈ 4.5 %/s at 30 fps.
MOVE_SCALE = 0.0015
#: In-plane rotation (rad per frame) from which the camera is "rotating": ≈ 2.6 °/s at 30 fps.
MOVE_ROTATION = 0.0015
#: Median fit residual (fraction of frame diagonal per frame) above which the frame does not
#: move as one rigid image: strong shake, rolling-shutter wobble, heavy parallax.
HANDHELD_RESIDUAL = 0.01
#: A drift is "consistent" only when its median is at least this fraction of its RMS
#: (a steady pan has ratio ~1, zero-mean shake ~0; with ~10 samples, chance alone gives
#: shake a ratio above 0.5 about one time in six, above 0.7 a few times in a hundred).
HANDHELD_DRIFT_RATIO = 0.7
#: ...and at least this fraction of the samples move in the drift direction.
MIN_SIGN_AGREEMENT = 0.8

_COMPONENTS = (
    ("tx", MOVE_TRANSLATION, "pan left", "pan right"),
    ("ty", MOVE_TRANSLATION, "tilt up", "tilt down"),
    ("scale", MOVE_SCALE, "zoom in", "zoom out"),
    ("rotation", MOVE_ROTATION, "around left", "around right"),
)


def classify_camera_motion(samples: Sequence[GlobalMotion]) -> tuple[str, float]:
    """Camera-motion label of a clip and a confidence in [0, 1].

    `samples` are the per-frame `GlobalMotion` records of the clip's sample points (each is
    the motion between a sampled frame and the next frame, so speeds are per frame). With no
    samples (a clip too short to sample) the answer is ("static shot", 0.0): no evidence.
    """
    if len(samples) == 0:
        return "static shot", 0.0
    norm = np.array(
        [[getattr(s, name) / thr for name, thr, _, _ in _COMPONENTS] for s in samples],
        dtype=np.float64,
    )  # samples × components, 1.0 = just moving
    rms = np.sqrt(np.mean(norm**2, axis=0))
    drift = np.median(norm, axis=0)
    residual = float(np.median([s.residual for s in samples]))

    if residual > HANDHELD_RESIDUAL:
        return "handheld shot", float(min(1.0, residual / (2 * HANDHELD_RESIDUAL) + 0.5))

    peak = float(rms.max())
    if peak < 1.0:
        # Confidence falls from 1 (perfectly still) to 0 at the moving threshold.
        return "static shot", float(np.clip(1.0 - peak, 0.0, 1.0))

    k = int(np.argmax(np.abs(drift)))
    d = float(drift[k])
    agreement = float(np.mean(np.sign(norm[:, k]) == np.sign(d))) if d != 0 else 0.0
    steadiness = abs(d) / float(rms[k]) if rms[k] > 0 else 0.0
    if abs(d) < 1.0 or steadiness < HANDHELD_DRIFT_RATIO or agreement < MIN_SIGN_AGREEMENT:
        # No consistent drift in the strongest direction: shake. Confident when the motion is
        # clearly above the moving threshold and drift is a small part of it.
        jitter_conf = 1.0 - min(1.0, steadiness)
        return "handheld shot", float(np.clip(jitter_conf * min(1.0, peak / 2.0), 0.0, 1.0))

    _, _, positive, negative = _COMPONENTS[k]
    label = positive if d > 0 else negative
    # Confidence: how steady the drift is, how far above the threshold, and how much the
    # chosen component dominates the others (a zoom with a small pan is still a zoom).
    dominance = abs(d) / float(np.sqrt(np.sum(drift**2)))
    strength = min(1.0, abs(d) / 2.0)
    conf = agreement * min(1.0, steadiness) * dominance * (0.5 + 0.5 * strength)
    return label, float(np.clip(conf, 0.0, 1.0))
