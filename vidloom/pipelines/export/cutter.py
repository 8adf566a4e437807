"""Cutting clips and stills out of one source video in a single decode.

Every (clip, tier) pair to export is a `CutJob`. `cut_source` opens the source once, counts
decoded frames from 0 (the manifest's frame indices) and hands each frame to the jobs that
need it, so all tiers and image sets of a video share one decode:

- a video job starts at the clip's `best_start_frame` (its clearest frame) and takes
  `num_frames` frames at the tier's frame rate by presentation time: output frame k shows the
  source frame on screen at ``t0 + k / fps``. If the clip ends before that span is over, `t0`
  moves back (never before the clip's first frame) so that the whole span fits inside the
  clip's frame range;
- an image job takes the frame `best_start_frame`;
- each frame is cropped to the picture (inside letterbox bars when the tier crops them),
  centre-cropped to the bucket's aspect ratio and scaled to the bucket size; video is encoded
  as H.264 yuv420p MP4, stills as JPEG. Files are written under a temporary name and renamed
  when complete, so a killed export never leaves a truncated clip under its final name.

Frames come out of the decoder's scaler already shrunk to the smallest size that still
covers every job's output (one swscale call per frame), then each job crops and scales.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from vidloom.platform.media import DecodeError, VideoReader
from vidloom.platform.storage import atomic_write_bytes
from vidloom.platform.video_out import Mp4Writer

_EPS = 1e-6


@dataclass
class CutJob:
    """One clip of one tier (or one still of one image set) to write."""

    tier: str
    kind: str  # "video" | "image"
    clip_id: str
    path: str  # final file path
    start_frame: int
    end_frame: int  # exclusive
    best_start_frame: int
    end_s: float  # when frame end_frame - 1 stops showing (manifest convention)
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in display px (picture, bucket aspect)
    width: int
    height: int
    num_frames: int = 1
    fps: float = 0.0
    src_fps: float = 25.0
    jpeg_quality: int = 92
    source: str = ""

    def signature(self) -> tuple:
        """Jobs with the same signature produce the same bytes (whatever their tier)."""
        return (self.kind, self.clip_id, self.start_frame, self.end_frame, self.best_start_frame,
                round(self.end_s, 6), *self.crop, self.width, self.height, self.num_frames, self.fps,
                self.jpeg_quality)


@dataclass
class CutResult:
    """What happened to a job: the file written, or why not."""

    tier: str
    clip_id: str
    ok: bool
    error: str = ""
    path: str = ""
    num_frames: int = 0
    width: int = 0
    height: int = 0
    source_frames: list[int] = field(default_factory=list)  # source frame index of each output frame
    source_start_s: float = 0.0
    signature: list = field(default_factory=list)  # CutJob.signature() of the job that made it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EncodeSettings:
    crf: int = 18
    preset: str = "veryfast"
    threads: int = 1


def record_path(path: str | Path) -> Path:
    """Where the cut record (a `CutResult` as JSON) of an exported file lives."""
    return Path(path).with_suffix(".cut.json")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _video_writer(job: CutJob, enc: EncodeSettings) -> Mp4Writer:
    """H.264 yuv420p MP4 of a cut job under a temporary name; `finish` renames it into place."""
    return Mp4Writer(job.path, job.width, job.height, job.fps, crf=enc.crf, preset=enc.preset, threads=enc.threads)


class _JobState:
    """Streaming state of one job: which target times are still to be filled."""

    def __init__(self, job: CutJob, enc: EncodeSettings, scale_x: float, scale_y: float):
        self.job = job
        self.enc = enc
        x0, y0, x1, y1 = job.crop
        # Crop box in the (possibly shrunk) decoded frame; the edges are floats until here.
        self.box = (
            int(math.floor(x0 * scale_x + 0.5)), int(math.floor(y0 * scale_y + 0.5)),
            int(math.floor(x1 * scale_x + 0.5)), int(math.floor(y1 * scale_y + 0.5)),
        )
        self.first = min(max(job.best_start_frame, job.start_frame), job.end_frame - 1)
        span = (job.num_frames - 1) / job.fps if job.kind == "video" else 0.0
        # Latest start that still fits the span inside the clip (a quarter source frame of slack).
        self.t_latest = job.end_s - span - 0.25 / max(job.src_fps, 1.0)
        self.t0: float | None = None
        self.writer: Mp4Writer | None = None
        self.frames: list[int] = []
        self.done = False
        self.result: CutResult | None = None

    def _fit(self, image: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        h, w = image.shape[:2]
        part = image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
        size = (self.job.width, self.job.height)
        if part.shape[1] == size[0] and part.shape[0] == size[1]:
            return part
        shrink = part.shape[1] >= size[0] and part.shape[0] >= size[1]
        return cv2.resize(part, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)

    def _emit(self, index: int, image: np.ndarray) -> None:
        picture = self._fit(image)
        if self.job.kind == "image":
            final = Path(self.job.path)
            final.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, self.job.jpeg_quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            tmp = _tmp_name(final)
            tmp.write_bytes(data.tobytes())
            os.replace(tmp, final)
        else:
            if self.writer is None:
                self.writer = _video_writer(self.job, self.enc)
            self.writer.write(picture)
        self.frames.append(index)

    def feed(self, index: int, t: float, t_next: float, image: np.ndarray) -> None:
        """Offer frame `index`, on screen during [t, t_next)."""
        job = self.job
        if self.done or index < job.start_frame:
            return
        if index >= job.end_frame:
            self.fail(f"clip ended after {len(self.frames)} of {job.num_frames} frames")
            return
        if self.t0 is None:
            if job.kind == "image":
                if index == self.first:
                    self._emit(index, image)
                    self.t0 = t
                    self._succeed()
                return
            if index == job.start_frame and self.t_latest < t - _EPS:
                self.fail(f"clip too short for {job.num_frames} frames at {job.fps:g} fps")
                return
            if index == self.first:
                self.t0 = min(t, self.t_latest)
            elif index < self.first and t - _EPS <= self.t_latest < t_next:
                self.t0 = self.t_latest  # the clip ends too soon to start at its clearest frame
            else:
                return
        # Emit this frame for every target time it is on screen for.
        while len(self.frames) < job.num_frames:
            target = self.t0 + len(self.frames) / job.fps
            if target >= t_next - _EPS:
                break
            self._emit(index, image)
        if len(self.frames) >= job.num_frames:
            self._succeed()

    def _succeed(self) -> None:
        if self.writer is not None:
            self.writer.finish()
            self.writer = None
        job = self.job
        self.done = True
        self.result = CutResult(
            tier=job.tier, clip_id=job.clip_id, ok=True, path=job.path, num_frames=len(self.frames),
            width=job.width, height=job.height, source_frames=list(self.frames),
            source_start_s=float(self.t0 or 0.0), signature=list(job.signature()),
        )
        # The record beside the file lets a resumed export reuse it without decoding.
        atomic_write_bytes(record_path(job.path), json.dumps(self.result.to_dict()).encode())

    def fail(self, reason: str) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        self.done = True
        self.result = CutResult(tier=self.job.tier, clip_id=self.job.clip_id, ok=False, error=reason)


def _decode_size(width: int, height: int, jobs: list[CutJob]) -> tuple[int, int]:
    """Smallest decoded size (display orientation, even sides) that covers every job's output
    without upscaling in the decoder."""
    need = 0.0
    for job in jobs:
        cw, ch = job.crop[2] - job.crop[0], job.crop[3] - job.crop[1]
        need = max(need, job.width / max(cw, 1), job.height / max(ch, 1))
    scale = min(1.0, need)
    w = max(2, int(math.ceil(width * scale / 2.0)) * 2)
    h = max(2, int(math.ceil(height * scale / 2.0)) * 2)
    return min(w, width + width % 2), min(h, height + height % 2)


def cut_source(source: str, jobs: list[CutJob], encode: EncodeSettings, decoder_threads: int = 0) -> list[CutResult]:
    """Decode `source` once and write every job; a job that cannot be done gets an error
    result and the others go on. Never raises for a bad source: every job then fails."""
    jobs = sorted(jobs, key=lambda j: (j.start_frame, j.tier))
    # Tiers that cut a clip identically (e.g. the SFT slice of 720p) share one encode.
    groups: dict[tuple, list[CutJob]] = {}
    for job in jobs:
        groups.setdefault(job.signature(), []).append(job)
    results = _cut_unique(source, [g[0] for g in groups.values()], encode, decoder_threads)
    out: list[CutResult] = []
    for group, result in zip(groups.values(), results):
        out.append(result)
        for twin in group[1:]:
            out.append(link_result(result, twin))
    return out


def link_result(result: CutResult, job: CutJob) -> CutResult:
    """`job`'s result from an identical cut: the same file under `job`'s path (a hard link
    where the file system allows it, else a copy)."""
    if not result.ok:
        return replace(result, tier=job.tier)
    final = Path(job.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    tmp.unlink(missing_ok=True)
    try:
        os.link(result.path, tmp)
    except OSError:
        shutil.copyfile(result.path, tmp)
    os.replace(tmp, final)
    linked = replace(result, tier=job.tier, path=job.path, signature=list(job.signature()))
    atomic_write_bytes(record_path(job.path), json.dumps(linked.to_dict()).encode())
    return linked


def _cut_unique(source: str, jobs: list[CutJob], encode: EncodeSettings, decoder_threads: int) -> list[CutResult]:
    states: list[_JobState] = []
    try:
        with VideoReader(source, threads=decoder_threads) as reader:
            info = reader.info
            dec_w, dec_h = _decode_size(info.width, info.height, jobs)
            sx, sy = dec_w / info.width, dec_h / info.height
            states = [_JobState(j, encode, sx, sy) for j in jobs]
            last = max(j.end_frame for j in jobs)
            pending: tuple[int, float, np.ndarray] | None = None
            fallback_dt = 1.0 / info.fps if info.fps > 0 else 0.04
            active = list(states)
            for frame in reader.frames(size=(dec_w, dec_h), interpolation="AREA"):
                if pending is not None:
                    active = _offer(active, pending, frame.time_s)
                if not active or frame.index >= last:
                    pending = None
                    break
                pending = (frame.index, frame.time_s, frame.image)
            if pending is not None:  # the video's last frame: it shows for one frame duration
                active = _offer(active, pending, pending[1] + fallback_dt)
            for state in active:
                if not state.done:
                    state.fail(f"the source ended before the clip was complete "
                               f"({len(state.frames)} of {state.job.num_frames} frames)")
    except (DecodeError, OSError, av.FFmpegError) as exc:
        reason = f"source unreadable: {exc}"
        for state in states:
            if not state.done:
                state.fail(reason)
        if not states:
            return [CutResult(tier=j.tier, clip_id=j.clip_id, ok=False, error=reason) for j in jobs]
    by_job = {id(s.job): s.result for s in states}
    return [by_job[id(j)] for j in jobs]


def _offer(active: list[_JobState], pending: tuple[int, float, np.ndarray], t_next: float) -> list[_JobState]:
    index, t, image = pending
    for state in active:
        try:
            state.feed(index, t, t_next, image)
        except (av.FFmpegError, OSError, RuntimeError, cv2.error) as exc:
            state.fail(f"writing failed: {type(exc).__name__}: {exc}")
    return [s for s in active if not s.done]


def probe_clip(path: str | Path) -> tuple[int, int, int, float] | None:
    """(frames, width, height, fps) of an exported clip from its header, or None if the file
    is missing or unreadable. Frames are counted from the packets when the header lacks them."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = int(stream.frames or 0)
            if frames == 0:
                frames = sum(1 for p in container.demux(stream) if p.size)
            rate = stream.average_rate or stream.guessed_rate
            return frames, stream.codec_context.width, stream.codec_context.height, float(rate or 0.0)
    except (av.FFmpegError, OSError, IndexError):
        return None


def probe_image(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an exported still, or None if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    return image.shape[1], image.shape[0]
