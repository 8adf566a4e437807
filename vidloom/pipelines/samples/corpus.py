"""The sample corpus: which videos exist, their shots, camera motions and planted defects.

The layout (files, shot lengths, cuts, labels) is fixed; the seed only changes the random parts
of rendering (framing offsets, speeds, handheld jitter, sensor noise, subtitle lines). That keeps
the truth structurally stable so tests and the demo can rely on it for any seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TRUTH_VERSION = 1

# The eight camera-motion labels, exactly as the classifier is scored against them.
STATIC = "static shot"
PAN_LEFT = "pan left"  # camera turns left -> content moves right in the frame
PAN_RIGHT = "pan right"  # camera turns right -> content moves left
TILT_UP = "tilt up"  # camera turns up -> content moves down
TILT_DOWN = "tilt down"  # camera turns down -> content moves up
ZOOM_IN = "zoom in"  # content grows about the centre
ZOOM_OUT = "zoom out"  # content shrinks about the centre
HANDHELD = "handheld shot"  # zero-mean jitter, no drift

MOTIONS: tuple[str, ...] = (STATIC, PAN_LEFT, PAN_RIGHT, TILT_UP, TILT_DOWN, ZOOM_IN, ZOOM_OUT, HANDHELD)

# Planted defects; each appears on at least one whole shot.
DEFECTS: tuple[str, ...] = ("subtitles", "title", "logo", "letterbox", "pillarbox", "blur", "frozen")

# Real photographs bundled in scikit-image's wheel (no network needed). Grey photos are used
# sparingly and never next to each other, so colour-histogram cut detectors still see clear cuts.
PHOTOS: dict[str, str] = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "motorcycle": "stereo_motorcycle",
    "ihc": "immunohistochemistry",
    "camera": "camera",
    "coins": "coins",
}


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """Return the named photo as a read-only HxWx3 uint8 RGB array (cached per process)."""
    from skimage import data  # imported lazily: skimage import is slow and only needed here

    loader = getattr(data, PHOTOS[name])
    img = loader()
    if name == "motorcycle":
        img = img[0]  # stereo_motorcycle() returns (left, right, disparity); use the left view
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3].astype(np.uint8))
    img.setflags(write=False)
    return img


@dataclass(frozen=True)
class ShotSpec:
    """One shot: a photo seen through a virtual camera for `frames` frames."""

    image: str
    motion: str
    frames: int
    defects: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoSpec:
    """One rendered video file made of consecutive shots."""

    file: str
    width: int
    height: int
    fps: int
    shots: tuple[ShotSpec, ...]
    crf: int = 23
    expected_status: str = "ok"

    @property
    def container(self) -> str:
        return "mkv" if self.file.endswith(".mkv") else "mp4"

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def cuts(self) -> list[int]:
        """Frame indices where a new shot starts (0 is not a cut)."""
        out, pos = [], 0
        for shot in self.shots[:-1]:
            pos += shot.frames
            out.append(pos)
        return out


@dataclass(frozen=True)
class DuplicateSpec:
    """A near-duplicate: `source` decoded, cropped by `crop` per side, resized, re-encoded."""

    file: str
    source: str
    scale: float = 1.0
    crop: float = 0.0  # fraction of width/height removed from EACH side before resizing
    crf: int = 23


@dataclass(frozen=True)
class BrokenSpec:
    """A file that must be rejected: 'empty', 'text' or 'truncated' (of `source`)."""

    file: str
    kind: str
    source: str | None = None
    keep_fraction: float = 0.3


def _s(image: str, motion: str, frames: int, *defects: str) -> ShotSpec:
    return ShotSpec(image, motion, frames, tuple(defects))


VIDEOS: tuple[VideoSpec, ...] = (
    VideoSpec("v00_astronaut.mp4", 640, 360, 25, (
        _s("astronaut", PAN_LEFT, 75, "subtitles"),
        _s("coffee", STATIC, 60),
        _s("chelsea", ZOOM_IN, 80),
        _s("rocket", TILT_UP, 70),
    )),
    VideoSpec("v01_motorcycle.mp4", 640, 360, 25, (
        _s("motorcycle", PAN_RIGHT, 70),
        _s("camera", HANDHELD, 60),
        _s("coffee", ZOOM_OUT, 75),
    )),
    VideoSpec("v02_chelsea_logo.mp4", 480, 270, 25, (
        _s("chelsea", TILT_DOWN, 65, "logo"),
        _s("rocket", PAN_LEFT, 60, "logo"),
        _s("astronaut", HANDHELD, 70, "logo"),
        _s("coins", STATIC, 55, "logo"),
    )),
    VideoSpec("v03_rocket_film.mkv", 640, 360, 25, (
        _s("rocket", ZOOM_IN, 70, "letterbox"),
        _s("motorcycle", TILT_UP, 65, "letterbox"),
        _s("ihc", PAN_RIGHT, 60, "letterbox"),
    )),
    VideoSpec("v04_coffee_hd.mp4", 1280, 720, 25, (
        _s("coffee", PAN_LEFT, 55, "title"),
        _s("astronaut", ZOOM_OUT, 55),
        _s("chelsea", TILT_DOWN, 50),
    )),
    VideoSpec("v05_portrait.mp4", 360, 640, 30, (
        _s("astronaut", TILT_UP, 75, "subtitles"),
        _s("motorcycle", STATIC, 65),
        _s("chelsea", HANDHELD, 70),
    )),
    VideoSpec("v06_coffee.mp4", 480, 270, 24, (
        _s("coffee", HANDHELD, 60),
        _s("coins", ZOOM_IN, 55, "blur"),
        _s("astronaut", PAN_RIGHT, 65),
        _s("rocket", STATIC, 50, "frozen"),
    )),
    VideoSpec("v07_chelsea_4x3.mp4", 640, 360, 25, (
        _s("chelsea", STATIC, 60, "pillarbox"),
        _s("astronaut", TILT_DOWN, 70, "pillarbox"),
        _s("motorcycle", ZOOM_OUT, 65, "pillarbox"),
        _s("ihc", HANDHELD, 60),
    )),
    VideoSpec("v08_camera.mp4", 480, 270, 25, (
        _s("camera", TILT_DOWN, 55),
        _s("coffee", PAN_RIGHT, 65, "subtitles"),
        _s("rocket", ZOOM_OUT, 60, "title"),
        _s("chelsea", TILT_UP, 55, "blur"),
    )),
)

# Too short to be useful as a clip (0.6 s), but otherwise a valid video.
SHORT = VideoSpec("short.mp4", 480, 270, 25, (_s("coffee", PAN_RIGHT, 15),), expected_status="too_short")

DUPLICATES: tuple[DuplicateSpec, ...] = (
    DuplicateSpec("v01_motorcycle_small.mp4", "v01_motorcycle.mp4", scale=0.75, crf=31),
    DuplicateSpec("v01_motorcycle_crop.mp4", "v01_motorcycle.mp4", crop=0.02, crf=19),
)

BROKEN: tuple[BrokenSpec, ...] = (
    BrokenSpec("zero_bytes.mp4", "empty"),
    BrokenSpec("not_a_video.mp4", "text"),
    # mp4 without faststart keeps the moov atom at the end, so the first 30 % has no index.
    BrokenSpec("truncated.mp4", "truncated", source="v02_chelsea_logo.mp4", keep_fraction=0.3),
)


@dataclass(frozen=True)
class CorpusSpec:
    """Everything `render_sample_corpus` produces, in output order."""

    videos: tuple[VideoSpec, ...] = VIDEOS
    short: VideoSpec = SHORT
    duplicates: tuple[DuplicateSpec, ...] = DUPLICATES
    broken: tuple[BrokenSpec, ...] = BROKEN

    def all_files(self) -> list[str]:
        return ([v.file for v in self.videos] + [d.file for d in self.duplicates]
                + [self.short.file] + [b.file for b in self.broken])
