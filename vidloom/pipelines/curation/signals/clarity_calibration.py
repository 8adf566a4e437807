"""Calibrate and check `clarity` on real photographs and real video frames.

    python -m vidloom.pipelines.curation.signals.clarity_calibration [--pyscenedetect DIR]

Two disjoint sets of real material, so the thresholds are never fitted on what they are
checked on:
- calibration: photographs that ship inside scikit-image (the sample corpus's sources);
- test: photographs from scikit-learn, matplotlib and ultralytics, plus frames of
  PySceneDetect's test videos (real footage).
Each image becomes 16:9 crops at 360 lines, in focus or Gaussian-blurred (sigma 2-4 px at
360 lines, as a defocused or upscaled shot), at six brightness/contrast settings from very
dark to washed out, with a little sensor noise and JPEG coding, then shrunk to analysis size
the way the pipeline does. Prints the AUC (blurred vs in focus) of clarity and of the old
Laplacian variance on both sets, and the quantiles the tier thresholds come from.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from vidloom.pipelines.curation.signals.clarity import clarity
from vidloom.pipelines.curation.signals.sharpness import laplacian_variance

# (gain, offset) applied to grey levels: normal, dark, very dark, washed out, contrasty, dim.
LEVELS = ((1.0, 0.0), (0.35, 0.0), (0.2, 10.0), (0.5, 60.0), (1.3, -40.0), (0.7, -30.0))
BLUR_SIGMA_360 = (2.0, 4.0)  # range of the planted blur, px at 360 lines


def _site(*parts: str) -> Path:
    import sklearn

    return Path(os.path.dirname(os.path.dirname(sklearn.__file__)), *parts)


def calibration_images() -> list[Path]:
    names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "rocket.jpg",
             "motorcycle_left.png", "brick.png", "grass.png", "gravel.png", "page.png", "moon.png"]
    return [_site("skimage", "data", n) for n in names]


def held_out_images() -> list[Path]:
    return [
        _site("sklearn", "datasets", "images", "china.jpg"),
        _site("sklearn", "datasets", "images", "flower.jpg"),
        _site("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
        _site("ultralytics", "assets", "bus.jpg"),
        _site("ultralytics", "assets", "zidane.jpg"),
        _site("skimage", "data", "retina.jpg"),
        _site("skimage", "data", "hubble_deep_field.jpg"),
    ]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def video_frames(path: Path, count: int = 8) -> list[np.ndarray]:
    """`count` frames spread over a video, RGB at display size."""
    from vidloom.platform.media import VideoReader

    with VideoReader(str(path)) as reader:
        every = max(1, reader.info.num_frames_header // count)
        return [f.image for f in reader.frames() if f.index % every == 0][:count]


def adjust(rgb: np.ndarray, gain: float, offset: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast change with sensor noise and JPEG coding, like a real decode."""
    x = rgb.astype(np.float32) * gain + offset + rng.normal(0.0, 1.5, rgb.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def labelled_frames(images: list[np.ndarray], seed: int, crops: int = 3) -> Iterator[tuple[int, np.ndarray]]:
    """(1 = in focus / 0 = blurred, analysis-size frame) pairs."""
    rng = np.random.default_rng(seed)
    for rgb in images:
        h, w = rgb.shape[:2]
        for _ in range(crops):
            cw = min(w, int(h * 16 / 9))
            ch = int(cw * 9 / 16)
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            base = cv2.resize(rgb[y:y + ch, x:x + cw], (640, 360), interpolation=cv2.INTER_AREA)
            for sharp in (1, 0):
                img = base if sharp else cv2.GaussianBlur(base, (0, 0), rng.uniform(*BLUR_SIGMA_360))
                for gain, offset in LEVELS:
                    frame = adjust(img, gain, offset, rng)
                    yield sharp, cv2.resize(frame, (456, 256), interpolation=cv2.INTER_AREA)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def evaluate(images: list[np.ndarray], seed: int) -> dict:
    pairs = list(labelled_frames(images, seed))
    scored = [(label, clarity(frame), laplacian_variance(frame)) for label, frame in pairs]
    # Frames with nothing to judge (black between shots) are neither sharp nor blurred.
    judged = [s for s in scored if np.isfinite(s[1])]
    y, c, lap = (np.array(col) for col in zip(*judged))
    return {
        "frames": len(y),
        "no_edges_in_focus": sum(1 for s in scored if s[0] == 1 and not np.isfinite(s[1])),
        "no_edges_blurred": sum(1 for s in scored if s[0] == 0 and not np.isfinite(s[1])),
        "auc_clarity": round(auc(y, c), 4),
        "auc_laplacian_variance": round(auc(y, lap), 4),
        "in_focus_q01_q05_q50": np.quantile(c[y == 1], [0.01, 0.05, 0.5]).round(3).tolist(),
        "blurred_q50_q95_q99": np.quantile(c[y == 0], [0.5, 0.95, 0.99]).round(3).tolist(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve()
    p.add_argument("--pyscenedetect", default=str(here.parents[4] / ".." / "shared" / "data" / "pyscenedetect"))
    args = p.parse_args(argv)
    cal = [read_rgb(pth) for pth in calibration_images()]
    test = [read_rgb(pth) for pth in held_out_images()]
    videos = sorted(Path(args.pyscenedetect).glob("*.mp4"))
    frames = [f for v in videos if v.name in ("testvideo.mp4",) for f in video_frames(v, 12)]
    print("calibration (scikit-image photographs):", evaluate(cal, 0))
    print("test (other photographs):", evaluate(test, 1))
    print("test (PySceneDetect testvideo.mp4 frames):", evaluate(frames, 2))


if __name__ == "__main__":
    main()
