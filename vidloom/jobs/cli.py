"""The `vidloom` command: a thin dispatcher onto the job modules in `vidloom.jobs`.

Each subcommand NAME runs `vidloom.jobs.<module>.main(argv)`; the job modules are also the
entry points for `ray job submit -- python -m vidloom.jobs.<module> ...`.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vidloom.jobs.demo", "samples -> curate -> export -> report on a local Ray, on bundled sample data"),
    "samples": ("vidloom.jobs.samples", "render the sample corpus with its ground truth"),
    "curate": ("vidloom.jobs.curate", "curate videos into a manifest of clips with signals"),
    "export": ("vidloom.jobs.export", "cut the tiered training sets (256p ... 720p, SFT, images) from a curated folder"),
    "precompute": ("vidloom.jobs.precompute", "encode tiers (or your own captioned videos) into a latent cache for training"),
    "report": ("vidloom.jobs.report", "write DIR/report/index.html: funnel, signals, examples, dedup, clusters, captions"),
    "train": ("vidloom.jobs.train", "train the VAE or the DiT curriculum on Ray Train + DeepSpeed (resumable stages)"),
    "train-watermark-detector": ("vidloom.jobs.train_watermark_detector", "train the YOLO watermark/logo detector on synthetic overlays"),
    "sweep": ("vidloom.jobs.sweep", "scaling-law sweep on Ray Tune: DiT sizes x compute budgets -> N_opt(C), D_opt(C); recommend"),
    "status": ("vidloom.jobs.status", "a curation run's funnel or a training run's stages, running or finished"),
    "submit": ("vidloom.jobs.submit", "submit curate/precompute/train jobs to a Ray cluster; status, stop"),
    "cluster": ("vidloom.jobs.cluster", "local autoscaling Ray cluster (up/down --local) or ray up/down aws|gcp"),
    "convert": ("vidloom.jobs.convert", "convert DiT/VAE weights between layouts"),
    "generate": ("vidloom.jobs.generate", "generate one video from a prompt in this process (no server)"),
    "serve": ("vidloom.jobs.serve", "serve the text-to-video model: OpenAI Videos API, web page (Ray Serve)"),
}


def _usage() -> str:
    lines = ["usage: vidloom COMMAND [ARGS...]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    lines.append("")
    lines.append("Run `vidloom COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vidloom: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
