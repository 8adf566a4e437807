"""Prompt rewriting (report: Normal / Master modes) into the captions the DiT was trained on.

Backends: ``keyword`` (offline, deterministic caption-field extraction), ``openai``
(OpenAI-compatible chat server), ``local`` (local transformers causal LM).
"""

from vidloom.models.rewriter.base import PromptRewriter, RewriteResult, RewriterError
from vidloom.models.rewriter.instructions import INSTRUCTIONS, MODES, build_messages
from vidloom.models.rewriter.keyword import KeywordRewriter, extract_camera_movement, extract_caption
from vidloom.models.rewriter.local_lm import LocalLMRewriter, LocalLMRewriterConfig
from vidloom.models.rewriter.openai_compat import OpenAICompatRewriter, OpenAIRewriterConfig
from vidloom.models.rewriter.registry import DEFAULT_REWRITER, build_rewriter
from vidloom.platform.caption_schema import CAMERA_MOVEMENTS, CAPTION_FIELDS, CaptionFields, caption_to_prompt

__all__ = [
    "CAMERA_MOVEMENTS",
    "CAPTION_FIELDS",
    "DEFAULT_REWRITER",
    "INSTRUCTIONS",
    "MODES",
    "CaptionFields",
    "KeywordRewriter",
    "LocalLMRewriter",
    "LocalLMRewriterConfig",
    "OpenAICompatRewriter",
    "OpenAIRewriterConfig",
    "PromptRewriter",
    "RewriteResult",
    "RewriterError",
    "build_messages",
    "build_rewriter",
    "caption_to_prompt",
    "extract_camera_movement",
    "extract_caption",
]
