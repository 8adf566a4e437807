"""`vidloom export DIR [--tiers FILE] [--set key=value]`: cut the tiered training sets out of a
curated folder (written by `vidloom curate ... --out DIR`) into ``DIR/tiers/``.

Also the entry point for a cluster:
    ray job submit --working-dir . -- python -m vidloom.jobs.export DIR
Without RAY_ADDRESS (or --address) it starts a local Ray, and only if something must be cut.
"""

from __future__ import annotations

import argparse
import sys

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.platform.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom export", description=__doc__.split("\n")[0])
    p.add_argument("dir", help="curated folder (holds manifest/clips.parquet); tiers go to DIR/tiers")
    p.add_argument("--tiers", help="tier definitions YAML (default: the packaged default_tiers.yaml)")
    add_override_option(p, "tiers.360p.sharpness_min=80")
    add_ray_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidloom.pipelines.export.query import ConceptsUnavailableError
    from vidloom.pipelines.export.tiers import load_export_config

    try:
        config = load_export_config(args.tiers, args.overrides)
    except ConfigError as exc:
        print(f"vidloom export: {exc}", file=sys.stderr)
        return 2
    from vidloom.pipelines.export.runner import run_export

    try:
        summary = run_export(args.dir, config, address=args.address, num_cpus=args.num_cpus)
    except (FileNotFoundError, ConceptsUnavailableError) as exc:
        print(f"vidloom export: {exc}", file=sys.stderr)
        return 2
    print(summary.to_text())
    for tier, problems in summary.error_messages.items():
        for clip_id, reason in problems.items():
            print(f"  error {tier}/{clip_id}: {reason}", file=sys.stderr)
    return 0  # clips that failed are data (recorded in funnel.json), as in `vidloom curate`


if __name__ == "__main__":
    sys.exit(main())
