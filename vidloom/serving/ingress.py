"""The HTTP front: the OpenAI Videos API (``/v1/videos``), ``/v1/models``, ``/healthz``, the web
page at ``/`` and the OpenAPI docs at ``/docs``, as a FastAPI app behind Ray Serve.

The ingress validates and answers; the job store actor (`vidloom.serving.jobs`) owns job state
and drives each job through the model deployments, so any ingress replica answers for any job.
Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures' types at runtime.
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidloom.serving.jobs import ACTIVE, JobSettings, start_store
from vidloom.serving.model import ModelSpec
from vidloom.serving.params import ParamError, parse_request, resolve_params

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent / "web"
WEB_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
NO_RETRY = {"x-should-retry": "false"}

api = FastAPI(
    title="vidloom",
    description="Text-to-video generation (HunyuanVideo system) behind the OpenAI Videos API. "
                "Extension fields of POST /v1/videos: width, height, num_frames, fps, num_inference_steps, "
                "guidance_scale, flow_shift, solver (euler|dpm++2m), negative_prompt, seed, rewrite (none|normal|master).",
    version="1",
)


class APIError(Exception):
    """An error answered in OpenAI's envelope."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def _envelope(status: int, message: str, type: str, param: str | None, code: str | None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@api.exception_handler(APIError)
async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return _envelope(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)


@api.exception_handler(ParamError)
async def _param_error(request: Request, exc: ParamError) -> JSONResponse:
    # 400s are final: tell the SDK not to retry (it retries other statuses).
    return _envelope(400, exc.message, "invalid_request_error", exc.param, "invalid_value", NO_RETRY)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    err = exc.errors()[0]
    param = str(err["loc"][-1]) if err.get("loc") else None
    return _envelope(400, f"{param}: {err['msg']} (got {err.get('input')!r})", "invalid_request_error", param,
                     "invalid_value", NO_RETRY)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _envelope(exc.status_code, str(exc.detail), "invalid_request_error", None,
                     "not_found" if exc.status_code == 404 else None, NO_RETRY if exc.status_code < 500 else None)


