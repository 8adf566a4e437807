"""`vidloom export`: from a curated folder to tiered training sets.

1. Query: every tier and image set is selected from ``DIR/manifest/clips.parquet`` (no decode).
2. Plan: each kept (clip, tier) pair becomes a cut job; a job whose file is already there with
   the right frame count, size and rate (and its cut record) is reused, not cut again.
3. Cut: the remaining jobs are grouped by source video, one Ray task per source, so each
   source is decoded once for all tiers. A source that cannot be read fails its jobs only.
4. Write: per tier ``manifest.parquet`` and WebDataset shards, then ``DIR/tiers/funnel.json``,
   ``DIR/tiers/tiers.yaml`` and the ``tiers`` / ``drop_reason`` columns of ``clips.parquet``.

A killed export resumes: finished files are reused and nothing is final until renamed.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from vidloom.pipelines.curation.manifest import CLIP_SCHEMA
from vidloom.pipelines.export.buckets import centre_crop, choose_bucket, picture_box
from vidloom.pipelines.export.cutter import (
    CutJob, CutResult, EncodeSettings, cut_source, link_result, probe_clip, probe_image, record_path,
)
from vidloom.pipelines.export.query import TierSelection, clip_columns, load_balancer, select_all
from vidloom.pipelines.export.shards import write_shards
from vidloom.pipelines.export.tiers import ExportConfig, ImageSetConfig, TierConfig
from vidloom.platform.storage import atomic_write_bytes

log = logging.getLogger(__name__)

# Signals copied from clips.parquet into every tier manifest (types as in the clips table).
SIGNAL_COLUMNS = [
    "duration_s", "sharpness", "best_start_frame", "motion", "camera_motion", "camera_motion_confidence",
    "frame_diff", "border_box", "text_ratio", "embedding_backend", "quality", "quality_backend",
    "watermark_score", "watermark_boxes", "watermark_backend", "caption_backend", "dup_of", "cluster_id",
]
TIER_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()), ("path", pa.string()), ("caption", pa.string()),
        ("num_frames", pa.int64()), ("height", pa.int32()), ("width", pa.int32()), ("fps", pa.float64()),
        ("aspect_bucket", pa.string()), ("crop", pa.list_(pa.int32())), ("source", pa.string()),
        ("video_id", pa.string()), ("start_frame", pa.int64()), ("end_frame", pa.int64()),
        ("source_frames", pa.list_(pa.int64())), ("source_start_s", pa.float64()),
    ]
    + [CLIP_SCHEMA.field(name) for name in SIGNAL_COLUMNS]
)


@dataclass
class ExportSummary:
    """What one export run did."""

    out: str
    kept: dict[str, int]  # tier -> clips in it
    jobs: int  # (clip, tier) files the tiers need
    reused: int  # already there and valid
    cut: int  # written this run
    errors: int  # could not be written (see funnel.json)
    sources_decoded: int
    wall_s: float
    error_messages: dict[str, dict[str, str]] = field(default_factory=dict)  # tier -> clip -> why

    def to_text(self) -> str:
        tiers = ", ".join(f"{k}: {v}" for k, v in self.kept.items())
        return (
            f"exported {self.out}/tiers ({tiers})\n"
            f"  files: {self.jobs} needed, {self.reused} reused, {self.cut} cut, {self.errors} errors;"
            f" {self.sources_decoded} source videos decoded in {self.wall_s:.1f} s"
        )


def _tier_dir(out: Path, name: str) -> Path:
    return out / "tiers" / name


def _file_path(out: Path, name: str, cfg: TierConfig | ImageSetConfig, clip_id: str) -> Path:
    if isinstance(cfg, TierConfig):
        return _tier_dir(out, name) / "clips" / f"{clip_id}.mp4"
    return _tier_dir(out, name) / "images" / f"{clip_id}.jpg"


def _cut_params(cfg: TierConfig | ImageSetConfig, config: ExportConfig) -> dict[str, Any]:
    """Settings of a tier that change the bytes of all its files (thresholds do not; what is
    specific to one clip, like its crop box, is checked per file through its cut record)."""
    params: dict[str, Any] = {"resolution": cfg.resolution, "buckets": config.buckets}
    if isinstance(cfg, TierConfig):
        params.update(num_frames=cfg.num_frames, fps=cfg.fps, encode=config.encode.model_dump())
    else:
        params.update(jpeg_quality=cfg.jpeg_quality)
    return params


def _prepare_tier_dir(tier_dir: Path, params: dict[str, Any]) -> None:
    """Drop the tier's files if they were cut with other cut parameters; clear temp files."""
    stamp = tier_dir / "cut.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != params:
        for sub in ("clips", "images"):
            shutil.rmtree(tier_dir / sub, ignore_errors=True)
    for sub in ("clips", "images", "shards"):
        for tmp in (tier_dir / sub).glob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)
    atomic_write_bytes(stamp, json.dumps(params, sort_keys=True).encode())


