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


def save_export(folder: str | Path, kind: str, config: dict[str, Any], state: dict[str, torch.Tensor]) -> Path:
    """Write a vidloom export: ``config.json`` with ``_vidloom_model=kind`` and the weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EXPORT_CONFIG).write_text(json.dumps({MODEL_KEY: kind, **config}, indent=2, sort_keys=True))
    save_state_dict(state, folder / EXPORT_WEIGHTS)
    return folder


def load_export(folder: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a vidloom export of model kind `kind`; returns (config, state dict)."""
    folder = Path(folder)
    config = json.loads((folder / EXPORT_CONFIG).read_text())
    found = config.pop(MODEL_KEY, None)
    if found != kind:
        raise ValueError(f"{folder} holds a {found!r} export, not {kind!r}")
    return config, read_state_dict(folder / EXPORT_WEIGHTS)
