"""`vidloom train dit|vae --config NAME|PATH --data DIR --out DIR`: staged training on Ray Train.

`dit` trains the DiT through the config's curriculum from a latent cache (`vidloom precompute`);
`vae` trains the causal 3D VAE from a curated folder's tier clips. Rerunning with the same
`--out` skips finished stages and resumes an interrupted one from its last checkpoint.

Also the entry point for a cluster:
    ray job submit --working-dir . -- python -m vidloom.jobs.train dit --config dit-tiny --data LATENTS --out RUN
"""

from __future__ import annotations

import argparse
import sys

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.platform.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from vidloom.training.config import shipped_configs

    p = argparse.ArgumentParser(prog="vidloom train", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=["dit", "vae"], help="what to train")
    p.add_argument("--config", required=True, help=f"a shipped config {shipped_configs()} or a YAML file")
    p.add_argument("--data", required=True, help="latent cache (dit) or curated folder with tiers (vae, pixels)")
    p.add_argument("--out", required=True, help="run folder; rerunning with it resumes")
    p.add_argument("--export-format", choices=["vidloom", "diffusers"], default="vidloom",
                   help="diffusers: also write OUT/final/diffusers (from_pretrained layout)")
    add_override_option(p, "stages.joint.steps=50")
    add_ray_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidloom.training.config import load_train_config

    try:
        cfg = load_train_config(args.config, args.overrides)
        if cfg.target != args.target:
            raise ConfigError(f"target: the config trains {cfg.target!r}, not {args.target!r}")
        from vidloom.training import prepare_run

        prepared = prepare_run(cfg, args.data)  # every check against the data, before Ray starts
    except ConfigError as exc:
        print(f"vidloom train: {exc}", file=sys.stderr)
        return 2
    from vidloom.platform.ray_runtime import init_ray
    from vidloom.training import run_prepared

    init_ray(args.address, num_cpus=args.num_cpus, log_to_driver=False)
    summary = run_prepared(prepared, args.out, export_format=args.export_format)
    print(summary.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
