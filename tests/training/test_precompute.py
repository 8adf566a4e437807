"""`vidloom precompute`: curated tiers and bring-your-own data into a latent cache, read back
without Ray; per-row problems; resuming after a kill; refusing another VAE; bad settings."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from vidloom.models import load_vae
from vidloom.models.text import build_text_encoder
from vidloom.models.vae.loading import save_vae
from vidloom.platform.caption_schema import caption_to_prompt, normalize_caption
from vidloom.training.latents import (
    CacheMismatchError, LatentCache, NotALatentCacheError, read_rows, run_precompute, vae_digest,
)
from vidloom.training.latents.encode import target_size


DEMO_RESIZE = 64  # the `latent_cache` fixture's short side


def _manifests(demo_tiers: Path) -> dict[str, list[dict]]:
    return {p.parent.name: pq.read_table(p).to_pylist() for p in (demo_tiers / "tiers").glob("*/manifest.parquet")}


def _all_samples(cache: LatentCache) -> dict[str, dict]:
    index = cache.index().to_pylist()
    by_file: dict[str, list[int]] = {}
    for row in index:
        by_file.setdefault(row["file"], []).append(row["row"])
    return {s["sample_id"]: s for file, rows in by_file.items() for s in read_rows(file, rows)}


def test_every_kept_clip_is_in_the_cache_once_with_its_latent_shape_and_caption(latent_cache, demo_tiers):
    manifests = _manifests(demo_tiers)
    index = latent_cache.index().to_pylist()
    ids = [r["sample_id"] for r in index]
    expected = {f"{t}/{row['clip_id']}": (t, row) for t, rows in manifests.items() for row in rows}
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected)

    samples = _all_samples(latent_cache)
    for entry in index:
        tier, row = expected[entry["sample_id"]]
        kind = "image" if tier == "images_256" else "video"
        width, height = target_size(row["width"], row["height"], DEMO_RESIZE)
        frames = 1 if kind == "image" else (row["num_frames"] - 1) // 4 + 1
        assert (entry["tier"], entry["kind"]) == (tier, kind)
        assert (entry["latent_frames"], entry["latent_height"], entry["latent_width"]) == (frames, height // 8, width // 8)
        sample = samples[entry["sample_id"]]
        assert sample["latent"].shape == (16, frames, height // 8, width // 8)
        assert torch.isfinite(sample["latent"]).all() and sample["latent"].abs().sum() > 0
        # the structured caption, flattened as inference flattens a prompt
        assert sample["caption"] == caption_to_prompt(normalize_caption(json.loads(row["caption"]))) != ""
        assert sample["text_states"].shape[1] == 384 and sample["text_states"].shape[0] >= 3
        assert sample["pooled"].shape == (384,)

    meta = latent_cache.meta
    assert meta["format"] == "vidloom-latents/1" and meta["resize"] == DEMO_RESIZE and meta["frames"] is None
    assert meta["vae"]["digest"] == "init:tiny:seed0" == vae_digest("tiny") and meta["vae"]["posterior"] == "mode"
    assert meta["text_encoder"]["encoder_id"] == build_text_encoder("minilm").encoder_id
    states, pooled = latent_cache.null_text()
    assert states.shape[1] == 384 and states.shape[0] >= 2 and pooled.shape == (384,)
    summary = json.loads((latent_cache.path / "summary.json").read_text())
    assert summary["written"] == len(expected) and summary["errors"] == 0 and summary["empty_captions"] == 0


def test_cached_latents_and_text_are_what_the_models_give(latent_cache, demo_tiers):
    """An image's latent is the tiny VAE's posterior mean × scaling factor of the resized still;
    its text states are MiniLM's states of the caption at its valid tokens."""
    entry = next(r for r in latent_cache.index().to_pylist() if r["kind"] == "image")
    sample = read_rows(entry["file"], [entry["row"]])[0]
    row = next(r for r in _manifests(demo_tiers)["images_256"] if f"images_256/{r['clip_id']}" == entry["sample_id"])
    image = cv2.cvtColor(cv2.imread(str(demo_tiers / "tiers" / "images_256" / row["path"])), cv2.COLOR_BGR2RGB)
    width, height = target_size(row["width"], row["height"], DEMO_RESIZE)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1.0
    vae = load_vae("tiny")
    with torch.no_grad():
        expected = vae.encode(pixels).mode()[0] * vae.scaling_factor
        emb = build_text_encoder("minilm").encode([sample["caption"]])
    torch.testing.assert_close(sample["latent"], expected, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(sample["text_states"], emb.states[0][emb.mask[0].bool()], atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(sample["pooled"], emb.pooled[0])


def test_a_rerun_encodes_nothing_again(latent_cache, demo_tiers):
    files = list(latent_cache.files)
    summary = run_precompute([str(demo_tiers)], str(latent_cache.path), "tiny", "minilm", resize=DEMO_RESIZE, batch_size=8)
    assert (summary.written, summary.skipped, summary.errors) == (0, len(latent_cache.index()), 0)
    assert LatentCache.open(latent_cache.path).files == files


def _write_video(path: Path, frames: int, width: int = 96, height: int = 72) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), (37 * i) % 256, np.uint8)
            image[:, : width // 2, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_bring_your_own_data_reports_bad_rows_and_keeps_the_good_ones(ray_session, tmp_path):
    data = tmp_path / "mine"
    (data / "clips").mkdir(parents=True)
    _write_video(data / "clips" / "walk.mp4", 13)
    _write_video(data / "clips" / "long.mp4", 21, width=130, height=90)
    _write_video(data / "clips" / "twelve.mp4", 12)
    cv2.imwrite(str(data / "still.png"), np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8))
    (data / "clips" / "broken.mp4").write_bytes(b"this is not a video")
    (data / "captions.csv").write_text(
        "video,text\n"
        "clips/walk.mp4,a person walks\n"
        "clips/long.mp4,\n"               # missing caption: encoded with the empty prompt
        "clips/broken.mp4,broken file\n"
        "clips/gone.mp4,never existed\n"
        "still.png,a still of noise\n"
        "clips/twelve.mp4,twelve frames\n"  # 12 frames is not 4k+1 (without --frames)
    )
    jsonl = tmp_path / "more.jsonl"  # another layout: JSON lines with other column names
    jsonl.write_text(json.dumps({"file": str(data / "clips" / "walk.mp4"), "prompt": "a duplicate"}) + "\n"
                     + "{not json\n")
    out = tmp_path / "latents"
    summary = run_precompute([str(data), str(jsonl)], str(out), "tiny", "tiny", batch_size=2)

    problems = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    by_name = {Path(p["source_path"]).name + ":" + p["problem"]: p["message"] for p in problems}
    assert "file not found" in by_name["gone.mp4:error"]
    assert "unreadable video" in by_name["broken.mp4:error"]
    assert "12 frames, not 4k+1" in by_name["twelve.mp4:error"] and "use 9 or 13" in by_name["twelve.mp4:error"]
    assert "line 2 is not valid JSON" in by_name["more.jsonl:error"]
    assert "long.mp4:missing_caption" in by_name
    assert (summary.written, summary.errors, summary.empty_captions) == (3, 4, 1)
    assert "gone.mp4" in summary.to_text() and "missing_caption" in summary.to_text()

    cache = LatentCache.open(out)
    samples = {Path(s["source_path"]).name: s for s in pq.read_table(cache.files[0]).to_pylist()}
    assert set(samples) == {"walk.mp4", "long.mp4", "still.png"}
    # the same file named again by a later input is encoded once, with the first caption
    assert samples["walk.mp4"]["caption"] == "a person walks"
    # without --resize a picture is centre-cropped to multiples of 16: 96x72 -> 96x64, 130x90 -> 128x80
    assert samples["walk.mp4"]["latent_shape"] == [16, 4, 8, 12]
    assert samples["long.mp4"]["caption"] == "" and samples["long.mp4"]["caption_missing"]
    assert samples["long.mp4"]["latent_shape"] == [16, 6, 10, 16]
    assert samples["still.png"]["kind"] == "image" and samples["still.png"]["latent_shape"] == [16, 1, 10, 14]


