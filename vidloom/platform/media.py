"""Video probing and decoding with PyAV: one open container, one pass over the frames.

What the rest of vidloom relies on:
- sizes are *display* sizes: non-square pixels are stretched by the sample aspect ratio and
  rotation metadata (a phone video stored landscape with a 90° display matrix) is applied;
- frames are numbered in decode order from 0, and each frame's time is its presentation
  timestamp relative to the first frame (never index / fps, which is wrong for variable frame
  rate); the stream's own start offset is reported separately as `start_time_s`;
- scaling to the analysis size happens in the decoder's scaler, in the same step as the
  colour conversion (one swscale call per frame, not a decode-then-resize).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import IO, Iterator

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from vidloom.platform.storage import is_uri, open_input


class DecodeError(RuntimeError):
    """A video could not be opened or decoded; the message is meant for a human."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says (sizes after SAR and rotation)."""

    codec: str
    container: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: float
    duration_s: float
    num_frames_header: int
    start_time_s: float
    rotation: int
    sample_aspect_ratio: float
    time_base: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # decode-order index from 0
    time_s: float  # presentation time relative to the first frame
    image: np.ndarray  # H×W×3 uint8 (RGB by default) at the requested display-oriented size


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def display_size(coded_w: int, coded_h: int, sar: float, rotation: int) -> tuple[int, int]:
    """Display (width, height) of a coded frame, after pixel aspect and rotation."""
    w = coded_w * sar if sar > 0 else coded_w
    w_i, h_i = int(round(w)), coded_h
    if rotation % 180 != 0:
        w_i, h_i = h_i, w_i
    return w_i, h_i


