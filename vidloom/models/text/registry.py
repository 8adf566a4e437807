"""`build_text_encoder`: one entry point from a name, a config mapping, or an export folder.

Names: ``"tiny"`` (random init, tests/toys), ``"minilm"`` (offline default, alias
``"default"``), ``"llm-clip"`` (the report's LLM + CLIP-L, alias ``"hunyuan"``). A mapping
is ``{"name": ..., **fields of that encoder's config}``; a path to a folder holding a tiny
vidloom export loads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidloom.models.text.base import TextEncoder
from vidloom.models.text.llm_clip import LLMClipConfig, LLMClipTextEncoder
from vidloom.models.text.minilm import MiniLMConfig, MiniLMTextEncoder
from vidloom.models.text.tiny import EXPORT_KIND as TINY_KIND
from vidloom.models.text.tiny import TinyTextConfig, TinyTextEncoder
from vidloom.models.weights_io import EXPORT_CONFIG, MODEL_KEY, is_vidloom_export

DEFAULT_TEXT_ENCODER = "minilm"

_BUILDERS: dict[str, tuple[type, Callable[[Any], TextEncoder]]] = {
    "tiny": (TinyTextConfig, TinyTextEncoder),
    "minilm": (MiniLMConfig, MiniLMTextEncoder),
    "llm-clip": (LLMClipConfig, LLMClipTextEncoder),
}
_ALIASES = {"default": DEFAULT_TEXT_ENCODER, "hunyuan": "llm-clip", "llm_clip": "llm-clip"}


def text_encoder_names() -> list[str]:
    """Registered encoder names (aliases excluded)."""
    return sorted(_BUILDERS)


def _from_export(folder: Path) -> TextEncoder:
    import json

    kind = json.loads((folder / EXPORT_CONFIG).read_text()).get(MODEL_KEY)
    if kind == TINY_KIND:
        return TinyTextEncoder.load(folder)
    raise ValueError(f"{folder} is a {kind!r} export, not a text encoder")


def build_text_encoder(name_or_config: str | Mapping[str, Any] | None = None) -> TextEncoder:
    """Build a text encoder; ``None`` gives the offline default (`DEFAULT_TEXT_ENCODER`)."""
    if name_or_config is None:
        name_or_config = DEFAULT_TEXT_ENCODER
    if isinstance(name_or_config, str):
        path = Path(name_or_config).expanduser()
        if path.is_dir() and is_vidloom_export(path):
            return _from_export(path)
        fields: dict[str, Any] = {}
        name = name_or_config
    elif isinstance(name_or_config, Mapping):
        fields = dict(name_or_config)
        name = str(fields.pop("name", DEFAULT_TEXT_ENCODER))
    else:
        raise TypeError(f"expected a name or a mapping, got {type(name_or_config).__name__}")
    key = _ALIASES.get(name, name)
    if key not in _BUILDERS:
        raise ValueError(f"unknown text encoder {name!r}; choose from {text_encoder_names()}")
    config_cls, builder = _BUILDERS[key]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for text encoder {key!r}; known: {sorted(known)}")
    return builder(config_cls(**fields))
