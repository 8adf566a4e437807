"""The YOLO watermark detector: offline Ultralytics set-up, loading, and per-clip scoring.

Ultralytics fetches things at run time unless told not to: a font (Arial.ttf) for plots,
pretrained weights for its AMP check, missing pip packages (auto-install), and it sends usage
events. `offline_ultralytics()` turns all of that off and must run before the first
``import ultralytics`` in a process (its settings directory and online state are fixed at
import); training and inference in vidloom always go through it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from vidloom.platform.weights import cache_dir, file_digest



def offline_ultralytics(settings_dir: str | Path | None = None):
    """Import Ultralytics with downloads, auto-installs and telemetry off; returns the module."""
    os.environ["YOLO_OFFLINE"] = "1"  # is_online() -> False: no DNS probe, no hub, no events
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install a missing export dependency
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(settings_dir or cache_dir("ultralytics")))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    import ultralytics
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})
    return ultralytics


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class YoloWatermarkDetector:
    """A trained one-class (``watermark``) Ultralytics YOLO model run on RGB frames."""

    def __init__(self, weights: str | Path, device: str = "cpu", imgsz: int = 320,
                 conf: float = 0.25, threads: int = 1):
        offline_ultralytics()
        import torch
        from ultralytics import YOLO

        if str(device) == "cpu":
            torch.set_num_threads(threads)
        self.weights = Path(weights)
        self.hash = file_digest(self.weights)
        self.model = YOLO(str(self.weights), task="detect")
        self.device, self.imgsz, self.conf = str(device), int(imgsz), float(conf)

    @property
    def backend(self) -> str:
        return f"yolo:{self.hash}"

    def detect(self, frames: Sequence[np.ndarray], conf: float | None = None) -> list[list[tuple[float, list[float]]]]:
        """Per frame, (confidence, [x0, y0, x1, y1] in that frame's pixels) of each detection."""
        if not frames:
            return []
        bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]  # Ultralytics reads arrays as BGR
        results = self.model.predict(bgr, imgsz=self.imgsz, conf=self.conf if conf is None else conf,
                                     device=self.device, verbose=False)
        out = []
        for r in results:
            boxes = r.boxes
            confs = boxes.conf.cpu().numpy().tolist() if len(boxes) else []
            xyxy = boxes.xyxy.cpu().numpy().tolist() if len(boxes) else []
            out.append(list(zip(confs, xyxy)))
        return out

    def score_clip(self, frames: Sequence[np.ndarray]) -> tuple[float, list[list[float]]]:
        """Clip score and boxes: a watermark is on every frame, so both need agreement.

        The score is the mean over frames of each frame's best confidence (a detection in one
        frame only is diluted); boxes are detections that recur (IoU >= 0.5) in at least half the
        frames, averaged over those frames.
        """
        per_frame = self.detect(frames, conf=min(self.conf, 0.05))
        if not per_frame:
            return 0.0, []
        score = float(np.mean([max((c for c, _ in dets), default=0.0) for dets in per_frame]))
        tracks: list[list[list[float]]] = []
        for dets in per_frame:
            for c, box in dets:
                if c < self.conf:
                    continue
                for track in tracks:
                    if _iou(np.mean(track, axis=0), box) >= 0.5:
                        track.append(box)
                        break
                else:
                    tracks.append([box])
        need = max(1, (len(per_frame) + 1) // 2)
        boxes = [np.mean(t, axis=0).tolist() for t in tracks if len(t) >= need]
        return score, boxes
