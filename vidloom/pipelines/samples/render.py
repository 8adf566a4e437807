"""Render the sample corpus: virtual-camera shots over real photos, H.264 encoding, truth.json.

Camera model. A shot looks at a photo scaled by `k` (output pixels per source pixel). At frame t
the view is centred on c_t (in scaled-photo pixels), magnified by z_t and rotated by theta_t, so a
source pixel s lands at  q = z_t * k * R(theta_t) @ (s - c_t / k) + frame_centre.  Pans/tilts move
c_t, zooms change z_t, handheld jitters c_t and theta_t. `k` is chosen so the whole path stays
inside the photo; BORDER_REFLECT is only a safety net against sub-pixel overshoot.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import threading
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from vidloom.pipelines.samples import corpus as C
from vidloom.pipelines.samples.overlays import (
    SUBTITLE_LINES,
    TITLES,
    Logo,
    content_box,
    draw_subtitle,
    draw_title,
    gaussian_blur,
    place_in_box,
)

NOISE_SIGMA = 3.0  # mild sensor noise (8-bit levels) on static shots: never bit-identical frames
BLUR_SIGMA_360P = 4.0  # defocus blur sigma at 360 lines, scaled with the frame height
SUBTITLE_PERIOD_S = 1.2  # a subtitle line stays on screen this long


# --------------------------------------------------------------------------------------------
# virtual camera


def _wobble(n: int, sd: float, rng: np.random.Generator, every: int = 5) -> np.ndarray:
    """Zero-mean smooth random sway: normal offsets at knots `every` frames apart, joined by
    cosine interpolation (no kinks), clipped to 2.3 sd."""
    knots = np.clip(rng.normal(0.0, sd, n // every + 2), -2.3 * sd, 2.3 * sd)
    pos = np.arange(n) / every
    i = pos.astype(int)
    w = (1 - np.cos(np.pi * (pos - i))) / 2
    path = knots[i] * (1 - w) + knots[i + 1] * w
    return path - path.mean()


def camera_path(motion: str, n: int, w: int, h: int, src_w: int, src_h: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """Forward 2x3 affine matrices (source pixel -> output pixel), one per frame.

    Speeds are relative to the frame's long side: pans 0.6-0.9 %/frame, tilts 0.5-0.8 %/frame,
    zooms 0.6-0.9 %/frame; handheld: a smooth zero-mean sway of ~1.1 % (sd) per axis plus <= 0.8 deg roll.
    """
    base = float(max(w, h))
    t = np.arange(n, dtype=np.float64)
    shift = np.zeros((n, 2))  # view-centre offset from the path centre, in scaled-photo pixels
    zoom = np.ones(n)
    theta = np.zeros(n)
    ext_w, ext_h = float(w), float(h)  # scaled-photo extent the whole path needs

    if motion in (C.PAN_LEFT, C.PAN_RIGHT):
        v = rng.uniform(0.006, 0.009) * base
        travel = v * (n - 1)
        # Camera turning left means the view moves left over the scene: content drifts right.
        sign = -1.0 if motion == C.PAN_LEFT else 1.0
        shift[:, 0] = sign * (v * t - travel / 2)
        ext_w += travel
    elif motion in (C.TILT_UP, C.TILT_DOWN):
        v = rng.uniform(0.005, 0.008) * base
        travel = v * (n - 1)
        # Camera turning up means the view moves up the scene: content drifts down.
        sign = -1.0 if motion == C.TILT_UP else 1.0
        shift[:, 1] = sign * (v * t - travel / 2)
        ext_h += travel
    elif motion in (C.ZOOM_IN, C.ZOOM_OUT):
        r = rng.uniform(0.006, 0.009)
        zoom = (1.0 + r) ** (t if motion == C.ZOOM_IN else -t)
        # The widest view (smallest zoom) sets the extent.
        ext_w, ext_h = w / zoom.min(), h / zoom.min()
    elif motion == C.HANDHELD:
        # A hand wobbles smoothly: random offsets every ~5 frames, interpolated in between,
        # so the view sways back and forth (~1 % of the frame) without cutting or drifting.
        shift = np.stack([_wobble(n, 0.011 * base, rng) for _ in range(2)], axis=1)
        theta = _wobble(n, math.radians(0.35), rng)
        sin_max = math.sin(float(np.abs(theta).max()))
        ext_w = w + 2 * float(np.abs(shift[:, 0]).max()) + h * sin_max + 2
        ext_h = h + 2 * float(np.abs(shift[:, 1]).max()) + w * sin_max + 2
    elif motion != C.STATIC:
        raise ValueError(f"unknown camera motion {motion!r}")

    # Scale the photo to cover the path, with a random 3-15 % extra for framing variety.
    k = max(ext_w / src_w, ext_h / src_h) * rng.uniform(1.03, 1.15)
    slack_x, slack_y = src_w * k - ext_w, src_h * k - ext_h
    centre = np.array([ext_w / 2 + rng.uniform(0, slack_x), ext_h / 2 + rng.uniform(0, slack_y)])
    out_c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])

    mats = []
    for i in range(n):
        c, s = math.cos(theta[i]), math.sin(theta[i])
        a = zoom[i] * k * np.array([[c, -s], [s, c]])
        b = out_c - a @ ((centre + shift[i]) / k)
        mats.append(np.hstack([a, b[:, None]]))
    return mats


# --------------------------------------------------------------------------------------------
# shots


class NoiseBank:
    """A few pre-drawn Gaussian noise fields; frames take random crops (cheap per frame).

    Each field is stored as two uint8 halves (positive and negative part) so adding noise is two
    saturating OpenCV ops instead of an int16 round trip.
    """

    def __init__(self, w: int, h: int, rng: np.random.Generator, count: int = 3, pad: int = 16):
        self.w, self.h, self.pad = w, h, pad
        self.fields = []
        for _ in range(count):
            n = np.round(rng.standard_normal((h + pad, w + pad, 3), dtype=np.float32) * NOISE_SIGMA)
            n = np.clip(n, -127, 127)
            self.fields.append((np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8)))

    def add(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return frame (at most w x h) plus a random crop of a noise field."""
        h, w = frame.shape[:2]
        pos, neg = self.fields[int(rng.integers(len(self.fields)))]
        dy = int(rng.integers(0, pos.shape[0] - h + 1))
        dx = int(rng.integers(0, pos.shape[1] - w + 1))
        out = cv2.add(frame, np.ascontiguousarray(pos[dy:dy + h, dx:dx + w]))
        return cv2.subtract(out, np.ascontiguousarray(neg[dy:dy + h, dx:dx + w]))


