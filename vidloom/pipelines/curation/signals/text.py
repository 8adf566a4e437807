"""Burned-in text coverage of a clip (subtitles, titles, watermarks, captions).

Only text *detection* runs (PP-OCR's DB detector): the curation filter needs how much of the
frame text covers, not what it says, and recognition would cost several times more.

Backends:

* ``rapidocr`` (default): the PP-OCR detection ONNX model shipped inside the rapidocr wheel
  (PP-OCRv6 small in rapidocr 3.10), run by our own onnxruntime session so thread counts are
  explicit (a Ray actor should own exactly the cores it reserved) and nothing is ever
  downloaded. rapidocr's `TextDetector` does the resize / DB post-processing. With
  ``precision="int8"`` (the curation default) the session runs an int8 copy of that model,
  quantized on this machine and cached (`text_int8.py`): 3-4x faster, same text_ratio.
* ``paddleocr``: PaddleOCR 3.x `TextDetection` loading an exported detection model from the
  local folder configured as ``curation.ocr.model_dir`` (never downloaded).

`text_ratio` aggregates with the MAX over frames of the per-frame text area (union of the
detected boxes): a title card or subtitle shown in only some of the sampled frames still marks
the clip, which is what a "drop clips with overlaid text" filter wants; the per-frame values
are available from `frame_text_ratios` for other aggregations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidloom.platform.weights import MissingWeightsError, resolve_weights

__all__ = ["TextDetector", "OCR_MODEL_DIR_SETTING", "DET_MODEL_SETTING"]

#: Setting that holds the PaddleOCR detection model folder (paddleocr backend).
OCR_MODEL_DIR_SETTING = "curation.ocr.model_dir"
#: Setting for an optional custom detection ONNX file (rapidocr backend; default: the model
#: bundled in the rapidocr wheel).
DET_MODEL_SETTING = "curation.ocr.det_model"
#: Default longest side (px) the detector sees. Subtitles at 360p analysis frames are ~12-20 px
#: tall, still well detected at 448; cost grows with area (~210 ms at 640 px on one core).
DEFAULT_DET_SIDE = 448
#: DB thresholds: pixel probability for the text map, and mean probability for a box to count.
DEFAULT_THRESH = 0.3
DEFAULT_BOX_THRESH = 0.6
#: Box expansion of the DB post-process (the network predicts shrunk text kernels).
DEFAULT_UNCLIP_RATIO = 1.5
#: Blob filter. The DB map of PP-OCRv6 small also lights up some large smooth objects (a
#: coffee cup in skimage's `coffee()` becomes one 0.75-of-frame "text" box). A text line is
#: elongated and, even for a big title, its height is a modest part of the frame, so a box
#: whose thickness (short side of its rotated rect) exceeds MAX_LINE_THICKNESS of the
#: frame's short side AND whose long/short ratio is under MIN_LINE_ASPECT is dropped, and a
#: box thicker than MAX_BOX_THICKNESS of the short side is never a line of text (the same
#: detector also returns near-whole-frame boxes on some textured or letterboxed frames:
#: 0.88 of a letterboxed rocket frame, 0.42 of a coffee frame, measured on the sample corpus).
MAX_LINE_THICKNESS = 0.25
MIN_LINE_ASPECT = 3.0
MAX_BOX_THICKNESS = 0.45


class TextDetector:
    """Text detector with a fixed, small input size, reusable across clips (build once per
    Ray actor).

    Args:
        backend: "rapidocr" (default) or "paddleocr".
        det_limit_side_len: longest side (px) frames are resized to before detection.
        intra_op_threads: compute threads of the inference session (1 suits a 1-CPU actor).
        model_dir: paddleocr backend: the local detection model folder (the value of
            ``curation.ocr.model_dir``); rapidocr backend: optional custom det ONNX file or
            folder holding one (``curation.ocr.det_model``).
        paddle_model_name: paddleocr model name; default read from the folder's inference.yml.
        thresh, box_thresh, unclip_ratio: DB post-processing parameters.
        precision: rapidocr backend: "fp32" runs the ONNX file as it is, "int8" an int8 copy
            of it made and cached on first use (`text_int8.int8_model`). The paddleocr
            backend runs fp32 only.

    `label` names what ran, for the manifest's `text_backend` column:
    ``rapidocr:<model file stem>:<precision>`` or ``paddleocr:<model name>``.
    """

    def __init__(
        self,
        backend: str = "rapidocr",
        det_limit_side_len: int = DEFAULT_DET_SIDE,
        intra_op_threads: int = 1,
        model_dir: str | os.PathLike | None = None,
        paddle_model_name: str | None = None,
        thresh: float = DEFAULT_THRESH,
        box_thresh: float = DEFAULT_BOX_THRESH,
        unclip_ratio: float = DEFAULT_UNCLIP_RATIO,
        precision: str = "fp32",
    ):
        if det_limit_side_len < 32:
            raise ValueError(f"det_limit_side_len must be >= 32, got {det_limit_side_len}")
        self.backend = backend
        self.det_limit_side_len = int(det_limit_side_len)
        self.intra_op_threads = max(1, int(intra_op_threads))
        if precision not in ("fp32", "int8"):
            raise ValueError(f"unknown precision {precision!r}; use 'fp32' or 'int8'")
        if precision == "int8" and backend != "rapidocr":
            raise ValueError(f"precision 'int8' needs the rapidocr backend, not {backend!r}")
        self.precision = precision
        if backend == "rapidocr":
            self._det = _build_rapidocr(
                model_dir, self.det_limit_side_len, self.intra_op_threads,
                thresh, box_thresh, unclip_ratio, precision,
            )
            self.model_path: Path = self._det.path
            self.label = f"rapidocr:{self._det.source.stem}:{precision}"
        elif backend == "paddleocr":
            # Resolve first: a missing folder must fail here, before paddle is even imported.
            folder = resolve_weights(model_dir, OCR_MODEL_DIR_SETTING)
            if not folder.is_dir():
                raise MissingWeightsError(OCR_MODEL_DIR_SETTING, model_dir, "expected a folder")
            self.model_path = folder
            # Read the folder's model name before the (slow, ~20 s cold) paddle import.
            paddle_model_name = paddle_model_name or _paddle_model_name(folder)
            self._det = _build_paddleocr(
                folder, paddle_model_name, self.det_limit_side_len, self.intra_op_threads,
                thresh, box_thresh, unclip_ratio,
            )
            self.label = f"paddleocr:{paddle_model_name}"
        else:
            raise ValueError(f"unknown OCR backend {backend!r}; use 'rapidocr' or 'paddleocr'")

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        """Text boxes of one RGB (H×W×3 uint8) frame as 4×2 float32 quadrilaterals
        (clockwise from top-left, in the frame's pixel coordinates)."""
        img = np.asarray(frame)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB frame, got shape {img.shape}")
        # PP-OCR models are trained on OpenCV (BGR) images.
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        if self.backend == "rapidocr":
            out = self._det(bgr)
            boxes = [] if out.boxes is None else list(out.boxes)
        else:
            result = next(iter(self._det.predict(bgr)))
            boxes = list(result["dt_polys"])
        quads = [np.asarray(b, dtype=np.float32).reshape(4, 2) for b in boxes]
        return [q for q in quads if _is_text_line(q, min(img.shape[:2]))]

    def frame_text_ratios(self, frames: Sequence[np.ndarray]) -> list[float]:
        """Per frame: fraction of the frame area covered by the union of its text boxes."""
        ratios = []
        for frame in frames:
            h, w = frame.shape[:2]
            ratios.append(boxes_area_ratio(self.detect(frame), h, w))
        return ratios

    def text_ratio(self, frames: Sequence[np.ndarray]) -> float:
        """Text coverage of a clip: max over `frames` of the per-frame covered fraction
        (0.0 for no frames). Keep `frames` to a few (2-3) per clip: detection is the costly
        part."""
        ratios = self.frame_text_ratios(frames)
        return max(ratios) if ratios else 0.0


def boxes_area_ratio(boxes: Sequence[np.ndarray], height: int, width: int) -> float:
    """Fraction of an H×W frame covered by the union of quadrilaterals (overlaps counted
    once, parts outside the frame ignored)."""
    if not boxes or height <= 0 or width <= 0:
        return 0.0
    mask = np.zeros((height, width), np.uint8)
    polys = [np.round(np.asarray(b, np.float32).reshape(-1, 2)).astype(np.int32) for b in boxes]
    cv2.fillPoly(mask, polys, 1)
    return float(cv2.countNonZero(mask)) / float(height * width)


def _is_text_line(quad: np.ndarray, frame_short_side: int) -> bool:
    """False for thick, squat boxes (object blobs, see MAX_LINE_THICKNESS)."""
    (_, _), (bw, bh), _ = cv2.minAreaRect(quad)
    thick, long = min(bw, bh), max(bw, bh)
    if thick > MAX_BOX_THICKNESS * frame_short_side:
        return False
    if thick <= MAX_LINE_THICKNESS * frame_short_side:
        return True
    return long >= MIN_LINE_ASPECT * thick


def _rapidocr_default_model() -> Path:
    """Path of the default detection model inside the installed rapidocr wheel, found through
    rapidocr's own config and model table (so a version bump that changes the model name keeps
    working)."""
    import rapidocr
    from rapidocr.inference_engine.base import FileInfo, InferSession
    from rapidocr.utils.parse_parameters import ParseParams

    root = Path(rapidocr.__file__).resolve().parent
    det = ParseParams.load(root / "config.yaml").Det
    info = InferSession.get_model_url(
        FileInfo(
            engine_type=det.engine_type,
            ocr_version=det.ocr_version,
            task_type=det.task_type,
            lang_type=det.lang_type,
            model_type=det.model_type,
        )
    )
    return root / "models" / Path(info["model_dir"]).name


def _onnx_session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Don't spin idle threads: Ray co-schedules other actors on the same cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _build_rapidocr(
    model: str | os.PathLike | None,
    side: int,
    threads: int,
    thresh: float,
    box_thresh: float,
    unclip_ratio: float,
    precision: str = "fp32",
) -> Any:
    import onnxruntime as ort
    from omegaconf import OmegaConf
    from rapidocr.ch_ppocr_det import TextDetector as RapidTextDetector
    from rapidocr.utils.typings import EngineType

    if model is None:
        path = _rapidocr_default_model()
        if not path.is_file():
            raise MissingWeightsError(
                DET_MODEL_SETTING, str(path), "the rapidocr wheel has no bundled det model"
            )
    else:
        path = resolve_weights(model, DET_MODEL_SETTING)
        if path.is_dir():
            found = sorted(path.glob("*det*.onnx")) or sorted(path.glob("*.onnx"))
            if not found:
                raise MissingWeightsError(DET_MODEL_SETTING, model, "no .onnx file in folder")
            path = found[0]
    source = path
    if precision == "int8":
        from vidloom.pipelines.curation.signals.text_int8 import int8_model

        path = int8_model(source, side)
    session = ort.InferenceSession(
        str(path), sess_options=_onnx_session_options(threads), providers=["CPUExecutionProvider"]
    )
    cfg = OmegaConf.create(
        {
            "limit_side_len": side,
            "limit_type": "max",  # shrink so the LONG side is `side` (never enlarge)
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "thresh": thresh,
            "box_thresh": box_thresh,
            "max_candidates": 1000,
            "unclip_ratio": unclip_ratio,
            "use_dilation": True,
            "score_mode": "fast",
        },
        flags={"allow_objects": True},  # lets the config carry the InferenceSession
    )
    # The engine type must be the enum rapidocr dispatches on; a ready session skips its
    # model download/lookup path entirely.
    cfg.engine_type = EngineType.ONNXRUNTIME
    cfg.session = session
    return _RapidDet(RapidTextDetector(cfg), path, source)


