"""One real Ray Serve deployment of the vidloom app for every serving test (starting one takes
tens of seconds): a freshly saved `tiny` DiT export, served over real HTTP on a free port."""

from __future__ import annotations

import io
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

API_KEY_ENV = "VIDLOOM_TEST_API_KEY"
API_KEY = "test-key-0123456789"
APP = "vidloom-test"
# What the tests' app is allowed to do: small frames, few steps, a short timeout and queue.
LIMITS = {"max_height": 256, "max_width": 256, "max_frames": 33}
TIMEOUT_S = 20
MAX_QUEUE = 10


def save_tiny_export(folder: Path) -> Path:
    """A freshly initialised tiny DiT with the provenance a training export records."""
    from vidloom.models.dit.loading import build_dit, save_dit
    from vidloom.models.dit.config import get_config

    meta = {"text_encoder": {"spec": "tiny", "state_dim": 32, "pooled_dim": 24},
            "vae": {"source": "tiny"},
            "sampling": {"guidance": "cfg", "num_inference_steps": 4, "guidance_scale": 4.0},
            "limits": LIMITS}
    return save_dit(build_dit(get_config("tiny"), seed=0), folder, meta=meta)


def decode(mp4: bytes) -> np.ndarray:
    """Frames F×H×W×3 of an mp4."""
    import av

    with av.open(io.BytesIO(mp4)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    storage: Path
    model_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def post(self, body: dict, path: str = "/v1/videos") -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers, timeout=60)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=60, **kwargs)

    def delete(self, video_id: str) -> requests.Response:
        return requests.delete(f"{self.url}/v1/videos/{video_id}", headers=self.headers, timeout=60)

    def wait(self, video_id: str, timeout: float = 120) -> dict:
        """Poll until the job is finished; connection errors (a replica restarting) are retried."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = self.get(f"/v1/videos/{video_id}")
            except requests.ConnectionError:
                r = None
            if r is not None and r.status_code == 200 and r.json()["status"] in ("completed", "failed"):
                return r.json()
            time.sleep(0.25)
        raise AssertionError(f"{video_id} did not finish in {timeout} s: {r.json() if r is not None else None}")


# Package scope: the app's six replicas (each a process with torch loaded) are shut down when
# tests/serving/ ends, not kept running beside the rest of the suite.
@pytest.fixture(scope="package")
def served(ray_session, tmp_path_factory):
    from ray import serve

    from vidloom.serving.app import build_app
    from vidloom.serving.jobs import stop_store

    root = tmp_path_factory.mktemp("serving")
    model = save_tiny_export(root / "run" / "final")
    os.environ[API_KEY_ENV] = API_KEY  # the builder reads it; only its digest reaches the replicas
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app({
        "model": str(model), "storage": str(root / "store"), "api_key_env": API_KEY_ENV,
        "num_cpus": 0, "torch_threads": 1, "max_queue": MAX_QUEUE, "timeout_s": TIMEOUT_S,
        "batch_wait_timeout_s": 0.5, "max_batch_size": 8, "poll_after_ms": 200,
        # Two ingress replicas: one can be killed while the other answers.
        "replicas": {"VideoAPI": 2, "PromptRewriter": 1, "TextEncoder": 1, "DiT": 1, "VAEDecoder": 1},
    })
    serve.run(app, name=APP, route_prefix="/")
    yield Served(url=f"http://127.0.0.1:{port}", storage=root / "store", model_id="run")
    serve.delete(APP)
    stop_store(APP)
    serve.shutdown()