def test_a_killed_precompute_resumes_with_every_sample_exactly_once(ray_session, demo_tiers, tmp_path):
    out = tmp_path / "latents"
    expected = {f"{t}/{row['clip_id']}" for t, rows in _manifests(demo_tiers).items() for row in rows}
    args = [str(demo_tiers), "--resize", "32", "--text-encoder", "tiny", "--batch-size", "2"]
    # The job joins the tests' Ray cluster, so killing it kills a driver, not a cluster.
    address = ray_session.get_runtime_context().gcs_address
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidloom.jobs.precompute", *args, "--out", str(out), "--set", "shard_rows=2",
         "--address", address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while not list((out / "shards").glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = LatentCache.open(out).index().column("sample_id").to_pylist()
    assert 0 < len(before) < len(expected), "the kill should land mid-way"

    summary = run_precompute([str(demo_tiers)], str(out), "tiny", "tiny", resize=32, batch_size=2, shard_rows=2)
    ids = LatentCache.open(out).index().column("sample_id").to_pylist()
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
    assert summary.skipped == len(before) and summary.written == len(expected) - len(before)
    assert not list((out / "shards").glob(".*tmp*"))


def test_a_cache_refuses_latents_of_another_vae(latent_cache, demo_tiers, tmp_path):
    other = save_vae(load_vae("tiny", seed=1), tmp_path / "vae")
    files = list(latent_cache.files)
    with pytest.raises(CacheMismatchError) as info:
        run_precompute([str(demo_tiers)], str(latent_cache.path), str(other), "minilm", resize=DEMO_RESIZE)
    digest = vae_digest(str(other))
    assert f"VAE digest 'init:tiny:seed0' (from 'tiny'), not '{digest}'" in str(info.value)
    assert LatentCache.open(latent_cache.path).files == files
    with pytest.raises(ValueError, match="made with VAE digest"):
        latent_cache.check(digest, None)
    with pytest.raises(ValueError, match="text encoder 'minilm:"):
        latent_cache.check(None, build_text_encoder("tiny").encoder_id)
    latent_cache.check("init:tiny:seed0", latent_cache.meta["text_encoder"]["encoder_id"])


def test_bad_settings_and_folders_fail_before_any_work(tmp_path, demo_tiers):
    proc = subprocess.run(
        [sys.executable, "-m", "vidloom.jobs.precompute", str(demo_tiers), "--out", str(tmp_path / "x"), "--frames", "32"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "frames: 32 is not 4k+1 (the causal VAE compresses time 4x); use 29 or 33" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "vidloom.jobs.precompute", str(demo_tiers), "--out", str(tmp_path / "x"), "--tiers", "256p,999p"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "tiers: ['999p'] not found in the inputs; they have ['256p', 'images_256']" in proc.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(NotALatentCacheError, match="not a latent cache"):
        LatentCache.open(tmp_path)


def test_precompute_benchmark_reports_rate_and_bytes_per_sample(ray_session, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("precompute_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "precompute.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        _write_video(data / f"{name}.mp4", 9)
    cv2.imwrite(str(data / "c.png"), np.zeros((64, 96, 3), np.uint8))
    (data / "captions.jsonl").write_text("".join(json.dumps({"path": n, "caption": n}) + "\n" for n in ("a.mp4", "b.mp4", "c.png")))

    result = bench.measure([str(data)], "tiny", "tiny", batch_size=2)
    assert (result["samples"], result["errors"]) == (3, 0) and result["samples_per_s"] > 0
    # latents of 96x64 pixels: (16, 3, 8, 12) twice and (16, 1, 8, 12), float16
    assert result["latent_bytes_per_sample"] == round((2 * 16 * 3 * 8 * 12 + 16 * 8 * 12) * 2 / 3, 1)
    assert result["pixel_bytes_per_sample"] == round((2 * 9 + 1) * 64 * 96 * 3 / 3, 1)
    assert bench.main([str(data), "--text-encoder", "tiny"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"3 samples \(0 errors\) in [\d.]+ s: [\d.]+ samples/s", out) and "KiB per sample" in out


def test_models_that_cannot_be_loaded_stop_the_run_before_anything_is_written(ray_session, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_video(data / "a.mp4", 5)
    out = tmp_path / "latents"
    with pytest.raises(FileNotFoundError, match="weights for `vae` not found: /nowhere/vae"):
        run_precompute([str(data)], str(out), "/nowhere/vae", "tiny")
    with pytest.raises(ValueError, match="unknown text encoder 'nosuch'"):
        run_precompute([str(data)], str(out), "tiny", "nosuch")
    assert not out.exists()