class _RapidDet:
    """Thin holder so the detector object and its model paths travel together: `path` is the
    file the session runs, `source` the fp32 file it came from (the same file in fp32)."""

    def __init__(self, det: Any, path: Path, source: Path):
        self.det = det
        self.path = path
        self.source = source

    def __call__(self, bgr: np.ndarray) -> Any:
        return self.det(bgr)


def _build_paddleocr(
    folder: Path,
    model_name: str,
    side: int,
    threads: int,
    thresh: float,
    box_thresh: float,
    unclip_ratio: float,
) -> Any:
    # Skip PaddleX's start-up probe of remote model hosts: this runs offline.
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    from paddleocr import TextDetection

    return TextDetection(
        model_name=model_name,
        model_dir=str(folder),
        limit_side_len=side,
        limit_type="max",
        thresh=thresh,
        box_thresh=box_thresh,
        unclip_ratio=unclip_ratio,
        device="cpu",
        cpu_threads=threads,
    )


def _paddle_model_name(folder: Path) -> str:
    """Model name recorded in an exported PaddleOCR model folder (inference.yml)."""
    import yaml

    for name in ("inference.yml", "inference.yaml"):
        cfg_path = folder / name
        if cfg_path.is_file():
            with open(cfg_path, encoding="utf-8") as fh:
                cfg = yaml.safe_load(fh) or {}
            model_name = (cfg.get("Global") or {}).get("model_name")
            if model_name:
                return str(model_name)
    raise MissingWeightsError(
        OCR_MODEL_DIR_SETTING, str(folder), "no inference.yml with Global.model_name in folder"
    )
