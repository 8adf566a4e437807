"""Rewriting through any OpenAI-compatible chat-completions server (vLLM, TGI, Ray Serve...).

Plain `urllib` so no SDK is needed. POSTs ``{base_url}/chat/completions`` with the mode's
instructions as the system turn; the API key is read from an environment variable (never from
config files). Connection errors, timeouts, 429 and 5xx are retried with exponential backoff;
other 4xx fail at once since repeating the same request cannot fix them.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from vidloom.models.rewriter.base import PromptRewriter, RewriteResult, RewriterError
from vidloom.models.rewriter.caption import CAPTION_FIELDS, CaptionFields, caption_to_prompt
from vidloom.models.rewriter.instructions import build_messages, normalize_mode

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class OpenAIRewriterConfig:
    """Server settings. ``api_key_env`` names the variable holding the key (unset = no auth)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "VIDLOOM_REWRITER_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 512


def _message_text(reply: dict[str, Any]) -> str:
    """``choices[0].message.content`` (string or list of text parts) from a reply."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise RewriterError(f"unexpected chat-completions reply: {json.dumps(reply)[:300]}") from exc
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise RewriterError("chat-completions reply has no text content")
    return content.strip()


def parse_rewrite(text: str) -> tuple[str, dict[str, str] | None]:
    """Split a model reply into (prompt text, caption fields if the reply was a caption JSON)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body[body.find("\n") + 1:] if "\n" in body else body
    try:
        obj = json.loads(body)
    except ValueError:
        return text.strip().strip('"').strip(), None
    if isinstance(obj, dict) and any(k in obj for k in CAPTION_FIELDS):
        try:
            caption = CaptionFields.from_dict(obj)
        except (TypeError, ValueError):
            return text.strip(), None
        return caption_to_prompt(caption), caption.to_dict()
    return text.strip(), None


class OpenAICompatRewriter(PromptRewriter):
    """Prompt rewriting through an OpenAI-compatible ``/chat/completions`` endpoint."""

    backend = "openai"

    def __init__(self, config: OpenAIRewriterConfig = OpenAIRewriterConfig()):
        if config.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.config.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def chat(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """POST one chat request with retries; returns the decoded JSON reply."""
        cfg = self.config
        body = json.dumps(
            {"model": cfg.model, "messages": messages, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        ).encode("utf-8")
        last_error = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                time.sleep(cfg.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                last_error = f"HTTP {exc.code}: {detail}"
                if exc.code in _RETRY_STATUS:
                    continue
                raise RewriterError(f"{self.url}: {last_error}") from exc
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            try:
                return json.loads(payload)
            except ValueError as exc:
                raise RewriterError(f"{self.url}: reply is not JSON: {payload[:300]!r}") from exc
        raise RewriterError(f"{self.url}: failed after {cfg.max_retries + 1} attempts; last error {last_error}")

    def rewrite(self, prompt: str, mode: str = "normal") -> RewriteResult:
        mode = normalize_mode(mode)
        reply = self.chat(build_messages(prompt, mode))
        text, fields = parse_rewrite(_message_text(reply))
        return RewriteResult(text=text, mode=mode, backend=self.backend, original=prompt, fields=fields, raw=reply)
