"""Create, load and save the causal 3D VAE in vidloom, diffusers and official layouts.

`load_vae(source)` accepts

* a config name (``tiny``, ``hunyuan``) or a `VAEConfig`: random init from a fixed seed;
* a vidloom export folder (``config.json`` with ``_vidloom_model="vae"`` + ``model.safetensors``);
* a diffusers ``save_pretrained`` folder (``config.json`` + ``diffusion_pytorch_model*.safetensors``),
  or a pipeline folder / Hugging Face cache snapshot with such a folder under ``vae/``;
* an official checkpoint file (HunyuanVideo ``884-16c-hy`` ``pytorch_model.pt``, or any
  ``.pt``/``.ckpt``/``.safetensors`` with diffusers' key names).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from vidloom.models.vae.autoencoder import CausalVAE3D
from vidloom.models.vae.config import VAE_CONFIGS, VAEConfig, get_vae_config
from vidloom.models.vae.key_map import (
    from_diffusers_state_dict,
    to_diffusers_state_dict,
    unwrap_official_state_dict,
)
from vidloom.models.weights_io import (
    is_vidloom_export,
    load_export,
    read_state_dict,
    save_export,
    save_state_dict,
)
from vidloom.platform.weights import resolve_weights

logger = logging.getLogger(__name__)

EXPORT_KIND = "vae"
DIFFUSERS_CLASS = "AutoencoderKLHunyuanVideo"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
DIFFUSERS_DOWN_BLOCK = "HunyuanVideoDownBlock3D"
DIFFUSERS_UP_BLOCK = "HunyuanVideoUpBlock3D"
#: Version written into exported diffusers configs (the pinned diffusers release).
DIFFUSERS_VERSION = "0.42.1"


# ---------------------------------------------------------------------- configs
def config_from_diffusers(cfg: dict[str, Any]) -> VAEConfig:
    """Translate a diffusers (or official HunyuanVideo) VAE config.json to `VAEConfig`."""
    act = cfg.get("act_fn", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"unsupported act_fn {act!r}: the causal VAE uses SiLU")
    data = dict(cfg)
    if "time_compression_ratio" in data and "temporal_compression_ratio" not in data:  # official name
        data["temporal_compression_ratio"] = data["time_compression_ratio"]
    return VAEConfig.from_dict(data)


def config_to_diffusers(config: VAEConfig) -> dict[str, Any]:
    """`VAEConfig` -> config.json fields of diffusers' ``AutoencoderKLHunyuanVideo``."""
    if config.temporal_compression_ratio != 4 or config.norm_eps != 1e-6:
        raise ValueError("diffusers' HunyuanVideo VAE supports only temporal ratio 4 and norm eps 1e-6")
    n = len(config.block_out_channels)
    return {
        "_class_name": DIFFUSERS_CLASS,
        "_diffusers_version": DIFFUSERS_VERSION,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "latent_channels": config.latent_channels,
        "down_block_types": [DIFFUSERS_DOWN_BLOCK] * n,
        "up_block_types": [DIFFUSERS_UP_BLOCK] * n,
        "block_out_channels": list(config.block_out_channels),
        "layers_per_block": config.layers_per_block,
        "act_fn": "silu",
        "norm_num_groups": config.norm_num_groups,
        "scaling_factor": config.scaling_factor,
        "spatial_compression_ratio": config.spatial_compression_ratio,
        "temporal_compression_ratio": config.temporal_compression_ratio,
        "mid_block_add_attention": config.mid_block_add_attention,
    }


def _as_config(config: str | VAEConfig | dict[str, Any] | None) -> VAEConfig | None:
    if config is None or isinstance(config, VAEConfig):
        return config
    if isinstance(config, str):
        return get_vae_config(config)
    return VAEConfig.from_dict(config)


# ---------------------------------------------------------------------- readers
def _diffusers_folder(path: Path) -> Path | None:
    """The folder holding a diffusers VAE under `path` (itself or its ``vae/``), if any."""
    for folder in (path, path / "vae"):
        if (folder / "config.json").exists() and any(folder.glob("diffusion_pytorch_model*")):
            return folder
    return None


