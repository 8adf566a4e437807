"""Per-clip signal functions for the curation pipeline's single-decode stage.

Everything here is pure (no I/O except loading the OCR model once), deterministic and cheap
enough to run on every frame or every sample point while a video is streamed from PyAV.
Modules are imported lazily by callers; `text` pulls in onnxruntime, the others only OpenCV.
"""

from vidloom.pipelines.curation.signals.border import detect_border_box
from vidloom.pipelines.curation.signals.camera_motion import CAMERA_MOTIONS, classify_camera_motion
from vidloom.pipelines.curation.signals.motion import (
    GlobalMotion,
    MotionEstimator,
    estimate_global_motion,
    to_motion_gray,
)
from vidloom.pipelines.curation.signals.sharpness import best_start_frame, laplacian_variance

__all__ = [
    "CAMERA_MOTIONS",
    "GlobalMotion",
    "MotionEstimator",
    "best_start_frame",
    "classify_camera_motion",
    "detect_border_box",
    "estimate_global_motion",
    "laplacian_variance",
    "to_motion_gray",
]
