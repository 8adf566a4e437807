"""Shot boundaries and clip ranges.

PySceneDetect's detectors are fed frame by frame from the pipeline's single decode (no second
pass over the file), at the detector width PySceneDetect itself uses by default (256 px), so
the cuts match its own `detect()`. Cuts are frame indices in decode order; clip times come
from presentation timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

from vidloom.pipelines.curation.config import SplitConfig


class ShotDetector:
    """Streams RGB frames into a PySceneDetect detector and collects the cut frames."""

    def __init__(self, config: SplitConfig, fps: float):
        self.config = config
        self.fps = fps if fps and fps > 0 else 25.0
        if config.detector == "adaptive":
            self._detector = AdaptiveDetector(
                adaptive_threshold=config.adaptive_threshold,
                min_scene_len=config.min_scene_frames,
                min_content_val=config.min_content_val,
            )
        else:
            self._detector = ContentDetector(threshold=config.threshold, min_scene_len=config.min_scene_frames)
        self._cuts: list[int] = []
        self._size: tuple[int, int] | None = None
        self._last_index = -1

    def _detector_frame(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self._size is None:
            target_w = min(w, self.config.detect_width)
            self._size = (target_w, max(1, round(h * target_w / w)))
        if (w, h) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # PySceneDetect works on BGR

    def push(self, index: int, rgb: np.ndarray) -> None:
        timecode = FrameTimecode(index, fps=self.fps)
        for cut in self._detector.process_frame(timecode, self._detector_frame(rgb)):
            self._cuts.append(int(cut.frame_num))
        self._last_index = index

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
