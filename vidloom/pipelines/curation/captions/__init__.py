"""Structured captions of curated clips (the report's JSON caption), three backends:

``signals`` (offline default: measured facts only), ``openai`` (a VLM behind an
OpenAI-compatible server) and ``local`` (a local transformers VLM). See docs/captions.md.
"""

from vidloom.pipelines.curation.captions.base import CaptionBackend, CaptionError, CaptionOutcome
from vidloom.pipelines.curation.captions.config import LOCAL_MODEL_SETTING, CaptionConfig
from vidloom.pipelines.curation.captions.prompt import SYSTEM_PROMPT, parse_caption_reply, user_prompt
from vidloom.pipelines.curation.captions.registry import build_caption_backend

__all__ = [
    "LOCAL_MODEL_SETTING",
    "SYSTEM_PROMPT",
    "CaptionBackend",
    "CaptionConfig",
    "CaptionError",
    "CaptionOutcome",
    "build_caption_backend",
    "parse_caption_reply",
    "user_prompt",
]
