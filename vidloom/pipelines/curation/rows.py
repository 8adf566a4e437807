"""The rows that flow through the curation pipeline and the records it writes.

One pipeline row per input video. It carries the video record and its clip records as JSON
(small), and the few RGB frames per clip that later stages need (text detection) as raw
bytes with their shape: frames, not files, pass between stages, and only compact ones.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vidloom.pipelines.ray_data import STAGE_SECONDS
from vidloom.platform.ids import video_id as make_video_id

# Columns of OUT/manifest/videos.parquet, in order.
VIDEO_COLUMNS = [
    "video_id", "source", "status", "error", "duration_s", "fps", "width", "height", "codec",
    "num_frames", "scene_cuts", "container", "start_time_s", "rotation", "sample_aspect_ratio",
    "num_clips",
]
# The columns of OUT/manifest/clips.parquet come from the stages' registrations
# (manifest.CLIP_COLUMNS).


def new_video_row(source: str) -> dict[str, Any]:
    """The pipeline row for one input, before any work."""
    return {
        "video_id": make_video_id(source),
        "source": source,
        "status": "ok",
        "error": "",
        "video_json": "{}",
        "clips_json": "[]",
        "frames": b"",
        "frames_shape": [0, 0, 0, 3],
        "frame_clip": b"",
        "thumbs": [],
        "embeddings": [],  # [{"clip_id", "backend", "vector"}] from the embedding stage
        STAGE_SECONDS: "{}",  # {stage: [wall s, CPU s]} spent on this row
    }


def pack_frames(frames: list[np.ndarray], owners: list[int]) -> dict[str, Any]:
    if not frames:
        return {"frames": b"", "frames_shape": [0, 0, 0, 3], "frame_clip": b""}
    stack = np.ascontiguousarray(np.stack(frames).astype(np.uint8, copy=False))
    return {
        "frames": stack.tobytes(),
        "frames_shape": list(stack.shape),
        "frame_clip": np.asarray(owners, dtype=np.int32).tobytes(),
    }


def unpack_frames(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    shape = [int(x) for x in row["frames_shape"]]
    if not shape or shape[0] == 0:
        return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0,), np.int32)
    frames = np.frombuffer(row["frames"], dtype=np.uint8).reshape(shape)
    owners = np.frombuffer(row["frame_clip"], dtype=np.int32)
    return frames, owners


def clip_frames(row: dict[str, Any]) -> dict[int, list[np.ndarray]]:
    """The frames shipped with a video row, grouped by clip index (in time order)."""
    frames, owners = unpack_frames(row)
    grouped: dict[int, list[np.ndarray]] = {}
    for frame, owner in zip(frames, owners):
        grouped.setdefault(int(owner), []).append(frame)
    return grouped


def evenly(items: list, count: int) -> list:
    """Up to `count` items spread evenly over `items`, first and last included."""
    if count >= len(items):
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, num=count).round().astype(int))
    return [items[i] for i in picks]


def loads(text: Any) -> Any:
    return json.loads(text if isinstance(text, str) else bytes(text).decode())


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
