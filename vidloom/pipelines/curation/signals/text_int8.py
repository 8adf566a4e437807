"""An int8 copy of the PP-OCR text detector, made on this machine from the model in the wheel.

The DB text detector is the costliest signal of part 1 on CPU. Its time is ~85 % convolutions,
which onnxruntime runs 3-4x faster in int8 (VNNI/AVX-512 or AVX2) than in fp32: 68 -> 19 ms
per frame at 320 px on one core here. No quantized weights are shipped or downloaded. The first
detector built on a machine quantizes the fp32 ONNX file it was given (the rapidocr wheel's
model by default) and caches the result; every later actor loads the cached file.

Recipe (`RECIPE`; a change of any step bumps it, so old caches are not reused): the shared one of
`vidloom.platform.int8` (opset 17, the wheel's is 11; onnxruntime's pre-processing; static QDQ,
int8 weights per output channel, uint8 activations, MinMax ranges), calibrated on
`calibration_inputs(side)`: the clarity calibration's real photographs (scikit-image's, never
the test corpus), each plain and with three kinds of burned-in text drawn with OpenCV's Hershey
fonts (subtitle line, title, small corner text), preprocessed exactly as the detector
preprocesses a frame at `side` px.

The calibration is deterministic and uses nothing of the machine but the installed wheels, so
two machines with the same packages make the same model. Measured fidelity (docs/operations.md
"Text detection in int8", docs/benchmarks.md, issue 11's int8 section): text_ratio of every
sample-corpus and PySceneDetect clip, and a subtitle AUC on held-out photographs, equal to fp32
within noise.

The cache is `cache_dir("ocr")`: `$VIDLOOM_CACHE_DIR/ocr`, default `~/.cache/vidloom/ocr` (a
folder under the temp dir when that cannot be written). The file name carries the source
model's SHA-256, the side, the recipe and onnxruntime's version (`int8_copy`, which also locks
against concurrent builders and renames the finished file into place).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from vidloom.platform.int8 import int8_copy
from vidloom.platform.weights import cache_dir

__all__ = ["RECIPE", "calibration_inputs", "int8_model"]

#: Version of the quantization recipe (module docstring); part of the cached file's name.
RECIPE = 1
_WORDS = ("a", "house", "by", "the", "sea", "light", "went", "out", "slowly", "morning", "came",
          "channel", "news", "live", "2019", "episode", "part", "one", "(c)", "studio")
_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
            cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)


def _put_text(img: np.ndarray, rng: np.random.Generator, kind: str) -> None:
    h, w = img.shape[:2]
    words = " ".join(rng.choice(_WORDS, size=int(rng.integers(2, 7))))
    font = int(rng.choice(_HERSHEY))
    scale = float(rng.uniform(0.4, 1.3)) * h / 360 * (0.6 if kind == "corner" else 1.0)
    thick = max(1, int(round(2 * scale)))
    (tw, th), _ = cv2.getTextSize(words, font, scale, thick)
    if kind == "subtitle":
        org = (max(2, (w - tw) // 2), int(h * rng.uniform(0.82, 0.95)))
    elif kind == "title":
        org = (max(2, int((w - tw) * rng.uniform(0.0, 1.0))), int(h * rng.uniform(0.1, 0.5)) + th)
    else:
        org = (max(2, w - tw - int(w * 0.03)) if rng.random() < 0.5 else int(w * 0.03), th + int(h * 0.04))
    colour = tuple(int(c) for c in (rng.choice([(255, 255, 255), (255, 230, 0), (20, 20, 20)])))
    if rng.random() < 0.7:  # outlined, as subtitles usually are
        outline = (0, 0, 0) if sum(colour) > 300 else (255, 255, 255)
        cv2.putText(img, words, org, font, scale, outline, thick + 2, cv2.LINE_AA)
    cv2.putText(img, words, org, font, scale, colour, thick, cv2.LINE_AA)


def calibration_inputs(side: int, seed: int = 0) -> list[np.ndarray]:
    """The detector's input tensors for the calibration frames (module docstring, step 3)."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    from PIL import Image  # not cv2.imread: libpng warns on stderr about these files' ICC profiles

    from vidloom.pipelines.curation.signals.clarity_calibration import calibration_images

    prep = DetPreProcess(side, "max", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    rng = np.random.default_rng(seed)
    feeds = []
    for path in calibration_images():
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        scale = 360 / min(h, w)
        base = cv2.resize(rgb, (max(32, int(w * scale)), max(32, int(h * scale))), interpolation=cv2.INTER_AREA)
        for kind in ("plain", "subtitle", "title", "corner"):
            img = base.copy()
            if kind != "plain":
                _put_text(img, rng, kind)
            feeds.append(prep(np.ascontiguousarray(img[:, :, ::-1])))  # the detector sees BGR
    return feeds


def int8_model(source: str | os.PathLike, side: int, folder: str | os.PathLike | None = None) -> Path:
    """Path of the int8 copy of the fp32 detector `source` for inputs of long side `side`,
    made now (a few seconds, once per machine) if it is not in the cache."""
    return int8_copy(source, cache_dir("ocr") if folder is None else folder, f"s{int(side)}-r{RECIPE}",
                     lambda: calibration_inputs(int(side)))