def _plan_job(out: Path, name: str, cfg: TierConfig | ImageSetConfig, row: dict, config: ExportConfig) -> tuple[CutJob, str]:
    width, height = int(row["width"]), int(row["height"])
    box = picture_box(width, height, row.get("border_box") if cfg.letterbox == "crop" else None)
    bucket = choose_bucket(box[2] - box[0], box[3] - box[1], cfg.resolution, config.bucket_ratios())
    crop = centre_crop(box, bucket.width / bucket.height)
    start, end = int(row["start_frame"]), int(row["end_frame"])
    best = row.get("best_start_frame")
    job = CutJob(
        tier=name, kind="video" if isinstance(cfg, TierConfig) else "image", clip_id=row["clip_id"],
        path=str(_file_path(out, name, cfg, row["clip_id"])), start_frame=start, end_frame=end,
        best_start_frame=int(best) if best is not None else start, end_s=float(row["end_s"]),
        crop=crop, width=bucket.width, height=bucket.height, src_fps=float(row.get("fps") or 25.0),
    )
    if isinstance(cfg, TierConfig):
        job.num_frames, job.fps = cfg.num_frames, cfg.fps
    else:
        job.jpeg_quality = cfg.jpeg_quality
    return job, bucket.name


def _reusable(job: CutJob) -> CutResult | None:
    """The cut record of a valid existing file for `job`, else None."""
    rec = record_path(job.path)
    if not rec.is_file():
        return None
    if job.kind == "video":
        probe = probe_clip(job.path)
        if probe is None or probe[:3] != (job.num_frames, job.width, job.height) or abs(probe[3] - job.fps) > 1e-3:
            return None
    elif probe_image(job.path) != (job.width, job.height):
        return None
    try:
        result = CutResult(**json.loads(rec.read_text()))
    except (ValueError, TypeError):
        return None
    # Same clip, range, crop, size and timing: the file holds what this job would write.
    if not result.ok or result.signature != json.loads(json.dumps(list(job.signature()))):
        return None
    return replace(result, tier=job.tier, path=job.path)


def _run_cuts(jobs: list[CutJob], config: ExportConfig, address: str | None, num_cpus: int | None) -> tuple[list[CutResult], int]:
    """Cut `jobs` with one Ray task per source video; returns the results and the number of
    sources decoded."""
    if not jobs:
        return [], 0
    import ray

    from vidloom.platform.ray_runtime import init_ray

    init_ray(address, num_cpus=num_cpus)
    by_source: dict[str, list[CutJob]] = {}
    for job in jobs:
        by_source.setdefault(job.source, []).append(job)
    enc = EncodeSettings(**config.encode.model_dump())
    task = ray.remote(num_cpus=config.run.num_cpus_per_task, max_retries=0)(cut_source)
    refs = {task.remote(src, src_jobs, enc, config.run.decoder_threads): src for src, src_jobs in by_source.items()}
    results: list[CutResult] = []
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        src = refs[done[0]]
        try:
            results.extend(ray.get(done[0]))
        except Exception as exc:  # noqa: BLE001 - a crashed task fails that source's clips only
            reason = f"cutting task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            results.extend(CutResult(tier=j.tier, clip_id=j.clip_id, ok=False, error=reason) for j in by_source[src])
    return results, len(by_source)


def _tier_rows(
    tier_dir: Path, sel: TierSelection, rows_by_id: dict[str, dict], jobs: dict[str, CutJob],
    buckets: dict[str, str], results: dict[str, CutResult], cfg: TierConfig | ImageSetConfig,
) -> list[dict[str, Any]]:
    out = []
    for cid in sel.kept:
        row, job, res = rows_by_id[cid], jobs[cid], results[cid]
        rec = {
            "clip_id": cid, "path": str(Path(job.path).relative_to(tier_dir)), "caption": row.get("caption"),
            "num_frames": res.num_frames, "height": job.height, "width": job.width,
            "fps": cfg.fps if isinstance(cfg, TierConfig) else None, "aspect_bucket": buckets[cid],
            "crop": list(job.crop), "source": row["source"], "video_id": row.get("video_id"),
            "start_frame": row["start_frame"], "end_frame": row["end_frame"],
            "source_frames": res.source_frames, "source_start_s": res.source_start_s,
        }
        rec.update({k: row.get(k) for k in SIGNAL_COLUMNS})
        out.append(rec)
    return out


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_clip_columns(clips_path: Path, table: pa.Table, selections: dict[str, TierSelection]) -> None:
    """Add (or replace) `tiers` and `drop_reason` in clips.parquet, every other column kept."""
    ids = table.column("clip_id").to_pylist()
    tiers_col, reasons_col = clip_columns(selections, ids)
    for name in ("tiers", "drop_reason"):
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("tiers", pa.array(tiers_col, type=pa.list_(pa.string())))
    table = table.append_column("drop_reason", pa.array([json.dumps(r) for r in reasons_col], type=pa.string()))
    atomic_write_bytes(clips_path, _parquet_bytes(table))


