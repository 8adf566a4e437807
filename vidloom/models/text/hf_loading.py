"""Locating and loading Hugging Face `transformers` models from configured local paths.

Shared by the text encoders and the local-LM prompt rewriter. Every path goes through
`resolve_weights`, so a missing or incomplete folder raises `MissingWeightsError` naming the
setting, and nothing is ever downloaded (``local_files_only=True``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vidloom.platform.weights import MissingWeightsError, resolve_weights

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/... or a torch dtype -> torch dtype."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[name]
    except KeyError as exc:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPES)}") from exc


def resolve_component(value: str | os.PathLike | None, setting: str, subfolder: str | None = None) -> Path:
    """Resolve a model folder; a diffusers pipeline root is followed into `subfolder`.

    So ``text_encoder.llm_path`` may point at either the LLM folder itself or a whole
    diffusers HunyuanVideo folder (``model_index.json`` + ``text_encoder/`` ...).
    """
    path = resolve_weights(value, setting)
    if subfolder and (path / "model_index.json").exists():
        path = path / subfolder
    if not (path / "config.json").exists() and not (path / "tokenizer_config.json").exists():
        raise MissingWeightsError(setting, value, f"{path} has no config.json / tokenizer_config.json")
    return path


def require_transformers() -> Any:
    """Import `transformers` or explain which dependency is missing."""
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this text encoder / rewriter needs the `transformers` package (see pyproject.toml)"
        ) from exc
    return transformers


def weights_name(path: Path) -> str:
    """A readable weights name: ``org/name@rev`` for HF-cache snapshots, else the folder name."""
    parts = path.resolve().parts
    for i, part in enumerate(parts):
        if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            repo = part[len("models--"):].replace("--", "/")
            tail = "/".join(parts[i + 3:])
            return f"{repo}@{parts[i + 2][:12]}" + (f"/{tail}" if tail else "")
    return path.resolve().name


def model_type(path: Path) -> str:
    """``model_type`` from a folder's config.json ('' if absent)."""
    cfg = path / "config.json"
    if not cfg.exists():
        return ""
    return str(json.loads(cfg.read_text()).get("model_type", ""))
