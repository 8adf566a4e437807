"""Loading DOVER's checkpoint (``DOVER.pth``) into `DOVER`, strictly.

The official file (GitHub release v0.1.0, or ``DOVER.pth`` in the Hugging Face repo
``teowu/DOVER``) is a bare state dict: DOVER's own scripts call
``model.load_state_dict(torch.load(path))``. Checkpoints written by DOVER's fine-tuning
script wrap it as ``{"state_dict": ..., "validation_results": ...}``; both are accepted.
Anything else, a missing or unexpected key, or a wrong shape, raises `DoverCheckpointError`
listing what differs: a silently half-loaded quality model would score every clip wrongly.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vidloom.models.weights_io import read_state_dict
from vidloom.pipelines.curation.quality.dover import DOVER
from vidloom.platform.weights import MissingWeightsError, file_digest, resolve_weights

CHECKPOINT_SETTING = "curation.quality.dover_checkpoint"
CHECKPOINT_NAME = "DOVER.pth"


class DoverCheckpointError(ValueError):
    """The file is not a DOVER checkpoint with the expected keys and shapes."""


def find_checkpoint(value: str | Path | None, setting: str = CHECKPOINT_SETTING) -> Path:
    """The checkpoint file for a configured value: a file, or a folder (e.g. a Hugging Face
    snapshot of teowu/DOVER) holding ``DOVER.pth``. Raises `MissingWeightsError` naming
    `setting` when it is not on this machine."""
    path = resolve_weights(value, setting)
    if path.is_dir():
        candidate = path / CHECKPOINT_NAME
        if not candidate.is_file():
            raise MissingWeightsError(setting, value, f"folder has no {CHECKPOINT_NAME}")
        path = candidate
    return path


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint object (bare, or under ``"state_dict"``)."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DoverCheckpointError(f"{source}: not a DOVER state dict (expected a dict of tensors)")
    return obj


def load_dover_state(
    model: DOVER, state: dict[str, torch.Tensor], source: str = "checkpoint", assign: bool = False
) -> None:
    """Load `state` into `model`; every key and shape must match DOVER's layout exactly.
    With `assign`, the model's tensors become the state's (for a model built on "meta")."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise DoverCheckpointError(f"{source} does not match DOVER's layout: " + "; ".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)


def load_dover(value: str | Path | None, device: str | torch.device = "cpu") -> tuple[DOVER, str]:
    """DOVER with the checkpoint at `value` (the ``curation.quality.dover_checkpoint``
    setting), in eval mode on `device`, and the checkpoint's short hash."""
    path = find_checkpoint(value)
    try:
        raw = read_state_dict(path)
    except ValueError as exc:  # read, but not a dict
        raise DoverCheckpointError(f"{path}: not a DOVER state dict ({exc})") from exc
    except (pickle.UnpicklingError, RuntimeError) as exc:
        raise DoverCheckpointError(
            f"{path}: could not be read as tensors only (torch.load weights_only=True): {exc}. "
            "If it is a trusted DOVER checkpoint holding other Python objects, re-save just its "
            "state dict with torch.save(state_dict, path)."
        ) from exc
    state = unwrap_state_dict(raw, str(path))
    # Built on the meta device and filled by assignment: no random init of 56 M parameters
    # that the checkpoint overwrites anyway.
    with torch.device("meta"):
        model = DOVER()
    load_dover_state(model, state, str(path), assign=True)
    return model.float().to(device).eval(), file_digest(path)
