"""Curation throughput: the Ray pipeline against the decode floor and a per-stage baseline.

One process, one machine, measured back to back (issue: curation part 1):

(a) floor       decode the corpus with PyAV and convert every frame to the analysis size in
                the decoder's scaler (VideoReader.frames), same decoder thread setting as the
                pipeline; "decode only" (no conversion) is printed as a reference too.
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

    python benchmarks/curation_throughput.py [--quick] [--repeat N] [--copies K]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
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


def curation_config():
    from vidloom.pipelines.curation.config import load_curation_config

    return load_curation_config()


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


# -- (b) the pipeline ------------------------------------------------------------------------
def start_ray(num_cpus: int = 2) -> float:
    """Start (or join) the local Ray once; returns the seconds it took (not counted)."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    from vidloom.platform.ray_runtime import init_ray

    start = time.perf_counter()
    init_ray(num_cpus=num_cpus)  # a fresh local Ray (never a stray `ray start` cluster)
    return time.perf_counter() - start


def run_pipeline(paths: list[str], cfg, out: Path) -> tuple[int, float, dict]:
    """(source frames, seconds, summary) of one `run_curation` into a fresh folder `out`."""
    import pyarrow.parquet as pq

    from vidloom.pipelines.curation.pipeline import run_curation

    if out.exists():
        shutil.rmtree(out)  # the output folder resumes: a stale one would skip the work
    start = time.perf_counter()
    summary = run_curation(paths, out, cfg)
    wall = time.perf_counter() - start
    if summary.skipped_done:
        raise RuntimeError(f"{summary.skipped_done} inputs were skipped as done; the run is not comparable")
    videos = pq.read_table(out / "manifest" / "videos.parquet").to_pylist()
    frames = sum(int(v["num_frames"] or 0) for v in videos)
    return frames, wall, {"videos": len(videos), "clips": summary.clips, "ok": summary.ok, "error": summary.error}


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
    ocr = TextDetector(
        backend=cfg.ocr.backend, model_dir=cfg.ocr.model_dir,
        det_limit_side_len=cfg.ocr.det_limit_side_len, intra_op_threads=cfg.ocr.threads,
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
    """VideoReader decode at analysis size + ShotDetector, as VideoAnalysisStage feeds it."""
    from vidloom.pipelines.curation.shot_split import ShotDetector
    from vidloom.platform.media import VideoReader

    with VideoReader(path, threads=cfg.decode.threads) as reader:
        det = ShotDetector(cfg.split, reader.info.fps)
        for f in reader.frames(short_side=cfg.decode.analysis_short_side, interpolation=cfg.decode.interpolation):
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


def run_benchmark(
    paths: list[str], work: Path, repeat: int = 1, split_video: str | None = None, echo: Callable[[str], None] = print
) -> str:
    """Run (a), (b), (c) `repeat` times back to back (and the split comparison); return the
    report text. Ray must be startable here (or already running, e.g. a test's session)."""
    cfg = curation_config()
    ray_s = start_ray(2)
    rows: dict[str, list[tuple[int, float]]] = {"decode": [], "floor": [], "pipeline": [], "sequential": []}
    ratio_floor, ratio_seq, seq_parts, info = [], [], [], {}
    for rep in range(repeat):
        rows["decode"].append(decode_floor(paths, cfg, convert=False))
        rows["floor"].append(decode_floor(paths, cfg, convert=True))
        frames_b, wall_b, info = run_pipeline(paths, cfg, work / f"out-{rep}")
        rows["pipeline"].append((frames_b, wall_b))
        seq = run_sequential(paths, cfg)
        rows["sequential"].append((seq.frames, seq.seconds))
        seq_parts.append(seq.parts)
        rate = {k: v[-1][0] / v[-1][1] for k, v in rows.items()}
        ratio_floor.append(rate["pipeline"] / rate["floor"])
        ratio_seq.append(rate["pipeline"] / rate["sequential"])
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
        "pipeline": "(b) pipeline: run_curation on Ray",
        "sequential": "(c) sequential per-stage scripts",
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
    if split_video:
        sp = compare_split(split_video, cfg, repeat)
        lines.append(f"shot split on {Path(split_video).name}: ours (VideoReader + ShotDetector) "
                     f"{sp['ours_s']:.2f} s, PySceneDetect detect() {sp['theirs_s']:.2f} s, "
                     f"speed-up {_median(sp['speedups']):.2f}x (median; target >= 1.5)")
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
    ap.add_argument("--quick", action="store_true", help="smoke run on 3 small videos (< 60 s)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--copies", type=int, default=3, help="times the corpus is listed (distinct paths)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (samples are cached here)")
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
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
    report = run_benchmark(paths, work, repeat=repeat, split_video=split_video)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
