"""WatermarkStage: channel logos and watermarks on each clip (`watermark_score`, `_boxes`).

Works on the frames the analysis stage shipped with the row (never decodes the source). Two
checks, which fail differently:
- persistence (no weights): a layer that stays at fixed pixels while the content changes, across
  the video's clips and, where the camera moves, within one clip;
- the trained detector (`vidloom train-watermark-detector`; the committed ONNX file by default,
  run by onnxruntime, in int8 unless `precision: fp32`): marks by their look, on the first and the
  last of the clip's frames; a detection counts only where it stays put from one to the other.
`backend: both` scores a clip by the higher of the two, the detector's detections on a clip the
camera moved weighed by how much of a layer that stayed put the persistence check sees inside
their boxes and joined with its blob at the same place, and keeps the boxes of both;
`combined` asks the detector only about clips whose camera did not move (elsewhere persistence
alone); `persistence` and `yolo` run one check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pyarrow as pa

from vidloom.pipelines.curation.rows import clip_frames, dumps, evenly, loads
from vidloom.pipelines.curation.watermark.config import WEIGHTS_SETTING, WatermarkConfig, default_weights
from vidloom.pipelines.curation.watermark.persistence import BACKEND as PERSISTENCE_BACKEND
from vidloom.pipelines.curation.watermark.persistence import join_distance, merged_boxes, persistence_scores
from vidloom.pipelines.curation.stages.clip_scoring import ClipScoringStage
from vidloom.pipelines.stage import Row, StageResources
from vidloom.platform.weights import resolve_weights

DETECTOR_BACKENDS = ("yolo", "both", "combined")  # the backends that load the trained detector


def _to_display(box, scale_x: float, scale_y: float, width: int, height: int) -> list[int]:
    """A frame-pixel box in display pixels (the clip's frames are at analysis size)."""
    x0, y0, x1, y1 = box
    return [
        max(0, int(np.floor(x0 * scale_x))), max(0, int(np.floor(y0 * scale_y))),
        min(width, int(np.ceil(x1 * scale_x))), min(height, int(np.ceil(y1 * scale_y))),
    ]


def watermark_section(config: dict[str, Any]) -> WatermarkConfig:
    """The `watermark` section of a curation config dict (defaults when absent)."""
    return WatermarkConfig.model_validate(config.get("watermark") or {})


class WatermarkStage(ClipScoringStage):
    """Sets `watermark_score` [0, 1], `watermark_boxes` (display px) and `watermark_backend`."""

    name = "watermark"
    config_sections = {"watermark": WatermarkConfig}
    columns = {
        "watermark_score": pa.float64(), "watermark_boxes": pa.list_(pa.list_(pa.float32())),
        "watermark_backend": pa.string(),
    }
    requires = ("video_analysis",)
    default_resources = StageResources(num_cpus=0.05, max_workers=1)  # ~0.2 GB resident

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        if config.watermark.backend not in DETECTOR_BACKENDS:
            return []
        return [(config.watermark.weights or default_weights(), WEIGHTS_SETTING)]

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        self.config = watermark_section(config)
        self.detector = None
        if self.config.backend in DETECTOR_BACKENDS:
            # Resolved at construction: a missing file fails at once, naming the setting.
            self.weights = resolve_weights(self.config.weights or default_weights(), WEIGHTS_SETTING)

    def setup(self) -> None:
        if self.config.backend in DETECTOR_BACKENDS:
            from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector

            c = self.config
            self.detector = YoloWatermarkDetector(self.weights, device=c.device, imgsz=c.imgsz,
                                                  conf=c.conf, threads=c.threads, precision=c.precision)

    def process_row(self, row: Row) -> Row:
        clips = loads(row["clips_json"])
        video = loads(row["video_json"])
        frames = clip_frames(row)
        todo = {k: evenly(frames[k], self.config.frames_per_clip)
                for k, clip in enumerate(clips) if clip["status"] == "ok" and frames.get(k)}
        if not todo:
            return row
        fh, fw = next(iter(todo.values()))[0].shape[:2]
        width, height = int(video.get("width") or fw), int(video.get("height") or fh)
        sx, sy = width / fw, height / fh
        persistence = {}
        if self.config.backend != "yolo":
            persistence = persistence_scores(todo, content_box=self._content_box(clips, todo, sx, sy))
        for k, picked in todo.items():
            score, boxes, backends = 0.0, [], []
            if k in persistence:
                score, boxes = persistence[k].score, list(persistence[k].boxes)
                backends.append(PERSISTENCE_BACKEND)
            ask_detector = self.detector is not None and not (
                self.config.backend == "combined" and k in persistence and persistence[k].moved)
            if ask_detector:
                # `both`: on a clip the camera moved, a detection counts as far as the fixed-layer
                # check sees a layer that stayed put inside its box, and adds to that check's own
                # blob at the same place.
                rescore = persistence[k].detection_score if self.config.backend == "both" and k in persistence else None
                y_score, y_boxes = self.detector.score_clip(evenly(picked, self.config.detector_frames), rescore)
                score, boxes = max(score, y_score), boxes + y_boxes
                backends.append(self.detector.backend)
            clip = clips[k]
            clip["watermark_score"] = round(float(score), 4)
            # One box per mark: both checks may find it, the detector may box it twice.
            boxes = merged_boxes(boxes, join_distance(fh, fw))
            clip["watermark_boxes"] = [_to_display(b, sx, sy, width, height) for b in boxes]
            clip["watermark_backend"] = "+".join(backends)
        return {**row, "clips_json": dumps(clips)}

    @staticmethod
    def _content_box(clips: list[dict], todo: dict, sx: float, sy: float) -> list[int] | None:
        """The clips' letterbox/pillarbox content box (display px) in frame pixels, if any."""
        for k in todo:
            box = clips[k].get("border_box")
            if box:
                return [int(round(box[0] / sx)), int(round(box[1] / sy)),
                        int(round(box[2] / sx)), int(round(box[3] / sy))]
        return None
