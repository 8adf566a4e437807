"""Generation parameters: the OpenAI Videos API request, its extension fields, and their
resolution into one validated `GenerationParams` against the served model's limits.

Precedence follows vLLM-Omni: ``size`` ("WxH") over ``width``/``height``, ``num_frames`` over
``seconds × fps``. Every error names the field (`ParamError.param`), the value and the range.
"""

from __future__ import annotations

import random
import re
from typing import Any, Literal

from pydantic import ConfigDict, ValidationError

from vidloom.models.sampling import SOLVERS
from vidloom.platform.config import StrictModel
from vidloom.serving.model import ModelSpec

REWRITE_MODES = ("none", "normal", "master")
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_FPS = 60
MAX_SEED = 2**63 - 1
SIZE_MULTIPLE = 16  # 8x VAE compression times the DiT's 2x2 patch
_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class ParamError(ValueError):
    """An invalid request field: `param` names it, the message gives the value and the range."""

    def __init__(self, param: str | None, message: str):
        super().__init__(message)
        self.param = param
        self.message = message


class VideoCreateRequest(StrictModel):
    """``POST /v1/videos``: OpenAI's fields, then HunyuanVideo's knobs as extension fields.
    Form values arrive as strings; numbers are coerced. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = None
    seconds: float | None = None
    size: str | None = None
    input_reference: Any = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    flow_shift: float | None = None
    solver: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    rewrite: str | None = None


class GenerationParams(StrictModel):
    """Resolved, validated parameters of one generation (echoed in the job's extras)."""

    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    guidance_mode: Literal["embedded", "cfg"]
    flow_shift: float
    solver: str = "euler"
    seed: int
    rewrite: Literal["none", "normal", "master"]

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def seconds(self) -> str:
        return f"{self.num_frames / self.fps:.2f}".rstrip("0").rstrip(".")


def parse_request(data: dict[str, Any]) -> VideoCreateRequest:
    """Build the request from JSON or form fields; the first problem becomes a `ParamError`."""
    try:
        return VideoCreateRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "extra_forbidden":
            known = ", ".join(VideoCreateRequest.model_fields)
            raise ParamError(param, f"unknown field {param!r}; accepted fields: {known}") from None
        if err["type"] == "missing":
            raise ParamError(param, f"{param} is required") from None
        raise ParamError(param, f"{param}: {err['msg']} (got {err.get('input')!r})") from None


def _check(param: str, value: float, lo: float, hi: float, *, what: str = "") -> None:
    if not lo <= value <= hi:
        raise ParamError(param, f"{param} must be {what}in [{lo}, {hi}], got {value}")


def _dimension(param: str, value: int, limit: int) -> int:
    if value % SIZE_MULTIPLE or not SIZE_MULTIPLE <= value <= limit:
        raise ParamError(param, f"{param} must be a multiple of {SIZE_MULTIPLE} in [{SIZE_MULTIPLE}, {limit}] "
                                f"(the model's limit), got {value}")
    return value


def _frames_from_seconds(seconds: float, fps: int) -> int:
    """The 4k+1 frame count nearest to ``seconds × fps`` (the causal VAE's frame grid)."""
    return 4 * max(0, round((seconds * fps - 1) / 4)) + 1


def resolve_params(req: VideoCreateRequest, spec: ModelSpec, max_prompt_chars: int = 2000) -> GenerationParams:
    """Apply defaults and precedence, then check every value against the model's limits."""
    lim, sampling = spec.limits, spec.sampling
    if req.input_reference not in (None, ""):
        raise ParamError("input_reference", "input_reference (image-to-video) is not supported by this model; "
                                            "send a text prompt only")
    prompt = req.prompt.strip()
    if not 1 <= len(prompt) <= max_prompt_chars:
        raise ParamError("prompt", f"prompt must have 1 to {max_prompt_chars} characters, got {len(prompt)}")
    if req.negative_prompt is not None and len(req.negative_prompt) > max_prompt_chars:
        raise ParamError("negative_prompt", f"negative_prompt must have at most {max_prompt_chars} characters, "
                                            f"got {len(req.negative_prompt)}")
    if req.model not in (None, "", spec.model_id):
        raise ParamError("model", f"model {req.model!r} is not served here; this server serves {spec.model_id!r}")
    if req.size:
        m = _SIZE.match(req.size)
        if not m:
            raise ParamError("size", f"size must look like WIDTHxHEIGHT (e.g. 256x144), got {req.size!r}")
        width, height = int(m.group(1)), int(m.group(2))
        _dimension("size", width, lim.max_width)
        _dimension("size", height, lim.max_height)
    else:
        width = _dimension("width", req.width if req.width is not None else lim.max_width, lim.max_width)
        height = _dimension("height", req.height if req.height is not None else lim.max_height, lim.max_height)
    fps = req.fps if req.fps is not None else spec.fps
    _check("fps", fps, 1, MAX_FPS)
    if req.num_frames is not None:
        frames, param = req.num_frames, "num_frames"
    elif req.seconds is not None:
        if req.seconds <= 0:
            raise ParamError("seconds", f"seconds must be > 0, got {req.seconds}")
        frames, param = _frames_from_seconds(req.seconds, fps), "seconds"
    else:
        frames, param = lim.max_frames, "num_frames"
    if (frames - 1) % 4 or not 1 <= frames <= lim.max_frames:
        detail = f" ({req.seconds} s at {fps} fps is {frames} frames)" if param == "seconds" else ""
        raise ParamError(param, f"num_frames must be 4k+1 in [1, {lim.max_frames}] (the model's limit), "
                                f"got {frames}{detail}")
    steps = req.num_inference_steps if req.num_inference_steps is not None else sampling.num_inference_steps
    _check("num_inference_steps", steps, 1, MAX_STEPS)
    scale = req.guidance_scale if req.guidance_scale is not None else sampling.guidance_scale
    _check("guidance_scale", scale, 0.0, MAX_GUIDANCE)
    shift = req.flow_shift if req.flow_shift is not None else sampling.shift_for(steps)
    if not 0 < shift <= 100:
        raise ParamError("flow_shift", f"flow_shift must be in (0, 100], got {shift}")
    solver = req.solver if req.solver is not None else sampling.solver
    if solver not in SOLVERS:
        raise ParamError("solver", f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    seed = req.seed if req.seed is not None else random.randint(0, 2**31 - 1)
    _check("seed", seed, 0, MAX_SEED)
    rewrite = req.rewrite if req.rewrite is not None else "normal"
    if rewrite not in REWRITE_MODES:
        raise ParamError("rewrite", f"rewrite must be one of {', '.join(REWRITE_MODES)}, got {rewrite!r}")
    return GenerationParams(
        prompt=prompt, negative_prompt=req.negative_prompt or "", width=width, height=height, num_frames=frames,
        fps=fps, num_inference_steps=steps, guidance_scale=scale, guidance_mode=sampling.guidance,
        flow_shift=shift, solver=solver, seed=seed, rewrite=rewrite)