def analysis_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Display size scaled so its short side is `short_side` (never upscaled), both even."""
    if not short_side or min(width, height) <= short_side:
        return _even(width), _even(height)
    scale = short_side / float(min(width, height))
    return _even(width * scale), _even(height * scale)


def _normalise_rotation(degrees: float | int | None) -> int:
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) * 90 % 360


#: Decoder threads a VideoReader uses when asked for 0 (`set_default_decoder_threads`).
_default_decoder_threads = 0


def set_default_decoder_threads(threads: int) -> None:
    """Decoder threads of every later `VideoReader(threads=0)` in this process; 0 lets FFmpeg
    choose (a thread per core). A pipeline worker sets its CPU share here, so that the decoders
    of several workers on one node do not each start a thread per core and fight for them."""
    global _default_decoder_threads
    _default_decoder_threads = max(0, int(threads))


class VideoReader:
    """An opened video: `info` from the header, then `frames(...)` decodes it once.

    Use as a context manager. `threads` = decoder threads; 0 takes this process' default
    (`set_default_decoder_threads`: a pipeline worker's CPU share; FFmpeg's choice elsewhere).
    """

    def __init__(self, source: str | IO[bytes], threads: int = 0):
        self.source = source
        if isinstance(source, str) and not is_uri(source) and os.path.isfile(source) and os.path.getsize(source) == 0:
            raise DecodeError("empty file (0 bytes)")
        self._handle = open_input(source) if isinstance(source, str) else source
        try:
            self._container = av.open(self._handle, mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise DecodeError(f"cannot open as a video: {_reason(exc)}") from exc
        if not self._container.streams.video:
            self.close()
            raise DecodeError("no video stream in the file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        threads = threads or _default_decoder_threads
        if threads:
            self._stream.codec_context.thread_count = int(threads)
        self._first: av.VideoFrame | None = None
        self._frames_iter: Iterator[av.VideoFrame] | None = None
        self.info = self._probe()

    # -- header -------------------------------------------------------------------------
    def _probe(self) -> VideoInfo:
        s = self._stream
        cc = s.codec_context
        tb = float(s.time_base) if s.time_base else 0.0
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        sar_frac = cc.sample_aspect_ratio or s.sample_aspect_ratio
        sar = float(sar_frac) if sar_frac and float(sar_frac) > 0 else 1.0
        # Rotation lives in frame side data; peek at the first frame (kept for frames()).
        self._frames_iter = self._decode_iter()
        try:
            self._first = next(self._frames_iter)
        except StopIteration:
            raise DecodeError("the video stream holds no decodable frame") from None
        rotation = _normalise_rotation(getattr(self._first, "rotation", 0))
        coded_w, coded_h = self._first.width, self._first.height
        width, height = display_size(coded_w, coded_h, sar, rotation)
        if s.duration is not None and tb:
            duration = float(s.duration) * tb
        elif self._container.duration is not None:
            duration = float(self._container.duration) / av.time_base
        else:
            duration = 0.0
        start = float(s.start_time) * tb if s.start_time is not None and tb else 0.0
        return VideoInfo(
            codec=cc.name,
            container=self._container.format.name,
            width=width,
            height=height,
            coded_width=coded_w,
            coded_height=coded_h,
            fps=fps,
            duration_s=duration,
            num_frames_header=int(s.frames or 0),
            start_time_s=start,
            rotation=rotation,
            sample_aspect_ratio=sar,
            time_base=tb,
        )

    def _decode_iter(self) -> Iterator[av.VideoFrame]:
        count = 0
        try:
            for frame in self._container.decode(self._stream):
                count += 1
                yield frame
        except av.FFmpegError as exc:
            raise DecodeError(f"decoding failed after {count} frames: {_reason(exc)}") from exc

    # -- frames -------------------------------------------------------------------------
    def frames(
        self,
        short_side: int | None = None,
        size: tuple[int, int] | None = None,
        fmt: str = "rgb24",
        interpolation: str = "BILINEAR",
    ) -> Iterator[DecodedFrame]:
        """Decode every frame once, scaled (in the decoder's scaler) to display orientation.

        `size` = (width, height) in display orientation; otherwise the short side is scaled
        to `short_side` (no upscaling); None keeps the display size.
        """
        if self._frames_iter is None or self._first is None:
            raise DecodeError("frames() can be called once per VideoReader")
        info = self.info
        out_w, out_h = size if size else analysis_size(info.width, info.height, short_side)
        rot = info.rotation
        # Scale in the stored orientation, then rotate the small array (cheap).
        scale_w, scale_h = (out_h, out_w) if rot % 180 else (out_w, out_h)
        k = rot // 90
        first_pts = None
        fallback_dt = 1.0 / info.fps if info.fps > 0 else 0.0
        last_time = -fallback_dt
        frames_iter, first = self._frames_iter, self._first
        self._frames_iter, self._first = None, None

        reformatter = VideoReformatter()

        def chain() -> Iterator[av.VideoFrame]:
            yield first
            yield from frames_iter

        for index, frame in enumerate(chain()):
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is not None and info.time_base:
                if first_pts is None:
                    first_pts = pts
                t = (pts - first_pts) * info.time_base
            else:  # no timestamps at all: the only thing left is the nominal rate
                t = last_time + fallback_dt
            last_time = t
            # One reformatter (one SwsContext) for the whole video: building a scaler per
            # frame, as `frame.to_ndarray(width=...)` does, costs 2-3x the conversion itself.
            image = reformatter.reformat(
                frame, width=scale_w, height=scale_h, format=fmt, interpolation=interpolation, threads=1
            ).to_ndarray()
            if k:
                image = np.ascontiguousarray(np.rot90(image, k=k))
            yield DecodedFrame(index=index, time_s=float(t), image=image)

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None
        if self._handle is not None and not isinstance(self._handle, str):
            try:
                self._handle.close()
            except Exception:  # noqa: BLE001 - closing a remote handle must not mask errors
                pass
        self._handle = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.replace("\n", " ")[:300]



def jpeg_bytes(rgb: np.ndarray, quality: int = 85) -> bytes:
    """An RGB uint8 H×W×3 frame as JPEG bytes (thumbnails, frames sent to a VLM)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not JPEG-encode a frame of shape {np.shape(rgb)}")
    return buf.tobytes()


def as_gray(frame: np.ndarray) -> np.ndarray:
    """A grey H×W view of an RGB H×W×3, single-channel H×W×1 or grey H×W uint8 frame."""
    import cv2

    img = np.asarray(frame)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim != 2:
        raise ValueError(f"expected an H×W grey or H×W×3 RGB frame, got shape {img.shape}")
    return img
