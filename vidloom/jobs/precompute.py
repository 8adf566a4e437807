"""`vidloom precompute DATA... --vae SRC --text-encoder NAME --out LATENTS`: encode curated tiers
(or a captioned dataset of your own) into a latent cache of VAE latents and text embeddings.

Also the entry point for a cluster:
    ray job submit --working-dir . -- python -m vidloom.jobs.precompute DATA --out LATENTS
Without RAY_ADDRESS (or --address) it starts a local Ray. Rerunning into the same LATENTS
resumes: samples already there are not encoded again.
"""

from __future__ import annotations

import argparse
import sys

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.platform.config import ConfigError, deep_merge, parse_override


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom precompute", description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", help="curated folders (DATA/tiers/...), tier folders, caption "
                   "tables (.csv/.jsonl of path, caption) or folders of videos and images")
    p.add_argument("--out", required=True, help="the latent cache folder; rerunning with it resumes")
    p.add_argument("--vae", default="tiny", help="tiny|hunyuan (seeded random init), a vidloom export or diffusers folder")
    p.add_argument("--text-encoder", default="minilm", help="minilm (default), tiny, llm-clip, or an export folder")
    p.add_argument("--tiers", help="comma-separated tiers and image sets of curated inputs (default: all)")
    p.add_argument("--resize", type=int, help="short side in px (rounded to a multiple of 16, aspect kept)")
    p.add_argument("--frames", type=int, help="keep the first N frames of each video (N = 4k+1)")
    p.add_argument("--posterior", choices=["sample", "mode"], default="mode", help="VAE latent: the mean or a sample")
    p.add_argument("--batch-size", type=int, default=4, help="samples per model call")
    p.add_argument("--workers", type=int, default=1, help="encoder actors (each holds both models)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="> 0 encodes on the GPU")
    p.add_argument("--seed", type=int, default=0, help="seed of a named VAE's init and of posterior samples")
    add_override_option(p, "shard_rows=256")
    add_ray_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidloom.training.latents.config import PrecomputeConfig
    from vidloom.platform.config import validate

    values = {
        "vae": args.vae, "text_encoder": args.text_encoder, "posterior": args.posterior,
        "tiers": [t.strip() for t in args.tiers.split(",") if t.strip()] if args.tiers else None,
        "resize": args.resize, "frames": args.frames, "batch_size": args.batch_size, "workers": args.workers,
        "gpus_per_worker": args.gpus_per_worker, "seed": args.seed,
    }
    values = {k: v for k, v in values.items() if v is not None}
    try:
        for text in args.overrides:
            values = deep_merge(values, parse_override(text))
        config = validate(PrecomputeConfig, values)
    except ConfigError as exc:
        print(f"vidloom precompute: {exc}", file=sys.stderr)
        return 2
    from vidloom.platform.ray_runtime import init_ray
    from vidloom.training.latents import precompute
    from vidloom.training.latents.sources import list_samples

    try:
        list_samples(args.data, config.tiers)  # a wrong input or tier name fails before Ray starts
    except ConfigError as exc:
        print(f"vidloom precompute: {exc}", file=sys.stderr)
        return 2
    init_ray(args.address, num_cpus=args.num_cpus)
    try:
        summary = precompute(args.data, args.out, config)
    except (FileNotFoundError, ValueError) as exc:  # missing weights, unknown encoder, CacheMismatchError
        print(f"vidloom precompute: {exc}", file=sys.stderr)
        return 2
    print(summary.to_text())
    return 0  # rows that failed are data (errors.jsonl), as in `vidloom curate`


if __name__ == "__main__":
    sys.exit(main())
