"""A killed curation run resumes without redoing finished videos, and ends with exactly the
rows an uninterrupted run writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.pipelines.curation.manifest import ManifestStore
from vidloom.pipelines.curation.pipeline import run_curation

REPO = Path(__file__).resolve().parents[1]


def _rows(out: Path, name: str, sources: set[str]) -> list[dict]:
    rows = pq.read_table(out / "manifest" / name).to_pylist()
    return sorted((r for r in rows if r["source"] in sources), key=lambda r: (r["source"], r.get("start_frame", 0)))


def test_sigkill_then_rerun_gives_the_uninterrupted_rows(ray_session, sample_corpus, curated, tmp_path):
    out = tmp_path / "killed"
    address = ray_session.get_runtime_context().gcs_address
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidloom.jobs.curate", str(sample_corpus), "--out", str(out), "--address", address],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    store = ManifestStore(out)
    deadline = time.monotonic() + 240
    try:
        while len(store.done_ids()) < 3:
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "no video finished in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done_before = store.done_ids()
    assert 3 <= len(done_before) < 15
    assert not (out / "manifest" / "clips.parquet").exists()  # killed before consolidating

    summary = run_curation([str(sample_corpus)], out, load_curation_config())
    assert summary.skipped_done == len(done_before)  # finished videos were not decoded again
    clusters = [c["cluster_id"] for c in pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
                if c["status"] == "ok"]
    assert clusters and all(c is not None for c in clusters)

    sources = {v["source"] for v in curated["videos"] if Path(v["source"]).parent == sample_corpus}
    for name in ("videos.parquet", "clips.parquet"):
        resumed = _rows(out, name, sources)
        reference = [r for r in sorted(
            (r for r in (curated["videos"] if name == "videos.parquet" else curated["clips"]) if r["source"] in sources),
            key=lambda r: (r["source"], r.get("start_frame", 0)),
        )]
        assert len(resumed) == len(reference)
        assert len({r.get("clip_id", r["video_id"]) for r in resumed}) == len(resumed)  # no duplicates
        for got, want in zip(resumed, reference):
            assert got.keys() == want.keys()
            # cluster_id is global: k-means over this run's corpus, while the reference run
            # also holds PySceneDetect's videos; every per-video column must be identical.
            for key in got.keys() - {"cluster_id"}:
                if isinstance(want[key], float):
                    assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
                else:
                    assert got[key] == want[key], key


def test_rerun_of_a_finished_run_skips_everything(ray_session, curated):
    out = curated["out"]
    before = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    # inputs listed in another order than the first run's: the global steps must not care
    sources = sorted({v["source"] for v in curated["videos"]}, reverse=True)
    summary = run_curation(sources, out, load_curation_config())
    assert summary.skipped_done == summary.inputs
    assert summary.video_seconds == 0
    assert pq.read_table(out / "manifest" / "clips.parquet").to_pylist() == before
