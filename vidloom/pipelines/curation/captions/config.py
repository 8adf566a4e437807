"""`CaptionConfig`: the ``caption`` section of the curation config (``curation.caption.*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vidloom.platform.config import StrictModel

LOCAL_MODEL_SETTING = "curation.caption.local_model_path"


class CaptionConfig(StrictModel):
    """Which backend writes the structured captions, and its settings."""

    backend: Literal["signals", "openai", "local"] = Field(
        "signals", description="signals (offline, measured facts only) | openai (VLM server) | local (transformers VLM)")
    frames_per_clip: int = Field(4, ge=1, le=32, description="of the clip's shipped frames, at most this many are shown to a VLM")
    camera_movement: Literal["measured", "model"] = Field(
        "measured", description="measured: always the clip's camera_motion label; model: the VLM's answer when it is a valid label")
    # openai backend
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible server, up to /v1")
    model: str = Field("default", description="model name the server serves")
    api_key_env: str = Field("VIDLOOM_CAPTION_API_KEY", description="environment variable holding the API key (unset = none)")
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0)
    max_retries: int = Field(3, ge=0, le=20, description="retries of a failed request (429, 5xx, timeouts)")
    backoff_s: float = Field(1.0, ge=0.0, le=600.0, description="first retry delay; doubles each retry")
    max_concurrent_requests: int = Field(4, ge=1, le=256, description="requests in flight per actor")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(768, ge=16, le=32768)
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="how the server is asked for JSON; 'none' for servers without structured output")
    jpeg_quality: int = Field(85, ge=10, le=100)
    # local backend
    local_model_path: str | None = Field(None, description="local transformers VLM folder (AutoModelForImageTextToText)")
    local_device: str = Field("cpu", description="torch device of the local VLM, e.g. cuda")
    local_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    local_max_new_tokens: int = Field(512, ge=16, le=8192)
