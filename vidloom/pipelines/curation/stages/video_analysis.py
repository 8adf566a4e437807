"""VideoAnalysisStage: the one place a source video is decoded.

In a single pass it converts each frame once to full-size BGR (FFmpeg's conversion without
scaling, the frame PySceneDetect itself sees), feeds the shot detector, ranks every frame's
sharpness on the detector's small frame (for the clip's clearest start frame), and only for
the few frames per second that need it shrinks the frame: motion sample pairs straight to the
small grey frames optical flow runs on, the kept RGB frames (on which clarity is measured) to
analysis size. When the pass ends, shots become clip ranges and each clip gets its signals
from those compact records. Only the handful of frames later stages need leave this stage;
the decoded video never does.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

import pyarrow as pa

from vidloom.pipelines.curation.rows import dumps, evenly, loads, pack_frames
from vidloom.pipelines.curation.sections import DecodeConfig, SignalsConfig, SplitConfig
from vidloom.pipelines.curation.shot_split import ClipRange, ShotDetector, clip_ranges
from vidloom.pipelines.curation.signals.border import detect_border_box
from vidloom.pipelines.curation.signals.camera_motion import classify_camera_motion
from vidloom.pipelines.curation.signals.motion import GlobalMotion, MotionEstimator, to_motion_gray
from vidloom.pipelines.curation.signals.clarity import clarity, clip_clarity
from vidloom.pipelines.curation.signals.sharpness import best_start_frame, laplacian_variance
from vidloom.pipelines.stage import Row, Stage, StageResources
from vidloom.platform.ids import clip_id
from vidloom.platform.media import VideoReader, analysis_size, jpeg_bytes
from vidloom.platform.metrics import StageMetrics


# Scaler for the analysis-size frames (decode.interpolation names FFmpeg's scalers).
_CV2_INTERPOLATION = {
    "AREA": cv2.INTER_AREA, "BILINEAR": cv2.INTER_LINEAR, "FAST_BILINEAR": cv2.INTER_LINEAR, "BICUBIC": cv2.INTER_CUBIC,
}


def _stride(fps: float, per_second: float) -> int:
    return max(1, int(round((fps if fps > 0 else 25.0) / per_second)))


def _scale_box(box, analysis_shape, width: int, height: int) -> list[int]:
    h_a, w_a = analysis_shape[:2]
    sx, sy = width / w_a, height / h_a
    x0, y0, x1, y1 = box
    return [
        max(0, int(round(x0 * sx))), max(0, int(round(y0 * sy))),
        min(width, int(round(x1 * sx))), min(height, int(round(y1 * sy))),
    ]




class _Pass:
    """Everything recorded during the single decode pass of one video."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sharpness: list[float] = []  # per frame, on the detector frame: ranks start frames
        self.clarity: list[tuple[int, float]] = []  # (frame, clarity) of the kept frames
        self.motion: list[tuple[int, GlobalMotion, float]] = []  # (frame, motion, mean abs diff)
        self.kept: list[tuple[int, np.ndarray]] = []  # (frame, RGB at analysis size)


