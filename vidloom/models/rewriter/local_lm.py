"""Rewriting with a local `transformers` causal LM (``rewriter.model_path``), no server.

Uses the tokenizer's chat template when it has one (instruction-tuned models), otherwise a
plain "instructions / input / rewritten:" layout. Greedy decoding by default so a given model
and prompt always give the same rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidloom.models.rewriter.base import PromptRewriter, RewriteResult
from vidloom.models.rewriter.instructions import build_messages, normalize_mode
from vidloom.models.rewriter.openai_compat import parse_rewrite
from vidloom.models.text.hf_loading import parse_dtype, require_transformers, resolve_component, weights_name

SETTING = "rewriter.model_path"


@dataclass(frozen=True)
class LocalLMRewriterConfig:
    """Local model folder and generation settings."""

    model_path: str | None = None
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 0.7
    dtype: str = "float32"
    device: str = "cpu"


class LocalLMRewriter(PromptRewriter):
    """Prompt rewriting by generating with a local causal LM."""

    backend = "local"

    def __init__(self, config: LocalLMRewriterConfig = LocalLMRewriterConfig()):
        folder = resolve_component(config.model_path, SETTING)
        transformers = require_transformers()
        self.config = config
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        self.model.to(device=config.device, dtype=parse_dtype(config.dtype)).eval().requires_grad_(False)
        self.model_name = weights_name(folder)

    def build_input(self, prompt: str, mode: str) -> str:
        """The text fed to the model for one rewrite."""
        messages = build_messages(prompt, mode)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{messages[0]['content']}\n\n{messages[1]['content']}\nRewritten:"

    @torch.no_grad()
    def generate(self, text: str) -> str:
        """Decode the model's continuation of `text` (special tokens removed)."""
        cfg = self.config
        batch = self.tokenizer(text, return_tensors="pt").to(cfg.device)
        kwargs = {"max_new_tokens": cfg.max_new_tokens, "do_sample": cfg.do_sample,
                  "pad_token_id": self.tokenizer.pad_token_id}
        if cfg.do_sample:
            kwargs["temperature"] = cfg.temperature
        out = self.model.generate(**batch, **kwargs)
        new_tokens = out[0, batch["input_ids"].shape[1]:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    def rewrite(self, prompt: str, mode: str = "normal") -> RewriteResult:
        mode = normalize_mode(mode)
        reply = self.generate(self.build_input(prompt, mode))
        text, fields = parse_rewrite(reply) if reply else (prompt, None)
        return RewriteResult(text=text, mode=mode, backend=f"{self.backend}:{self.model_name}",
                             original=prompt, fields=fields, raw=reply)
