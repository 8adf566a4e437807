"""Writing videos and pictures: H.264 MP4 (PyAV), a PNG grid of frames, from RGB uint8 arrays.

One writer for every producer of videos: exported clips, training samples, served generations.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def video_rate(fps: float) -> Fraction:
    """A frame rate as the exact fraction containers store (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class Mp4Writer:
    """H.264 yuv420p MP4 written under a temporary name; `finish` renames it into place.

    Width and height must be even (yuv420p); frames are RGB uint8 (H, W, 3)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18,
                 preset: str = "veryfast", threads: int = 0, faststart: bool = False):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.final = Path(path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}")
        rate = video_rate(fps)
        self.tb = 1 / rate
        options = {"fflags": "+bitexact"}
        if faststart:  # index first, so a browser can play the file while it downloads
            options["movflags"] = "+faststart"
        self.out = av.open(str(self.tmp), mode="w", format="mp4", options=options)
        self.stream = self.out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": preset}
        if threads:
            self.stream.codec_context.thread_count = threads
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        # OpenCV's RGB->I420 (BT.601 limited range, swscale's default matrix) is the cheap path.
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = self.count, self.tb
        self.out.mux(self.stream.encode(frame))
        self.count += 1

    def finish(self) -> None:
        self.out.mux(self.stream.encode(None))
        self.out.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        try:
            self.out.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self.tmp.unlink(missing_ok=True)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 24.0, crf: int = 18, faststart: bool = False) -> Path:
    """Write RGB uint8 frames (F, H, W, 3) as an MP4; returns the path."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    writer = Mp4Writer(path, frames.shape[2], frames.shape[1], fps, crf=crf, faststart=faststart)
    try:
        for frame in frames:
            writer.write(frame)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return Path(path)


def mp4_bytes(frames: np.ndarray, fps: float = 24.0, crf: int = 18) -> bytes:
    """The MP4 of `frames` as bytes, index first (faststart rewrites a real file, not a buffer)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vidloom-mp4-") as tmp:
        return write_mp4(frames, Path(tmp) / "video.mp4", fps, crf, faststart=True).read_bytes()


def to_uint8_frames(video: "np.ndarray") -> np.ndarray:
    """A decoded video in [-1, 1] shaped (3, F, H, W) -> RGB uint8 (F, H, W, 3)."""
    arr = np.clip((np.asarray(video, dtype=np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr.transpose(1, 2, 3, 0))


def frame_grid(frames: np.ndarray, columns: int = 4, max_frames: int = 8) -> np.ndarray:
    """Up to `max_frames` frames evenly spread over the clip, tiled `columns` wide (RGB uint8)."""
    n = len(frames)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    chosen = [frames[i] for i in pick]
    cols = min(columns, len(chosen))
    rows = -(-len(chosen) // cols)
    h, w = chosen[0].shape[:2]
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for k, f in enumerate(chosen):
        r, c = divmod(k, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = f
    return grid


def write_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 picture as PNG."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return Path(path)
