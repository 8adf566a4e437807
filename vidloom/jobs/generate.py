"""`vidloom generate "PROMPT" --out clip.mp4`: one video, in this process, without a server.

The same stages the Serve deployments run (`vidloom.serving.pipeline`), with the same
parameter checks as the HTTP API, and a progress bar over the denoising steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidloom.models.fast_path import FAST_PATH_MODES, SERVE_FAST_PATH
from vidloom.models.sampling import SOLVERS
from vidloom.serving.model import ModelSpecError
from vidloom.serving.params import ParamError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom generate", description=__doc__.split("\n\n")[0])
    p.add_argument("prompt")
    p.add_argument("--out", "-o", required=True, help="the mp4 to write")
    p.add_argument("--model", help="a training export (RUN/final), diffusers folder or official checkpoint "
                                   "(default: a random tiny model, whose output is noise)")
    p.add_argument("--vae", help="VAE export or config name (default: what the export records, else tiny)")
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--frames", type=int, help="4k+1 frames (default: the model's limit)")
    p.add_argument("--fps", type=int)
    p.add_argument("--steps", type=int, help="denoising steps (default: the export's, else 50)")
    p.add_argument("--guidance-scale", type=float)
    p.add_argument("--flow-shift", type=float)
    p.add_argument("--solver", choices=SOLVERS, help="ODE solver (default: the export's, else euler)")
    p.add_argument("--negative-prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rewrite", choices=["none", "normal", "master"], default="normal")
    p.add_argument("--rewriter", default=None, help="rewriter backend: keyword (default), openai, local")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--fast-path", choices=FAST_PATH_MODES, default=SERVE_FAST_PATH,
                   help="the DiT's fused kernels (on, the default, as the server), plus torch.compile of its blocks "
                        "(compile: pays off over many steps at one shape); off: bit-identical to diffusers")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from vidloom.serving.model import resolve_model
    from vidloom.serving.params import parse_request, resolve_params
    from vidloom.serving.pipeline import TextToVideoPipeline

    fields = {"prompt": args.prompt, "height": args.height, "width": args.width, "num_frames": args.frames,
              "fps": args.fps, "num_inference_steps": args.steps, "guidance_scale": args.guidance_scale,
              "flow_shift": args.flow_shift, "solver": args.solver, "negative_prompt": args.negative_prompt,
              "seed": args.seed, "rewrite": args.rewrite}
    try:
        spec = resolve_model(args.model, args.vae)
        params = resolve_params(parse_request({k: v for k, v in fields.items() if v is not None}), spec)
        pipe = TextToVideoPipeline(spec, rewriter=args.rewriter, device=args.device, dtype=args.dtype,
                                   fast_path=args.fast_path)
    except ParamError as exc:
        flag = {"num_frames": "frames", "num_inference_steps": "steps"}.get(exc.param or "", exc.param)
        print(f"vidloom generate: --{str(flag).replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    except ModelSpecError as exc:
        print(f"vidloom generate: {exc}", file=sys.stderr)
        return 2
    if spec.random_init:
        print("vidloom generate: no --model given: a random tiny model, its output is noise", file=sys.stderr)
    with tqdm(total=params.num_inference_steps, desc="denoising", unit="step") as bar:
        result = pipe(params, on_step=lambda i, n: bar.update(1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.video.mp4)
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings_s.items())
    print(f"{out}: {result.video.width}x{result.video.height}, {result.video.frames} frames at {params.fps} fps, "
          f"seed {params.seed}; prompt: {result.prompt!r}; {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
