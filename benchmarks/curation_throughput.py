"""Curation throughput: the Ray pipeline against the decode floor and a per-stage baseline.

One process, one machine, measured back to back (issue: curation part 1):

(a) floor       decode the corpus with PyAV and convert every frame to the analysis size in
                the decoder's scaler (VideoReader.frames), in this process with FFmpeg's own
                thread choice (a thread per core and one more: the fastest one process decodes
                here; the pipeline's workers decode with their CPU share); "decode only" (no
                conversion) is printed as a reference too.
(b) pipeline    `run_curation` on a local Ray started once (`init_ray(num_cpus=2)`) before
                the clock starts; everything else (actor start-up, OCR model load, manifest
                writes) is inside the time. Fresh output folder per run.
(c) sequential  what per-stage scripts do (Open-Sora's tools): PySceneDetect `detect()` per
                video (its own OpenCV decode), then one pass per signal that re-opens the
                video, seeks to each clip and decodes it again: Laplacian sharpness, DIS
                optical-flow motion, border detection, then OCR text detection on a few frames
                per clip with the same `TextDetector`. Same libraries, same sizes and sampling,
                no Ray, one process.

All rates are *source frames per second* (frames of the input videos, decoded once in (a)).
Ratios (b)/(a) and (b)/(c) are computed per repetition, from runs made back to back, and the
median over repetitions is reported (the machine is shared; absolute figures are noisy).

Also: the shot split alone (VideoReader at analysis size + ShotDetector) against
PySceneDetect's own `detect()` (default auto-downscale, ContentDetector) on testvideo.mp4.

Part 2 (issue: curation part 2), after the repeats:
- where (b)'s time goes: Ray Data's per-operator stats of the Dataset the last `run_curation`
  executed (task wall/CPU s per stage, and when its tasks ran), the actor start-up, the global
  steps and the first export (perf_counter), as shares of their sum;
- `run_export` on that output, then a re-export with one threshold tightened (`TIGHTEN`),
  which must decode no source;
- `global_steps_benchmark` on `--vectors` synthetic vectors (dedup, k-means fit, assignment).

    python benchmarks/curation_throughput.py [--quick] [--repeat N] [--copies K] [--vectors N] [--no-export]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PYSCENEDETECT_DATA = (REPO / ".." / "shared" / "data" / "pyscenedetect").resolve()
DEFAULT_WORK = Path(tempfile.gettempdir()) / "vidloom-bench"
QUICK_FILES = ("fades.mp4", "counter.mp4", "delayed_start.mp4")


# -- corpus ------------------------------------------------------------------------------------
def sample_corpus(work: Path, seed: int = 0) -> Path:
    """The rendered sample corpus (rendered once, then reused: rendering is not timed)."""
    from vidloom.pipelines.samples import render_sample_corpus

    out = work / f"samples-seed{seed}"
    render_sample_corpus(out, seed=seed)
    return out


def video_files(folders: Iterable[Path]) -> list[Path]:
    from vidloom.platform.storage import VIDEO_EXTENSIONS

    files: list[Path] = []
    for folder in folders:
        files += sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.lower().endswith(VIDEO_EXTENSIONS))
    return files


def replicate(files: list[Path], dest: Path, copies: int) -> list[str]:
    """`copies` distinct paths per file under `dest` (hard links, else copies).

    Symlinks would not do: input expansion resolves them, so every copy would collapse into
    one source (and one video id) and be curated once.
    """
    if dest.exists():
        shutil.rmtree(dest)
    out: list[str] = []
    for k in range(copies):
        folder = dest / f"copy{k:02d}"
        folder.mkdir(parents=True)
        for i, src in enumerate(files):
            target = folder / f"{i:02d}_{src.name}"
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
            out.append(str(target.resolve()))
    return out


def curation_config(part1: bool = False):
    """The default configuration; `part1`: only the part-1 stages (decode, split, signals,
    text), i.e. the same work as the sequential baseline (c)."""
    from vidloom.pipelines.curation.config import load_curation_config

    return load_curation_config(overrides=["pipeline=[video_analysis,text_detection]"] if part1 else [])


# -- (a) the floor ---------------------------------------------------------------------------
def decode_floor(paths: list[str], cfg, convert: bool = True) -> tuple[int, float]:
    """(frames, seconds) to decode every path once, converting each frame to the analysis size
    in the decoder's scaler (`convert`) or not at all (decode only)."""
    import av

    from vidloom.platform.media import DecodeError, VideoReader

    frames = 0
    start = time.perf_counter()
    for path in paths:
        if convert:
            try:
                with VideoReader(path, threads=cfg.decode.threads) as reader:
                    for _ in reader.frames(
                        short_side=cfg.decode.analysis_short_side, interpolation=cfg.decode.interpolation
                    ):
                        frames += 1
            except DecodeError:
                pass
            continue
        try:
            with av.open(path) as container:
                if not container.streams.video:
                    continue
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                if cfg.decode.threads:
                    stream.codec_context.thread_count = cfg.decode.threads
                for _ in container.decode(stream):
                    frames += 1
        except (av.FFmpegError, OSError, ValueError):
            pass
    return frames, time.perf_counter() - start


