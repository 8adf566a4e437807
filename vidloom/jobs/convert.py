"""`vidloom convert {dit,vae} SOURCE OUT`: rewrite DiT / VAE weights into another layout.

SOURCE is anything `load_dit` / `load_vae` accept: a config name (seeded random init), a vidloom
export folder, a diffusers ``save_pretrained`` folder (or a pipeline folder holding
``transformer/`` / ``vae/``), an official checkpoint file (or, for the DiT, its folder), or an
``org/name`` repo already in the local Hugging Face cache. OUT receives a vidloom export
(``config.json`` + ``model.safetensors``, the default) or the diffusers layout that
``HunyuanVideoTransformer3DModel`` / ``AutoencoderKLHunyuanVideo.from_pretrained`` load.

Examples::

    vidloom convert dit ckpts/hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states.pt exports/dit --dtype bfloat16
    vidloom convert dit exports/dit out/HunyuanVideo/transformer --to diffusers
    vidloom convert vae ckpts/hunyuan-video-t2v-720p/vae/pytorch_model.pt exports/vae
    vidloom convert vae tiny /tmp/tiny_vae --to diffusers
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DTYPES = ("float32", "bfloat16", "float16")
LAYOUTS = ("vidloom", "diffusers")


class ConvertError(Exception):
    """A conversion that cannot run as asked (message is shown to the user as-is)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidloom convert",
        description="Convert HunyuanVideo DiT / VAE weights between the vidloom, diffusers and official layouts.",
        epilog="SOURCE: config name (dit: tiny, small, 1B, 13B; vae: tiny, hunyuan) for a seeded random "
        "init, a vidloom export folder, a diffusers save_pretrained folder, an official checkpoint "
        "file, or an org/name repo already in the local Hugging Face cache.",
    )
    p.add_argument("model", choices=("dit", "vae"), help="which model the weights belong to")
    p.add_argument("source", metavar="SOURCE", help="where to read the weights from")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--to", choices=LAYOUTS, default="vidloom", help="output layout (default: vidloom)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="cast the weights before writing (default: keep the stored dtype)")
    p.add_argument("--config", default=None,
                   help="vae only: architecture of an official checkpoint file (config name or a "
                   "config.json); default: config.json beside the file, else 'hunyuan'")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init for config names (default 0)")
    p.add_argument("--force", action="store_true", help="write into OUT even if it is a non-empty folder")
    return p


def _check_source(model: str, source: str) -> None:
    """Fail early, naming the accepted config names, for a SOURCE that cannot be anything."""
    from vidloom.models.dit.config import CONFIGS
    from vidloom.models.vae.config import VAE_CONFIGS

    names = CONFIGS if model == "dit" else VAE_CONFIGS
    if source in names:
        return
    path = Path(source).expanduser()
    if path.exists():
        return
    looks_like_repo = source.count("/") == 1 and not source.startswith(("/", ".", "~")) or source.startswith("hf://")
    if looks_like_repo:
        return  # resolved against the local Hugging Face cache by the loader (clear error there)
    raise ConvertError(
        f"{model} source {source!r} not found: not a {model} config name ({', '.join(sorted(names))}), "
        "not an existing file or folder, and not an org/name Hugging Face repo id"
    )


def _vae_config(value: str | None):
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        import json

        from vidloom.models.vae.loading import config_from_diffusers

        return config_from_diffusers(json.loads(path.read_text()))
    return value  # a config name; load_vae reports unknown names


def convert(model: str, source: str, out: str | Path, to: str = "vidloom", dtype: str | None = None,
            config: str | None = None, seed: int = 0) -> tuple[Path, object]:
    """Load `source` as a `model` ("dit"/"vae") and write it to `out` in layout `to`.

    Returns (output folder, the loaded model after the dtype cast).
    """
    import torch

    if to not in LAYOUTS:
        raise ConvertError(f"unknown layout {to!r}; choose from {LAYOUTS}")
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}; choose from {DTYPES}")
    torch_dtype = getattr(torch, dtype) if dtype else None
    _check_source(model, source)
    if model == "dit":
        from vidloom.models.dit.loading import load_dit, save_dit
        from vidloom.models.dit.loading import to_diffusers as dit_to_diffusers

        if config is not None:
            raise ConvertError("--config applies to the vae only (DiT checkpoints carry their architecture)")
        net = load_dit(source, dtype=torch_dtype, seed=seed)
        folder = save_dit(net, out) if to == "vidloom" else dit_to_diffusers(net, out)
    elif model == "vae":
        from vidloom.models.vae.loading import load_vae, save_vae
        from vidloom.models.vae.loading import to_diffusers as vae_to_diffusers

        net = load_vae(source, config=_vae_config(config), dtype=torch_dtype, seed=seed)
        folder = save_vae(net, out) if to == "vidloom" else vae_to_diffusers(net, out)
    else:
        raise ConvertError(f"unknown model {model!r}; choose dit or vae")
    return Path(folder), net


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; print a one-line summary. Returns a process exit code."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        print(f"vidloom convert: error: OUT {out} exists and is not a folder", file=sys.stderr)
        return 2
    if out.is_dir() and any(out.iterdir()) and not args.force:
        print(f"vidloom convert: error: OUT {out} is not empty (pass --force to write into it)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        folder, net = convert(args.model, args.source, out, args.to, args.dtype, args.config, args.seed)
    except ConvertError as e:
        print(f"vidloom convert: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError, RuntimeError, OSError) as e:
        # Loader errors (missing weights naming the setting, wrong architecture, bad files).
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"vidloom convert: error: cannot load {args.model} from {args.source!r}: {msg}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in net.parameters())
    dtype = next(net.parameters()).dtype
    print(f"vidloom convert: {args.model} {args.source} -> {folder} ({args.to} layout, {params:,} parameters, "
          f"{str(dtype).removeprefix('torch.')}, {time.perf_counter() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
