"""`run_precompute`: curated tiers or a captioned dataset -> a latent cache (see `format.py`).

A Ray Data job: the sample records (listed without decoding) -> `decode_batch` tasks ->
`LatentEncoder` actors (VAE + text encoder) -> the driver, which writes the rows into Parquet
shards as they stream in. Resuming is by sample id: the shards already in the cache say what
is done, and a killed run leaves at most a temporary file behind, which the next run deletes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidloom.platform.storage import atomic_write_bytes
from vidloom.training.latents.config import PrecomputeConfig, make_config
from vidloom.training.latents.encode import LatentEncoder, decode_batch, describe_models
from vidloom.training.latents.format import (
    ERRORS_FILE, FORMAT, META_FILE, NULL_TEXT_FILE, clear_temporaries, finished_ids, meta_mismatches,
    read_meta, shard_files, write_shard,
)
from vidloom.training.latents.sources import SampleRecord, list_samples

SUMMARY_FILE = "summary.json"
MAX_LISTED_PROBLEMS = 20  # lines of problems printed by to_text (all are in errors.jsonl)


class CacheMismatchError(ValueError):
    """The output folder is a latent cache made with another VAE, text encoder or size."""


@dataclass
class PrecomputeSummary:
    """What one precompute run did."""

    out: str
    listed: int  # samples named by the inputs
    written: int  # encoded and written this run
    skipped: int  # already in the cache
    errors: int  # could not be encoded (see problems / errors.jsonl)
    empty_captions: int  # written with the empty prompt because the caption was missing
    shards: int  # shard files written this run
    bytes_written: int
    cache_samples: int  # samples in the cache after this run
    seconds: float
    problems: list[dict[str, Any]] = field(default_factory=list)  # per row: sample_id, source_path, problem, message

    @property
    def samples_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def to_text(self) -> str:
        lines = [
            f"precomputed latents into {self.out}: {self.written} written, {self.skipped} already there, "
            f"{self.errors} errors, {self.empty_captions} empty captions ({self.cache_samples} samples in the cache)",
            f"  {self.shards} shards, {self.bytes_written / 1e6:.1f} MB in {self.seconds:.1f} s"
            f" ({self.samples_per_s:.2f} samples/s)",
        ]
        for p in self.problems[:MAX_LISTED_PROBLEMS]:
            lines.append(f"  {p['problem']} {p['sample_id']} ({p['source_path']}): {p['message']}")
        if len(self.problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... {len(self.problems) - MAX_LISTED_PROBLEMS} more in {Path(self.out) / ERRORS_FILE}")
        return "\n".join(lines)


def run_precompute(
    data: list[str], out: str | os.PathLike, vae: str, text_encoder: str | dict[str, Any], *,
    tiers: list[str] | None = None, resize: int | None = None, frames: int | None = None,
    posterior: str = "mode", batch_size: int = 4, seed: int = 0, **settings: Any,
) -> PrecomputeSummary:
    """Encode `data` (curated folders, tier folders, caption tables or media folders) into the
    latent cache `out`; `settings` are further `PrecomputeConfig` fields (workers,
    gpus_per_worker, shard_rows, ...). Ray must be initialised by the caller (`init_ray`)."""
    config = make_config(vae=vae, text_encoder=text_encoder, tiers=tiers, resize=resize, frames=frames,
                         posterior=posterior, batch_size=batch_size, seed=seed, **settings)
    return precompute(data, out, config)


def _settings(config: PrecomputeConfig) -> dict[str, Any]:
    """The settings that change a sample's latent besides the models (all must match on resume)."""
    return {"resize": config.resize, "frames": config.frames, "posterior": config.posterior}


