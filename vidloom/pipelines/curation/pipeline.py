"""The curation pipeline, part 1: inputs → decode + shot split + signals → text → manifest.

Streaming on Ray Data: one row per input video flows through the stages' actor pools, and the
driver commits each finished video to the manifest as it arrives, so memory stays flat and a
killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from vidloom.pipelines.curation.config import CurationConfig
from vidloom.pipelines.curation.manifest import ManifestStore
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.stages.text_detection import TextDetectionStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.pipelines.ray_data import apply_stage
from vidloom.platform.config import dump_config
from vidloom.platform.ids import video_id
from vidloom.platform.storage import atomic_write_bytes, expand_inputs


@dataclass
class CurationSummary:
    inputs: int
    skipped_done: int
    ok: int
    error: int
    too_short: int
    clips: int
    clips_too_short: int
    video_seconds: float
    wall_s: float
    video_seconds_per_s: float
    out: str

    def to_text(self) -> str:
        return (
            f"curated {self.inputs} inputs into {self.out}\n"
            f"  videos: {self.ok} ok, {self.error} error, {self.too_short} too short"
            f" ({self.skipped_done} already done before this run)\n"
            f"  clips: {self.clips} ok, {self.clips_too_short} too short\n"
            f"  wall time {self.wall_s:.1f} s, {self.video_seconds:.1f} s of video this run,"
            f" {self.video_seconds_per_s:.2f} video-seconds per second"
        )


def build_dataset(sources: list[str], config: CurationConfig):
    """The Ray Dataset of the pipeline (lazy): one row per source, the stages in order."""
    import ray

    cfg = config.model_dump(mode="json")
    ds = ray.data.from_items([new_video_row(s) for s in sources], override_num_blocks=max(1, len(sources)))
    ds = apply_stage(ds, VideoAnalysisStage, {"config": cfg}, config.stages.video_analysis)
    ds = apply_stage(ds, TextDetectionStage, {"config": cfg}, config.stages.text_detection)
    # Frames stop here: only records, thumbnails and embeddings travel to the driver.
    return ds.select_columns(["video_id", "source", "video_json", "clips_json", "thumbs", "embeddings"])


def run_curation(inputs: Iterable[str], out: str | Path, config: CurationConfig) -> CurationSummary:
    """Curate `inputs` into `out`; resumes a previous run in the same `out`."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(config))
    sources = expand_inputs(inputs)
    store = ManifestStore(out)
    done = store.done_ids()
    todo = [s for s in sources if video_id(s) not in done]
    seconds_this_run = 0.0
    if todo:
        for row in build_dataset(todo, config).iter_rows():
            video, clips = loads(row["video_json"]), loads(row["clips_json"])
            store.commit(video, clips, row["thumbs"] or [], row["embeddings"] or [])
            seconds_this_run += float(video.get("duration_s") or 0.0)
    videos, clips = store.consolidate(video_id(s) for s in sources)
    vstatus = videos.column("status").to_pylist()
    cstatus = clips.column("status").to_pylist()
    wall = time.perf_counter() - start
    summary = CurationSummary(
        inputs=len(sources),
        skipped_done=len(sources) - len(todo),
        ok=vstatus.count("ok"),
        error=vstatus.count("error"),
        too_short=vstatus.count("too_short"),
        clips=cstatus.count("ok"),
        clips_too_short=cstatus.count("too_short"),
        video_seconds=round(seconds_this_run, 3),
        wall_s=round(wall, 3),
        video_seconds_per_s=round(seconds_this_run / wall, 3) if wall > 0 else 0.0,
        out=str(out),
    )
    atomic_write_bytes(out / "summary.json", json.dumps(asdict(summary), indent=2).encode())
    return summary
