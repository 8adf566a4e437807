"""The YOLO watermark detector: offline Ultralytics set-up, ONNX export, and per-clip scoring.

Training goes through Ultralytics (`vidloom train-watermark-detector`); inference does not. The
stage runs the detector's ONNX file with onnxruntime, which a fresh worker loads in ~0.3 s
where importing Ultralytics and torch and loading the checkpoint costs ~1.2 s, runs a frame
about 1.6x as fast on one core (2.5x in int8), and reads a protobuf rather than a pickle: an Ultralytics ``.pt`` is a full pickle
(it can run code when loaded), so the stage refuses one and names the command that converts
it (`export_onnx`, which the training job runs on its result).

Ultralytics fetches things at run time unless told not to: a font (Arial.ttf) for plots,
pretrained weights for its AMP check, missing pip packages (auto-install), and it sends usage
events. Its dataset check asks for Arial.ttf on every training run, plots or not, and asks the
network for it when no font of that name is installed. `offline_ultralytics()` turns all of
that off (the font: matplotlib's DejaVu Sans, under the name Ultralytics looks for, in its
settings directory) and must run before the first
``import ultralytics`` in a process (its settings directory and online state are fixed at
import); training and export in vidloom always go through it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from vidloom.pipelines.curation.watermark.config import not_onnx_message
from vidloom.platform.int8 import int8_copy
from vidloom.platform.storage import atomic_write_bytes
from vidloom.platform.weights import cache_dir, file_digest

#: Ultralytics' prediction settings the runtime reproduces: NMS IoU, most boxes a frame, the
#: letterbox's grey and the network's stride (padded sides are multiples of it).
NMS_IOU, MAX_DET, PAD_GREY, STRIDE = 0.7, 300, 114, 32
#: Version of the int8 copy's calibration (`calibration_inputs`); part of the cached file's name.
INT8_RECIPE = 1
#: Long side of the calibration images: the analysis frames' (256 px short side, 16:9).
CALIBRATION_SIDE = 455


def offline_ultralytics(settings_dir: str | Path | None = None):
    """Import Ultralytics with downloads, auto-installs and telemetry off; returns the module."""
    os.environ["YOLO_OFFLINE"] = "1"  # is_online() -> False: no DNS probe, no hub, no events
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install a missing export dependency
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(settings_dir or cache_dir("ultralytics")))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    import ultralytics
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})
    _local_plot_fonts()
    return ultralytics


def _local_plot_fonts() -> None:
    """Give Ultralytics' `check_font` a local file for the fonts it would otherwise download.

    Ultralytics only draws plot labels with them (plots are off in vidloom's runs), but its
    dataset check looks for Arial.ttf in its settings directory and in matplotlib's font list
    and, on a miss, asks github.com for it. matplotlib's own DejaVu Sans stands in.
    """
    import matplotlib
    from ultralytics.utils import USER_CONFIG_DIR

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists():
            atomic_write_bytes(target, source.read_bytes())  # concurrent workers never see half a file


def export_onnx(weights: str | os.PathLike, imgsz: int = 320) -> Path:
    """Write ``<weights>.onnx`` next to an Ultralytics ``.pt`` (a pickle: only for files you
    made or trust) and return it: any batch and any frame size, weights stored as fp16.

    The ``.pt`` already holds fp16 weights (Ultralytics saves them so); the export fuses each
    batch norm into its convolution in fp32, and those fused weights are stored as fp16 again,
    each followed by a Cast to fp32 that onnxruntime folds away when it loads the file. The file
    is half the size of a plain fp32 export and runs at the same fp32 speed.
    """
    import onnx
    from onnx import helper, numpy_helper

    offline_ultralytics()
    from ultralytics import YOLO

    path = Path(YOLO(str(weights), task="detect").export(
        format="onnx", imgsz=int(imgsz), dynamic=True, simplify=False, verbose=False))
    model = onnx.load(str(path))
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 64:
            half = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=f"{init.name}__to_fp32"))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def head_nodes(model) -> list[str]:
    """The nodes the int8 copy keeps in fp32: all but the convolutions of Ultralytics' Detect
    head (the graph's last ``/model.N/`` module). The head decodes boxes and concatenates their
    coordinates (0-448 px) with the class probabilities (0-1): one int8 scale for both would round
    every probability to 0. Its convolutions, and everything before, are quantized."""
    index = max((int(n) for node in model.graph.node for n in re.findall(r"/model\.(\d+)/", node.name)), default=None)
    if index is None:
        return []
    return [node.name for node in model.graph.node if f"/model.{index}/" in node.name and node.op_type != "Conv"]


def _fixed_size(session) -> tuple[int, int] | None:
    """The (height, width) a session's first input is fixed to, or None when it takes any size."""
    h, w = session.get_inputs()[0].shape[2:4]
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class YoloWatermarkDetector:
    """A trained one-class (``watermark``) YOLO detector, its ONNX file run by onnxruntime.

    Frames are letterboxed as Ultralytics does for prediction (long side `imgsz`, aspect kept,
    centred on grey 114, padded to a multiple of 32, or to the file's fixed input size), and
    its output (box centre, size and the class score per anchor) is filtered by confidence and
    non-maximum suppression (IoU 0.7, at most 300 boxes) into frame-pixel boxes.
    """

    def __init__(self, weights: str | Path, device: str = "cpu", imgsz: int = 320,
                 conf: float = 0.25, threads: int = 1, precision: str = "fp32"):
        import onnxruntime as ort

        self.weights = Path(weights)
        if self.weights.suffix.lower() != ".onnx":
            raise ValueError(not_onnx_message(self.weights))
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        self.hash = file_digest(self.weights)
        self.device, self.imgsz, self.conf, self.precision = str(device), int(imgsz), float(conf), precision
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if self.device != "cpu":
            index = self.device.split(":")[-1]
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index) if index.isdigit() else 0}))
        model = self.weights
        if precision == "int8":  # made once per machine from the fp32 file, then cached
            model = int8_copy(self.weights, cache_dir("watermark"), f"s{self.imgsz}-r{INT8_RECIPE}",
                              self.calibration_inputs, exclude=head_nodes)
        self.session = ort.InferenceSession(str(model), opts, providers=providers)
        self._input = self.session.get_inputs()[0].name
        self._fixed = _fixed_size(self.session)

    def calibration_inputs(self, images: int = 48, seed: int = 0) -> Iterator[np.ndarray]:
        """The int8 copy's calibration: `images` synthetic training images (the training
        generator's photographs and marks, never the held-out evaluation's), each at the
        analysis frames' long side and letterboxed as a frame is (at the fp32 file's input size,
        which the copy keeps)."""
        import onnxruntime as ort

        from vidloom.pipelines.curation.watermark.synthetic import synth_image

        self._fixed = _fixed_size(ort.InferenceSession(str(self.weights), providers=["CPUExecutionProvider"]))
        rng = np.random.default_rng(seed)
        for _ in range(images):
            img, _ = synth_image(rng, CALIBRATION_SIDE)
            yield self._batch([self._letterbox(img)[0]])

    @staticmethod
    def _batch(boxed: list[np.ndarray]) -> np.ndarray:
        return np.stack(boxed).transpose(0, 3, 1, 2).astype(np.float32) / 255.0

    @property
    def backend(self) -> str:
        return f"yolo:{self.hash}" + (":int8" if self.precision == "int8" else "")

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        h, w = frame.shape[:2]
        side = max(self._fixed) if self._fixed else self.imgsz
        r = min(side / h, side / w)
        nw, nh = int(round(w * r)), int(round(h * r))
        if self._fixed:
            out_h, out_w = self._fixed
        else:
            out_h, out_w = -(-nh // STRIDE) * STRIDE, -(-nw // STRIDE) * STRIDE
        dw, dh = (out_w - nw) / 2, (out_h - nh) / 2
        top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
        img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else frame
        canvas = np.full((out_h, out_w, 3), PAD_GREY, dtype=np.uint8)
        canvas[top:top + nh, left:left + nw] = img
        return canvas, r, (left, top)

    def detect(self, frames: Sequence[np.ndarray], conf: float | None = None) -> list[list[tuple[float, list[float]]]]:
        """Per RGB frame, (confidence, [x0, y0, x1, y1] in that frame's pixels) of each detection."""
        if not frames:
            return []
        conf = self.conf if conf is None else conf
        boxed = [self._letterbox(np.asarray(f)) for f in frames]
        if len({b[0].shape for b in boxed}) == 1:  # one run for the clip's frames
            outputs = self.session.run(None, {self._input: self._batch([b[0] for b in boxed])})[0]
        else:
            outputs = np.concatenate([self.session.run(None, {self._input: self._batch([b[0]])})[0] for b in boxed])
        out = []
        for pred, (_, r, (left, top)), frame in zip(outputs, boxed, frames):
            scores = pred[4:].max(axis=0)
            keep = np.flatnonzero(scores >= conf)
            if keep.size == 0:
                out.append([])
                continue
            cx, cy, bw, bh = pred[:4, keep]
            xywh = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
            kept = scores[keep]
            picked = cv2.dnn.NMSBoxes(xywh.tolist(), kept.tolist(), conf, NMS_IOU, top_k=MAX_DET)
            fh, fw = frame.shape[:2]
            dets = []
            for i in np.asarray(picked, dtype=int).reshape(-1)[:MAX_DET]:
                x0, y0, w_, h_ = xywh[i]
                box = [float(np.clip((x0 - left) / r, 0, fw)), float(np.clip((y0 - top) / r, 0, fh)),
                       float(np.clip((x0 + w_ - left) / r, 0, fw)), float(np.clip((y0 + h_ - top) / r, 0, fh))]
                dets.append((float(kept[i]), box))
            out.append(dets)
        return out

    def score_clip(self, frames: Sequence[np.ndarray],
                   rescore: Callable[[list[float], float], float] | None = None) -> tuple[float, list[list[float]]]:
        """Clip score and boxes of detections that keep their place from frame to frame.

        A watermark sits at the same pixels on every frame, while whatever the detector mistakes
        for one in the content moves with the camera. Detections (confidence >= 0.05) are linked
        into tracks across frames (IoU >= 0.5 with the track's first box, one detection a frame);
        a track's score is the sum of its confidences over the number of frames (a frame where
        it is missing adds 0), and the clip's score is the best track's. Boxes are the tracks
        seen with confidence >= `conf` in at least half the frames and in two (when there are
        two), averaged over those frames. `rescore` (a track's mean box and score -> its score)
        lets another check have its say about that place (the watermark stage passes the
        persistence check's `detection_score`); the track's confidences in each frame scale with
        it, for the boxes as well.
        """
        per_frame = self.detect(frames, conf=min(self.conf, 0.05))
        if not per_frame:
            return 0.0, []
        need = min(len(per_frame), max(2, (len(per_frame) + 1) // 2))  # in two frames at least
        score, boxes = 0.0, []
        for t in _tracks(per_frame):
            raw = sum(c for c, _ in t) / len(per_frame)
            final = raw if rescore is None else float(rescore(np.mean([box for _, box in t], axis=0).tolist(), raw))
            scale = final / raw if raw > 0 else 1.0
            score = max(score, final)
            sure = [box for c, box in t if scale * c >= self.conf]
            if len(sure) >= need:
                boxes.append(np.mean(sure, axis=0).tolist())
        return float(score), boxes


def _tracks(per_frame: list[list[tuple[float, list[float]]]]) -> list[list[tuple[float, list[float]]]]:
    """Detections linked across frames by place: each joins the first track whose opening box
    it overlaps (IoU >= 0.5) and that has none from its frame yet, else opens a track. Within a
    frame the surer detections choose first."""
    tracks: list[list[tuple[float, list[float]]]] = []
    frames_of: list[set[int]] = []
    for f, dets in enumerate(per_frame):
        for c, box in sorted(dets, key=lambda d: -d[0]):
            for t, seen in zip(tracks, frames_of):
                if f not in seen and _iou(t[0][1], box) >= 0.5:
                    t.append((c, box))
                    seen.add(f)
                    break
            else:
                tracks.append([(c, box)])
                frames_of.append({f})
    return tracks