class VideoAnalysisStage(Stage):
    name = "video_analysis"
    config_sections = {"decode": DecodeConfig, "split": SplitConfig, "signals": SignalsConfig}
    # The clip's identity, its range and every part-1 signal (docs/manifest.md).
    columns = {
        "clip_id": pa.string(), "video_id": pa.string(), "source": pa.string(),
        "clip_index": pa.int32(), "shot_index": pa.int32(), "start_frame": pa.int64(),
        "end_frame": pa.int64(), "start_s": pa.float64(), "end_s": pa.float64(),
        "duration_s": pa.float64(), "fps": pa.float64(), "width": pa.int32(), "height": pa.int32(),
        "num_frames": pa.int64(), "status": pa.string(), "error": pa.string(),
        "sharpness": pa.float64(), "best_start_frame": pa.int64(), "motion": pa.float64(),
        "camera_motion": pa.string(), "camera_motion_confidence": pa.float64(),
        "frame_diff": pa.float64(), "border_box": pa.list_(pa.int32()),
    }
    # Decoding dominates, so this stage gets most of a CPU per actor and scales out (measured
    # resident size ~0.6 GB per actor).
    default_resources = StageResources(num_cpus=0.8, min_workers=2, max_workers=8)

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        from vidloom.pipelines.curation.config import CurationConfig  # built from the stages

        self.config = CurationConfig.model_validate(config)

    def setup(self) -> None:
        self.motion_estimator = MotionEstimator()
        self.metrics = StageMetrics(self.name)

    # -- the single pass --------------------------------------------------------------
    def _decode_pass(self, reader: VideoReader, detector: ShotDetector) -> _Pass:
        cfg = self.config
        fps = reader.info.fps
        motion_every = _stride(fps, cfg.signals.motion_samples_per_s)
        keep_every = _stride(fps, cfg.signals.frames_per_s)
        rec = _Pass()
        info = reader.info
        size = analysis_size(info.width, info.height, cfg.decode.analysis_short_side)
        interpolation = _CV2_INTERPOLATION[cfg.decode.interpolation]
        pending: tuple[int, np.ndarray] | None = None
        # Full display size in one conversion without scaling: OpenCV's resize of the result is
        # cheaper than a scaling swscale pass, and the detector needs these exact pixels anyway.
        for frame in reader.frames(size=(info.width, info.height), fmt="bgr24"):
            i, bgr = frame.index, frame.image
            rec.times.append(frame.time_s)
            small = detector.push(i, bgr)
            rec.sharpness.append(laplacian_variance(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)))
            motion_pair_end = pending is not None and pending[0] == i - 1
            keep, motion_start = i % keep_every == 0, i % motion_every == 0
            if motion_pair_end or motion_start:
                # Flow frames come straight from the full-size frame (grey, then block means):
                # a third of all frames are flow frames, and the analysis-size shrink they used
                # to go through is the costliest resize of the pass.
                motion_gray = to_motion_gray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cfg.signals.motion_short_side)
                if motion_pair_end:
                    diff = float(cv2.absdiff(pending[1], motion_gray).mean())
                    rec.motion.append((pending[0], self.motion_estimator(pending[1], motion_gray), diff))
                    pending = None
                if motion_start:
                    pending = (i, motion_gray)
            if keep:
                scaled = bgr if (bgr.shape[1], bgr.shape[0]) == size else cv2.resize(bgr, size, interpolation=interpolation)
                rec.kept.append((i, cv2.cvtColor(scaled, cv2.COLOR_BGR2RGB)))
                rec.clarity.append((i, clarity(cv2.cvtColor(scaled, cv2.COLOR_BGR2GRAY))))
        return rec

    # -- per clip ---------------------------------------------------------------------
    def _clip_record(self, row: Row, info: dict, rng: ClipRange, index: int, rec: _Pass) -> dict[str, Any]:
        cfg = self.config
        a, b = rng.start_frame, rng.end_frame
        window = max(1, int(round(cfg.signals.best_start_window_s * (info["fps"] or 25.0))))
        samples = [(m, d) for f, m, d in rec.motion if a <= f and f + 1 < b]
        motions = [m for m, _ in samples]
        label, confidence = classify_camera_motion(motions) if motions else ("static shot", 0.0)
        kept = [img for f, img in rec.kept if a <= f < b]
        border = detect_border_box(np.stack(kept)) if kept else None
        if border is not None:  # analysis pixels -> display pixels, as the manifest promises
            border = _scale_box(border, kept[0].shape, info["width"], info["height"])
        return {
            "clip_id": clip_id(row["source"], a, b),
            "video_id": row["video_id"],
            "source": row["source"],
            "clip_index": index,
            "shot_index": rng.shot_index,
            "start_frame": a,
            "end_frame": b,
            "start_s": round(rng.start_s, 6),
            "end_s": round(rng.end_s, 6),
            "duration_s": round(rng.duration_s, 6),
            "fps": info["fps"],
            "width": info["width"],
            "height": info["height"],
            "num_frames": b - a,
            "status": "too_short" if rng.too_short else "ok",
            "error": f"shorter than split.min_clip_s={cfg.split.min_clip_s}" if rng.too_short else "",
            "sharpness": clip_clarity([c for f, c in rec.clarity if a <= f < b]),
            "best_start_frame": int(best_start_frame(np.asarray(rec.sharpness), a, window, b)),
            "motion": float(np.mean([m.magnitude for m in motions])) if motions else 0.0,
            "camera_motion": label,
            "camera_motion_confidence": float(confidence),
            "frame_diff": float(np.mean([d for _, d in samples])) if samples else 0.0,
            "border_box": border,
        }

    def _shipped_frames(self, clips: list[dict], rec: _Pass) -> tuple[list[np.ndarray], list[int], list[bytes]]:
        """Evenly spaced kept frames of each ok clip for the later stages (text, embeddings,
        watermark, captions), and one JPEG thumbnail per clip for the report."""
        want = self.config.signals.frames_per_clip
        frames, owners, thumbs = [], [], []
        for k, clip in enumerate(clips):
            inside = [img for f, img in rec.kept if clip["start_frame"] <= f < clip["end_frame"]]
            thumb = inside[len(inside) // 2] if inside else None
            thumbs.append(jpeg_bytes(thumb) if thumb is not None else b"")
            if clip["status"] != "ok":
                continue
            for img in evenly(inside, want):
                frames.append(img)
                owners.append(k)
        return frames, owners, thumbs

    def process_row(self, row: Row) -> Row:
        cfg = self.config
        with VideoReader(row["source"], threads=cfg.decode.threads) as reader:
            header = reader.info
            detector = ShotDetector(cfg.split, header.fps)
            rec = self._decode_pass(reader, detector)
        cuts = detector.finish()
        n = len(rec.times)
        fps = header.fps if header.fps > 0 else (n / rec.times[-1] if n > 1 and rec.times[-1] > 0 else 0.0)
        duration = (rec.times[-1] + (1.0 / fps if fps else 0.0)) if n else 0.0
        info = {
            "video_id": row["video_id"],
            "source": row["source"],
            "status": "ok",
            "error": "",
            "duration_s": round(duration, 6),
            "fps": round(fps, 6),
            "width": header.width,
            "height": header.height,
            "codec": header.codec,
            "num_frames": n,
            "scene_cuts": cuts,
            "container": header.container,
            "start_time_s": round(header.start_time_s, 6),
            "rotation": header.rotation,
            "sample_aspect_ratio": round(header.sample_aspect_ratio, 6),
            "num_clips": 0,
        }
        clips: list[dict] = []
        if duration < cfg.split.min_clip_s:
            info["status"] = "too_short"
            info["error"] = f"video is {duration:.2f} s, shorter than split.min_clip_s={cfg.split.min_clip_s}"
        else:
            ranges = clip_ranges(cuts, rec.times, fps, cfg.split)
            clips = [self._clip_record(row, info, r, k, rec) for k, r in enumerate(ranges)]
        info["num_clips"] = sum(c["status"] == "ok" for c in clips)
        frames, owners, thumbs = self._shipped_frames(clips, rec)
        self.metrics.video_seconds(duration)
        for status in ("ok", "too_short"):
            self.metrics.clips(sum(c["status"] == status for c in clips), status)
        return {
            **row,
            "status": info["status"],
            "error": info["error"],
            "video_json": dumps(info),
            "clips_json": dumps(clips),
            "thumbs": thumbs,
            **pack_frames(frames, owners),
        }

    def progress_units(self, row: Row) -> int:
        return sum(1 for clip in loads(row["clips_json"]) if clip["status"] == "ok")

    def error_row(self, row: Row, exc: BaseException) -> Row:
        out = super().error_row(row, exc)
        # A failed video still gets a full record: the reason, and nothing made up.
        out["error"] = str(exc)[:500] if str(exc) else out["error"]
        info = {col: None for col in ("duration_s", "fps", "width", "height", "codec", "num_frames",
                                      "container", "start_time_s", "rotation", "sample_aspect_ratio")}
        info.update({"video_id": row["video_id"], "source": row["source"], "status": "error",
                     "error": out["error"], "scene_cuts": [], "num_clips": 0})
        out["video_json"] = dumps(info)
        out["clips_json"] = "[]"
        out.update(pack_frames([], []))
        return out

