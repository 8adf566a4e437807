"""The curation pipeline end to end on real Ray and real video files: the sample corpus with
its ground truth, and PySceneDetect's own test videos with their known cuts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidloom.platform.ids import clip_id, video_id


def _truth(sample_corpus: Path) -> dict:
    return json.loads((sample_corpus / "truth.json").read_text())


def _by_file(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(Path(row["source"]).name, []).append(row)
    return out


def _shot_clips(clips: list[dict], shot: dict) -> list[dict]:
    """Clips lying inside a truth shot (±1 frame)."""
    return [c for c in clips if c["start_frame"] >= shot["start_frame"] - 1 and c["end_frame"] <= shot["end_frame"] + 1]


def _labelled_shots(curated, sample_corpus):
    """(truth shot, its ok clips) for every shot of every good sample video."""
    clips = _by_file(curated["clips"])
    out = []
    for video in _truth(sample_corpus)["videos"]:
        if video["expected_status"] != "ok":
            continue
        ok = [c for c in clips.get(video["file"], []) if c["status"] == "ok"]
        for shot in video["shots"]:
            out.append((video, shot, _shot_clips(ok, shot)))
    return out


def test_summary_counts_every_input(curated, sample_corpus, pyscenedetect_dir):
    truth = _truth(sample_corpus)
    n_shared = len(list(pyscenedetect_dir.glob("*.mp4")))
    summary = curated["summary"]
    assert summary.inputs == len(truth["videos"]) + n_shared
    assert len(curated["videos"]) == summary.inputs
    assert summary.ok + summary.error + summary.too_short == summary.inputs
    assert summary.clips == sum(c["status"] == "ok" for c in curated["clips"]) > 0
    assert summary.video_seconds > 0 and summary.video_seconds_per_s > 0


def test_sample_cuts_within_one_frame_of_truth(curated, sample_corpus):
    videos = {Path(v["source"]).name: v for v in curated["videos"]}
    for video in _truth(sample_corpus)["videos"]:
        if video["expected_status"] != "ok":
            continue
        found = videos[video["file"]]["scene_cuts"]
        assert len(found) == len(video["cuts"]), (video["file"], found, video["cuts"])
        for got, want in zip(found, video["cuts"]):
            assert abs(got - want) <= 1, (video["file"], found, video["cuts"])


def test_pyscenedetect_videos_cut_where_its_detectors_do(curated):
    videos = {Path(v["source"]).name: v for v in curated["videos"]}
    # PySceneDetect 0.7.2's ContentDetector: 30, 180, 394; its AdaptiveDetector adds 691.
    cuts = videos["testvideo.mp4"]["scene_cuts"]
    for want in (30, 180, 394):
        assert any(abs(c - want) <= 1 for c in cuts), cuts
    for got in cuts:
        assert any(abs(got - want) <= 1 for want in (30, 180, 394, 691)), cuts
    assert videos["fades.mp4"]["scene_cuts"] == []  # fades: content detectors find none
    assert videos["counter.mp4"]["scene_cuts"] == []  # one shot, every frame different
    counter = videos["counter.mp4"]
    assert (counter["width"], counter["height"], counter["num_frames"]) == (1920, 1080, 30)


def test_delayed_start_video_reports_its_offset(curated):
    video = next(v for v in curated["videos"] if v["source"].endswith("delayed_start.mp4"))
    assert video["start_time_s"] == pytest.approx(1.075, abs=1e-3)
    assert video["num_frames"] == 24
    assert video["status"] == "too_short"  # 0.96 s is under the 2 s minimum clip length
    assert "split.min_clip_s" in video["error"]


def test_camera_motion_accuracy_on_sample_shots(curated, sample_corpus):
    right = total = 0
    for _, shot, clips in _labelled_shots(curated, sample_corpus):
        for clip in clips:
            total += 1
            right += clip["camera_motion"] == shot["camera_motion"]
    assert total >= 30
    assert right / total >= 0.9, f"{right}/{total}"


def _signal(shots, defect: str | None, column: str) -> list[float]:
    values = []
    for _, shot, clips in shots:
        has = shot["defects"] == [] if defect is None else defect in shot["defects"]
        if has:
            values += [c[column] for c in clips if c[column] is not None]
    return values


def test_planted_defects_score_apart_from_clean_shots(curated, sample_corpus):
    shots = _labelled_shots(curated, sample_corpus)
    clean_text = _signal(shots, None, "text_ratio")
    text = _signal(shots, "subtitles", "text_ratio") + _signal(shots, "title", "text_ratio")
    assert clean_text and text
    # Most clean photos hold no text at all; burned-in text always registers.
    assert np.median(clean_text) < 0.01
    assert min(text) > 0.03 and np.median(text) > 5 * max(np.median(clean_text), 0.005)

    clean_sharp = _signal(shots, None, "sharpness")
    blur = _signal(shots, "blur", "sharpness")
    assert blur and max(blur) < 0.3 * min(clean_sharp)

    frozen = _signal(shots, "frozen", "frame_diff")
    static = [c["frame_diff"] for _, s, cs in shots for c in cs if s["camera_motion"] == "static shot" and not s["defects"]]
    assert frozen and static and max(frozen) < 0.5 * min(static)


def test_letterbox_and_pillarbox_boxes_match_truth(curated, sample_corpus):
    for _, shot, clips in _labelled_shots(curated, sample_corpus):
        for clip in clips:
            if shot.get("content_box"):
                assert clip["border_box"] is not None, (shot, clip["border_box"])
                assert np.abs(np.subtract(clip["border_box"], shot["content_box"])).max() <= 2
            else:
                assert clip["border_box"] is None, (shot, clip["border_box"])


def test_broken_inputs_are_reported_and_good_clips_still_come_out(curated, sample_corpus):
    videos = {Path(v["source"]).name: v for v in curated["videos"]}
    for video in _truth(sample_corpus)["videos"]:
        row = videos[video["file"]]
        assert row["status"] == video["expected_status"], (video["file"], row["status"], row["error"])
        if video["expected_status"] != "ok":
            assert row["error"], video["file"]  # a reason for a human
    assert "empty" in videos["zero_bytes.mp4"]["error"]
    # Every shot of every good video is a clip (none is shorter than the 2 s minimum).
    for _, shot, clips in _labelled_shots(curated, sample_corpus):
        assert clips, shot


def test_clip_rows_are_consistent(curated):
    clips = curated["clips"]
    ids = [c["clip_id"] for c in clips]
    assert len(ids) == len(set(ids))
    for c in clips:
        assert c["clip_id"] == clip_id(c["source"], c["start_frame"], c["end_frame"])
        assert c["video_id"] == video_id(c["source"])
        assert c["num_frames"] == c["end_frame"] - c["start_frame"] > 0
        assert c["end_s"] > c["start_s"] >= 0
        assert c["start_frame"] <= c["best_start_frame"] < c["end_frame"]
        if c["status"] == "ok":
            assert 2.0 - 1e-6 <= c["duration_s"] <= 10.0 + 1e-6
            assert c["text_ratio"] is not None and 0.0 <= c["text_ratio"] <= 1.0
    testvideo = sorted((c for c in clips if c["source"].endswith("testvideo.mp4")), key=lambda c: c["start_frame"])
    # Frame indices are the truth; times come from presentation timestamps (29.97 fps here).
    second = next(c for c in testvideo if c["start_frame"] == 30)
    assert second["start_s"] == pytest.approx(30 / (30000 / 1001), abs=1e-3)
    assert testvideo[0]["status"] == "too_short"  # frames 0-29 are a one-second shot


def test_stage_metrics_reach_the_ray_metrics_endpoint(ray_session, curated):
    """Rows in/out, errors and latency per stage are exported for the dashboard."""
    import re
    import time
    import urllib.request

    node = ray_session.nodes()[0]
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"

    def value(name: str, stage: str) -> float:
        pattern = re.compile(rf'^ray_{name}\{{[^}}]*stage="{stage}"[^}}]*\}} ([0-9.e+]+)$', re.M)
        return sum(float(v) for v in pattern.findall(text))

    deadline = time.monotonic() + 60  # metrics are exported every few seconds
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        if value("vidloom_stage_rows_out_total", "text_detection") > 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    inputs = curated["summary"].inputs
    for stage in ("video_analysis", "text_detection"):
        assert value("vidloom_stage_rows_in_total", stage) >= inputs
        assert value("vidloom_stage_rows_out_total", stage) >= inputs
        assert value("vidloom_stage_latency_s_count", stage) > 0
    assert value("vidloom_stage_errors_total", "video_analysis") >= curated["summary"].error
    assert value("vidloom_video_seconds_total", "video_analysis") > 0
