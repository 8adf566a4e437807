"""Shared fixtures: one real local Ray for the session, the rendered sample corpus, and one
curation run over the corpus plus PySceneDetect's test videos that many tests read."""

from __future__ import annotations

import os
from pathlib import Path

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
