"""int8 copies of fp32 ONNX models, made on this machine and cached: no quantized weights are
shipped or downloaded.

Convolutions are most of a small CNN's time on CPU, and onnxruntime runs them several times
faster in int8 (VNNI/AVX-512 or AVX2) than in fp32. The first caller on a machine quantizes the
fp32 file it was given and caches the result; every later one (another actor, another run)
loads the cached file.

Recipe, shared by every model quantized here:

1. the model's opset is raised to 17 (per-channel QDQ needs >= 13);
2. onnxruntime's `quant_pre_process` (shape inference and graph fusion, no symbolic shapes);
3. static QDQ quantization: weights int8 per output channel, activations uint8, MinMax ranges,
   calibrated on the caller's inputs (each model's calibration is documented with its caller:
   real photographs, never a test corpus).

The file name carries the source's SHA-256, the caller's tag (its input size and recipe
version) and onnxruntime's version, so a changed model, recipe or runtime never reuses an old
copy. Concurrent builders (two actors starting at once) serialise on a lock file; the result
is written to a temporary name and renamed into place, so a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from vidloom.platform.weights import file_digest

__all__ = ["OPSET", "int8_copy"]

OPSET = 17


def _quantize(source: Path, dest: Path, inputs: Callable[[], Iterable[np.ndarray]],
              exclude: Callable[[Any], Sequence[str]] | None) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staged = Path(tmp) / "opset.onnx"
        if opset < OPSET:
            model = version_converter.convert_version(model, OPSET)
        onnx.save(model, str(staged))
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(staged), str(pre), skip_symbolic_shape=True)
        name = model.graph.input[0].name
        skipped = list(exclude(onnx.load(str(pre)))) if exclude else []

        class _Feeds(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = ({name: x} for x in inputs())

            def get_next(self):
                return next(self._it, None)

        out = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre), str(out), _Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=skipped,
        )
        os.replace(out, dest)  # same folder: atomic


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def int8_copy(source: str | os.PathLike, folder: str | os.PathLike, tag: str,
              inputs: Callable[[], Iterable[np.ndarray]],
              exclude: Callable[[Any], Sequence[str]] | None = None) -> Path:
    """Path of the int8 copy of the fp32 ONNX model `source` in `folder`, made now (seconds,
    once per machine) if it is not there. `inputs` yields the model's first input for
    calibration (called only when the copy is made); `tag` names what they depend on (input
    size, calibration recipe). `exclude` names, from the pre-processed ONNX model it is given, the
    nodes to keep in fp32 (e.g. a detection head that concatenates pixel coordinates with
    probabilities: one int8 scale for both rounds every probability to 0); by default every
    operator onnxruntime can quantize is quantized."""
    import onnxruntime

    source, folder = Path(source), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{source.stem}.int8.{file_digest(source, 16)}-{tag}-ort{onnxruntime.__version__}.onnx"
    if dest.is_file():
        return dest
    with _locked(folder / f"{dest.name}.lock"):
        if not dest.is_file():  # another process may have made it while we waited
            _quantize(source, dest, inputs, exclude)
    return dest