@lru_cache(maxsize=None)
def _logo(width: int, height: int) -> Logo:
    return Logo(width, height)


def shot_box(shot: C.ShotSpec, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Content box for letterboxed/pillarboxed shots, else None."""
    for kind in ("letterbox", "pillarbox"):
        if kind in shot.defects:
            return content_box(kind, width, height)
    return None


def render_shot(shot: C.ShotSpec, width: int, height: int, fps: float,
                rng: np.random.Generator, noise: NoiseBank | None = None,
                photo: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield the shot's frames (HxWx3 uint8 RGB) with its planted defects.

    `noise` may be shared across the shots of a video (drawing fields is the costly part).
    `photo` (RGB) replaces the corpus photo `shot.image` names, for material outside the corpus.
    """
    box = shot_box(shot, width, height)
    cw, ch = (box[2] - box[0], box[3] - box[1]) if box else (width, height)
    src = C.load_photo(shot.image) if photo is None else photo
    mats = camera_path(shot.motion, shot.frames, cw, ch, src.shape[1], src.shape[0], rng)
    frozen = "frozen" in shot.defects
    blur = "blur" in shot.defects
    if frozen or shot.motion != C.STATIC:
        # Only static shots need noise (to differ from freezes); in moving shots it would
        # only cost encoder time and bits.
        noise = None
    elif noise is None or noise.w < cw or noise.h < ch:
        noise = NoiseBank(cw, ch, rng)
    lines = [SUBTITLE_LINES[i] for i in rng.permutation(len(SUBTITLE_LINES))]
    per_line = max(1, round(SUBTITLE_PERIOD_S * fps))
    title = TITLES[int(rng.integers(len(TITLES)))]

    still = None
    for i in range(shot.frames):
        if frozen and still is not None:
            yield still  # the very same pixels, repeated: no noise, no motion
            continue
        content = cv2.warpAffine(src, mats[i], (cw, ch), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
        if noise is not None:
            content = noise.add(content, rng)
        if blur:
            # Blur last (after any noise) so no fine detail is left: a sharpness metric must
            # see the whole shot as blurred.
            content = gaussian_blur(content, BLUR_SIGMA_360P * min(cw, ch) / 360.0)
        frame = place_in_box(content, box, width, height) if box else content
        if "subtitles" in shot.defects:
            draw_subtitle(frame, lines[(i // per_line) % len(lines)])
        if "title" in shot.defects:
            draw_title(frame, title)
        if "logo" in shot.defects:
            _logo(width, height).apply(frame)
        if frozen:
            still = frame
        yield frame


def render_video_frames(spec: C.VideoSpec, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield every frame of a video spec, shot after shot."""
    needs_noise = any(s.motion == C.STATIC and "frozen" not in s.defects for s in spec.shots)
    noise = NoiseBank(spec.width, spec.height, rng) if needs_noise else None
    for shot in spec.shots:
        yield from render_shot(shot, spec.width, spec.height, float(spec.fps), rng, noise)


# --------------------------------------------------------------------------------------------
# encoding


def prefetch(frames: Iterable[np.ndarray], depth: int = 8) -> Iterator[np.ndarray]:
    """Produce frames in a background thread so drawing overlaps encoding.

    OpenCV and the x264 encoder release the GIL, so on two cores this hides most of the render
    cost behind the encoder. Order and content are unchanged (a single producer).
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    worker = threading.Thread(target=produce, name="vidloom-samples-render", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


#: x264 threads of `encode_video`. Fixed, because x264's output depends on the count, and by
#: default the count follows the CPUs the process may use: a fixed count makes the same file
#: (and so the same sample corpus and held-out draws) on every machine. 2 is what the default
#: chose on the 2-core machines every figure in docs/ was measured on.
ENCODE_THREADS = 2


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: int, width: int, height: int,
                 crf: int = 23, preset: str = "superfast") -> int:
    """Encode RGB frames as H.264 yuv420p (MP4 or Matroska by extension). Returns frame count."""
    fmt = "matroska" if path.suffix == ".mkv" else "mp4"
    count = 0
    # bitexact keeps muxer output free of run-dependent bytes (e.g. Matroska's random UIDs).
    with av.open(str(path), mode="w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # tune=grain keeps the mild sensor noise through the encoder; otherwise P-skip blocks
        # make static shots decode nearly bit-identical and indistinguishable from freezes.
        stream.options = {"crf": str(crf), "preset": preset, "tune": "grain"}
        stream.codec_context.thread_count = ENCODE_THREADS  # as VideoOut sets its count
        tb = Fraction(1, fps)
        for arr in frames:
            # OpenCV's RGB->I420 (BT.601, limited range, as swscale's default) is ~2x faster.
            yuv = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = count, tb
            out.mux(stream.encode(frame))
            count += 1
        out.mux(stream.encode(None))
    return count


def decode_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode every frame of a video as HxWx3 uint8 RGB."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.format.name == "yuv420p":
                # OpenCV's I420->RGB (BT.601 limited range) is much faster than swscale's.
                yield cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
            else:
                yield frame.to_ndarray(format="rgb24")


def _transform_frames(frames: Iterable[np.ndarray], crop: float, out_w: int,
                      out_h: int) -> Iterator[np.ndarray]:
    for arr in frames:
        h, w = arr.shape[:2]
        cx, cy = round(w * crop), round(h * crop)
        arr = arr[cy:h - cy, cx:w - cx]
        if arr.shape[1] != out_w or arr.shape[0] != out_h:
            arr = cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_AREA)
        yield arr


# --------------------------------------------------------------------------------------------
# truth


def _shot_truth(spec: C.VideoSpec) -> list[dict]:
    shots, pos = [], 0
    for shot in spec.shots:
        box = shot_box(shot, spec.width, spec.height)
        shots.append({
            "start_frame": pos, "end_frame": pos + shot.frames, "camera_motion": shot.motion,
            "defects": list(shot.defects), "content_box": list(box) if box else None,
            "image": shot.image,
        })
        pos += shot.frames
    return shots


def _video_truth(spec: C.VideoSpec) -> dict:
    return {
        "file": spec.file, "expected_status": spec.expected_status, "fps": float(spec.fps),
        "width": spec.width, "height": spec.height, "num_frames": spec.num_frames,
        "container": spec.container, "cuts": spec.cuts, "duplicate_of": None,
        "shots": _shot_truth(spec),
    }


def _even(v: float) -> int:
    return max(2, 2 * round(v / 2))


def _duplicate_truth(dup: C.DuplicateSpec, src: dict) -> dict:
    w, h = _even(src["width"] * dup.scale), _even(src["height"] * dup.scale)
    cx, cy = round(src["width"] * dup.crop), round(src["height"] * dup.crop)
    sx, sy = w / (src["width"] - 2 * cx), h / (src["height"] - 2 * cy)
    shots = []
    for shot in src["shots"]:
        shot = dict(shot, defects=list(shot["defects"]))
        if shot["content_box"] is not None:
            x0, y0, x1, y1 = shot["content_box"]
            shot["content_box"] = [
                max(0, round((x0 - cx) * sx)), max(0, round((y0 - cy) * sy)),
                min(w, round((x1 - cx) * sx)), min(h, round((y1 - cy) * sy)),
            ]
        shots.append(shot)
    return dict(src, file=dup.file, width=w, height=h, duplicate_of=src["file"],
                container="mkv" if dup.file.endswith(".mkv") else "mp4", shots=shots)


def _broken_truth(b: C.BrokenSpec) -> dict:
    return {"file": b.file, "expected_status": "error", "fps": None, "width": None,
            "height": None, "num_frames": None, "container": "mp4", "cuts": [],
            "duplicate_of": None, "shots": []}


# --------------------------------------------------------------------------------------------
# corpus


def _video_rng(seed: int, name: str) -> np.random.Generator:
    # Per-file streams: each video's randomness depends only on (seed, file name).
    digest = hashlib.sha256(name.encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def render_video_file(spec: C.VideoSpec, path: Path, seed: int) -> dict:
    """Render and encode one video of the corpus to `path`; return its truth entry."""
    frames = prefetch(render_video_frames(spec, _video_rng(seed, spec.file)))
    n = encode_video(Path(path), frames, spec.fps, spec.width, spec.height, spec.crf)
    if n != spec.num_frames:
        raise RuntimeError(f"{spec.file}: encoded {n} frames, spec says {spec.num_frames}")
    return _video_truth(spec)


def _is_complete(out: Path, seed: int) -> dict | None:
    """The existing truth if OUT already holds a complete corpus for this seed, else None."""
    path = out / "truth.json"
    try:
        truth = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if truth.get("seed") != seed or truth.get("version") != C.TRUTH_VERSION:
        return None
    files = [v["file"] for v in truth.get("videos", [])]
    if sorted(files) != sorted(C.CorpusSpec().all_files()):
        return None
    if not all((out / f).is_file() for f in files):
        return None
    return truth


def render_sample_corpus(out_dir: str | os.PathLike, seed: int = 0, force: bool = False) -> dict:
    """Render the sample corpus into out_dir and return its truth (also written to truth.json).

    Skips all work when out_dir already holds a complete corpus for `seed` (unless force).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not force:
        existing = _is_complete(out, seed)
        if existing is not None:
            return existing
    (out / "truth.json").unlink(missing_ok=True)  # written last: its presence marks completion

    spec = C.CorpusSpec()
    entries: dict[str, dict] = {}
    for video in spec.videos:
        entries[video.file] = render_video_file(video, out / video.file, seed)

    for dup in spec.duplicates:
        src = entries[dup.source]
        t = _duplicate_truth(dup, src)
        frames = prefetch(_transform_frames(decode_frames(out / dup.source), dup.crop, t["width"], t["height"]))
        n = encode_video(out / dup.file, frames, int(src["fps"]), t["width"], t["height"], dup.crf)
        if n != t["num_frames"]:
            raise RuntimeError(f"{dup.file}: encoded {n} frames, source has {t['num_frames']}")
        entries[dup.file] = t

    entries[spec.short.file] = render_video_file(spec.short, out / spec.short.file, seed)

    for b in spec.broken:
        target = out / b.file
        if b.kind == "empty":
            target.write_bytes(b"")
        elif b.kind == "text":
            target.write_text("This is not a video. It is a plain text file with an .mp4 name,\n"
                              "planted in the sample corpus to test that ingestion rejects it.\n")
        elif b.kind == "truncated":
            data = (out / b.source).read_bytes()
            target.write_bytes(data[: int(len(data) * b.keep_fraction)])
        else:
            raise ValueError(f"unknown broken kind {b.kind!r}")
        entries[b.file] = _broken_truth(b)

    truth = {"seed": seed, "version": C.TRUTH_VERSION,
             "videos": [entries[f] for f in spec.all_files()]}
    tmp = out / "truth.json.tmp"
    tmp.write_text(json.dumps(truth, indent=1))
    tmp.replace(out / "truth.json")
    return truth