def run_export(
    out_dir: str | Path, config: ExportConfig, address: str | None = None, num_cpus: int | None = None,
) -> ExportSummary:
    """Export the tiers of `config` from the curated folder `out_dir` (see the module doc)."""
    start = time.perf_counter()
    out = Path(out_dir)
    clips_path = out / "manifest" / "clips.parquet"
    if not clips_path.is_file():
        raise FileNotFoundError(f"{clips_path} not found: run `vidloom curate ... --out {out}` first")
    table = pq.read_table(clips_path)
    rows = table.to_pylist()
    rows_by_id = {r["clip_id"]: r for r in rows}
    selections = select_all(config, rows, load_balancer())
    definitions: dict[str, TierConfig | ImageSetConfig] = {**config.tiers, **config.image_sets}

    # Plan every file; keep the ones already cut, queue the rest.
    planned: dict[str, dict[str, CutJob]] = {}
    buckets: dict[str, dict[str, str]] = {}
    results: dict[str, dict[str, CutResult]] = {name: {} for name in definitions}
    todo: list[CutJob] = []
    valid: dict[tuple, CutResult] = {}  # signature -> a valid file already on disk
    for name, cfg in definitions.items():
        tier_dir = _tier_dir(out, name)
        _prepare_tier_dir(tier_dir, _cut_params(cfg, config))
        planned[name], buckets[name] = {}, {}
        for cid in selections[name].kept:
            job, bucket = _plan_job(out, name, cfg, rows_by_id[cid], config)
            job.source = rows_by_id[cid]["source"]
            planned[name][cid], buckets[name][cid] = job, bucket
            reused = _reusable(job)
            if reused is None and job.signature() in valid:
                reused = link_result(valid[job.signature()], job)  # same bytes as another tier's file
            if reused is not None:
                results[name][cid] = reused
                valid.setdefault(job.signature(), reused)
            else:
                todo.append(job)
    reused_count = sum(len(r) for r in results.values())
    cut_results, decoded = _run_cuts(todo, config, address, num_cpus)

    errors: dict[str, dict[str, str]] = {}
    for res in cut_results:
        if res.ok:
            results[res.tier][res.clip_id] = res
        else:
            errors.setdefault(res.tier, {})[res.clip_id] = res.error
            selections[res.tier].remove(res.clip_id, "export_error")
            # a clip that failed in a tier is not in the tiers after it either
            _cascade_removal(selections, definitions, res.tier, res.clip_id)

    funnel: dict[str, Any] = {}
    for name, cfg in definitions.items():
        sel, tier_dir = selections[name], _tier_dir(out, name)
        _remove_stale(tier_dir, set(sel.kept))
        tier_rows = _tier_rows(tier_dir, sel, rows_by_id, planned[name], buckets[name], results[name], cfg)
        atomic_write_bytes(tier_dir / "manifest.parquet", _parquet_bytes(pa.Table.from_pylist(tier_rows, schema=TIER_SCHEMA)))
        samples = [
            {"key": r["clip_id"], "file": str(tier_dir / r["path"]), "ext": r["path"].rsplit(".", 1)[1], "meta": r}
            for r in tier_rows
        ]
        write_shards(tier_dir / "shards", samples, config.run.shard_max_bytes)
        funnel[name] = {**sel.funnel, "errors": errors.get(name, {})}

    tiers_root = out / "tiers"
    atomic_write_bytes(tiers_root / "funnel.json", json.dumps(funnel, indent=2).encode())
    atomic_write_bytes(tiers_root / "tiers.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
    write_clip_columns(clips_path, table, selections)
    summary = ExportSummary(
        out=str(out), kept={n: len(s.kept) for n, s in selections.items()}, jobs=reused_count + len(todo),
        reused=reused_count, cut=sum(1 for r in cut_results if r.ok), errors=sum(1 for r in cut_results if not r.ok),
        sources_decoded=decoded, wall_s=round(time.perf_counter() - start, 3), error_messages=errors,
    )
    atomic_write_bytes(tiers_root / "summary.json", json.dumps(asdict(summary), indent=2).encode())
    return summary


def _cascade_removal(selections: dict[str, TierSelection], definitions: dict, tier: str, clip_id: str) -> None:
    chain = [n for n in definitions if type(definitions[n]) is type(definitions[tier])]
    for later in chain[chain.index(tier) + 1:]:
        selections[later].remove(clip_id, "parent")


def _remove_stale(tier_dir: Path, kept: set[str]) -> None:
    """Delete files of clips that are no longer in the tier, so the folder matches its manifest."""
    for sub in ("clips", "images"):
        folder = tier_dir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith("."):
                continue
            if path.name.split(".", 1)[0] not in kept:
                path.unlink(missing_ok=True)
