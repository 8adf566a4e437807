"""Reading and writing model weights: safetensors everywhere, pickles only with weights_only.

A *vidloom export* is a folder with ``config.json`` (the model's constructor arguments plus
``"_vidloom_model"``, the model kind) and ``model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

EXPORT_CONFIG = "config.json"
EXPORT_WEIGHTS = "model.safetensors"
MODEL_KEY = "_vidloom_model"
#: Provenance stored beside the constructor arguments (text encoder, VAE digest, training run);
#: loaders skip it, `read_export_meta` returns it.
META_KEY = "_vidloom_meta"


def read_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a torch pickle (``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path), device=str(map_location))
    obj = torch.load(str(path), map_location=map_location, weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Save a state dict as safetensors (tensors made contiguous, shared storage broken)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def is_vidloom_export(path: str | Path) -> bool:
    path = Path(path)
    cfg = path / EXPORT_CONFIG
    if not (path.is_dir() and cfg.exists() and (path / EXPORT_WEIGHTS).exists()):
        return False
    return MODEL_KEY in json.loads(cfg.read_text())


def save_export(
    folder: str | Path,
    kind: str,
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a vidloom export: ``config.json`` with ``_vidloom_model=kind`` (and `meta` under
    ``_vidloom_meta``) and the weights. The weights are written first and the config last, each
    under a temporary name, so a folder with a config always has complete weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = {MODEL_KEY: kind, **config}
    if meta:
        body[META_KEY] = meta
    tmp = folder / f".{EXPORT_WEIGHTS}.tmp"
    save_state_dict(state, tmp)
    tmp.replace(folder / EXPORT_WEIGHTS)
    tmp_cfg = folder / f".{EXPORT_CONFIG}.tmp"
    tmp_cfg.write_text(json.dumps(body, indent=2, sort_keys=True))
    tmp_cfg.replace(folder / EXPORT_CONFIG)
    return folder


def read_export_meta(folder: str | Path) -> dict[str, Any]:
    """The provenance block of a vidloom export (``{}`` when it has none)."""
    config = json.loads((Path(folder) / EXPORT_CONFIG).read_text())
    return dict(config.get(META_KEY) or {})


def load_export(folder: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a vidloom export of model kind `kind`; returns (config, state dict)."""
    folder = Path(folder)
    config = json.loads((folder / EXPORT_CONFIG).read_text())
    found = config.pop(MODEL_KEY, None)
    config.pop(META_KEY, None)
    if found != kind:
        raise ValueError(f"{folder} holds a {found!r} export, not {kind!r}")
    return config, read_state_dict(folder / EXPORT_WEIGHTS)
