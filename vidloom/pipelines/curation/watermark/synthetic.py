"""Synthetic watermark training data: text and logo overlays composited onto real frames.

No labelled watermark data ships with vidloom, so the detector learns from overlays we draw
ourselves, the way channel logos and watermarks are made: semi-transparent (opacity 0.2-0.8)
text or a small mark plus text, in a corner or at an edge, over real photographs (scikit-image's
bundled photos, randomly cropped, flipped and colour-jittered) and over frames of any videos
given. Fonts are OpenCV's Hershey fonts, the DejaVu / STIX / Computer Modern TrueType files
matplotlib's pinned wheel ships, and the TrueType files of any font folders named (`fonts`). The
machine's own fonts are never picked up unasked: which fonts a system has (Debian adds Liberation
with chromium) would give the text overlays other fonts and shapes, so the same seed would make
other training images and another held-out evaluation on another machine.

`write_yolo_dataset` writes the Ultralytics layout: ``images/{train,val}/*.jpg``,
``labels/{train,val}/*.txt`` (one ``0 cx cy w h`` line per overlay, normalised) and
``data.yaml``, written last so that a complete folder is recognised and reused.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import yaml

CLASS_NAMES = {0: "watermark"}
# 2: the held-out evaluation's photographs (retina, hubble_deep_field) left out; `photos` folders.
# 3: frames degraded as a video frame reaches the stage (resized, compressed); more faint marks.
DATASET_VERSION = 3

# Bundled scikit-image photos that load without a download (real camera content). The two that
# the held-out evaluation renders (clarity_calibration.held_out_images) are not among them.
PHOTO_LOADERS = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry",
    "brick", "grass", "gravel", "cat", "moon", "stereo_motorcycle", "cell", "clock",
)
PLATE_SHARE = 0.15  # training overlays on a translucent box (version 2 on)
DEGRADE_SHARE = 0.6  # training images resized and compressed like a decoded frame (version 3 on)
FAINT_SHARE = 0.35  # training overlays at opacity 0.2-0.4 instead of 0.2-0.8 (version 3 on)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
_WORDS = (
    "NEWS", "TV", "LIVE", "HD", "STUDIO", "MEDIA", "FILMS", "PRO", "CLIPS", "VIRAL", "DAILY",
    "SPORT", "PLUS", "ONE", "CHANNEL", "STOCK", "PREVIEW", "SAMPLE", "WORLD", "NET", "CAM",
)
_POSITIONS = ("tl", "tr", "bl", "br", "tc", "bc", "ml", "mr")
_POSITION_WEIGHTS = np.array([3, 4, 3, 4, 1, 1, 0.5, 0.5])


def ttf_fonts(folders: Sequence[str | Path] = ()) -> tuple[str, ...]:
    """TrueType fonts with Latin glyphs: the ones matplotlib ships, then those in `folders`
    (searched recursively; a name already found is not added twice). The same files, in the
    same order, on every machine with the same `folders`."""
    return _ttf_fonts(tuple(str(f) for f in folders))


@lru_cache(maxsize=8)
def _ttf_fonts(folders: tuple[str, ...]) -> tuple[str, ...]:
    found: list[Path] = []
    try:
        import matplotlib

        mpl = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
        found += sorted(p for p in mpl.glob("*.ttf")
                        if p.name.startswith(("DejaVu", "STIXGeneral", "cmr", "cmss", "cmtt", "cmb")))
    except ImportError:
        pass
    for folder in folders:
        found += _files_under(folder, (".ttf",), "font", "TrueType fonts")
    seen: dict[str, str] = {}
    for p in found:
        seen.setdefault(p.name, str(p))
    return tuple(sorted(seen.values()))


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def video_frames(paths: Iterable[str], per_video: int = 24, short_side: int = 360) -> list[np.ndarray]:
    """Evenly spaced RGB frames of each video (decoded once, at a small size)."""
    from vidloom.platform.media import VideoReader

    frames: list[np.ndarray] = []
    for path in paths:
        with VideoReader(str(path)) as reader:
            total = int(reader.info.num_frames_header or 0)
            every = max(1, total // per_video) if total else 10  # no count in the header: every 10th
            frames += [f.image for f in reader.frames(short_side=short_side) if f.index % every == 0][:per_video]
    return frames


def _files_under(folder: str | Path, suffixes: Sequence[str], kind: str, what: str) -> list[Path]:
    """The files under a folder the user named (recursively, sorted) whose suffix is one of
    `suffixes`; a missing folder or one without such files is an error naming it."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if not paths:
        raise ValueError(f"no {what} ({', '.join(suffixes)}) in {root}")
    return paths