def _check_or_write_meta(out: Path, config: PrecomputeConfig, probe: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    meta = {"format": FORMAT, "vae": probe["vae"], "text_encoder": probe["text_encoder"], **_settings(config)}
    if (out / META_FILE).is_file():
        have = read_meta(out)
        problems = meta_mismatches(have, probe["vae"]["digest"], probe["text_encoder"]["encoder_id"])
        if have["vae"].get("posterior") != config.posterior:
            problems.append(f"posterior {have['vae'].get('posterior')!r}, not {config.posterior!r}")
        for key in ("resize", "frames"):
            if have.get(key) != getattr(config, key):
                problems.append(f"{key} {have.get(key)!r}, not {getattr(config, key)!r}")
        if problems:
            raise CacheMismatchError(
                f"{out} already holds latents made with " + "; ".join(problems)
                + ". One cache holds one VAE, text encoder and size: pass another --out, or the same settings"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{NULL_TEXT_FILE}.tmp-{os.getpid()}"
    save_file({"states": np.ascontiguousarray(probe["null_states"]),
               "pooled": np.ascontiguousarray(probe["null_pooled"])}, str(tmp))
    os.replace(tmp, out / NULL_TEXT_FILE)
    atomic_write_bytes(out / META_FILE, json.dumps(meta, indent=2, default=str).encode())  # last: marks the cache


def _problem(record: dict[str, Any], problem: str, message: str) -> dict[str, Any]:
    return {"sample_id": record["sample_id"], "tier": record.get("tier"), "source_path": record.get("source_path"),
            "problem": problem, "message": message}


def _dataset(todo: list[SampleRecord], config: PrecomputeConfig):
    import ray

    cfg = config.model_dump(mode="json")
    blocks = max(1, -(-len(todo) // config.batch_size))
    ds = ray.data.from_items([r.to_dict() for r in todo], override_num_blocks=blocks)
    ds = ds.map_batches(
        decode_batch, fn_kwargs={"resize": config.resize, "frames": config.frames},
        batch_size=config.batch_size, batch_format="pyarrow", num_cpus=config.decode_cpus,
    )
    remote: dict[str, Any] = {"num_cpus": config.cpus_per_worker}
    if config.gpus_per_worker:
        remote["num_gpus"] = config.gpus_per_worker
    return ds.map_batches(
        LatentEncoder, fn_constructor_kwargs={"config": cfg}, batch_size=config.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=config.workers), **remote,
    )


def _describe_models(config_data: dict[str, Any]) -> dict[str, Any]:
    try:
        return describe_models(config_data)
    except (FileNotFoundError, ValueError) as exc:
        # Re-raised as the plain built-in: Ray pickles the error back to the driver, and
        # MissingWeightsError cannot be rebuilt from its message alone.
        raise (FileNotFoundError if isinstance(exc, FileNotFoundError) else ValueError)(str(exc)) from None


def precompute(data: list[str], out: str | os.PathLike, config: PrecomputeConfig) -> PrecomputeSummary:
    """`run_precompute` with a ready `PrecomputeConfig`."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("run_precompute needs Ray: call vidloom.platform.ray_runtime.init_ray() first")
    start = time.perf_counter()
    out = Path(out)
    records = list_samples(list(data), config.tiers)  # a bad input or tier name stops here
    cfg = config.model_dump(mode="json")
    probe_task = ray.remote(_describe_models).options(
        num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker, max_retries=0)
    try:
        probe = ray.get(probe_task.remote(cfg))
    except ray.exceptions.RayTaskError as exc:  # e.g. MissingWeightsError naming the setting
        raise (exc.cause if isinstance(exc.cause, Exception) else exc) from None
    _check_or_write_meta(out, config, probe)
    clear_temporaries(out)

    done = finished_ids(out)
    problems = [_problem(r.to_dict(), "error", r.error) for r in records if r.error]
    todo = [r for r in records if r.error is None and r.sample_id not in done]
    skipped = sum(1 for r in records if r.error is None and r.sample_id in done)
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    buffer: list[dict[str, Any]] = []
    buffered_bytes = written = empty = shards = bytes_written = 0

    def flush() -> None:
        nonlocal buffer, buffered_bytes, shards, bytes_written
        if buffer:
            path = write_shard(out, f"part-{run_id}-{shards:05d}.parquet", buffer)
            shards += 1
            bytes_written += path.stat().st_size
        buffer, buffered_bytes = [], 0

    if todo:
        for batch in _dataset(todo, config).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                if row["error"] is not None:
                    problems.append(_problem(row, "error", row["error"]))
                    continue
                if row["caption_missing"]:
                    empty += 1
                    problems.append(_problem(row, "missing_caption", "no caption: encoded with the empty prompt"))
                buffer.append(row)
                written += 1
                buffered_bytes += len(row["latent"]) + len(row["text_states"])
                if len(buffer) >= config.shard_rows or buffered_bytes >= config.shard_max_bytes:
                    flush()
        flush()

    atomic_write_bytes(out / ERRORS_FILE, "".join(json.dumps(p) + "\n" for p in problems).encode())
    summary = PrecomputeSummary(
        out=str(out), listed=len(records), written=written, skipped=skipped,
        errors=sum(1 for p in problems if p["problem"] != "missing_caption"), empty_captions=empty,
        shards=shards, bytes_written=bytes_written, cache_samples=len(done) + written,
        seconds=round(time.perf_counter() - start, 3), problems=problems,
    )
    atomic_write_bytes(out / SUMMARY_FILE, json.dumps(asdict(summary), indent=2).encode())
    return summary


__all__ = ["CacheMismatchError", "PrecomputeSummary", "precompute", "run_precompute", "shard_files"]
