"""Stages that share an actor (`fuse`) give the same manifest as stages on their own pools,
every stage's time is still accounted for, and a fuse group never makes a CPU stage hold a GPU
or a decode wait on a remote VLM."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.pipelines.curation.registry import STAGE_ORDER
from vidloom.pipelines.ray_data import limit_native_threads, min_workers_that_fit
from vidloom.pipelines.stage import StageResources
from vidloom.platform.config import ConfigError


def test_default_config_runs_all_stages_in_one_actor_pool():
    config = load_curation_config()
    assert config.actor_groups() == [list(STAGE_ORDER)]
    # Leaving stages out of the pipeline fuses the rest.
    part1 = load_curation_config(overrides=["pipeline=[video_analysis,text_detection]"])
    assert part1.actor_groups() == [["video_analysis", "text_detection"]]
    assert load_curation_config(overrides=["fuse=[]"]).actor_groups() == [[s] for s in STAGE_ORDER]
    pairs = load_curation_config(overrides=["fuse=[[video_analysis,text_detection],[watermark,embedding]]"])
    assert pairs.actor_groups() == [["video_analysis", "text_detection"], ["quality"], ["watermark", "embedding"],
                                    ["captioning"]]


def test_fuse_groups_split_at_gpu_stages_and_remote_captioners():
    gpu = load_curation_config(overrides=["stages.watermark.num_gpus=1"])
    assert gpu.actor_groups() == [["video_analysis", "text_detection", "quality"], ["watermark"],
                                  ["embedding", "captioning"]]
    remote = load_curation_config(overrides=["caption.backend=openai"])
    assert remote.actor_groups()[-1] == ["captioning"] and len(remote.actor_groups()) == 2


def test_bad_fuse_groups_fail_at_start_naming_the_group():
    with pytest.raises(ConfigError, match=r"fuse\[0\].*\['text_detection', 'quality'\] would run between them"):
        load_curation_config(overrides=["fuse=[[video_analysis,watermark]]"])
    with pytest.raises(ConfigError, match=r"fuse\[0\].*pipeline order"):
        load_curation_config(overrides=["fuse=[[text_detection,video_analysis]]"])
    with pytest.raises(ConfigError, match=r"fuse\[1\].*once"):
        load_curation_config(overrides=["fuse=[[quality,watermark],[watermark,embedding]]"])
    with pytest.raises(ConfigError, match="fuse"):
        load_curation_config(overrides=["fuse=[[video_analysis,sharpen]]"])


def test_fused_resources_and_pool_minimum():
    group = StageResources.fused([StageResources(num_cpus=0.8, min_workers=2, max_workers=8),
                                  StageResources(num_cpus=0.15, memory_gb=0.6, max_workers=1)])
    # One stage runs at a time in a fused worker: the largest request, the first stage's pool.
    assert (group.num_cpus, group.memory_gb, group.min_workers, group.max_workers) == (0.8, 0.6, 2, 8)
    # A minimum the cluster cannot place would make Ray Data wait forever: it is lowered.
    assert min_workers_that_fit(group, {"CPU": 2.0}) == 2
    assert min_workers_that_fit(group, {"CPU": 1.0}) == 1
    assert min_workers_that_fit(StageResources(num_cpus=1, num_gpus=1, min_workers=4), {"CPU": 16, "GPU": 2}) == 2


def test_worker_threads_follow_the_cpu_request(pyscenedetect_dir):
    """OpenCV's pool and the video decoder's threads both follow the worker's CPU request;
    an explicit `decode.threads` still wins, and outside a worker FFmpeg chooses (0)."""
    import cv2

    from vidloom.platform.media import VideoReader, set_default_decoder_threads

    video = str(pyscenedetect_dir / "counter.mp4")

    def decoder_threads(threads: int = 0) -> int:
        with VideoReader(video, threads=threads) as reader:
            return reader._stream.codec_context.thread_count

    before, ffmpeg_choice = cv2.getNumThreads(), decoder_threads()  # a thread per core and one more
    try:
        assert limit_native_threads(0.8) == 1 and cv2.getNumThreads() == 1
        assert decoder_threads() == 1 and decoder_threads(4) == 4
        assert limit_native_threads(2.5) == 3 and cv2.getNumThreads() == 3
        assert decoder_threads() == 3
    finally:
        cv2.setNumThreads(before)
        set_default_decoder_threads(0)
    assert decoder_threads() == ffmpeg_choice


def _run(inputs: list[str], out: Path, overrides: list[str]):
    from vidloom.pipelines.curation.pipeline import run_curation

    summary = run_curation(inputs, out, load_curation_config(overrides=overrides))
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    return summary, sorted(clips, key=lambda c: c["clip_id"])


def test_fused_and_separate_pools_write_the_same_manifest(ray_session, sample_corpus, pyscenedetect_dir, tmp_path):
    inputs = [str(sample_corpus / name) for name in ("v02_chelsea_logo.mp4", "v05_portrait.mp4", "truncated.mp4")
              if (sample_corpus / name).exists()]
    inputs += [str(pyscenedetect_dir / "fades.mp4"), str(pyscenedetect_dir / "counter.mp4")]
    assert len(inputs) >= 4, sorted(p.name for p in sample_corpus.iterdir())
    fused, fused_clips = _run(inputs, tmp_path / "fused", [])
    # The separate run also assigns concepts in the Ray actor pool (the fused one on the driver,
    # the default below a million vectors): the same cluster ids either way.
    separate, separate_clips = _run(inputs, tmp_path / "separate", ["fuse=[]", "concepts.ray_min_vectors=0"])
    assert fused.clips == separate.clips > 0
    assert fused_clips == separate_clips
    assert all(c["cluster_id"] is not None for c in fused_clips if c["status"] == "ok")
    for summary in (fused, separate):
        # Every stage's own time is in the summary, whether it had an actor to itself or not.
        assert list(summary.stage_seconds) == list(STAGE_ORDER)
        assert summary.stage_seconds["video_analysis"]["wall_s"] > 0
        assert summary.stage_seconds["video_analysis"]["cpu_s"] > 0
        assert "stage time, wall/CPU s summed over workers: video_analysis" in summary.to_text()
        # What made each signal is in the summary too: the text detector in int8 by default.
        assert summary.backends["text"] == ["rapidocr:PP-OCRv6_det_small:int8"]
        assert summary.backends["quality"] == ["proxy-v1"]
        assert "made by: " in summary.to_text() and "text rapidocr:PP-OCRv6_det_small:int8" in summary.to_text()
    assert {c["text_backend"] for c in fused_clips if c["status"] == "ok"} == {"rapidocr:PP-OCRv6_det_small:int8"}
