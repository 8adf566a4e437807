"""Few-step and guidance-distilled generation, measured (issue 10 §3).

    python benchmarks/generation.py --model RUN/final --teacher RUN/sft/final [--size 128x128 --frames 9]
    python benchmarks/generation.py --quick [--work DIR]   # trains a reduced dit-small first (~10 min)

On `dit-small` trained through its curriculum (the `distill` stage's export is `--model`, the
stage before it, its teacher, `--teacher`), for the same prompts and seeds, one process times a
whole video (text encoding, denoising, VAE decode, mp4) with the serving pipeline's own stages
and compares it with the 50-step true-CFG reference (a):

| row | model | sampling |
|---|---|---|
| (a) | teacher | 50 steps, true CFG (two DiT calls a step), shift 7 |
| (b) | distilled student | 50 steps, guidance embedded (one call a step), shift 7 |
| (c) | distilled student | 10 / 16 / 20 steps, shift 7 and the report's few-step shift 17, Euler and DPM-Solver++(2M) |
| (d) | teacher | 10 steps, true CFG, shift 17 (a few-step control without distillation) |

Quality proxy against (a) for the same prompt and seed: latent MSE, and PSNR / SSIM of the
decoded uint8 frames. The best few-step setting is the fastest (c) row whose PSNR is within
`--bound-db` (default 1 dB) of (b)'s: few steps may cost no more than that on top of what the
distillation itself changed. It prints the speed ratios, the bound, and the serve defaults
this recommends (`_vidloom_meta.sampling` of distill exports, vidloom/training/runner.py).

`--quick` renders, curates and exports the sample corpus under `--work` (reused when present),
precomputes latents of dit-small's tiers (random `tiny` VAE, MiniLM, short side 64) and trains
dit-small with a few steps per stage (`--set stages.X.steps=N`, EMA off so those steps show);
rerunning with the same `--work` reuses the trained run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vidloom.models.fast_path import FAST_PATH_MODES  # noqa: E402
from vidloom.models.sampling import SOLVERS  # noqa: E402

DEFAULT_WORK = Path("/tmp/vidloom-bench-generation")
TIERS = ["images_256", "images_512", "256p", "360p", "540p", "sft"]  # what dit-small's stages read
QUICK_STEPS = {"image": 20, "mixed": 5, "joint-short": 10, "joint-long": 5, "sft": 5, "distill": 30}
QUICK_OVERRIDES = [*(f"stages.{name}.buckets.max_batch_size=4" for name in QUICK_STEPS), "stages.image.warmup_steps=5",
                   "ema_decay=null", "eval.every=100000", "eval.sample_prompts=0", "eval.holdout=2",
                   "checkpoint.every=100000", "tracking.tensorboard=false"]
PROMPTS = [
    "a wooden boat drifting on a calm lake at sunset, the camera slowly pans left",
    "snow falling on a pine forest, static camera",
    "a city street at night with car lights passing by",
    "waves breaking on a rocky shore under a cloudy sky",
    "a field of yellow flowers moving in the wind, the camera zooms in",
    "a mountain road seen from above, the camera tilts down",
]
REFERENCE = "(a)"


@dataclass(frozen=True)
class Setting:
    row: str
    model: str  # "teacher" | "student"
    steps: int
    shift: float
    cfg: bool
    solver: str = "euler"

    @property
    def calls(self) -> int:  # DiT forwards per video
        return self.steps * (2 if self.cfg else 1)

    @property
    def label(self) -> str:
        how = "true CFG" if self.cfg else "embedded guidance"
        return f"{self.row} {self.model} {self.steps} steps, shift {self.shift:g}, {how}, {self.solver}"


def settings(few_steps: list[int]) -> list[Setting]:
    rows = [Setting("(a)", "teacher", 50, 7.0, True), Setting("(b)", "student", 50, 7.0, False)]
    rows += [Setting("(c)", "student", n, s, False, solver)
             for n in few_steps for s in (7.0, 17.0) for solver in SOLVERS]
    rows.append(Setting("(d)", "teacher", min(few_steps), 17.0, True))
    return rows


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def summary(self, reference: Measured) -> dict[str, float]:
        s, cpu = statistics.median(self.seconds), statistics.median(self.cpu)
        return {"s_per_video": s, "speedup": statistics.median(reference.seconds) / s, "cpu_s_per_video": cpu,
                "cpu_speedup": statistics.median(reference.cpu) / cpu, "latent_mse": statistics.mean(self.mse),
                "psnr_db": statistics.mean(self.psnr), "ssim": statistics.mean(self.ssim)}


def psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a, b) -> float:
    """Mean SSIM over frames (F×H×W×3 uint8), as scikit-image computes it per frame."""
    from skimage.metrics import structural_similarity

    return float(sum(structural_similarity(x, y, channel_axis=-1, data_range=255)
                     for x, y in zip(a, b)) / len(a))


class Generator:
    """The serving pipeline's stages (what `vidloom generate` and the server run) for two DiTs
    sharing one text encoder and VAE."""

    def __init__(self, model: str, teacher: str, threads: int, fast_path: str = "off"):
        import torch

        from vidloom.serving.model import resolve_model
        from vidloom.serving.pipeline import DecodeStage, DenoiseStage, TextStage

        torch.set_num_threads(threads)
        self.specs = {"student": resolve_model(model), "teacher": resolve_model(teacher)}
        student, teacher_cfg = self.specs["student"].dit(), self.specs["teacher"].dit()
        if not student.guidance_embed:
            raise SystemExit(f"--model {model}: not guidance-distilled (no guidance embedding); pass the "
                             "distill stage's export (RUN/final)")
        if teacher_cfg.guidance_embed:
            raise SystemExit(f"--teacher {teacher}: has a guidance embedding; pass the stage before distill "
                             "(RUN/sft/final)")
        self.text = TextStage(self.specs["student"])
        self.decode = DecodeStage(self.specs["student"])
        self.denoise = {k: DenoiseStage(spec, fast_path=fast_path) for k, spec in self.specs.items()}

    def __call__(self, s: Setting, prompt: str, seed: int, size: str, frames: int, guidance: float):
        """(wall s, CPU s, latents, uint8 frames) of one video, end to end but the rewrite."""
        from vidloom.platform.video_out import mp4_bytes
        from vidloom.serving.params import VideoCreateRequest, resolve_params
        from vidloom.serving.pipeline import DenoiseStage

        spec = self.specs[s.model]
        params = resolve_params(VideoCreateRequest(prompt=prompt, size=size, num_frames=frames, seed=seed,
                                                   num_inference_steps=s.steps, flow_shift=s.shift, solver=s.solver,
                                                   guidance_scale=guidance, rewrite="none"), spec)
        t0, c0 = time.perf_counter(), time.process_time()
        cond = self.text([params.prompt])
        negative = self.text([params.negative_prompt]) if s.cfg else None
        item = DenoiseStage.item(spec, params, cond, negative)
        latents = self.denoise[s.model]([item])[0]
        video = self.decode.frames(latents)
        mp4_bytes(video, params.fps)
        return time.perf_counter() - t0, time.process_time() - c0, latents, video


def quick_model(work: Path) -> tuple[str, str, str]:
    """Train the reduced dit-small under `work` (reused when done); (model, teacher, budget)."""
    import precompute as precompute_bench
    from vidloom.platform.ray_runtime import init_ray
    from vidloom.training import train
    from vidloom.training.config import load_train_config
    from vidloom.training.latents import run_precompute

    run = work / "run"
    overrides = [f"stages.{name}.steps={n}" for name, n in QUICK_STEPS.items()] + QUICK_OVERRIDES
    budget = "dit-small --set " + " ".join(overrides)
    if not (run / "final").is_dir():
        init_ray(num_cpus=2, log_to_driver=False)
        t0 = time.perf_counter()
        curated = precompute_bench.demo_data(work)
        print(f"[quick] sample corpus curated and exported: {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        summary = run_precompute([str(curated)], str(work / "latents"), "tiny", "minilm", tiers=TIERS, resize=64,
                                 frames=9)
        print(f"[quick] latents: {summary.cache_samples} samples in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        result = train(load_train_config("dit-small", overrides), str(work / "latents"), run)
        print(result.to_text(), flush=True)
        print(f"[quick] trained {budget} in {time.perf_counter() - t0:.0f} s", flush=True)
        import ray

        ray.shutdown()  # the measurement runs in this process alone
    return str(run / "final"), str(run / "sft" / "final"), budget


def measure(args: argparse.Namespace) -> dict:
    gen = Generator(args.model, args.teacher, args.threads, args.fast_path)
    rows = settings(args.few_steps)
    results = {s: Measured() for s in rows}
    prompts = PROMPTS[:args.prompts]
    # Warm-up (allocator, thread pool, first-call paths) outside the figures.
    for model in ("teacher", "student"):
        gen(Setting("warm", model, 2, 7.0, model == "teacher"), prompts[0], 0, args.size, args.frames, args.guidance)
    for prompt in prompts:
        for seed in range(args.seeds):
            ref = None
            # Every setting once per (prompt, seed), interleaved: load on a shared machine hits all alike.
            for s in rows:
                seconds, cpu, latents, video = gen(s, prompt, seed, args.size, args.frames, args.guidance)
                if ref is None:
                    ref = (latents, video)
                m = results[s]
                m.seconds.append(seconds)
                m.cpu.append(cpu)
                m.mse.append(float(((latents - ref[0]) ** 2).mean()))
                m.psnr.append(psnr(video, ref[1]))
                m.ssim.append(ssim(video, ref[1]))
                print(f"  {s.label}: {seconds:.2f} s  PSNR {m.psnr[-1]:.2f} dB  ({prompt[:30]}..., seed {seed})",
                      flush=True)
    table = [{"row": s.row, "model": s.model, "steps": s.steps, "shift": s.shift, "cfg": s.cfg, "solver": s.solver,
              "calls": s.calls,
              **results[s].summary(results[rows[0]])} for s in rows]
    return {"table": table, "videos": len(prompts) * args.seeds, "size": args.size, "frames": args.frames,
            "guidance": args.guidance, "fast_path": args.fast_path, "model": args.model, "teacher": args.teacher}


def verdict(out: dict, bound_db: float) -> dict:
    table = out["table"]
    b = next(r for r in table if r["row"] == "(b)")
    # Fastest = fewest DiT calls (what the time is made of; wall time on a shared machine is
    # noisy); of the shifts and solvers at one step count, the better PSNR.
    few = sorted((r for r in table if r["row"] == "(c)"), key=lambda r: (r["calls"], -r["psnr_db"]))
    within = [r for r in few if r["psnr_db"] >= b["psnr_db"] - bound_db]
    best = within[0] if within else max(few, key=lambda r: r["psnr_db"])
    return {"distilled_speedup": b["speedup"], "distilled_cpu_speedup": b["cpu_speedup"], "best": best,
            "best_within_bound": bool(within), "bound_db": bound_db,
            "b_psnr_db": b["psnr_db"]}


def render(out: dict, v: dict, header: str) -> str:
    lines = [header,
             f"{out['videos']} videos per row ({out['size']}, {out['frames']} frames, guidance {out['guidance']:g}, "
             f"fast path {out['fast_path']});"
             " time = text + DiT + VAE decode + mp4, median wall and process CPU seconds (CPU time is"
             " steadier on a shared machine); quality vs (a) on the same prompt and seed",
             "| row | model | steps | shift | solver | guidance | DiT calls | s / video | speed-up vs (a) | CPU s |"
             " CPU speed-up | PSNR dB | SSIM | latent MSE |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["table"]:
        psnr_text = "ref" if r["row"] == REFERENCE else f"{r['psnr_db']:.2f}"
        lines.append(f"| {r['row']} | {r['model']} | {r['steps']} | {r['shift']:g} | {r['solver']} | "
                     f"{'true CFG' if r['cfg'] else 'embedded'} | {r['calls']} | {r['s_per_video']:.2f} | "
                     f"{r['speedup']:.2f}x | {r['cpu_s_per_video']:.2f} | {r['cpu_speedup']:.2f}x | {psnr_text} | {r['ssim']:.3f} | {r['latent_mse']:.4f} |")
    best = v["best"]
    lines.append(f"(b) distilled 50 steps vs (a) 50-step CFG: {v['distilled_speedup']:.2f}x faster wall, "
                 f"{v['distilled_cpu_speedup']:.2f}x CPU (target >= 1.9x)")
    lines.append(f"best few-step: student {best['steps']} steps, shift {best['shift']:g}, {best['solver']}: "
                 f"{best['speedup']:.2f}x faster "
                 f"wall, {best['cpu_speedup']:.2f}x CPU than (a) (target >= 4x), PSNR {best['psnr_db']:.2f} dB vs (a); bound: within {v['bound_db']:g} dB"
                 f" of (b)'s {v['b_psnr_db']:.2f} dB: {'met' if v['best_within_bound'] else 'NOT met (best PSNR shown)'}")
    lines.append(f"recommended serve defaults for a distilled model: num_inference_steps={best['steps']} "
                 f"flow_shift={best['shift']:g} solver={best['solver']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="the distill stage's export (RUN/final)")
    p.add_argument("--teacher", help="its teacher's export (RUN/sft/final)")
    p.add_argument("--quick", action="store_true", help="train a reduced dit-small under --work first")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--size", help="WxH (default 128x128; --quick 64x64, its training resolution)")
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--prompts", type=int, help=f"how many of the {len(PROMPTS)} prompts (default 4; --quick 2)")
    p.add_argument("--seeds", type=int, help="seeds per prompt (default 2; --quick 1)")
    p.add_argument("--few-steps", type=lambda t: [int(x) for x in t.split(",")], default=[10, 16, 20],
                   help="student step counts of (c) (default 10,16,20; --quick 10,20)")
    p.add_argument("--guidance", type=float, default=6.0, help="CFG scale of (a)/(d), embedded scale of (b)/(c)")
    p.add_argument("--bound-db", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fast-path", choices=FAST_PATH_MODES, default="off",
                   help="the DiT's fast path in every row, as the server's `fast_path` setting (same outputs to "
                        "fp32 rounding)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    budget = "given"
    if args.quick:
        args.model, args.teacher, budget = quick_model(args.work)
        args.size, args.prompts, args.seeds = args.size or "64x64", args.prompts or 2, args.seeds or 1
        if "--few-steps" not in (argv if argv is not None else sys.argv):
            args.few_steps = [10, 20]
    elif not (args.model and args.teacher):
        p.error("--model RUN/final and --teacher RUN/sft/final, or --quick")
    args.size, args.prompts, args.seeds = args.size or "128x128", args.prompts or 4, args.seeds or 2
    started = time.strftime("%Y-%m-%d %H:%M")
    out = measure(args)
    v = verdict(out, args.bound_db)
    print(render(out, v, f"generation ({started}): model {args.model}, teacher {args.teacher}; training: {budget}"))
    if args.json:
        args.json.write_text(json.dumps({**out, "verdict": v, "training": budget}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
