"""Shot boundaries and clip ranges.

PySceneDetect's detectors are fed frame by frame from the pipeline's single decode (no second
pass over the file). They see the pixels PySceneDetect's own `detect()` sees: the full-size
BGR frame of FFmpeg's colour conversion (PyAV's `bgr24` equals OpenCV's `VideoCapture`
frames), shrunk by PySceneDetect 0.7.2's downscale factor (longer side / 256) with
`cv2.INTER_LINEAR`, so the content scores, and the cuts, are identical to its own. Cuts are
frame indices in decode order; clip times come from presentation timestamps.

The detectors are PySceneDetect's own classes; only their frame score is computed in fewer
steps (`_OneDifference`): the same sums of absolute differences, taken over the three HSV
channels in one OpenCV call instead of three NumPy passes through int32 copies, so the score
is the same number and a third as costly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

from vidloom.pipelines.curation.sections import SplitConfig


class _OneDifference:
    """PySceneDetect's `ContentDetector._calculate_frame_score` without its per-channel int32
    copies. Each of its components is sum(|channel - previous channel|) / pixels; the sums of
    one `cv2.absdiff` of the HSV frames are those same integers (exact in float64), so every
    score, and every cut, is unchanged. The edge component and a stats manager take
    PySceneDetect's own path."""

    _previous_hsv: np.ndarray | None = None

    def _calculate_frame_score(self, timecode, frame_img: np.ndarray) -> float:
        if self._weights.delta_edges > 0.0 or self.stats_manager is not None:
            return super()._calculate_frame_score(timecode, frame_img)
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        previous, self._previous_hsv = self._previous_hsv, hsv
        if previous is None:
            return 0.0
        pixels = float(hsv.shape[0] * hsv.shape[1])
        hue, sat, lum, _ = cv2.sumElems(cv2.absdiff(hsv, previous))
        components = (hue / pixels, sat / pixels, lum / pixels, 0.0)  # ContentDetector.Components order
        return sum(c * w for c, w in zip(components, self._weights, strict=True)) / sum(
            abs(w) for w in self._weights
        )


class _ContentDetector(_OneDifference, ContentDetector):
    pass


class _AdaptiveDetector(_OneDifference, AdaptiveDetector):
    pass


class ShotDetector:
    """Streams full-size BGR frames into a PySceneDetect detector and collects the cut frames."""

    def __init__(self, config: SplitConfig, fps: float):
        self.config = config
        self.fps = fps if fps and fps > 0 else 25.0
        if config.detector == "adaptive":
            self._detector = _AdaptiveDetector(
                adaptive_threshold=config.adaptive_threshold,
                min_scene_len=config.min_scene_frames,
                min_content_val=config.min_content_val,
            )
        else:
            self._detector = _ContentDetector(threshold=config.threshold, min_scene_len=config.min_scene_frames)
        self._cuts: list[int] = []
        self._size: tuple[int, int] | None = None
        self._last_index = -1

    def detector_frame(self, bgr: np.ndarray) -> np.ndarray:
        """The frame as PySceneDetect's SceneManager hands it to a detector: scaled by
        longer side / `detect_width` (never enlarged), sizes rounded as it rounds them."""
        h, w = bgr.shape[:2]
        if self._size is None:
            longer = max(w, h)
            factor = longer / float(self.config.detect_width) if longer >= self.config.detect_width else 1.0
            self._size = (max(1, round(w / factor)), max(1, round(h / factor))) if factor > 1.0 else (w, h)
        if (w, h) != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_LINEAR)
        return bgr

    def push(self, index: int, bgr: np.ndarray) -> np.ndarray:
        """Feed the full-size BGR frame `index`; returns the detector-size frame it saw (the
        caller reuses it rather than shrinking the frame twice)."""
        small = self.detector_frame(bgr)
        timecode = FrameTimecode(index, fps=self.fps)
        for cut in self._detector.process_frame(timecode, small):
            self._cuts.append(int(cut.frame_num))
        self._last_index = index
        return small

    def finish(self) -> list[int]:
        """All cut frames (a new shot starts there), sorted, excluding frame 0."""
        if self._last_index >= 0:
            end = FrameTimecode(self._last_index, fps=self.fps)
            for cut in self._detector.post_process(end):
                self._cuts.append(int(cut.frame_num))
        return sorted({c for c in self._cuts if 0 < c <= self._last_index})


@dataclass(frozen=True)
class ClipRange:
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float
    shot_index: int
    too_short: bool

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def frame_end_time(times: list[float] | np.ndarray, index: int, fps: float) -> float:
    """Time at which frame `index` stops showing: the next frame's time, or time + 1/fps."""
    if index + 1 < len(times):
        return float(times[index + 1])
    step = 1.0 / fps if fps > 0 else 0.0
    return float(times[index]) + step


def clip_ranges(cuts: list[int], times: list[float] | np.ndarray, fps: float, config: SplitConfig) -> list[ClipRange]:
    """Shots from `cuts`, with shots over `max_clip_s` cut into equal windows.

    Shots under `min_clip_s` are kept as ranges marked `too_short`, so the manifest can say
    what was dropped and why.
    """
    n = len(times)
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    ranges: list[ClipRange] = []
    for shot_index, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if b <= a:
            continue
        start_s, end_s = float(times[a]), frame_end_time(times, b - 1, fps)
        duration = end_s - start_s
        if duration < config.min_clip_s:
            ranges.append(ClipRange(a, b, start_s, end_s, shot_index, True))
            continue
        pieces = max(1, int(np.ceil(duration / config.max_clip_s - 1e-9)))
        # Window edges at equal times, snapped to the first frame shown at or after each edge.
        edges_t = start_s + duration * np.arange(pieces + 1) / pieces
        shot_times = np.asarray(times[a:b], dtype=np.float64)
        edges = [a] + [a + int(np.searchsorted(shot_times, t - 1e-9)) for t in edges_t[1:-1]] + [b]
        for s, e in zip(edges[:-1], edges[1:]):
            if e <= s:
                continue
            ranges.append(ClipRange(s, e, float(times[s]), frame_end_time(times, e - 1, fps), shot_index, False))
    return ranges
