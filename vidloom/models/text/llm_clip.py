"""The report's text conditioning: a decoder-only (M)LLM for token states + CLIP-L pooled.

Token states: the prompt is wrapped in an instruction template (`templates.VIDEO_TEMPLATE`),
run through the LLM, and the hidden states of the third-to-last layer (``hidden_states[-3]``,
i.e. skipping the last 2 layers, whose features are tuned for next-token prediction) are
kept for the prompt tokens only: the template's instruction tokens are cropped. Up to
`max_length` = 256 prompt tokens, right-padded, with the attention mask cropped alike.

Pooled: CLIP-L's text ``pooler_output`` (the EOS token's final state), 77 tokens, on the raw
prompt without template; it feeds the DiT's modulation alongside the timestep.

Both models come from configured local folders (``text_encoder.llm_path`` and
``text_encoder.clip_path``), each a `transformers` save_pretrained folder or a diffusers
HunyuanVideo folder (then ``text_encoder/`` + ``tokenizer/`` and ``text_encoder_2/`` +
``tokenizer_2/`` are used).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidloom.models.text.base import TextEmbeddings, TextEncoder
from vidloom.models.text.hf_loading import parse_dtype, require_transformers, resolve_component, weights_name
from vidloom.models.text.templates import TEMPLATES, apply_template, template_prefix

SETTING_LLM = "text_encoder.llm_path"
SETTING_LLM_TOKENIZER = "text_encoder.llm_tokenizer_path"
SETTING_CLIP = "text_encoder.clip_path"
SETTING_CLIP_TOKENIZER = "text_encoder.clip_tokenizer_path"


@dataclass(frozen=True)
class LLMClipConfig:
    """Where the weights are and how prompts are encoded.

    ``template`` is a template text or a name in `TEMPLATES` ("video", "image");
    ``crop_start=None`` counts the instruction tokens with the tokenizer.
    ``hidden_state_skip_layer=2`` selects ``hidden_states[-3]``.
    """

    llm_path: str | None = None
    clip_path: str | None = None
    llm_tokenizer_path: str | None = None
    clip_tokenizer_path: str | None = None
    template: str = "video"
    crop_start: int | None = None
    max_length: int = 256
    clip_max_length: int = 77
    hidden_state_skip_layer: int = 2
    apply_final_norm: bool = False
    dtype: str = "float32"
    device: str = "cpu"


def _load_tokenizer(transformers, path: Path):
    tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    tok.padding_side = "right"  # the crop assumes the prompt starts at a fixed position
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def count_template_tokens(tokenizer, template: str) -> int:
    """Number of leading tokens that belong to the instruction, for this tokenizer.

    The longest common id prefix of (instruction alone) and (instruction + a prompt) is used,
    so tokenizers that append an end token, or merge across the boundary, never over-crop.
    """
    prefix_ids = tokenizer(template_prefix(template))["input_ids"]
    full_ids = tokenizer(apply_template(template, "a"))["input_ids"]
    n = 0
    for a, b in zip(prefix_ids, full_ids):
        if a != b:
            break
        n += 1
    return n


class LLMClipTextEncoder(TextEncoder):
    """(M)LLM hidden states (B×256×D_llm) + CLIP-L pooled (B×768), per the report."""

    def __init__(self, config: LLMClipConfig = LLMClipConfig()):
        super().__init__()
        self.config = config
        # Resolve every path before importing transformers: missing weights are the common
        # failure and must name the setting to fix.
        llm_dir = resolve_component(config.llm_path, SETTING_LLM, "text_encoder")
        clip_dir = resolve_component(config.clip_path, SETTING_CLIP, "text_encoder_2")
        llm_tok_dir = resolve_component(
            config.llm_tokenizer_path or config.llm_path,
            SETTING_LLM_TOKENIZER if config.llm_tokenizer_path else SETTING_LLM,
            "tokenizer",
        )
        clip_tok_dir = resolve_component(
            config.clip_tokenizer_path or config.clip_path,
            SETTING_CLIP_TOKENIZER if config.clip_tokenizer_path else SETTING_CLIP,
            "tokenizer_2",
        )
        transformers = require_transformers()
        dtype = parse_dtype(config.dtype)
        self.template = TEMPLATES.get(config.template, config.template)

        self.llm_tokenizer = _load_tokenizer(transformers, llm_tok_dir)
        self.llm = transformers.AutoModel.from_pretrained(str(llm_dir), local_files_only=True)
        self.llm.to(device=config.device, dtype=dtype).eval().requires_grad_(False)
        self.clip_tokenizer = _load_tokenizer(transformers, clip_tok_dir)
        self.clip = transformers.CLIPTextModel.from_pretrained(str(clip_dir), local_files_only=True)
        self.clip.to(device=config.device, dtype=dtype).eval().requires_grad_(False)

        self.crop_start = (
            config.crop_start
            if config.crop_start is not None
            else count_template_tokens(self.llm_tokenizer, self.template)
        )
        self.max_length = config.max_length
        self.state_dim = int(self.llm.config.hidden_size)
        self.pooled_dim = int(self.clip.config.hidden_size)
        tpl = hashlib.sha256(self.template.encode()).hexdigest()[:8]
        self.encoder_id = (
            f"llm-clip:{weights_name(llm_dir)}|{weights_name(clip_dir)}"
            f"|skip{config.hidden_state_skip_layer}|L{config.max_length}|tpl-{tpl}"
            f"{'|final-norm' if config.apply_final_norm else ''}"
        )

    def _final_norm(self) -> torch.nn.Module:
        norm = getattr(self.llm, "norm", None)
        if norm is None and hasattr(self.llm, "get_decoder"):
            norm = getattr(self.llm.get_decoder(), "norm", None)
        if norm is None:
            raise ValueError("apply_final_norm: this LLM has no `norm` module")
        return norm

    @torch.no_grad()
    def encode_llm(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Templated LLM states ``hidden_states[-(skip+1)]`` with the instruction cropped."""
        texts = [apply_template(self.template, p) for p in prompts]
        batch = self.llm_tokenizer(
            texts,
            max_length=self.max_length + self.crop_start,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.config.device)
        mask = batch["attention_mask"].to(self.config.device)
        out = self.llm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        skip = self.config.hidden_state_skip_layer
        states = out.hidden_states[-(skip + 1)]
        # The last entry is already normalised; intermediate layers only on request.
        if skip > 0 and self.config.apply_final_norm:
            states = self._final_norm()(states)
        return states[:, self.crop_start:], mask[:, self.crop_start:].long()

    @torch.no_grad()
    def encode_clip(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP text ``pooler_output`` of the raw prompts (B×768 for CLIP-L)."""
        batch = self.clip_tokenizer(
            list(prompts),
            max_length=self.config.clip_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        out = self.clip(
            input_ids=batch["input_ids"].to(self.config.device),
            attention_mask=batch["attention_mask"].to(self.config.device),
        )
        return out.pooler_output

    def encode(self, prompts: Sequence[str]) -> TextEmbeddings:
        states, mask = self.encode_llm(prompts)
        return TextEmbeddings(states=states, mask=mask, pooled=self.encode_clip(prompts))
