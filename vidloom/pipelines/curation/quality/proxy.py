"""The offline technical-quality proxy (``backend: proxy``, recorded as ``proxy-v1``).

No model and no pixels: it maps the signals part 1 already stored on each clip to [0, 1] as a
product of five factors, each in (0, 1] and each meaning one thing::

    quality = sharp * still * steady * text_free * picture

* ``sharp``: the clip's clarity (``sharpness``, docs/clarity.md) through a logistic: 0.05 at
  the sample corpus's blurred shots, 0.95 at its clean shots' median. Clarity is already
  independent of brightness, contrast and letterbox bars (it looks only at the strongest
  edges), so it needs no correction.
* ``still``: the same logistic on log frame difference: 0.05 at the corpus's frozen shot, 0.95
  at its least-changing clean moving shot; a static shot whose only change is sensor noise
  lands in between (near-static content is worth less for video training, frozen content
  nearly nothing).
* ``steady``: only for clips labelled ``handheld shot``: ``1 - 0.5 * confidence *
  min(1, motion / handheld_motion)``: jitter as strong as the corpus's handheld shots, with a
  confident label, costs half.
* ``text_free``: ``1 - text_ratio``, the share of the frame not covered by text.
* ``picture``: the share of the frame inside the letterbox/pillarbox bars (``border_box``).

Blur and freezing ruin the pixels, so their factors can reach ~0; text and bars can be cropped
or masked downstream, so they only scale the score by the area they take. The calibration
numbers and what they were measured on are in docs/quality.md; tests/test_quality.py re-measures
them on the rendered corpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

PROXY_BACKEND = "proxy-v1"

# A logistic through two anchors: `low` maps to ANCHOR_LOW, `high` to ANCHOR_HIGH.
ANCHOR_LOW, ANCHOR_HIGH = 0.05, 0.95


@dataclass(frozen=True)
class ProxyCalibration:
    """Reference values of the proxy, measured on the sample corpus (seed 0, default config).

    Sharpness values are clarities (0-1, docs/clarity.md) at a 256 px short side; frame
    differences are mean absolute grey-level differences at the motion size; motion is the
    fraction of the frame diagonal per frame.
    """

    # Mean clarity of the corpus's blurred shots (Gaussian sigma 4 px at 360 lines): 0.09, 0.08.
    sharpness_blurred: float = 0.085
    # Median clarity of the corpus's defect-free shots.
    sharpness_clean: float = 0.45
    # Frame difference of the corpus's frozen shot (one frame repeated, re-encoded).
    frame_diff_frozen: float = 0.04
    # Smallest frame difference among the corpus's 18 defect-free moving shots.
    frame_diff_moving: float = 1.61
    # Median motion of the corpus's 7 handheld shots (jitter sd ~1.1 % of the long side/frame).
    handheld_motion: float = 0.0028
    # Largest share of the score a maximal, confidently labelled shake removes.
    shake_weight: float = 0.5


CALIBRATION = ProxyCalibration()


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _logistic(value: float, low: float, high: float) -> float:
    """Logistic in `value` with ANCHOR_LOW at `low` and ANCHOR_HIGH at `high`."""
    span = _logit(ANCHOR_HIGH) - _logit(ANCHOR_LOW)
    z = _logit(ANCHOR_LOW) + span * (value - low) / (high - low)
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _log_logistic(value: float, low: float, high: float) -> float:
    """Logistic in log(value) with ANCHOR_LOW at `low` and ANCHOR_HIGH at `high`."""
    if value <= 0.0:
        return 0.0
    span = _logit(ANCHOR_HIGH) - _logit(ANCHOR_LOW)
    z = _logit(ANCHOR_LOW) + span * (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    if z < -60.0:  # exp overflow guard; the score is 0 to double precision anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def picture_fraction(clip: Mapping[str, Any]) -> float:
    """Share of the frame inside the letterbox/pillarbox bars (1.0 when there are none)."""
    box = clip.get("border_box")
    width, height = int(clip["width"]), int(clip["height"])
    if box is None or width <= 0 or height <= 0:
        return 1.0
    x0, y0, x1, y1 = (int(v) for v in box)
    area = max(0, x1 - x0) * max(0, y1 - y0)
    return min(1.0, max(0.0, area / float(width * height)))


@dataclass(frozen=True)
class ProxyFactors:
    """The five factors of the proxy for one clip; `quality` is their product."""

    sharp: float
    still: float
    steady: float
    text_free: float
    picture: float

    @property
    def quality(self) -> float:
        return self.sharp * self.still * self.steady * self.text_free * self.picture


def proxy_factors(
    clip: Mapping[str, Any], analysis_short_side: int = 256, calibration: ProxyCalibration = CALIBRATION
) -> ProxyFactors:
    """The proxy's factors for one clip record (a row of clips.parquet after text detection).

    `analysis_short_side` is the run's ``decode.analysis_short_side``; clarity needs no
    correction for it, the argument stays for callers that pass it.
    """
    missing = [k for k in ("sharpness", "frame_diff", "motion", "width", "height") if clip.get(k) is None]
    if missing:
        raise ValueError(f"clip lacks part-1 signals {missing}: the quality stage runs after video analysis")
    if clip.get("text_ratio") is None:
        raise ValueError("clip has no text_ratio: the quality stage must run after the text-detection stage")
    cal = calibration
    picture = picture_fraction(clip)
    sharp = _logistic(float(clip["sharpness"]), cal.sharpness_blurred, cal.sharpness_clean)
    still = _log_logistic(float(clip["frame_diff"]), cal.frame_diff_frozen, cal.frame_diff_moving)
    steady = 1.0
    if clip.get("camera_motion") == "handheld shot":
        confidence = min(1.0, max(0.0, float(clip.get("camera_motion_confidence") or 0.0)))
        shake = min(1.0, float(clip["motion"]) / cal.handheld_motion)
        steady = 1.0 - cal.shake_weight * confidence * shake
    text_free = 1.0 - min(1.0, max(0.0, float(clip["text_ratio"])))
    return ProxyFactors(sharp=sharp, still=still, steady=steady, text_free=text_free, picture=picture)


def proxy_quality(
    clip: Mapping[str, Any], analysis_short_side: int = 256, calibration: ProxyCalibration = CALIBRATION
) -> float:
    """Technical-quality proxy of one clip in [0, 1] (higher is better); deterministic."""
    q = proxy_factors(clip, analysis_short_side, calibration).quality
    return float(min(1.0, max(0.0, q)))
