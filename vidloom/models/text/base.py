"""The one interface every text encoder implements.

`encode(prompts)` returns `TextEmbeddings`: per-token states (B×L×D) for the DiT's text
stream, an attention mask (B×L, int64 1 = token, 0 = padding) and a pooled vector (B×P) for
the DiT's modulation. L is fixed per encoder (prompts are padded to `max_length`) so batches
and positive/negative prompts always stack. `encoder_id` names the encoder and its weights so
a DiT checkpoint can record which text features it was trained on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TextEmbeddings:
    """Encoder output: ``states`` B×L×D, ``mask`` B×L (int64), ``pooled`` B×P."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __post_init__(self) -> None:
        b, length = self.states.shape[:2]
        if self.mask.shape != (b, length):
            raise ValueError(f"mask shape {tuple(self.mask.shape)} != {(b, length)}")
        if self.pooled.ndim != 2 or self.pooled.shape[0] != b:
            raise ValueError(f"pooled must be ({b}, P), got {tuple(self.pooled.shape)}")

    @property
    def batch_size(self) -> int:
        return self.states.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "TextEmbeddings":
        """Move to `device`; `dtype` applies to states/pooled only (the mask stays int64)."""
        return TextEmbeddings(
            states=self.states.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )

    @staticmethod
    def cat(parts: Sequence["TextEmbeddings"]) -> "TextEmbeddings":
        """Concatenate along the batch (all parts must come from the same encoder)."""
        return TextEmbeddings(
            states=torch.cat([p.states for p in parts]),
            mask=torch.cat([p.mask for p in parts]),
            pooled=torch.cat([p.pooled for p in parts]),
        )


class TextEncoder(nn.Module, ABC):
    """Base class: subclasses set the four attributes and implement `encode`."""

    encoder_id: str  # e.g. "tiny:v1:d32-p16-l32-seed0"; stored in DiT checkpoints
    state_dim: int  # D
    pooled_dim: int  # P
    max_length: int  # L

    @abstractmethod
    def encode(self, prompts: Sequence[str]) -> TextEmbeddings:
        """Encode a batch of prompts (no gradients are required by callers)."""

    def forward(self, prompts: Sequence[str] | str) -> TextEmbeddings:  # noqa: D401 - nn.Module hook
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.encode(list(prompts))

    def describe(self) -> dict[str, object]:
        """What a checkpoint should record about the encoder that conditioned it."""
        return {
            "encoder_id": self.encoder_id,
            "state_dim": self.state_dim,
            "pooled_dim": self.pooled_dim,
            "max_length": self.max_length,
        }
