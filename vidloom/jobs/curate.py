"""`vidloom curate INPUT... --out DIR`: curate videos into a manifest of clips with signals.

Also the entry point for a cluster:
    ray job submit --working-dir . -- python -m vidloom.jobs.curate INPUT... --out DIR
Without RAY_ADDRESS (or --address) it starts a local Ray.
"""

from __future__ import annotations

import argparse
import sys

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.pipelines.curation.config import load_curation_config
from vidloom.platform.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom curate", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", help="video files, folders, globs, list files (.txt) or URIs")
    p.add_argument("--out", required=True, help="output folder; rerunning with the same folder resumes")
    p.add_argument("--config", help="YAML file with overrides of the defaults")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's and the workers' own log lines instead of writing them to OUT/logs/")
    add_override_option(p, "split.min_clip_s=3")
    add_ray_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_curation_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"vidloom curate: {exc}", file=sys.stderr)
        return 2
    from pathlib import Path

    from vidloom.pipelines.curation.pipeline import run_curation
    from vidloom.pipelines.curation.progress import ray_output_to
    from vidloom.platform.ray_runtime import init_ray

    def run(display):
        import ray

        init_ray(args.address, num_cpus=args.num_cpus, log_to_driver=args.verbose)
        try:
            return run_curation(args.inputs, args.out, config, display=display)
        finally:
            ray.shutdown()

    if args.verbose:
        summary = run(True)
    else:
        # One progress line on the console; Ray's own lines (the workers' output, Ray Data's
        # execution plans, shutdown errors) go to OUT/logs/ray.log (shown with --verbose).
        logs = Path(args.out) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with ray_output_to(logs / "ray.log") as console:
            summary = run(console)
    print(summary.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
