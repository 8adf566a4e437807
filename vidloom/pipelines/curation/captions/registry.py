"""`build_caption_backend`: the backend `caption.backend` names."""

from __future__ import annotations

from vidloom.pipelines.curation.captions.base import CaptionBackend
from vidloom.pipelines.curation.captions.config import CaptionConfig


def build_caption_backend(config: CaptionConfig) -> CaptionBackend:
    """The configured backend; the local VLM loads its weights here (once per actor)."""
    if config.backend == "openai":
        from vidloom.pipelines.curation.captions.openai_vlm import OpenAIVLMCaptioner

        return OpenAIVLMCaptioner(config)
    if config.backend == "local":
        # Imported only when chosen: it pulls in torch and transformers.
        from vidloom.pipelines.curation.captions.local_vlm import LocalVLMCaptioner

        return LocalVLMCaptioner(config)
    from vidloom.pipelines.curation.captions.signals import SignalsCaptioner

    return SignalsCaptioner()
