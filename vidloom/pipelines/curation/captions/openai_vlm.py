"""Captions from a vision-language model behind an OpenAI-compatible server (vLLM, SGLang...).

Each clip is one chat request: the system instructions, then a user turn with up to
`caption.frames_per_clip` of the clip's shipped frames as JPEG data-URL image parts and the
JSON-schema prompt. Requests of one video's clips overlap in up to
`caption.max_concurrent_requests` threads (the work is waiting on the server, not CPU).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vidloom.pipelines.curation.captions.base import CaptionBackend, CaptionError, CaptionOutcome, ClipInput
from vidloom.pipelines.curation.captions.config import CaptionConfig
from vidloom.pipelines.curation.captions.prompt import SYSTEM_PROMPT, parse_caption_reply, user_prompt
from vidloom.pipelines.curation.rows import evenly
from vidloom.platform.caption_schema import CaptionFields, caption_json_schema
from vidloom.platform.media import jpeg_bytes
from vidloom.platform.openai_client import (
    ChatClient,
    ChatSettings,
    image_part,
    json_schema_format,
    text_part,
)


class OpenAIVLMCaptioner(CaptionBackend):
    """Structured captions from an OpenAI-compatible chat endpoint serving a VLM."""

    def __init__(self, config: CaptionConfig):
        self.config = config
        self.client = ChatClient(ChatSettings(
            base_url=config.base_url, model=config.model, api_key_env=config.api_key_env,
            timeout_s=config.timeout_s, max_retries=config.max_retries, backoff_s=config.backoff_s,
            temperature=config.temperature, max_tokens=config.max_tokens,
        ))
        self.name = f"openai:{config.model}"

    def response_format(self) -> dict[str, Any] | None:
        """The ``response_format`` of each request (structured output where the server has it)."""
        if self.config.response_format == "json_schema":
            return json_schema_format("video_caption", caption_json_schema())
        if self.config.response_format == "json_object":
            return {"type": "json_object"}
        return None

    def messages(self, clip: dict[str, Any], frames: list[np.ndarray]) -> list[dict[str, Any]]:
        """The chat messages for one clip: instructions, then frames and prompt."""
        picked = evenly(frames, self.config.frames_per_clip)
        parts = [image_part(jpeg_bytes(f, self.config.jpeg_quality)) for f in picked]
        parts.append(text_part(user_prompt(clip, len(picked), self.config.camera_movement)))
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]

    def caption(self, clip: dict[str, Any], frames: list[np.ndarray]) -> CaptionFields:
        if not frames:
            raise CaptionError("no frames were shipped for this clip")
        reply = self.client.complete(self.messages(clip, frames), self.response_format())
        return parse_caption_reply(reply, clip, self.config.camera_movement)

    def caption_many(self, items: list[ClipInput]) -> list[CaptionOutcome]:
        workers = min(self.config.max_concurrent_requests, len(items))
        if workers <= 1:
            return [self.caption_one(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption") as pool:
            return list(pool.map(self.caption_one, items))