def folder_photos(folders: Iterable[str], max_side: int = 960) -> list[np.ndarray]:
    """RGB photographs found in `folders` (recursively, sorted), shrunk to `max_side` at most.

    Refuses the held-out evaluation's photographs: training on them would make its figures a
    measure of memory instead of generalisation."""
    from vidloom.pipelines.curation.signals.clarity_calibration import held_out_images, read_rgb
    from vidloom.platform.weights import file_digest

    held_out = {file_digest(p, 16) for p in held_out_images() if p.is_file()}
    photos: list[np.ndarray] = []
    for folder in folders:
        for path in _files_under(folder, PHOTO_SUFFIXES, "photo", "photographs"):
            if file_digest(path, 16) in held_out:
                raise ValueError(f"{path} is one of the held-out evaluation's photographs; leave it out")
            rgb = read_rgb(path)
            scale = max_side / max(rgb.shape[:2])
            if scale < 1:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            photos.append(rgb)
    return photos


def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness / contrast / saturation / hue jitter, as camera and grading differences."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out = (out - 128.0) * rng.uniform(0.7, 1.3) + 128.0 + rng.uniform(-30, 30)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_background(rng: np.random.Generator, width: int, height: int,
                      extra: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A random crop (scale and aspect varied) of a photo or given frame, flipped and jittered."""
    pool = len(PHOTO_LOADERS) + len(extra)
    pick = int(rng.integers(pool))
    src = _photo(PHOTO_LOADERS[pick]) if pick < len(PHOTO_LOADERS) else extra[pick - len(PHOTO_LOADERS)]
    sh, sw = src.shape[:2]
    aspect = width / height
    scale = rng.uniform(0.35, 1.0)
    ch = int(min(sh, sw / aspect) * scale)
    cw = max(8, int(ch * aspect))
    ch = max(8, ch)
    y = int(rng.integers(0, max(1, sh - ch + 1)))
    x = int(rng.integers(0, max(1, sw - cw + 1)))
    crop = cv2.resize(src[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return _jitter(np.ascontiguousarray(crop), rng)


def _random_text(rng: np.random.Generator) -> str:
    kind = int(rng.integers(5))
    if kind == 0:
        return str(rng.choice(_WORDS)) + str(int(rng.integers(1, 99)))
    if kind == 1:
        return "@" + "".join(rng.choice(list(string.ascii_lowercase), size=int(rng.integers(4, 10))))
    if kind == 2:
        return "www." + "".join(rng.choice(list(string.ascii_lowercase), size=int(rng.integers(4, 8)))) + ".com"
    if kind == 3:
        return "(c) " + str(int(rng.integers(1990, 2031)))
    return " ".join(str(w) for w in rng.choice(_WORDS, size=int(rng.integers(1, 3)), replace=False))


def _text_layer(text: str, height_px: int, rng: np.random.Generator, fonts: Sequence[str]) -> np.ndarray:
    """Alpha mask (uint8, tight) of `text` drawn with a random Hershey font or one of `fonts`."""
    if fonts and rng.random() < 0.6:
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.truetype(str(rng.choice(fonts)), size=max(6, height_px))
        left, top, right, bottom = font.getbbox(text)
        canvas = Image.new("L", (max(1, right - left + 4), max(1, bottom - top + 4)), 0)
        ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, font=font, fill=255)
        mask = np.asarray(canvas)
    else:
        face = int(rng.choice(HERSHEY_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.2 else 0)
        thick = int(rng.integers(1, 3))
        (w1, h1), _ = cv2.getTextSize(text, face, 1.0, thick)
        scale = height_px / max(1, h1)
        thick = max(1, int(round(thick * scale * 0.6)))
        (tw, th), base = cv2.getTextSize(text, face, scale, thick)
        mask = np.zeros((th + base + 2 * thick + 4, tw + 2 * thick + 4), np.uint8)
        cv2.putText(mask, text, (thick + 2, th + thick + 2), face, scale, 255, thick, cv2.LINE_AA)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((1, 1), np.uint8)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _mark_layer(size: int, rng: np.random.Generator) -> np.ndarray:
    """Alpha mask of a simple logo mark: disc, ring, rounded square, triangle or diamond."""
    m = np.zeros((size, size), np.uint8)
    c, r = size // 2, max(2, size // 2 - 1)
    kind = int(rng.integers(5))
    if kind == 0:
        cv2.circle(m, (c, c), r, 255, -1, cv2.LINE_AA)
    elif kind == 1:
        cv2.circle(m, (c, c), r, 255, max(1, size // 6), cv2.LINE_AA)
    elif kind == 2:
        cv2.rectangle(m, (1, 1), (size - 2, size - 2), 255, -1)
        cv2.circle(m, (c, c), max(1, r // 2), 0, -1, cv2.LINE_AA)
    elif kind == 3:
        pts = np.array([[c, 1], [size - 2, size - 2], [1, size - 2]], np.int32)
        cv2.fillPoly(m, [pts], 255, cv2.LINE_AA)
    else:
        pts = np.array([[c, 1], [size - 2, c], [c, size - 2], [1, c]], np.int32)
        cv2.fillPoly(m, [pts], 255, cv2.LINE_AA)
    return m


#: An overlay's pixel with alpha above this is drawn: it counts for the overlay's box and for
#: whether the overlay shows at all (a font without the glyphs draws nothing).
DRAWN_ALPHA = 0.02


@dataclass
class Overlay:
    """An overlay ready to composite: colour art and alpha in [0, 1] (same size)."""

    art: np.ndarray  # h x w x 3 float32
    alpha: np.ndarray  # h x w float32

    @property
    def drawn(self) -> np.ndarray:
        """The pixels the overlay draws (bool, h x w)."""
        return self.alpha > DRAWN_ALPHA

    def drawn_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the drawn pixels within the overlay; None when it draws nothing."""
        ys, xs = np.nonzero(self.drawn)
        if len(ys) == 0:
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def random_overlay(rng: np.random.Generator, frame_w: int, frame_h: int, plate_share: float = 0.0,
                   faint_share: float = 0.0, fonts: Sequence[str] | None = None) -> Overlay:
    """A text watermark or a logo (mark + text), coloured, optionally outlined, semi-transparent.

    With probability `plate_share` the mark sits on a translucent box (a channel bug's plate), and
    with probability `faint_share` its opacity is drawn from 0.2-0.4 instead of 0.2-0.8. At 0 no
    random number is drawn for either, so a stream of overlays stays as it was. Text is drawn
    with a Hershey font or one of `fonts` (TrueType files; None: `ttf_fonts()`)."""
    short = min(frame_w, frame_h)
    height = max(8, int(short * rng.uniform(0.04, 0.12)))
    text = _random_text(rng)
    parts = [_text_layer(text, height, rng, ttf_fonts() if fonts is None else fonts)]
    if rng.random() < 0.45:
        mark = _mark_layer(int(height * rng.uniform(1.0, 1.8)), rng)
        parts.insert(0 if rng.random() < 0.8 else 1, mark)
    if rng.random() < 0.15:  # mark only
        parts = [_mark_layer(int(height * rng.uniform(1.2, 2.5)), rng)]
    gap = max(2, height // 4)
    h = max(p.shape[0] for p in parts)
    w = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1)
    mask = np.zeros((h, w), np.uint8)
    x = 0
    for p in parts:
        y = (h - p.shape[0]) // 2
        mask[y:y + p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    max_w = int(frame_w * 0.45)
    if w > max_w:  # long text shrunk to fit, as real watermarks are
        f = max_w / w
        mask = cv2.resize(mask, (max_w, max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    colour_kind = rng.random()
    if colour_kind < 0.5:
        colour = np.array([255, 255, 255], np.float32) * rng.uniform(0.85, 1.0)
    elif colour_kind < 0.65:
        colour = np.full(3, rng.uniform(0, 40), np.float32)
    else:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
    alpha = mask.astype(np.float32) / 255.0
    art = np.ones(mask.shape + (3,), np.float32) * colour
    if rng.random() < 0.35:  # dark outline / shadow under light text, as broadcasters do
        pad = max(1, mask.shape[0] // 12)
        grown = cv2.dilate(mask, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)).astype(np.float32) / 255.0
        outline = np.clip(grown - alpha, 0.0, 1.0)
        shade = 255.0 - colour if colour.mean() < 128 else np.zeros(3, np.float32)
        art = art * alpha[..., None] + shade * outline[..., None]
        total = np.clip(alpha + outline, 0.0, 1.0)
        art = art / np.maximum(total, 1e-6)[..., None]
        alpha = total
    if plate_share > 0 and rng.random() < plate_share:
        art, alpha = _on_plate(art, alpha, rng)
        if alpha.shape[1] > max_w:  # the plate's margin too stays within the width limit
            size = (max_w, max(1, int(alpha.shape[0] * max_w / alpha.shape[1])))
            art = cv2.resize(art, size, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    faint = faint_share > 0 and rng.random() < faint_share
    opacity = rng.uniform(0.2, 0.4 if faint else 0.8)
    return Overlay(art=art, alpha=alpha * opacity)


def _on_plate(art: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The overlay over a filled, translucent rectangle a little larger than it."""
    pad = max(2, int(alpha.shape[0] * rng.uniform(0.15, 0.5)))
    h, w = alpha.shape[0] + 2 * pad, alpha.shape[1] + 2 * pad
    plate_colour = (np.full(3, rng.uniform(0, 50), np.float32) if rng.random() < 0.6
                    else rng.uniform(0, 255, 3).astype(np.float32))
    plate_alpha = np.full((h, w), rng.uniform(0.35, 0.8), np.float32)
    top = np.zeros((h, w), np.float32)
    top[pad:pad + alpha.shape[0], pad:pad + alpha.shape[1]] = alpha
    top_art = np.ones((h, w, 3), np.float32) * plate_colour
    top_art[pad:pad + alpha.shape[0], pad:pad + alpha.shape[1]] = art
    total = top + plate_alpha * (1.0 - top)  # "over" compositing of the mark onto the plate
    out = (top_art * top[..., None] + plate_colour * (plate_alpha * (1.0 - top))[..., None]) / total[..., None]
    return out, total


def place_overlay(frame: np.ndarray, overlay: Overlay, position: str,
                  rng: np.random.Generator) -> list[int] | None:
    """Composite `overlay` at a corner/edge `position` in place; its box [x0, y0, x1, y1]."""
    fh, fw = frame.shape[:2]
    oh, ow = overlay.alpha.shape
    if oh >= fh or ow >= fw:
        return None
    margin_x = int(fw * rng.uniform(0.01, 0.06))
    margin_y = int(fh * rng.uniform(0.01, 0.06))
    x = {"l": margin_x, "r": fw - margin_x - ow, "c": (fw - ow) // 2}
    y = {"t": margin_y, "b": fh - margin_y - oh, "m": (fh - oh) // 2}
    vert, horiz = position[0], position[1]  # t/b/m then l/r/c
    x0 = int(np.clip(x[horiz], 0, fw - ow))
    y0 = int(np.clip(y[vert], 0, fh - oh))
    roi = frame[y0:y0 + oh, x0:x0 + ow].astype(np.float32)
    a = overlay.alpha[..., None]
    frame[y0:y0 + oh, x0:x0 + ow] = np.clip(roi * (1 - a) + overlay.art * a + 0.5, 0, 255).astype(np.uint8)
    inner = overlay.drawn_box()
    if inner is None:
        return None
    return [x0 + inner[0], y0 + inner[1], x0 + inner[2], y0 + inner[3]]


def degrade(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The frame as it reaches the stage after a video's resize chain and codec.

    Shrunk by 0.5-0.85 and scaled back (edges soften as they do from the render size through
    the encode to the analysis size), then JPEG-compressed at quality 35-85 (block and ringing
    artifacts, which thin faint strokes the way a video codec does)."""
    h, w = frame.shape[:2]
    f = rng.uniform(0.5, 0.85)
    small = cv2.resize(frame, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
    frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 86))])
    if not ok:
        raise RuntimeError("could not compress a synthetic image")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def synth_image(rng: np.random.Generator, imgsz: int, extra: Sequence[np.ndarray] = (),
                empty_share: float = 0.15, plate_share: float = 0.0, faint_share: float = 0.0,
                degrade_share: float = 0.0, fonts: Sequence[str] | None = None) -> tuple[np.ndarray, list[list[int]]]:
    """One training image (RGB, long side `imgsz`) and the boxes of the overlays on it.

    `plate_share`, `faint_share` and `fonts` go to `random_overlay`; with probability
    `degrade_share` the image is then `degrade`d. At 0 none of them draws a random number (the
    stream is unchanged)."""
    aspect = float(rng.choice([16 / 9, 16 / 9, 4 / 3, 1.0, 9 / 16]))
    w, h = (imgsz, max(32, int(round(imgsz / aspect)))) if aspect >= 1 else (max(32, int(round(imgsz * aspect))), imgsz)
    frame = random_background(rng, w, h, extra)
    boxes: list[list[int]] = []
    if rng.random() >= empty_share:
        count = 1 if rng.random() < 0.8 else 2
        probs = _POSITION_WEIGHTS / _POSITION_WEIGHTS.sum()
        for pos in rng.choice(_POSITIONS, size=count, replace=False, p=probs):
            box = place_overlay(frame, random_overlay(rng, w, h, plate_share, faint_share, fonts), str(pos), rng)
            if box is not None:
                boxes.append(box)
    if degrade_share > 0 and rng.random() < degrade_share:
        frame = degrade(frame, rng)
    return frame, boxes


def yolo_label_lines(boxes: Sequence[Sequence[int]], width: int, height: int) -> list[str]:
    """YOLO detection labels: ``class cx cy w h`` normalised to the image size."""
    lines = []
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(f"0 {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return lines


def write_yolo_dataset(out: str | Path, images: int, imgsz: int = 320, val_share: float = 0.2,
                       seed: int = 0, videos: Sequence[str] = (), force: bool = False,
                       photos: Sequence[str] = (), fonts: Sequence[str] = ()) -> Path:
    """Write (or reuse) a YOLO dataset of `images` synthetic images; returns data.yaml's path.

    Backgrounds: scikit-image's bundled photos, frames of `videos` and the photographs in the
    `photos` folders. Text: Hershey fonts, matplotlib's TrueType fonts and those in the `fonts`
    folders (`ttf_fonts`).

    Validation images are drawn from their own random stream, so their overlays (text, font,
    colour, opacity, place) and crops are held out from training.
    """
    out = Path(out)
    data_yaml = out / "data.yaml"
    spec = {"version": DATASET_VERSION, "images": int(images), "imgsz": int(imgsz),
            "val_share": float(val_share), "seed": int(seed), "videos": [str(v) for v in videos],
            "photos": [str(Path(f).resolve()) for f in photos], "fonts": [str(Path(f).resolve()) for f in fonts]}
    if data_yaml.is_file() and not force:
        existing = yaml.safe_load(data_yaml.read_text()) or {}
        if existing.get("vidloom_spec") == spec:
            return data_yaml
    for split in ("train", "val"):  # a different spec: no stale images from the old one
        for sub in ("images", "labels"):
            for stale in (out / sub / split).glob("*.*") if (out / sub / split).is_dir() else ():
                stale.unlink()
    extra = (video_frames(videos) if videos else []) + folder_photos(photos)
    font_files = ttf_fonts(fonts)
    n_val = max(1, int(round(images * val_share)))
    n_train = max(1, images - n_val)
    for split, count, stream in (("train", n_train, 0), ("val", n_val, 1)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, stream])
        for i in range(count):
            frame, boxes = synth_image(rng, imgsz, extra, plate_share=PLATE_SHARE, faint_share=FAINT_SHARE,
                                       degrade_share=DEGRADE_SHARE, fonts=font_files)
            name = f"{split}_{i:06d}"
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise RuntimeError(f"could not encode synthetic image {name}")
            (out / "images" / split / f"{name}.jpg").write_bytes(buf.tobytes())
            lines = yolo_label_lines(boxes, frame.shape[1], frame.shape[0])
            (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    # Written last: its presence (with the same spec) marks a complete dataset.
    data_yaml.write_text(yaml.safe_dump({
        "path": str(out.resolve()), "train": "images/train", "val": "images/val",
        "names": CLASS_NAMES, "vidloom_spec": spec,
    }, sort_keys=False))
    (out / "dataset.json").write_text(json.dumps({**spec, "train": n_train, "val": n_val}, indent=2))
    return data_yaml
