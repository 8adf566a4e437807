"""Build, load and save the DiT in every layout we meet.

`load_dit(source)` accepts:
  * a tier name (``"tiny"``, ``"small"``, ``"1B"``, ``"13B"``) or a `DiTConfig`: random init, seeded;
  * a vidloom export folder (``config.json`` with ``_vidloom_model: "dit"`` + ``model.safetensors``);
  * a diffusers ``save_pretrained`` folder of `HunyuanVideoTransformer3DModel` (or a pipeline
    folder with a ``transformer/`` subfolder, or a Hugging Face repo id already in the local cache);
  * an official checkpoint file (``mp_rank_00_model_states.pt``, state under ``"module"``) or a
    folder holding one (also under ``transformers/``).
Checkpoints are materialised on the meta device first and then assigned, so a 13B load never
holds two copies of the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vidloom.models.dit.attention import AttentionFn
from vidloom.models.dit.config import CONFIGS, DiTConfig, get_config
from vidloom.models.dit.key_maps import (
    config_from_diffusers,
    config_from_official,
    config_to_diffusers,
    diffusers_to_ours,
    official_to_ours,
    ours_to_diffusers,
)
from vidloom.models.dit.model import HunyuanVideoDiT
from vidloom.models.weights_io import is_vidloom_export, load_export, read_state_dict, save_export, save_state_dict
from vidloom.platform.weights import resolve_weights

EXPORT_KIND = "dit"
DIFFUSERS_CLASS = "HunyuanVideoTransformer3DModel"
DIFFUSERS_VERSION = "0.42.1"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
OFFICIAL_FILE = "mp_rank_00_model_states.pt"
WEIGHTS_SETTING = "models.dit.weights"


def build_dit(
    config: DiTConfig, seed: int = 0, device: str | torch.device = "cpu", attention_fn: AttentionFn | None = None
) -> HunyuanVideoDiT:
    """A randomly initialised DiT; the same seed gives the same weights (global RNG untouched)."""
    device = torch.device(device)
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), torch.device(device):
        torch.manual_seed(seed)
        return HunyuanVideoDiT(config, attention_fn=attention_fn)


def dit_from_state(
    config: DiTConfig, state: dict[str, torch.Tensor], attention_fn: AttentionFn | None = None
) -> HunyuanVideoDiT:
    """Build on the meta device and assign `state` (our key layout, strict)."""
    with torch.device("meta"):
        model = HunyuanVideoDiT(config, attention_fn=attention_fn)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def _read_diffusers_folder(folder: Path) -> tuple[DiTConfig, dict[str, torch.Tensor]]:
    cfg = json.loads((folder / "config.json").read_text())
    index = folder / f"{DIFFUSERS_WEIGHTS}.index.json"
    if index.exists():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(read_state_dict(folder / shard))
    elif (folder / DIFFUSERS_WEIGHTS).exists():
        state = read_state_dict(folder / DIFFUSERS_WEIGHTS)
    else:
        state = read_state_dict(folder / "diffusion_pytorch_model.bin")
    config = config_from_diffusers(cfg)
    return config, diffusers_to_ours(state, config)


def _find_official_file(folder: Path) -> Path | None:
    for candidate in (folder / OFFICIAL_FILE, folder / "transformers" / OFFICIAL_FILE):
        if candidate.exists():
            return candidate
    return None


def _is_diffusers_folder(folder: Path) -> bool:
    cfg = folder / "config.json"
    return cfg.exists() and json.loads(cfg.read_text()).get("_class_name") == DIFFUSERS_CLASS


def read_dit_checkpoint(path: Path, **overrides: Any) -> tuple[DiTConfig, dict[str, torch.Tensor]]:
    """(config, state dict in our layout) from any supported on-disk layout."""
    if path.is_dir():
        if is_vidloom_export(path):
            cfg, state = load_export(path, EXPORT_KIND)
            return DiTConfig.from_dict({**cfg, **overrides}), state
        if _is_diffusers_folder(path):
            config, state = _read_diffusers_folder(path)
            return (config.with_overrides(**overrides) if overrides else config), state
        if _is_diffusers_folder(path / "transformer"):
            return read_dit_checkpoint(path / "transformer", **overrides)
        official = _find_official_file(path)
        if official is None:
            raise FileNotFoundError(f"{path}: no vidloom export, diffusers transformer or {OFFICIAL_FILE} inside")
        path = official
    state = official_to_ours(read_state_dict(path))
    return config_from_official(state, **overrides), state


def load_dit(
    source: str | Path | DiTConfig,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    attention_fn: AttentionFn | None = None,
    **overrides: Any,
) -> HunyuanVideoDiT:
    """Load or build the HunyuanVideo DiT.

    Args:
        source: tier name, `DiTConfig`, vidloom export, diffusers folder / cached repo id, or
            official checkpoint (file or folder).
        dtype: cast parameters (e.g. ``torch.bfloat16``); default keeps the stored dtype.
        device: where the model ends up.
        seed: random-init seed (tier names and configs only).
        attention_fn: attention hook (sequence parallel); default SDPA.
        **overrides: config fields to change (tier names), or to supply what an official
            checkpoint does not store (``rope_dims``, ``rope_theta``).
    """
    if isinstance(source, DiTConfig) or (isinstance(source, str) and source in CONFIGS):
        config = source if isinstance(source, DiTConfig) else get_config(source, **overrides)
        if isinstance(source, DiTConfig) and overrides:
            config = config.with_overrides(**overrides)
        model = build_dit(config, seed=seed, device=device, attention_fn=attention_fn)
    else:
        path = resolve_weights(source, WEIGHTS_SETTING)
        config, state = read_dit_checkpoint(path, **overrides)
        model = dit_from_state(config, state, attention_fn=attention_fn)
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device=device)


def save_dit(
    model: HunyuanVideoDiT,
    folder: str | Path,
    meta: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a vidloom export (config.json + model.safetensors) that `load_dit` reads back.

    `meta` (provenance: text encoder, VAE digest, sampling defaults) goes under
    ``_vidloom_meta`` in config.json; `state` replaces the model's own weights (e.g. EMA)."""
    return save_export(folder, EXPORT_KIND, model.config.to_dict(), state if state is not None else model.state_dict(), meta)


def to_diffusers(model: HunyuanVideoDiT, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write a folder that ``HunyuanVideoTransformer3DModel.from_pretrained`` loads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"_class_name": DIFFUSERS_CLASS, "_diffusers_version": DIFFUSERS_VERSION,
              **config_to_diffusers(model.config)}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    state = model.state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    save_state_dict(ours_to_diffusers(state, model.config.hidden_size), folder / DIFFUSERS_WEIGHTS)
    return folder
