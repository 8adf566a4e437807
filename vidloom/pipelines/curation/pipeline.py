"""The curation pipeline: inputs → decode + shot split + signals → text, quality, watermark,
embeddings, captions → manifest → global steps (near-duplicates, concept clusters).

Streaming on Ray Data: one row per input video flows through the stages' actor pools, and the
driver commits each finished video to the manifest as it arrives, so memory stays flat and a
killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterable

from vidloom.pipelines.curation.config import CurationConfig
from vidloom.pipelines.curation.manifest import ManifestStore
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.global_steps import apply_global_steps
from vidloom.pipelines.curation.registry import STAGE_CLASSES, STAGES_BY_NAME
from vidloom.pipelines.curation.progress import ProgressDisplay
from vidloom.pipelines.ray_data import STAGE_SECONDS, apply_stages, start_progress_board, sum_stage_seconds
from vidloom.pipelines.stage import StageResources
from vidloom.platform.config import dump_config
from vidloom.platform.ids import video_id
from vidloom.platform.storage import atomic_write_bytes, expand_inputs
from vidloom.platform.weights import resolve_weights

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
    # Wall and CPU seconds each stage spent on this run's videos, summed over workers (stages
    # overlap, and fused stages share a worker, so these add up to more than wall_s).
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    # What made each signal of the ok clips: every manifest column named `<signal>_backend`,
    # its distinct values (e.g. text: ["rapidocr:PP-OCRv6_det_small:int8"]).
    backends: dict[str, list[str]] = field(default_factory=dict)

    def to_text(self) -> str:
        return (
            f"curated {self.inputs} inputs into {self.out}\n"
            f"  videos: {self.ok} ok, {self.error} error, {self.too_short} too short"
            f" ({self.skipped_done} already done before this run)\n"
            f"  clips: {self.clips} ok ({self.duplicates} near-duplicates of another), {self.clips_too_short} too short\n"
            f"  wall time {self.wall_s:.1f} s, {self.video_seconds:.1f} s of video this run,"
            f" {self.video_seconds_per_s:.2f} video-seconds per second"
            + ("\n  stage time, wall/CPU s summed over workers: " + ", ".join(
                f"{name} {t['wall_s']:.1f}/{t['cpu_s']:.1f}" for name, t in self.stage_seconds.items())
               if self.stage_seconds else "")
            + ("\n  made by: " + "; ".join(f"{name} {', '.join(v)}" for name, v in self.backends.items())
               if self.backends else "")
        )


#: What the driver reads of each finished row.
DRIVER_COLUMNS = ("video_id", "source", "video_json", "clips_json", "thumbs", "embeddings", STAGE_SECONDS)


def _input_size(source: str) -> int:
    """Bytes of a local input (0 when it is not a local file, e.g. a URL or a missing path)."""
    try:
        return os.path.getsize(source)
    except (OSError, ValueError):
        return 0


def build_dataset(sources: list[str], config: CurationConfig, progress=None):
    """The Ray Dataset of the pipeline (lazy): one row per source, the stages in order; the
    workers report to the `progress` board actor when one is given."""
    import ray

    cfg = config.model_dump(mode="json")
    # Largest files first: with several workers, the longest videos then start early instead of
    # leaving one worker busy with them at the end while the others idle. The manifest keeps
    # the input order (`ManifestStore.consolidate`).
    sources = sorted(sources, key=_input_size, reverse=True)
    ds = ray.data.from_items([new_video_row(s) for s in sources], override_num_blocks=max(1, len(sources)))
    groups = config.actor_groups()
    for k, group in enumerate(groups):
        resources = StageResources.fused([getattr(config.stages, name) for name in group])
        # Frames stop in the last worker: only records, thumbnails and embeddings travel to
        # the driver.
        ds = apply_stages(ds, [(STAGES_BY_NAME[name], {"config": cfg}) for name in group], resources, progress,
                          keep_columns=DRIVER_COLUMNS if k == len(groups) - 1 else None)
    return ds


def check_weights(config: CurationConfig) -> None:
    """Fail before any work when a configured model's weights are not on this machine
    (`MissingWeightsError` naming the setting), instead of in every actor."""
    for stage in STAGE_CLASSES:
        if stage.name in config.pipeline:
            for value, setting in stage.weights(config):
                resolve_weights(value, setting)


def _backends(clips) -> dict[str, list[str]]:
    """Distinct values of each `<signal>_backend` column over the ok clips."""
    ok = [status == "ok" for status in clips.column("status").to_pylist()]
    found = {}
    for name in clips.column_names:
        if name.endswith("_backend"):
            values = {v for v, keep in zip(clips.column(name).to_pylist(), ok) if keep and v}
            if values:
                found[name[: -len("_backend")]] = sorted(values)
    return found


def run_curation(inputs: Iterable[str], out: str | Path, config: CurationConfig,
                 display: bool | IO[str] = False) -> CurationSummary:
    """Curate `inputs` into `out`; resumes a previous run in the same `out`.

    `display=True` shows one progress line on stderr; a text stream shows it there."""
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
    stage_records: list[str] = []
    if todo:
        if display is not False:
            display = ProgressDisplay(list(config.pipeline), len(todo), None if display is True else display)
        board = None
        if display:
            board = start_progress_board()
            display.start_polling(board)
        try:
            for row in build_dataset(todo, config, board).iter_rows():
                video, clips = loads(row["video_json"]), loads(row["clips_json"])
                store.commit(video, clips, row["thumbs"] or [], row["embeddings"] or [])
                seconds_this_run += float(video.get("duration_s") or 0.0)
                stage_records.append(row[STAGE_SECONDS])
                if display:
                    display.video_written(sum(c["status"] == "ok" for c in clips))
        finally:
            if display:
                display.close()
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
        stage_seconds=sum_stage_seconds(stage_records),
        backends=_backends(clips),
    )
    atomic_write_bytes(out / "summary.json", json.dumps(asdict(summary), indent=2).encode())
    return summary
