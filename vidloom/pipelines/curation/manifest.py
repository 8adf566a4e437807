"""The curation manifest on disk, and how a killed run resumes.

Each finished video is committed as two part files under ``OUT/manifest/parts/``: its clips
first, then its video record, each written atomically. A video counts as done only when its
video part exists, so a run killed at any moment leaves either nothing or a complete video
behind. A rerun skips done videos, and `consolidate` rebuilds ``videos.parquet`` and
``clips.parquet`` from the parts of the current inputs: same rows, no duplicates, none lost.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from vidloom.pipelines.curation.registry import STAGE_CLASSES
from vidloom.pipelines.curation.rows import VIDEO_COLUMNS
from vidloom.platform.storage import atomic_write_bytes

VIDEO_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("source", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("duration_s", pa.float64()), ("fps", pa.float64()), ("width", pa.int32()), ("height", pa.int32()),
    ("codec", pa.string()), ("num_frames", pa.int64()), ("scene_cuts", pa.list_(pa.int64())),
    ("container", pa.string()), ("start_time_s", pa.float64()), ("rotation", pa.int32()),
    ("sample_aspect_ratio", pa.float64()), ("num_clips", pa.int32()),
])
# Columns the global steps add on the driver, after every clip is in.
GLOBAL_COLUMNS = {"dup_of": pa.string(), "cluster_id": pa.int32()}
# One column per stage registration, in pipeline order, then the global steps' columns.
CLIP_SCHEMA = pa.schema(
    [(name, dtype) for cls in STAGE_CLASSES for name, dtype in cls.columns.items()] + list(GLOBAL_COLUMNS.items())
)
CLIP_COLUMNS = CLIP_SCHEMA.names
EMBEDDING_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("backend", pa.string()), ("vector", pa.list_(pa.float32())),
])
assert VIDEO_SCHEMA.names == VIDEO_COLUMNS


def _table(records: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in records], schema=schema)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


class ManifestStore:
    """``OUT/manifest``: per-video parts while running, two tables when done."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir) / "manifest"
        self.parts = self.root / "parts"
        self.videos_path = self.root / "videos.parquet"
        self.clips_path = self.root / "clips.parquet"
        self.embeddings_path = self.root / "embeddings.parquet"
        self.thumbs = Path(out_dir) / "thumbs"

    def _video_part(self, video_id: str) -> Path:
        return self.parts / f"{video_id}.video.parquet"

    def _clips_part(self, video_id: str) -> Path:
        return self.parts / f"{video_id}.clips.parquet"

    def _embeddings_part(self, video_id: str) -> Path:
        return self.parts / f"{video_id}.embeddings.parquet"

    def thumb_path(self, clip_id: str) -> Path:
        return self.thumbs / f"{clip_id}.jpg"

    def done_ids(self) -> set[str]:
        if not self.parts.exists():
            return set()
        return {p.name[: -len(".video.parquet")] for p in self.parts.glob("*.video.parquet")}

    def commit(
        self,
        video: dict[str, Any],
        clips: list[dict[str, Any]],
        thumbs: list[bytes] = (),
        embeddings: list[dict[str, Any]] = (),
    ) -> None:
        """Write one finished video: thumbnails, embeddings and clips first, the video record
        last (the commit mark)."""
        vid = video["video_id"]
        for clip, jpeg in zip(clips, thumbs):
            if jpeg:
                atomic_write_bytes(self.thumb_path(clip["clip_id"]), jpeg)
        if embeddings:
            atomic_write_bytes(self._embeddings_part(vid), _parquet_bytes(_table(list(embeddings), EMBEDDING_SCHEMA)))
        atomic_write_bytes(self._clips_part(vid), _parquet_bytes(_table(clips, CLIP_SCHEMA)))
        atomic_write_bytes(self._video_part(vid), _parquet_bytes(_table([video], VIDEO_SCHEMA)))

    def consolidate(self, video_ids: Iterable[str]) -> tuple[pa.Table, pa.Table]:
        """Build the manifest tables from the parts of `video_ids` (in that order); returns
        the videos and clips tables (``embeddings.parquet`` is written beside them)."""
        videos, clips, embeddings = [], [], []
        for vid in video_ids:
            vpath = self._video_part(vid)
            if not vpath.exists():
                continue
            videos.append(pq.read_table(vpath, schema=VIDEO_SCHEMA))
            cpath = self._clips_part(vid)
            if cpath.exists():
                clips.append(pq.read_table(cpath, schema=CLIP_SCHEMA))
            epath = self._embeddings_part(vid)
            if epath.exists():
                embeddings.append(pq.read_table(epath, schema=EMBEDDING_SCHEMA))
        vt = pa.concat_tables(videos) if videos else VIDEO_SCHEMA.empty_table()
        ct = pa.concat_tables(clips) if clips else CLIP_SCHEMA.empty_table()
        if ct.num_rows:
            ct = ct.sort_by([("source", "ascending"), ("start_frame", "ascending")])
        et = pa.concat_tables(embeddings) if embeddings else EMBEDDING_SCHEMA.empty_table()
        atomic_write_bytes(self.embeddings_path, _parquet_bytes(et))
        atomic_write_bytes(self.videos_path, _parquet_bytes(vt))
        self.write_clips(ct)
        return vt, ct

    def write_clips(self, table: pa.Table) -> None:
        """Replace ``clips.parquet`` atomically (the global steps and export add columns)."""
        atomic_write_bytes(self.clips_path, _parquet_bytes(table))
