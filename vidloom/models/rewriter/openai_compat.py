"""Rewriting through any OpenAI-compatible chat-completions server (vLLM, TGI, Ray Serve...).

The HTTP client (retries, backoff, API key from an environment variable) is the platform's
`vidloom.platform.openai_client.ChatClient`; this file adds the rewrite instructions as the
system turn and turns the reply into a prompt (and caption fields when the reply is one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidloom.models.rewriter.base import PromptRewriter, RewriteResult, RewriterError
from vidloom.models.rewriter.instructions import build_messages, normalize_mode
from vidloom.platform.caption_schema import CAPTION_FIELDS, caption_to_prompt, extract_json_object, normalize_caption
from vidloom.platform.openai_client import ChatClient, ChatError, ChatSettings, message_text


@dataclass(frozen=True)
class OpenAIRewriterConfig(ChatSettings):
    """Server settings of the rewriter; the key is read from ``VIDLOOM_REWRITER_API_KEY``."""

    api_key_env: str = "VIDLOOM_REWRITER_API_KEY"


def parse_rewrite(text: str) -> tuple[str, dict[str, str] | None]:
    """Split a model reply into (prompt text, caption fields if the reply was a caption JSON)."""
    obj = extract_json_object(text)
    if obj is not None and any(k in obj for k in CAPTION_FIELDS):
        caption = normalize_caption(obj)
        return caption_to_prompt(caption), caption.to_dict()
    return text.strip().strip('"').strip(), None


class OpenAICompatRewriter(PromptRewriter):
    """Prompt rewriting through an OpenAI-compatible ``/chat/completions`` endpoint."""

    backend = "openai"

    def __init__(self, config: OpenAIRewriterConfig = OpenAIRewriterConfig()):
        self.config = config
        self.client = ChatClient(config)
        self.url = self.client.url

    def chat(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """POST one chat request with retries; returns the decoded JSON reply."""
        try:
            return self.client.chat(messages)
        except ChatError as exc:
            raise RewriterError(str(exc)) from exc

    def rewrite(self, prompt: str, mode: str = "normal") -> RewriteResult:
        mode = normalize_mode(mode)
        reply = self.chat(build_messages(prompt, mode))
        try:
            content = message_text(reply)
        except ChatError as exc:
            raise RewriterError(str(exc)) from exc
        text, fields = parse_rewrite(content)
        return RewriteResult(text=text, mode=mode, backend=self.backend, original=prompt, fields=fields, raw=reply)