@api.middleware("http")
async def _authorize(request: Request, call_next):
    """Bearer key on every /v1 route when one is configured. Only the key's SHA-256 is held, and
    compared in constant time; the key is never logged."""
    want = getattr(request.app.state, "api_key_sha256", None)
    if want and request.url.path.startswith("/v1"):
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        digest = hashlib.sha256(given.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(digest, want):
            reason = "missing" if not header else "invalid"
            return _envelope(401, f"{reason} API key: send Authorization: Bearer KEY", "invalid_request_error",
                             None, "invalid_api_key", {**NO_RETRY, "WWW-Authenticate": "Bearer"})
    return await call_next(request)


def _not_found(video_id: str) -> APIError:
    return APIError(404, f"no video {video_id!r} (never created, deleted, or expired)", param="video_id",
                    code="not_found", headers=NO_RETRY)


@serve.deployment(
    max_ongoing_requests=64,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 32},
    ray_actor_options={"num_cpus": 0.5},
)
@serve.ingress(api)
class VideoAPI:
    """Validates requests against the served model and answers from the job store."""

    def __init__(self, rewriter, text_encoder, dit, vae, spec: ModelSpec, jobs: JobSettings,
                 api_key_sha256: str | None = None, max_prompt_chars: int = 2000, poll_after_ms: int = 1000,
                 sync_max_voxels: int = 256 * 256 * 33):
        self.spec = spec
        self.max_prompt_chars = max_prompt_chars
        self.poll_after_ms = poll_after_ms
        self.sync_max_voxels = sync_max_voxels
        api.state.api_key_sha256 = api_key_sha256
        context = serve.get_replica_context()
        self.replica = context.replica_id.to_full_id_str()
        handles = {"PromptRewriter": rewriter, "TextEncoder": text_encoder, "DiT": dit, "VAEDecoder": vae}
        self.store = start_store(context.app_name, jobs, handles)

    # -- pages --------------------------------------------------------------------------------

    @api.get("/", include_in_schema=False)
    async def index(self) -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html")

    @api.get("/web/{name}", include_in_schema=False)
    async def web_file(self, name: str) -> FileResponse:
        if name not in WEB_FILES:
            raise _not_found(name)
        return FileResponse(WEB / name, media_type=WEB_FILES[name])

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.spec.model_id, "replica": self.replica,
                "auth_required": bool(api.state.api_key_sha256), **await self.store.stats.remote()}

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.spec.describe()]}

    # -- videos -------------------------------------------------------------------------------

    async def _create(self, request: Request, sync: bool = False) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form()
            data: dict[str, Any] = {k: v if isinstance(v, str) else "(uploaded file)" for k, v in form.items()}
        else:
            try:
                data = json.loads(await request.body() or b"{}")
            except ValueError:
                raise ParamError(None, "the body must be JSON or multipart/form-data") from None
            if not isinstance(data, dict):
                raise ParamError(None, "the JSON body must be an object")
        params = resolve_params(parse_request(data), self.spec, self.max_prompt_chars)
        if sync and params.width * params.height * params.num_frames > self.sync_max_voxels:
            raise ParamError("size", f"/v1/videos/sync takes at most {self.sync_max_voxels} pixels x frames, got "
                                     f"{params.size}x{params.num_frames}; use POST /v1/videos")
        job = {"model": self.spec.model_id, "size": params.size, "seconds": params.seconds, "prompt": params.prompt,
               "extras": {"params": params.model_dump(), "accepted_by": self.replica}}
        answer = await self.store.submit.remote(job)
        if "retry_after" in answer:
            raise APIError(429, f"the server is busy: {answer['active']} generations are queued or running (the "
                                f"limit is max_queue); retry in {answer['retry_after']} s",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(answer["retry_after"])})
        return answer["job"]

    @api.post("/v1/videos")
    async def create(self, request: Request) -> JSONResponse:
        job = await self._create(request)
        return JSONResponse(job, headers={"openai-poll-after-ms": str(self.poll_after_ms)})

    @api.post("/v1/videos/sync")
    async def create_sync(self, request: Request) -> Response:
        """Generate and return the mp4 in this response (small requests only)."""
        job = await self._create(request, sync=True)
        answer = await self.store.wait.remote(job["id"], 24 * 3600, "video")
        done = answer and answer["job"]
        if not done or done["status"] != "completed":
            error = (done or {}).get("error") or {"code": "deleted", "message": "the job was deleted"}
            raise APIError(422 if done else 404, error["message"], type="generation_error", code=error["code"],
                           headers=NO_RETRY)
        return Response(answer["data"], media_type="video/mp4", headers={"x-video-id": job["id"]})

    @api.get("/v1/videos")
    async def list_videos(self, after: str | None = None, limit: int = 20, order: str = "desc") -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise ParamError("limit", f"limit must be in [1, 100], got {limit}")
        if order not in ("asc", "desc"):
            raise ParamError("order", f"order must be asc or desc, got {order!r}")
        page = await self.store.list.remote(after, limit, order)
        data = page["data"]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": page["has_more"]}

    @api.get("/v1/videos/{video_id}")
    async def retrieve(self, video_id: str) -> JSONResponse:
        job = await self.store.get.remote(video_id)
        if job is None:
            raise _not_found(video_id)
        return JSONResponse(job, headers={"openai-poll-after-ms": str(self.poll_after_ms)})

    @api.get("/v1/videos/{video_id}/content")
    async def content(self, video_id: str, variant: str = "video") -> Response:
        if variant not in ("video", "thumbnail"):
            raise ParamError("variant", f"variant must be video or thumbnail, got {variant!r}")
        answer = await self.store.content.remote(video_id, variant)
        status = answer["status"]
        if status == "missing":
            raise _not_found(video_id)
        if status in ACTIVE:
            raise APIError(409, f"video {video_id} is {status}: poll GET /v1/videos/{video_id} until it is "
                                "completed", param="video_id", code="not_ready", headers=NO_RETRY)
        if status == "failed":
            raise APIError(422, f"video {video_id} failed: {answer['error']['message']}", param="video_id",
                           code=answer["error"]["code"], headers=NO_RETRY)
        media = "image/jpeg" if variant == "thumbnail" else "video/mp4"
        return Response(answer["data"], media_type=media)

    @api.delete("/v1/videos/{video_id}")
    async def delete(self, video_id: str) -> dict[str, Any]:
        if not await self.store.delete.remote(video_id):
            raise _not_found(video_id)
        return {"id": video_id, "object": "video.deleted", "deleted": True}
