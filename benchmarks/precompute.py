"""Latent precompute throughput (samples/s) and the latent cache's size per sample.

`measure(...)` runs `run_precompute` into a fresh folder on the Ray this process is connected to
(a local one is started if none is) and returns the figures as a dict; benchmarks/training.py
calls it. The time is end to end: listing, the model probe, actor start-up with both model
loads, decode, VAE and text encoding, and the shard writes.

    python benchmarks/precompute.py [DATA] [--tiers 256p,images_256] [--resize 64] [--vae tiny]
                                    [--text-encoder minilm] [--workers 1] [--num-cpus 2]

Without DATA it renders, curates and exports the sample corpus into --work first (as
`vidloom demo` does; reused when already there, not timed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_WORK = Path(tempfile.gettempdir()) / "vidloom-bench-precompute"


def measure(
    data: list[str] | str, vae: str = "tiny", text_encoder: str = "minilm", *, tiers: list[str] | None = None,
    resize: int | None = None, frames: int | None = None, batch_size: int = 4, workers: int = 1,
    gpus_per_worker: float = 0.0, out: str | Path | None = None, num_cpus: int | None = None,
) -> dict[str, Any]:
    """Precompute `data` into `out` (default: a fresh temporary folder, deleted afterwards) and
    return samples, seconds, samples_per_s, bytes_per_sample (shard files / samples) and its
    parts (latent, text), and the raw uint8 pixel bytes per sample for comparison."""
    from vidloom.platform.ray_runtime import init_ray
    from vidloom.training.latents import LatentCache, run_precompute

    init_ray(num_cpus=num_cpus)
    data = [data] if isinstance(data, (str, Path)) else list(data)
    temporary = out is None
    out = Path(tempfile.mkdtemp(prefix="latents-")) if temporary else Path(out)
    try:
        summary = run_precompute(
            [str(d) for d in data], str(out), vae, text_encoder, tiers=tiers, resize=resize, frames=frames,
            batch_size=batch_size, workers=workers, gpus_per_worker=gpus_per_worker,
        )
        cache = LatentCache.open(out)
        n = len(cache)
        size = latent = text = pixels = 0
        for file in cache.files:
            size += Path(file).stat().st_size
            table = pq.read_table(file, columns=["latent", "text_states", "pooled", "num_frames", "height", "width"])
            latent += pc.sum(pc.binary_length(table["latent"])).as_py() or 0
            text += sum(pc.sum(pc.binary_length(table[c])).as_py() or 0 for c in ("text_states", "pooled"))
            pixels += sum(f * h * w * 3 for f, h, w in zip(*(table[c].to_pylist() for c in ("num_frames", "height", "width"))))
    finally:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)
    per = (lambda v: round(v / n, 1)) if n else (lambda v: 0.0)
    return {
        "samples": summary.written, "errors": summary.errors, "seconds": summary.seconds,
        "samples_per_s": round(summary.samples_per_s, 3), "bytes_per_sample": per(size),
        "latent_bytes_per_sample": per(latent), "text_bytes_per_sample": per(text), "pixel_bytes_per_sample": per(pixels),
        "settings": {"vae": vae, "text_encoder": text_encoder, "tiers": tiers, "resize": resize, "frames": frames,
                     "batch_size": batch_size, "workers": workers, "gpus_per_worker": gpus_per_worker},
    }


def demo_data(work: Path) -> Path:
    """The sample corpus rendered, curated and exported under `work` (reused when present)."""
    curated = work / "curated"
    if (curated / "tiers" / "funnel.json").is_file():
        return curated
    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.pipelines.curation.pipeline import run_curation
    from vidloom.pipelines.export import load_export_config, run_export
    from vidloom.pipelines.samples import render_sample_corpus

    render_sample_corpus(work / "samples", seed=0)
    run_curation([str(work / "samples")], curated, load_curation_config())
    run_export(curated, load_export_config())
    return curated


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="*", help="curated folders or BYO datasets (default: the sample corpus's tiers)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--tiers", default="256p,images_256")
    p.add_argument("--resize", type=int)
    p.add_argument("--frames", type=int)
    p.add_argument("--vae", default="tiny")
    p.add_argument("--text-encoder", default="minilm")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--num-cpus", type=int)
    args = p.parse_args(argv)
    from vidloom.platform.ray_runtime import init_ray

    init_ray(num_cpus=args.num_cpus)
    data = args.data or [str(demo_data(args.work))]
    tiers = [t for t in args.tiers.split(",") if t] or None
    started = time.strftime("%Y-%m-%d %H:%M")
    result = measure(data, args.vae, args.text_encoder, tiers=tiers, resize=args.resize, frames=args.frames,
                     batch_size=args.batch_size, workers=args.workers, gpus_per_worker=args.gpus_per_worker)
    s = result["settings"]
    print(f"precompute ({started}): {s['vae']} VAE, {s['text_encoder']}, tiers {s['tiers']}, resize {s['resize']},"
          f" batch {s['batch_size']}, {s['workers']} worker(s)")
    print(f"  {result['samples']} samples ({result['errors']} errors) in {result['seconds']:.1f} s:"
          f" {result['samples_per_s']:.2f} samples/s (end to end, model loads included)")
    print(f"  cache: {result['bytes_per_sample'] / 1024:.1f} KiB per sample (latent {result['latent_bytes_per_sample'] / 1024:.1f}"
          f" KiB, text {result['text_bytes_per_sample'] / 1024:.1f} KiB; the uint8 pixels were"
          f" {result['pixel_bytes_per_sample'] / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
