"""`build_rewriter`: pick a backend by name or config mapping.

``"keyword"`` (offline default, alias ``"default"``), ``"openai"`` (OpenAI-compatible server),
``"local"`` (local transformers causal LM). A mapping is ``{"backend": ..., **config fields}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vidloom.models.rewriter.base import PromptRewriter
from vidloom.models.rewriter.keyword import KeywordRewriter
from vidloom.models.rewriter.local_lm import LocalLMRewriter, LocalLMRewriterConfig
from vidloom.models.rewriter.openai_compat import OpenAICompatRewriter, OpenAIRewriterConfig

DEFAULT_REWRITER = "keyword"
_CONFIGS: dict[str, type | None] = {"keyword": None, "openai": OpenAIRewriterConfig, "local": LocalLMRewriterConfig}
_ALIASES = {"default": DEFAULT_REWRITER, "deterministic": "keyword", "openai-compatible": "openai"}


def build_rewriter(name_or_config: str | Mapping[str, Any] | None = None) -> PromptRewriter:
    """Build a prompt rewriter; ``None`` gives the offline keyword rewriter."""
    if name_or_config is None or isinstance(name_or_config, str):
        name, fields = name_or_config or DEFAULT_REWRITER, {}
    elif isinstance(name_or_config, Mapping):
        fields = dict(name_or_config)
        name = str(fields.pop("backend", DEFAULT_REWRITER))
    else:
        raise TypeError(f"expected a name or a mapping, got {type(name_or_config).__name__}")
    key = _ALIASES.get(name, name)
    if key not in _CONFIGS:
        raise ValueError(f"unknown rewriter backend {name!r}; choose from {sorted(_CONFIGS)}")
    config_cls = _CONFIGS[key]
    if config_cls is None:
        if fields:
            raise ValueError(f"the {key!r} rewriter takes no options, got {sorted(fields)}")
        return KeywordRewriter()
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for rewriter {key!r}; known: {sorted(known)}")
    config = config_cls(**fields)
    return OpenAICompatRewriter(config) if key == "openai" else LocalLMRewriter(config)