# -- text detection: int8 against fp32 ---------------------------------------------------------
def real_frames(paths: list[str], cfg, per_video: int = 4) -> list[np.ndarray]:
    """`per_video` evenly spaced frames of each readable input, at analysis size (RGB)."""
    from vidloom.platform.media import DecodeError, VideoReader

    frames: list[np.ndarray] = []
    for path in dict.fromkeys(paths):  # each file once
        try:
            with VideoReader(path, threads=cfg.decode.threads) as reader:
                decoded = [f.image for f in reader.frames(short_side=cfg.decode.analysis_short_side,
                                                          interpolation=cfg.decode.interpolation)]
        except DecodeError:
            continue
        step = max(1, len(decoded) // per_video)
        frames += decoded[step // 2::step][:per_video]
    return frames


def compare_ocr(frames: list[np.ndarray], cfg) -> dict:
    """The text detector in fp32 and in int8 (`ocr.precision`) on the same real frames, one
    after the other in this process: ms per frame, the speed-up, and how far text_ratio moves.
    Making the int8 copy (or finding it cached) is timed apart; it also warms the cache, so the
    pipeline runs below load it as any later run on this machine does."""
    from vidloom.pipelines.curation.signals.text import TextDetector

    kw = dict(det_limit_side_len=cfg.ocr.det_limit_side_len, intra_op_threads=cfg.ocr.threads)
    t = time.perf_counter()
    int8 = TextDetector(precision="int8", **kw)
    build_s = time.perf_counter() - t
    fp32 = TextDetector(precision="fp32", **kw)
    out = {"frames": len(frames), "int8_build_s": build_s, "label": int8.label}
    for name, det in (("fp32", fp32), ("int8", int8)):
        det.frame_text_ratios(frames[:2])  # first-run allocations off the clock
        t = time.perf_counter()
        out[name] = det.frame_text_ratios(frames)
        out[f"{name}_ms"] = 1000 * (time.perf_counter() - t) / max(1, len(frames))
    diffs = np.abs(np.array(out["fp32"]) - np.array(out["int8"]))
    out["max_diff"] = float(diffs.max()) if len(diffs) else 0.0
    texty = lambda xs: sum(1 for x in xs if x > 0.01)  # noqa: E731
    out["text_frames"] = (texty(out["fp32"]), texty(out["int8"]))
    return out


def compare_watermark_detector(frames: list[np.ndarray], cfg) -> dict:
    """The watermark detector as the stage ran it until 2026-12-07 (Ultralytics + torch, the
    committed .pt) and as it runs now (its ONNX file in onnxruntime, fp32 and the int8 copy), on
    the same real frames at the stage's `imgsz`, one thread each, one after the other in this
    process: load time, ms per frame, and how far each frame's best confidence moves (onnxruntime
    fp32 vs Ultralytics, int8 vs fp32). The Ultralytics import is counted in its load time (this
    process has not imported it before); making the int8 copy (or finding it) is timed apart."""
    import torch

    from vidloom.pipelines.curation.watermark.config import PACKAGED_WEIGHTS
    from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector, offline_ultralytics

    wm = cfg.watermark
    out: dict = {"frames": len(frames), "imgsz": wm.imgsz}
    # Load times as a fresh worker pays them: imports included, each in its own interpreter.
    load = {"ultralytics_load_s": "from vidloom.pipelines.curation.watermark.yolo import offline_ultralytics; "
                                  "offline_ultralytics(); from ultralytics import YOLO; "
                                  f"YOLO({str(PACKAGED_WEIGHTS.with_suffix('.pt'))!r}, task='detect')",
            "onnx_load_s": "from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector; "
                           f"YoloWatermarkDetector({str(PACKAGED_WEIGHTS)!r})"}
    for key, code in load.items():
        timed = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
        out[key] = float(subprocess.run([sys.executable, "-c", timed], capture_output=True, text=True,
                                        check=True).stdout.split()[-1])
    offline_ultralytics()
    from ultralytics import YOLO

    torch.set_num_threads(1)
    reference = YOLO(str(PACKAGED_WEIGHTS.with_suffix(".pt")), task="detect")
    fp32 = YoloWatermarkDetector(PACKAGED_WEIGHTS, imgsz=wm.imgsz, conf=wm.conf)
    t = time.perf_counter()
    int8 = YoloWatermarkDetector(PACKAGED_WEIGHTS, imgsz=wm.imgsz, conf=wm.conf, precision="int8")
    out["int8_build_s"] = time.perf_counter() - t

    def ultralytics_best(frame: np.ndarray) -> float:
        r = reference.predict([np.ascontiguousarray(frame[:, :, ::-1])], imgsz=wm.imgsz, conf=0.05, verbose=False)[0]
        return float(r.boxes.conf.max()) if len(r.boxes) else 0.0

    runs = {"ultralytics": ultralytics_best,
            "fp32": lambda f: max((c for c, _ in fp32.detect([f], conf=0.05)[0]), default=0.0),
            "int8": lambda f: max((c for c, _ in int8.detect([f], conf=0.05)[0]), default=0.0)}
    for name, run in runs.items():
        run(frames[0])  # first-run allocations off the clock
        t = time.perf_counter()
        out[name] = [run(f) for f in frames]
        out[f"{name}_ms"] = 1000 * (time.perf_counter() - t) / max(1, len(frames))
    for key, (a, b) in {"fp32": ("fp32", "ultralytics"), "int8": ("int8", "fp32")}.items():
        d = np.abs(np.subtract(out[a], out[b])) if frames else np.zeros(1)
        out[f"max_diff_{key}"], out[f"mean_diff_{key}"] = float(d.max()), float(d.mean())
    return out


# -- (b) the pipeline ------------------------------------------------------------------------
def start_ray(num_cpus: int = 2) -> float:
    """Start (or join) the local Ray once; returns the seconds it took (not counted)."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    from vidloom.platform.ray_runtime import init_ray

    start = time.perf_counter()
    init_ray(num_cpus=num_cpus)  # a fresh local Ray (never a stray `ray start` cluster)
    return time.perf_counter() - start


@contextmanager
def observe_pipeline():
    """While active, `run_curation` runs unchanged but the benchmark sees inside it: the Dataset
    it builds (`build_dataset` wrapped to keep the object, so Ray Data's stats of the executed
    plan can be read after the run) and the perf_counter time of its global steps
    (`apply_global_steps` wrapped). Same functions, same arguments; restored on exit."""
    from vidloom.pipelines.curation import pipeline as mod

    seen: dict = {"datasets": [], "global_steps_s": 0.0}
    build, steps = mod.build_dataset, mod.apply_global_steps

    def build_dataset(*args, **kwargs):
        seen["stream_start"] = time.perf_counter()
        ds = build(*args, **kwargs)
        seen["datasets"].append(ds)
        return ds

    def apply_global_steps(*args, **kwargs):
        seen["steps_start"] = t = time.perf_counter()
        try:
            return steps(*args, **kwargs)
        finally:
            seen["global_steps_s"] += time.perf_counter() - t

    mod.build_dataset, mod.apply_global_steps = build_dataset, apply_global_steps
    try:
        yield seen
    finally:
        mod.build_dataset, mod.apply_global_steps = build, steps


def operator_times(ds) -> list[dict]:
    """Per-operator task time of an executed Ray Dataset, from `Dataset.get_stats_summary()`
    (the structured form of `Dataset.stats()`): remote wall and CPU seconds summed over the
    operator's tasks, task count, and the span from its first task start to its last end.
    Operators of parent plans come first (execution order)."""
    nan = float("nan")
    out: list[dict] = []

    def walk(summary, seen: set) -> None:
        if id(summary) in seen:
            return
        seen.add(id(summary))
        for parent in summary.parents:
            walk(parent, seen)
        for op in summary.operators_stats:
            if op.wall_time is None:
                continue
            span = (op.latest_end_time - op.earliest_start_time
                    if op.latest_end_time is not None and op.earliest_start_time is not None else nan)
            out.append({"name": op.operator_name, "wall_s": float(op.wall_time.sum),
                        "cpu_s": float(op.cpu_time.sum) if op.cpu_time is not None else nan,
                        "tasks": int(op.wall_time.count), "span_s": float(span),
                        "start": float(op.earliest_start_time) if op.earliest_start_time is not None else nan})

    walk(ds.get_stats_summary(), set())
    return out


def run_pipeline(paths: list[str], cfg, out: Path) -> tuple[int, float, dict]:
    """(source frames, seconds, summary) of one `run_curation` into a fresh folder `out`.

    The summary also holds the Ray Data per-operator times of the run (`operators`), the
    global steps' seconds and the streaming phase (from `build_dataset` to the global steps,
    i.e. iteration + manifest commits + consolidation), all from the same run."""
    import pyarrow.parquet as pq

    from vidloom.pipelines.curation.pipeline import run_curation

    if out.exists():
        shutil.rmtree(out)  # the output folder resumes: a stale one would skip the work
    with observe_pipeline() as seen:
        start = time.perf_counter()
        summary = run_curation(paths, out, cfg)
        wall = time.perf_counter() - start
    if summary.skipped_done:
        raise RuntimeError(f"{summary.skipped_done} inputs were skipped as done; the run is not comparable")
    videos = pq.read_table(out / "manifest" / "videos.parquet").to_pylist()
    frames = sum(int(v["num_frames"] or 0) for v in videos)
    info = {"videos": len(videos), "clips": summary.clips, "ok": summary.ok, "error": summary.error,
            "wall_s": wall, "global_steps_s": seen["global_steps_s"], "operators": [], "out": out,
            "stages": summary.stage_seconds}
    if "stream_start" in seen and "steps_start" in seen:
        info["stream_s"] = seen["steps_start"] - seen["stream_start"]
    if seen["datasets"]:
        info["operators"] = operator_times(seen["datasets"][-1])
        starts = [o["start"] for o in info["operators"] if o["name"].startswith("MapBatches(") and o["start"] == o["start"]]
        if "stream_start" in seen:
            info["stream_start"] = seen["stream_start"]
        if starts and "stream_start" in seen:
            # Ray Data stamps task starts with time.perf_counter() (CLOCK_MONOTONIC, shared by
            # the processes of one machine): the gap is actor start-up (stage setup, model loads).
            info["startup_s"] = max(0.0, min(starts) - seen["stream_start"])
    return frames, wall, info


# -- export and global steps -----------------------------------------------------------------
# The re-export tightens one threshold of the broadest tier (still no stricter than 360p's):
# every clip it keeps was cut by the first export, so it must decode no source.
TIGHTEN = "tiers.256p.sharpness_min=0.3"
# The --quick videos keep no clip under the default tiers (fades: sharpness 0; counter:
# watermark score 0.93 on its burnt-in counter), so --quick lifts the watermark limit of the
# broadest tier and image set: counter.mp4 is then cut into 256p and images_256.
QUICK_EXPORT_OVERRIDES = ("tiers.256p.watermark_score_max=null", "image_sets.images_256.watermark_score_max=null")


def time_export(out: Path, overrides: Iterable[str] = ()) -> dict:
    """`run_export` on a curated folder with the default tiers and `overrides` (first export,
    cuts every file), then again with `TIGHTEN` added (must reuse every file: sources_decoded 0)."""
    from vidloom.pipelines.export.runner import run_export
    from vidloom.pipelines.export.tiers import load_export_config

    result = {}
    for key, extra in (("first", []), ("tightened", [TIGHTEN])):
        start = time.perf_counter()
        summary = run_export(out, load_export_config(overrides=[*overrides, *extra]))
        result[key] = {"s": time.perf_counter() - start, "kept": summary.kept, "jobs": summary.jobs,
                       "reused": summary.reused, "cut": summary.cut, "errors": summary.errors,
                       "sources_decoded": summary.sources_decoded}
    return result


def time_global_steps(n: int) -> dict:
    """`concepts.global_steps_benchmark` on `n` synthetic vectors (assignment on the Ray actor
    pool, Ray being up)."""
    from vidloom.pipelines.curation.concepts import global_steps_benchmark

    return global_steps_benchmark(n=n)


# -- (c) the per-stage sequential baseline ---------------------------------------------------
class _ClipDecoder:
    """Re-open a video and decode frames [start, end) after a seek, as per-stage scripts do
    (each pass opens the file again). Frames are converted to the analysis size in the decoder's
    scaler, and only the frames a pass uses are converted."""

    def __init__(self, path: str, cfg):
        import av

        self.container = av.open(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        if cfg.decode.threads:
            self.stream.codec_context.thread_count = cfg.decode.threads
        self.tb = float(self.stream.time_base)
        self.first_pts = self.stream.start_time or 0
        self.cfg = cfg

    def frames(self, start: int, end: int, fps: float, size: tuple[int, int], want: Callable[[int], bool]):
        """Yield (index, RGB image) for frames start <= index < end with want(index)."""
        if start > 0:
            target = self.first_pts + int(round(start / fps / self.tb))
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        for frame in self.container.decode(self.stream):
            pts = frame.pts if frame.pts is not None else frame.dts
            index = int(round((pts - self.first_pts) * self.tb * fps))
            if index < start:
                continue
            if index >= end:
                break
            if want(index):
                yield index, frame.to_ndarray(
                    width=size[0], height=size[1], format="rgb24", interpolation=self.cfg.decode.interpolation
                )

    def close(self) -> None:
        self.container.close()


@dataclass
class SequentialResult:
    frames: int = 0
    seconds: float = 0.0
    clips: int = 0
    parts: dict[str, float] = field(default_factory=dict)


def run_sequential(paths: list[str], cfg) -> SequentialResult:
    """The per-stage baseline over `paths` (see the module docstring); OCR model load included."""
    import cv2
    from scenedetect import ContentDetector, detect

    from vidloom.pipelines.curation.shot_split import clip_ranges
    from vidloom.pipelines.curation.signals.border import detect_border_box
    from vidloom.pipelines.curation.signals.camera_motion import classify_camera_motion
    from vidloom.pipelines.curation.signals.motion import MotionEstimator, to_motion_gray
    from vidloom.pipelines.curation.signals.sharpness import best_start_frame, laplacian_variance
    from vidloom.pipelines.curation.signals.text import TextDetector
    from vidloom.platform.media import analysis_size

    res = SequentialResult(parts={k: 0.0 for k in ("ocr_load", "shots", "sharpness", "motion", "border", "ocr")})
    t_all = time.perf_counter()
    t = time.perf_counter()
    ocr = TextDetector(  # the pipeline's detector, precision included: the same work
        backend=cfg.ocr.backend, model_dir=cfg.ocr.model_dir,
        det_limit_side_len=cfg.ocr.det_limit_side_len, intra_op_threads=cfg.ocr.threads,
        precision=cfg.ocr.resolved_precision,
    )
    res.parts["ocr_load"] += time.perf_counter() - t
    estimator = MotionEstimator()
    sig = cfg.signals

    def stride(fps: float, per_s: float) -> int:
        return max(1, int(round((fps if fps > 0 else 25.0) / per_s)))

    for path in paths:
        # Stage 1: shot detection, its own decode.
        t = time.perf_counter()
        try:
            scenes = detect(
                path, ContentDetector(threshold=cfg.split.threshold, min_scene_len=cfg.split.min_scene_frames),
                start_in_scene=True,
            )
        except Exception:  # noqa: BLE001 - unreadable input: a script logs it and moves on
            res.parts["shots"] += time.perf_counter() - t
            continue
        res.parts["shots"] += time.perf_counter() - t
        if not scenes:
            continue
        fps = float(scenes[0][0].frame_rate)
        n = int(scenes[-1][1].frame_num)
        res.frames += n
        cuts = [int(s[0].frame_num) for s in scenes[1:]]
        times = np.arange(n) / fps
        if n / fps < cfg.split.min_clip_s:
            continue
        clips = [r for r in clip_ranges(cuts, times, fps, cfg.split) if not r.too_short]
        res.clips += len(clips)
        if not clips:
            continue
        import av

        with av.open(path) as c:
            s = c.streams.video[0]
            w, h = s.codec_context.width, s.codec_context.height
        size = analysis_size(w, h, cfg.decode.analysis_short_side)
        motion_every, keep_every = stride(fps, sig.motion_samples_per_s), stride(fps, sig.frames_per_s)

        def each_clip(part: str, fn) -> None:
            t0 = time.perf_counter()
            dec = _ClipDecoder(path, cfg)  # a separate script: the file is opened again
            try:
                for r in clips:
                    fn(dec, r)
            finally:
                dec.close()
            res.parts[part] += time.perf_counter() - t0

        # Stage 2: sharpness of every frame, clearest start frame.
        def sharpness(dec, r) -> None:
            scores = [laplacian_variance(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
                      for _, img in dec.frames(r.start_frame, r.end_frame, fps, size, lambda i: True)]
            window = max(1, int(round(sig.best_start_window_s * fps)))
            if scores:
                float(np.mean(scores)), best_start_frame(np.asarray(scores), 0, window)

        # Stage 3: global motion at a few sample pairs per second (DIS on downscaled grey).
        def motion(dec, r) -> None:
            samples, prev = [], None
            for i, img in dec.frames(r.start_frame, r.end_frame, fps, size,
                                     lambda i: i % motion_every == 0 or (i - 1) % motion_every == 0):
                small = to_motion_gray(img, sig.motion_short_side)
                if prev is not None and prev[0] == i - 1 and i + 1 <= r.end_frame:
                    samples.append(estimator(prev[1], small))
                prev = (i, small) if i % motion_every == 0 else None
            if samples:
                classify_camera_motion(samples)

        # Stage 4: letterbox / pillarbox on frames sampled across the clip.
        def border(dec, r) -> None:
            kept = [img for _, img in dec.frames(r.start_frame, r.end_frame, fps, size,
                                                 lambda i: i % keep_every == 0)]
            if kept:
                detect_border_box(np.stack(kept))

        # Stage 5: OCR text detection on a few evenly spaced frames of the clip.
        def text(dec, r) -> None:
            kept = [i for i in range(r.start_frame, r.end_frame) if i % keep_every == 0]
            if not kept:
                return
            want = {kept[p] for p in np.unique(np.linspace(0, len(kept) - 1,
                                                           num=min(cfg.ocr.frames_per_clip, len(kept))).round().astype(int))}
            frames = [img for _, img in dec.frames(r.start_frame, max(want) + 1, fps, size, lambda i: i in want)]
            ocr.text_ratio(frames)

        each_clip("sharpness", sharpness)
        each_clip("motion", motion)
        each_clip("border", border)
        each_clip("ocr", text)
    res.seconds = time.perf_counter() - t_all
    return res


# -- shot split alone --------------------------------------------------------------------------
def our_split(path: str, cfg, scores: dict | None = None) -> list[int]:
    """VideoReader decode to full-size BGR + ShotDetector, as VideoAnalysisStage feeds it."""
    from vidloom.pipelines.curation.shot_split import ShotDetector
    from vidloom.platform.media import VideoReader

    with VideoReader(path, threads=cfg.decode.threads) as reader:
        det = ShotDetector(cfg.split, reader.info.fps)
        for f in reader.frames(size=(reader.info.width, reader.info.height), fmt="bgr24"):
            det.push(f.index, f.image)
            if scores is not None:
                scores[f.index] = getattr(det._detector, "_frame_score", None)
    return det.finish()


def scenedetect_split(path: str, cfg, scores: dict | None = None) -> list[int]:
    """PySceneDetect's own `detect()`: OpenCV decode, default auto-downscale, ContentDetector."""
    from scenedetect import ContentDetector, detect

    detector = ContentDetector(threshold=cfg.split.threshold, min_scene_len=cfg.split.min_scene_frames)
    if scores is not None:
        inner = detector.process_frame

        def recording(timecode, frame):  # record the content score of every frame
            out = inner(timecode, frame)
            scores[int(timecode.frame_num)] = detector._frame_score
            return out

        detector.process_frame = recording
    return [int(s[0].frame_num) for s in detect(path, detector)[1:]]


def compare_split(path: str, cfg, repeat: int) -> dict:
    ours_t, theirs_t = [], []
    for _ in range(repeat):
        t = time.perf_counter(); ours = our_split(path, cfg); ours_t.append(time.perf_counter() - t)
        t = time.perf_counter(); theirs = scenedetect_split(path, cfg); theirs_t.append(time.perf_counter() - t)
    result = {"ours": ours, "theirs": theirs, "ours_s": min(ours_t), "theirs_s": min(theirs_t),
              "speedups": [b / a for a, b in zip(ours_t, theirs_t)], "scores": {}}
    differ = sorted(set(ours) ^ set(theirs))
    if differ:  # explain each disagreement with the content score both saw (untimed pass)
        s_ours, s_theirs = {}, {}
        our_split(path, cfg, s_ours)
        scenedetect_split(path, cfg, s_theirs)
        result["scores"] = {f: (s_ours.get(f), s_theirs.get(f)) for f in differ}
    return result


# -- report ------------------------------------------------------------------------------------
def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def stage_share_lines(info: dict, export_s: float | None) -> list[str]:
    """The (b) time table: each stage's wall and CPU seconds summed over its workers (the run
    summary's `stage_seconds`, kept per stage also when stages share an actor), with the tasks
    of the Ray Data operator that ran it; the start-up, the global steps and the first export
    (perf_counter); each as a share of their sum."""
    from vidloom.pipelines.curation.registry import STAGES_BY_NAME

    ops = [o for o in info.get("operators", []) if o["name"].startswith("MapBatches(")]
    rows = []
    if "startup_s" in info:
        rows.append(("start-up: build_dataset -> first stage task", info["startup_s"], float("nan"), "-", "-"))
    t0 = info.get("stream_start")

    def window(o: dict) -> str:  # first task start .. last task end, s after build_dataset
        if t0 is None or o["start"] != o["start"]:
            return "-"
        return f"{o['start'] - t0:.1f}-{o['start'] - t0 + o['span_s']:.1f}"

    def operator(stage: str) -> dict | None:  # the operator whose actors ran `stage`
        cls = STAGES_BY_NAME[stage].__name__
        return next((o for o in ops if cls in o["name"][len("MapBatches("):-1].split("+")), None)

    for stage, t in info.get("stages", {}).items():
        op = operator(stage)
        rows.append((f"stage {stage}", t["wall_s"], t["cpu_s"], str(op["tasks"]) if op else "-",
                     window(op) if op else "-"))
    rows.append(("global steps (apply_global_steps, driver)", info.get("global_steps_s", float("nan")),
                 float("nan"), "-", "-"))
    if export_s is not None:
        rows.append(("export (run_export, first)", export_s, float("nan"), "-", "-"))
    total = sum(r[1] for r in rows if r[1] == r[1])
    lines = ["(b) time per stage, last repeat: stages = wall/CPU s each stage spent on the rows, summed over",
             "    workers (run summary's stage_seconds); start-up, global steps, export = elapsed (perf_counter).",
             "    Stages overlap in streaming, so shares are of the summed time, not of the elapsed run; 'tasks",
             "    at' = first to last task of the Ray Data operator that ran the stage, s after build_dataset",
             f"    {'stage':<44}{'wall s':>9}{'cpu s':>9}{'tasks':>7}{'tasks at':>13}{'share':>8}"]
    for name, wall, cpu, tasks, span in rows:
        cpu_txt = "-" if cpu != cpu else f"{cpu:.2f}"
        lines.append(f"    {name:<44}{wall:>9.2f}{cpu_txt:>9}{tasks:>7}{span:>13}{100 * wall / total if total else 0:>7.1f}%")
    lines.append("    operators (Ray Data, task wall/CPU s): " + "; ".join(
        f"{o['name']} {o['wall_s']:.2f}/{o['cpu_s']:.2f}, {o['tasks']} tasks" for o in info.get("operators", [])))
    if "stream_s" in info:
        ends = [o["start"] + o["span_s"] - t0 for o in ops if t0 is not None and o["start"] == o["start"]]
        last = f" (last stage task ended at {max(ends):.1f} s)" if ends else ""
        lines.append(f"    run_curation elapsed {info['wall_s']:.1f} s = streaming (build_dataset -> manifest "
                     f"consolidated) {info['stream_s']:.1f} s{last} + global steps {info['global_steps_s']:.1f} s + "
                     f"other (weights check, inputs, summary) "
                     f"{info['wall_s'] - info['stream_s'] - info['global_steps_s']:.1f} s")
    return lines


def run_benchmark(
    paths: list[str], work: Path, repeat: int = 1, split_video: str | None = None, echo: Callable[[str], None] = print,
    vectors: int = 0, export: bool = True, export_overrides: Iterable[str] = (),
) -> str:
    """Run (a), (b), (c) `repeat` times back to back (and the split comparison); then the
    export of the last (b) output twice and `global_steps_benchmark` on `vectors` synthetic
    vectors (0: skipped); return the report text. Ray must be startable here (or already
    running, e.g. a test's session)."""
    cfg, cfg_part1 = curation_config(), curation_config(part1=True)
    ray_s = start_ray(2)
    rows: dict[str, list[tuple[int, float]]] = {"decode": [], "floor": [], "pipeline": [], "sequential": [],
                                                "pipeline_full": []}
    ratio_floor, ratio_seq, ratio_full, seq_parts, info = [], [], [], [], {}
    frames = real_frames(paths, cfg)
    detector = compare_watermark_detector(frames, cfg)
    ocr = compare_ocr(frames, cfg)
    for rep in range(repeat):
        rows["decode"].append(decode_floor(paths, cfg, convert=False))
        rows["floor"].append(decode_floor(paths, cfg, convert=True))
        frames_b, wall_b, _ = run_pipeline(paths, cfg_part1, work / f"out-part1-{rep}")
        rows["pipeline"].append((frames_b, wall_b))
        # The full pipeline last, so the per-stage table below describes all six stages.
        frames_f, wall_f, info = run_pipeline(paths, cfg, work / f"out-{rep}")
        rows["pipeline_full"].append((frames_f, wall_f))
        seq = run_sequential(paths, cfg)
        rows["sequential"].append((seq.frames, seq.seconds))
        seq_parts.append(seq.parts)
        rate = {k: v[-1][0] / v[-1][1] for k, v in rows.items()}
        ratio_floor.append(rate["pipeline"] / rate["floor"])
        ratio_seq.append(rate["pipeline"] / rate["sequential"])
        ratio_full.append(rate["pipeline_full"] / rate["floor"])
        echo(f"  rep {rep + 1}/{repeat}: " + ", ".join(f"{k} {r:.0f} f/s" for k, r in rate.items()))
        sys.stdout.flush()

    lines = [
        f"# vidloom curation throughput ({_dt.date.today().isoformat()}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, commit {_commit()})",
        f"corpus: {len(paths)} inputs, {rows['floor'][0][0]} source frames; local Ray num_cpus=2 "
        f"(start-up {ray_s:.1f} s, not counted); repeats: {repeat}",
        f"{'measurement':<44}{'frames':>8}{'best s':>9}{'median s':>10}{'best f/s':>10}{'median f/s':>11}",
    ]
    labels = {
        "decode": "decode only (PyAV, reference)",
        "floor": "(a) floor: decode + convert to analysis size",
        "pipeline": "(b) pipeline, part-1 stages (work of (c))",
        "sequential": "(c) sequential per-stage scripts",
        "pipeline_full": "(b') full pipeline: 6 stages + global steps",
    }
    for key, label in labels.items():
        frames = rows[key][0][0]
        secs = [s for _, s in rows[key]]
        lines.append(f"{label:<44}{frames:>8}{min(secs):>9.2f}{_median(secs):>10.2f}"
                     f"{frames / min(secs):>10.1f}{frames / _median(secs):>11.1f}")
    parts = {k: _median([p[k] for p in seq_parts]) for k in seq_parts[0]}
    lines.append("    (c) split: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    lines.append(f"    (b) run: {info.get('videos')} videos ({info.get('ok')} ok, {info.get('error')} error), "
                 f"{info.get('clips')} ok clips")
    for key in ("pipeline", "sequential"):
        if rows[key][0][0] != rows["floor"][0][0]:
            lines.append(f"    note: {key} counted {rows[key][0][0]} frames, floor {rows['floor'][0][0]}")
    lines.append(f"ratio (b)/(a) pipeline / floor      = {_median(ratio_floor):.2f}  "
                 f"(per repeat: {', '.join(f'{r:.2f}' for r in ratio_floor)}; target >= 0.5)")
    lines.append(f"ratio (b)/(c) pipeline / sequential = {_median(ratio_seq):.2f}  "
                 f"(per repeat: {', '.join(f'{r:.2f}' for r in ratio_seq)}; target >= 3)")
    lines.append(f"ratio (b')/(a) full pipeline / floor = {_median(ratio_full):.2f}  "
                 f"(per repeat: {', '.join(f'{r:.2f}' for r in ratio_full)}; target >= 0.3)")
    if export:
        echo("  export: first + re-export ...")
    exp = time_export(info["out"], export_overrides) if export else None
    lines += stage_share_lines(info, exp["first"]["s"] if exp else None)
    if exp:
        if export_overrides:
            lines.append("export overrides: " + " ".join(export_overrides))
        for key, label in (("first", "export, first"), ("tightened", f"re-export, {TIGHTEN}")):
            e = exp[key]
            lines.append(f"{label + ':':<48}{e['s']:>6.2f} s, files {e['jobs']} needed, {e['reused']} reused, "
                         f"{e['cut']} cut, {e['errors']} errors, sources_decoded {e['sources_decoded']}; kept "
                         + ", ".join(f"{k} {v}" for k, v in e["kept"].items()))
    if vectors:
        echo(f"  global_steps_benchmark on {vectors} vectors ...")
        g = time_global_steps(vectors)
        lines.append(f"global_steps_benchmark n={g['n']} dim={g['dim']}: dedup {g['dedup_s']:.2f} s "
                     f"(cpu {g['dedup_cpu_s']:.2f}, {g['dedup_index']}, {g['duplicates_removed']} duplicates), "
                     f"k-means fit {g['kmeans_fit_s']:.2f} s (cpu {g['kmeans_fit_cpu_s']:.2f}, k={g['kmeans_k']}), "
                     f"assignment {g['assign_s']:.2f} s ({g['assign']}, driver cpu {g['assign_cpu_s']:.2f}, "
                     f"{g['clusters_used']} clusters used), total {g['total_s']:.2f} s")
    lines.append(f"text detection on {ocr['frames']} real frames ({ocr['label']}; int8 copy made or found "
                 f"in {ocr['int8_build_s']:.1f} s): fp32 {ocr['fp32_ms']:.1f} ms/frame, int8 {ocr['int8_ms']:.1f} "
                 f"ms/frame, speed-up {ocr['fp32_ms'] / max(ocr['int8_ms'], 1e-9):.2f}x; text_ratio max |diff| "
                 f"{ocr['max_diff']:.3f}, frames with text (> 0.01) fp32 {ocr['text_frames'][0]}, int8 {ocr['text_frames'][1]}")
    d = detector
    lines.append(f"watermark detector on {d['frames']} real frames at {d['imgsz']} px, one thread: load "
                 f"Ultralytics+torch {d['ultralytics_load_s']:.2f} s, ONNX {d['onnx_load_s']:.2f} s "
                 f"(int8 copy made or found in {d['int8_build_s']:.1f} s); ms/frame Ultralytics "
                 f"{d['ultralytics_ms']:.1f}, onnxruntime fp32 {d['fp32_ms']:.1f}, int8 {d['int8_ms']:.1f}: "
                 f"speed-up {d['ultralytics_ms'] / max(d['int8_ms'], 1e-9):.2f}x over Ultralytics, "
                 f"{d['fp32_ms'] / max(d['int8_ms'], 1e-9):.2f}x over fp32; a frame's best confidence, |diff| max "
                 f"(mean): fp32 vs Ultralytics {d['max_diff_fp32']:.3f} ({d['mean_diff_fp32']:.3f}), int8 vs fp32 "
                 f"{d['max_diff_int8']:.3f} ({d['mean_diff_int8']:.3f})")
    if split_video:
        sp = compare_split(split_video, cfg, repeat)
        lines.append(f"shot split on {Path(split_video).name}: ours (VideoReader + ShotDetector) "
                     f"{sp['ours_s']:.2f} s, PySceneDetect detect() {sp['theirs_s']:.2f} s, "
                     f"speed-up {_median(sp['speedups']):.2f}x (median; target >= 1.0, identical cuts)")
        lines.append(f"    cuts ours   {sp['ours']}")
        lines.append(f"    cuts detect {sp['theirs']}")
        for f, (a, b) in sp["scores"].items():
            fa = "n/a" if a is None else f"{a:.2f}"
            fb = "n/a" if b is None else f"{b:.2f}"
            lines.append(f"    frame {f}: content score ours {fa}, detect() {fb} "
                         f"(threshold {cfg.split.threshold:g}): borderline, not a bug")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run on 3 small videos (< 90 s)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--copies", type=int, default=3, help="times the corpus is listed (distinct paths)")
    ap.add_argument("--vectors", type=int, default=None,
                    help="synthetic vectors for global_steps_benchmark (default 100000, --quick 5000; 0 = skip)")
    ap.add_argument("--no-export", action="store_true", help="skip timing run_export on the pipeline output")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (samples are cached here)")
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    vectors = args.vectors if args.vectors is not None else (5000 if args.quick else 100_000)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        files = [PYSCENEDETECT_DATA / name for name in QUICK_FILES]
        copies = 1
    else:
        files = video_files([sample_corpus(work), PYSCENEDETECT_DATA])
        copies = args.copies
    split_video = str(PYSCENEDETECT_DATA / "testvideo.mp4")
    paths = replicate(files, work / "corpus", copies)
    print(f"running on {len(paths)} inputs ({len(files)} files x {copies}) ...", flush=True)
    report = run_benchmark(paths, work, repeat=repeat, split_video=split_video, vectors=vectors,
                           export=not args.no_export,
                           export_overrides=QUICK_EXPORT_OVERRIDES if args.quick else ())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
