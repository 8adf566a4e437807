"""`vidloom demo [DIR]`: the whole curation on bundled sample data, on a local Ray.

Renders the sample corpus (real photographs through a virtual camera, with planted defects,
duplicates and broken files), curates it, exports the tiered training sets and writes the
HTML report. No inputs, no cluster, no weights needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.pipelines.curation.config import load_curation_config
from vidloom.platform.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vidloom demo", description=__doc__.split("\n")[0])
    p.add_argument("workdir", nargs="?", default="vidloom-demo", help="where samples and results go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", action="store_true",
                   help="go on: train the VAE, precompute latents, train the DiT curriculum, write sample videos")
    add_override_option(p, "split.min_clip_s=3")
    add_ray_options(p, address=False)
    args = p.parse_args(argv)
    try:
        config = load_curation_config(None, args.overrides)
    except ConfigError as exc:
        print(f"vidloom demo: {exc}", file=sys.stderr)
        return 2

    from vidloom.pipelines.curation.pipeline import run_curation
    from vidloom.pipelines.export.runner import run_export
    from vidloom.pipelines.export.tiers import load_export_config
    from vidloom.pipelines.report.build import build_report
    from vidloom.pipelines.samples import render_sample_corpus
    from vidloom.platform.ray_runtime import init_ray

    work = Path(args.workdir).resolve()
    samples, curated = work / "samples", work / "curated"
    print(f"[1/4] rendering the sample corpus into {samples} ...", flush=True)
    render_sample_corpus(samples, seed=args.seed)
    print("[2/4] curating it on a local Ray ...", flush=True)
    from vidloom.pipelines.curation.progress import ray_output_to

    (curated / "logs").mkdir(parents=True, exist_ok=True)
    # One progress line instead of Ray Data's log lines (those go to curated/logs/ray.log).
    with ray_output_to(curated / "logs" / "ray.log") as console:
        init_ray(num_cpus=args.num_cpus, log_to_driver=False)
        summary = run_curation([str(samples)], curated, config, display=console)
    print(summary.to_text(), flush=True)
    print("[3/4] exporting the tiers ...", flush=True)
    print(run_export(curated, load_export_config()).to_text(), flush=True)
    print("[4/4] writing the report ...", flush=True)
    report = build_report(curated)
    print(f"\nmanifest: {curated / 'manifest' / 'clips.parquet'}")
    print(f"tiers:    {curated / 'tiers'}")
    print(f"report:   {report}")
    if args.train:
        from vidloom.jobs.demo_train import run_demo_training

        run_demo_training(work, curated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
