"""Shared fixtures: one real local Ray for the session, the rendered sample corpus, and one
curation run over the corpus plus PySceneDetect's test videos that many tests read."""

from __future__ import annotations

import os
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
PYSCENEDETECT_DATA = SHARED_DATA / "pyscenedetect"


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray cluster (2 CPUs), shared by every test that needs Ray."""
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # address="local": a fresh cluster for the tests, never one a `ray start` left running.
    ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _load_script(path: Path, name: str | None = None):
    """A script that is not part of the package (benchmarks/, cluster/) imported by its path."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name or f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script() -> Callable:
    """`load_script(path)`: import a benchmark or cluster script by its path."""
    return _load_script


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    from vidloom.pipelines.samples import render_sample_corpus

    out = tmp_path_factory.mktemp("samples")
    render_sample_corpus(out, seed=0)
    return out


@pytest.fixture(scope="session")
def curated(ray_session, sample_corpus, tmp_path_factory):
    """One curation run over the sample corpus and PySceneDetect's videos (default config)."""
    import pyarrow.parquet as pq

    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.pipelines.curation.pipeline import run_curation

    out = tmp_path_factory.mktemp("curated")
    summary = run_curation([str(sample_corpus), str(PYSCENEDETECT_DATA)], out, load_curation_config())
    videos = pq.read_table(out / "manifest" / "videos.parquet").to_pylist()
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    return {"out": out, "summary": summary, "videos": videos, "clips": clips}


@pytest.fixture(scope="session")
def pyscenedetect_dir() -> Path:
    """PySceneDetect's test videos (../shared/data/pyscenedetect), read in place."""
    assert PYSCENEDETECT_DATA.is_dir(), f"shared test data missing at {PYSCENEDETECT_DATA}"
    return PYSCENEDETECT_DATA


# -- a local stand-in for an OpenAI-compatible chat server (VLM captioner, prompt rewriter) ---------
# The only stand-in in the test suite: it replaces an external service we cannot run here, so
# the real client code is what the tests exercise.
Responder = Callable[[dict, int], tuple[int, str]]  # (request body, request number) -> (HTTP status, content)


class ChatStandIn:
    """Speaks /v1/chat/completions on 127.0.0.1; `respond` decides each reply."""

    def __init__(self, respond: Responder):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with state.lock:
                    state.requests.append(body)
                    state.headers.append(dict(self.headers))
                    n = len(state.requests)
                status, content = respond(body, n) if self.path == "/v1/chat/completions" else (404, "")
                payload = (json.dumps({"id": str(n), "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}}]})
                    if status == 200 else json.dumps({"error": content})).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ChatStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_stand_in():
    """`chat_stand_in(respond)`: a context manager serving /v1/chat/completions on
    127.0.0.1, where `respond(body, n)` returns (HTTP status, assistant content)."""
    return ChatStandIn
