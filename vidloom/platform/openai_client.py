"""A client for any OpenAI-compatible ``/chat/completions`` server (vLLM, SGLang, TGI, Ray Serve).

Plain `urllib`, so no SDK is needed. Used by the prompt rewriter (text) and the captioning
stage (text + frames). The API key is read from the environment variable the settings name,
never from config files. Connection errors, timeouts, 408/409/429 and 5xx are retried with
exponential backoff; other 4xx fail at once since repeating the same request cannot fix them.

Images travel as content parts with base64 JPEG data URLs (``image_url``), the form vLLM and
SGLang accept for vision-language models; `json_schema_format` builds the ``response_format``
that asks a server for output constrained to a JSON schema.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class ChatError(RuntimeError):
    """The server gave no usable reply (after retries, a client error, or a malformed reply)."""


@dataclass(frozen=True)
class ChatSettings:
    """Server settings. ``api_key_env`` names the variable holding the key (unset = no auth)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 512


def image_part(jpeg: bytes) -> dict[str, Any]:
    """A chat content part carrying one JPEG image as a base64 data URL."""
    data = base64.b64encode(jpeg).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def text_part(text: str) -> dict[str, Any]:
    """A chat content part carrying text."""
    return {"type": "text", "text": text}


def json_schema_format(name: str, schema: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """``response_format`` asking the server to constrain its output to `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


def message_text(reply: dict[str, Any]) -> str:
    """``choices[0].message.content`` (a string or a list of text parts) of a reply."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ChatError(f"unexpected chat-completions reply: {json.dumps(reply)[:300]}") from exc
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise ChatError("chat-completions reply has no text content")
    return content.strip()


class ChatClient:
    """POSTs chat requests to ``{base_url}/chat/completions`` with retries and backoff."""

    def __init__(self, settings: ChatSettings = ChatSettings()):
        if settings.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def chat(self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
        """Send one chat request (retrying transient failures); returns the decoded JSON reply.

        `messages` may hold string contents or lists of content parts (`text_part`,
        `image_part`); `extra` adds request fields (e.g. ``seed``).
        """
        s = self.settings
        request_body: dict[str, Any] = {"model": s.model, "messages": messages, "temperature": s.temperature,
                                        "max_tokens": s.max_tokens, **extra}
        if response_format is not None:
            request_body["response_format"] = response_format
        body = json.dumps(request_body).encode("utf-8")
        last_error = "no attempt made"
        for attempt in range(s.max_retries + 1):
            if attempt:
                time.sleep(s.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=s.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                last_error = f"HTTP {exc.code}: {detail}"
                if exc.code in RETRY_STATUS:
                    continue
                raise ChatError(f"{self.url}: {last_error}") from exc
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            try:
                return json.loads(payload)
            except ValueError as exc:
                raise ChatError(f"{self.url}: reply is not JSON: {payload[:300]!r}") from exc
        raise ChatError(f"{self.url}: failed after {s.max_retries + 1} attempts; last error {last_error}")

    def complete(self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None,
                 **extra: Any) -> str:
        """`chat`, then the reply's message text."""
        return message_text(self.chat(messages, response_format, **extra))
