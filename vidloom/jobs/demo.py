"""`vidloom demo [DIR]`: render the bundled sample corpus and curate it on a local Ray.

The fastest way to see vidloom work on a fresh machine: no inputs, no cluster, no weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.platform.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vidloom demo", description=__doc__.split("\n")[0])
    p.add_argument("workdir", nargs="?", default="vidloom-demo", help="where samples and results go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--num-cpus", type=int)
    args = p.parse_args(argv)
    try:
        config = load_curation_config(None, args.overrides)
    except ConfigError as exc:
        print(f"vidloom demo: {exc}", file=sys.stderr)
        return 2

    from vidloom.pipelines.curation.pipeline import run_curation
    from vidloom.pipelines.samples.render import render_sample_corpus
    from vidloom.platform.ray_runtime import init_ray

    work = Path(args.workdir)
    samples = work / "samples"
    print(f"[1/2] rendering the sample corpus into {samples} ...", flush=True)
    render_sample_corpus(samples, seed=args.seed)
    print("[2/2] curating it on a local Ray ...", flush=True)
    init_ray(num_cpus=args.num_cpus)
    summary = run_curation([str(samples)], work / "curated", config)
    print(summary.to_text())
    print(f"manifest: {work / 'curated' / 'manifest' / 'clips.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