def _read_diffusers_weights(folder: Path) -> dict[str, torch.Tensor]:
    single = folder / DIFFUSERS_WEIGHTS
    if single.exists():
        return read_state_dict(single)
    index = folder / f"{DIFFUSERS_WEIGHTS}.index.json"
    if index.exists():  # sharded save_pretrained
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(read_state_dict(folder / shard))
        return state
    legacy = folder / "diffusion_pytorch_model.bin"
    if legacy.exists():
        return read_state_dict(legacy)
    raise FileNotFoundError(f"{folder}: no {DIFFUSERS_WEIGHTS} (or shards) found")


def _build(config: VAEConfig, state: dict[str, torch.Tensor] | None, seed: int) -> CausalVAE3D:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init is reproducible and leaves the global RNG untouched
        model = CausalVAE3D(config)
    if state is not None:
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"VAE weights do not fit config {config}: missing {result.missing_keys[:5]} "
                f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:5]} "
                f"({len(result.unexpected_keys)})"
            )
    return model.eval()


def load_vae(
    source: str | Path | VAEConfig,
    *,
    config: str | VAEConfig | dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    setting: str = "model.vae",
) -> CausalVAE3D:
    """Load the causal 3D VAE from a config name, vidloom export, diffusers folder or official checkpoint.

    Args:
        source: see the module docstring; paths may also be ``org/name`` repos already in
            the local Hugging Face cache (never downloaded).
        config: architecture for an official checkpoint file (default: a ``config.json``
            next to it, else ``hunyuan``); ignored for folders, which carry their own.
        dtype, device: where to put the model (weights load in their stored precision first).
        seed: seed of the random init used for config names.
        setting: settings key named in the error when `source` cannot be found.

    Returns:
        The model in eval mode, tiling disabled.
    """
    if isinstance(source, VAEConfig):
        model = _build(source, None, seed)
    elif isinstance(source, str) and source in VAE_CONFIGS:
        model = _build(get_vae_config(source), None, seed)
    else:
        path = resolve_weights(source, setting)
        if path.is_dir():
            if is_vidloom_export(path):
                cfg, state = load_export(path, EXPORT_KIND)
                model = _build(VAEConfig.from_dict(cfg), state, seed)
            elif (folder := _diffusers_folder(path)) is not None:
                cfg = json.loads((folder / "config.json").read_text())
                state = from_diffusers_state_dict(_read_diffusers_weights(folder))
                model = _build(config_from_diffusers(cfg), state, seed)
            else:
                raise FileNotFoundError(
                    f"{path} (from `{setting}`) is neither a vidloom VAE export nor a diffusers VAE folder"
                )
        else:
            raw = read_state_dict(path)
            state = from_diffusers_state_dict(unwrap_official_state_dict(raw))
            cfg_obj = _as_config(config)
            sibling = path.parent / "config.json"
            if cfg_obj is None and sibling.exists():
                cfg_obj = config_from_diffusers(json.loads(sibling.read_text()))
            model = _build(cfg_obj or get_vae_config("hunyuan"), state, seed)
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model


# ---------------------------------------------------------------------- writers
def save_vae(
    model: CausalVAE3D,
    folder: str | Path,
    meta: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a vidloom export (config.json + model.safetensors) that `load_vae` reads back;
    `meta` is stored under ``_vidloom_meta``, `state` replaces the model's weights (e.g. EMA)."""
    return save_export(folder, EXPORT_KIND, model.config.to_dict(), state if state is not None else model.state_dict(), meta)


def to_diffusers(model: CausalVAE3D, folder: str | Path) -> Path:
    """Write diffusers' layout so ``AutoencoderKLHunyuanVideo.from_pretrained(folder)`` loads it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_to_diffusers(model.config), indent=2))
    save_state_dict(to_diffusers_state_dict(model.state_dict()), folder / DIFFUSERS_WEIGHTS)
    return folder
