"""The curation pipeline: inputs → decode + shot split + signals → text, quality, watermark,
embeddings, captions → manifest → global steps (near-duplicates, concept clusters).

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
from vidloom.pipelines.curation.global_steps import apply_global_steps
from vidloom.pipelines.curation.stages.captioning import CaptioningStage
from vidloom.pipelines.curation.stages.embedding import EmbeddingStage
from vidloom.pipelines.curation.stages.quality import QualityStage
from vidloom.pipelines.curation.stages.text_detection import TextDetectionStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.pipelines.curation.stages.watermark import WatermarkStage
from vidloom.pipelines.curation.watermark.config import default_weights
from vidloom.pipelines.ray_data import apply_stage
from vidloom.platform.config import dump_config
from vidloom.platform.ids import video_id
from vidloom.platform.storage import atomic_write_bytes, expand_inputs
from vidloom.platform.weights import resolve_weights

# The stages in order: decode once and measure, then the model-backed stages on the frames
# the analysis stage kept (cheap before expensive: the VLM captioner runs last).
STAGES = (
    ("video_analysis", VideoAnalysisStage),
    ("text_detection", TextDetectionStage),
    ("quality", QualityStage),
    ("watermark", WatermarkStage),
    ("embedding", EmbeddingStage),
    ("captioning", CaptioningStage),
)


@dataclass
class CurationSummary:
    inputs: int
    skipped_done: int
    ok: int
    error: int
    too_short: int
    clips: int
    clips_too_short: int
    duplicates: int
    video_seconds: float
    wall_s: float
    video_seconds_per_s: float
    out: str

    def to_text(self) -> str:
        return (
            f"curated {self.inputs} inputs into {self.out}\n"
            f"  videos: {self.ok} ok, {self.error} error, {self.too_short} too short"
            f" ({self.skipped_done} already done before this run)\n"
            f"  clips: {self.clips} ok ({self.duplicates} near-duplicates of another), {self.clips_too_short} too short\n"
            f"  wall time {self.wall_s:.1f} s, {self.video_seconds:.1f} s of video this run,"
            f" {self.video_seconds_per_s:.2f} video-seconds per second"
        )


def build_dataset(sources: list[str], config: CurationConfig):
    """The Ray Dataset of the pipeline (lazy): one row per source, the stages in order."""
    import ray

    cfg = config.model_dump(mode="json")
    ds = ray.data.from_items([new_video_row(s) for s in sources], override_num_blocks=max(1, len(sources)))
    for name, stage in STAGES:
        if name in config.pipeline:
            ds = apply_stage(ds, stage, {"config": cfg}, getattr(config.stages, name))
    # Frames stop here: only records, thumbnails and embeddings travel to the driver.
    return ds.select_columns(["video_id", "source", "video_json", "clips_json", "thumbs", "embeddings"])


def check_weights(config: CurationConfig) -> None:
    """Fail before any work when a configured model's weights are not on this machine
    (`MissingWeightsError` naming the setting), instead of in every actor."""
    wanted = [
        (config.ocr.backend == "paddleocr", config.ocr.model_dir, "curation.ocr.model_dir"),
        (config.quality.backend == "dover", config.quality.dover_checkpoint, "curation.quality.dover_checkpoint"),
        (config.watermark.backend in ("yolo", "both"), config.watermark.weights or default_weights(),
         "curation.watermark.weights"),
        (config.embedding.backend == "open_clip", config.embedding.checkpoint, "curation.embedding.checkpoint"),
        (config.caption.backend == "local", config.caption.local_model_path, "curation.caption.local_model_path"),
    ]
    for used, value, setting in wanted:
        if used:
            resolve_weights(value, setting)


def run_curation(inputs: Iterable[str], out: str | Path, config: CurationConfig) -> CurationSummary:
    """Curate `inputs` into `out`; resumes a previous run in the same `out`."""
    start = time.perf_counter()
    check_weights(config)
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
    if "embedding" in config.pipeline:
        clips = apply_global_steps(store, clips, config)
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
        duplicates=sum(d is not None for d in clips.column("dup_of").to_pylist()),
        video_seconds=round(seconds_this_run, 3),
        wall_s=round(wall, 3),
        video_seconds_per_s=round(seconds_this_run / wall, 3) if wall > 0 else 0.0,
        out=str(out),
    )
    atomic_write_bytes(out / "summary.json", json.dumps(asdict(summary), indent=2).encode())
    return summary
