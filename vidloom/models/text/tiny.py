"""`tiny`: a small random-init text encoder for tests and toy trainings.

Weights come from a fixed seed (drawn from a private RNG so the global one is untouched), the
tokenizer is the hash tokenizer, so the same config always gives the same embeddings without
any files. It can also be saved/loaded as a vidloom export (kind ``text_encoder_tiny``) once
a toy DiT has been trained against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from vidloom.models.text.base import TextEmbeddings, TextEncoder
from vidloom.models.text.hash_tokenizer import HashTokenizer
from vidloom.models.weights_io import EXPORT_WEIGHTS, load_export, save_export

EXPORT_KIND = "text_encoder_tiny"


@dataclass(frozen=True)
class TinyTextConfig:
    """Shape and seed of the tiny encoder."""

    vocab_size: int = 4096
    state_dim: int = 32
    pooled_dim: int = 24  # with state_dim 32, matches the `tiny` DiT's text_dim / pooled_dim
    max_length: int = 32
    num_layers: int = 1
    num_heads: int = 4
    seed: int = 0


class TinyTextEncoder(TextEncoder):
    """Embedding + learned positions + a few transformer layers; pooled = projected masked mean."""

    def __init__(self, config: TinyTextConfig = TinyTextConfig()):
        super().__init__()
        self.config = config
        self.state_dim = config.state_dim
        self.pooled_dim = config.pooled_dim
        self.max_length = config.max_length
        self.tokenizer = HashTokenizer(config.vocab_size, config.max_length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.embed = nn.Embedding(config.vocab_size, config.state_dim)
            self.pos = nn.Parameter(torch.randn(config.max_length, config.state_dim) * 0.02)
            layer = nn.TransformerEncoderLayer(
                config.state_dim,
                config.num_heads,
                dim_feedforward=4 * config.state_dim,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            self.layers = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.state_dim)
            self.pool_proj = nn.Linear(config.state_dim, config.pooled_dim)
        self.eval()
        c = config
        self.encoder_id = (
            f"tiny:v1:V{c.vocab_size}-d{c.state_dim}-p{c.pooled_dim}-L{c.max_length}"
            f"-n{c.num_layers}-h{c.num_heads}-seed{c.seed}"
        )

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> TextEmbeddings:
        device = self.pos.device
        ids, mask = self.tokenizer(list(prompts))
        ids, mask = ids.to(device), mask.to(device)
        h = self.embed(ids) + self.pos[None]
        h = self.layers(h, src_key_padding_mask=mask == 0)
        m = mask[..., None].to(h.dtype)
        h = self.norm(h) * m  # padding positions carry exact zeros
        pooled = self.pool_proj(h.sum(1) / m.sum(1).clamp_min(1.0))
        return TextEmbeddings(states=h, mask=mask, pooled=pooled)

    def save(self, folder: str | Path) -> Path:
        """Write a vidloom export (config.json + model.safetensors)."""
        return save_export(folder, EXPORT_KIND, asdict(self.config), self.state_dict())

    @classmethod
    def load(cls, folder: str | Path) -> "TinyTextEncoder":
        """Load a vidloom export written by `save`."""
        cfg, state = load_export(folder, EXPORT_KIND)
        enc = cls(TinyTextConfig(**cfg))
        enc.load_state_dict(state)
        # Trained weights differ from the seeded init: name them by content.
        digest = hashlib.sha256((Path(folder) / EXPORT_WEIGHTS).read_bytes()).hexdigest()[:16]
        enc.encoder_id = f"{enc.encoder_id}+weights-{digest}"
        return enc
