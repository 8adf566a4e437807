"""`vidloom sweep --config NAME|PATH --data LATENTS --out DIR`: a scaling-law sweep on Ray Tune.

Trains a family of DiT sizes on a grid of compute budgets (one Tune trial each, in parallel
as the cluster allows), fits the compute-optimal model size N_opt(C) and tokens D_opt(C) and
writes DIR/fit.json and DIR/index.html. Rerunning with the same --out resumes the experiment:
finished trials are kept. `vidloom sweep recommend --fit DIR/fit.json --budget FLOPS` turns a
fit into a model size and a token count. docs/scaling.md.

Also the entry point for a cluster:
    ray job submit --working-dir . -- python -m vidloom.jobs.sweep --config sweep-tiny --data LATENTS --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys

from vidloom.jobs.arguments import add_override_option, add_ray_options
from vidloom.platform.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from vidloom.training.sweep.config import shipped_sweeps

    p = argparse.ArgumentParser(prog="vidloom sweep", description=__doc__.split("\n")[0],
                                epilog="vidloom sweep recommend --fit DIR/fit.json --budget FLOPS: size a model")
    p.add_argument("--config", required=True, help=f"a shipped sweep {shipped_sweeps()} or a YAML file")
    p.add_argument("--data", required=True, help="latent cache (vidloom precompute)")
    p.add_argument("--out", required=True, help="sweep folder; rerunning with it resumes")
    add_override_option(p, "budgets=[1e11,3e11,1e12]")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", dest="train_overrides",
                   help="one more override of the training config, after the sweep's train_overrides, e.g. "
                        "--train-set model.vae=vidloom-demo/vae/final (the VAE the latent cache was made with)")
    add_ray_options(p)
    return p


def build_recommend_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom sweep recommend",
                                description="the compute-optimal model size and tokens for a budget, from a sweep's fit")
    p.add_argument("--fit", required=True, help="DIR/fit.json of a finished sweep")
    p.add_argument("--budget", required=True, type=float, help="training compute in FLOPs, e.g. 1e21")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    return p


def recommend_main(argv: list[str]) -> int:
    args = build_recommend_parser().parse_args(argv)
    from vidloom.training.sweep.recommend import read_fit, recommend, to_text

    try:
        result = recommend(read_fit(args.fit), args.budget)
    except ConfigError as exc:
        print(f"vidloom sweep recommend: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else to_text(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["recommend"]:
        return recommend_main(argv[1:])
    args = build_parser().parse_args(argv)
    from vidloom.training.sweep import load_sweep_config, plan_sweep

    try:
        cfg, train = load_sweep_config(args.config, args.overrides, args.train_overrides)
        plan = plan_sweep(cfg, train, args.data)  # every check against the data, before Ray starts
    except ConfigError as exc:
        print(f"vidloom sweep: {exc}", file=sys.stderr)
        return 2
    print(f"[sweep] {len(plan.trials)} trials: widths {cfg.family.widths} x budgets "
          f"{[f'{b:.3g}' for b in cfg.budgets]} FLOPs ({plan.trials[0]['name']} ... {plan.trials[-1]['name']})", flush=True)
    from vidloom.platform.ray_runtime import init_ray
    from vidloom.training.sweep import run_sweep

    init_ray(args.address, num_cpus=args.num_cpus, log_to_driver=False)
    try:
        summary = run_sweep(plan, args.out)
    except ConfigError as exc:
        print(f"vidloom sweep: {exc}", file=sys.stderr)
        return 2
    print(summary.to_text())
    return 0 if summary.fit else 1


if __name__ == "__main__":
    sys.exit(main())
