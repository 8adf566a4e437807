"""A semi-transparent corner mark on one shot of a three-shot video (real photographs through the
sample corpus's virtual camera) is found with the default config; clean real shots with natural
edges and text (the other shots, a second clean video) stay below the threshold, and the real
burned-in copyright line of PySceneDetect's testvideo.mp4 is found."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.pipelines.curation.stages.watermark import WatermarkStage
from vidloom.pipelines.samples import corpus as C
from vidloom.pipelines.samples.render import render_video_file

TIERS = Path(__file__).resolve().parents[1] / "vidloom" / "pipelines" / "export" / "default_tiers.yaml"
# The 'logo' defect: "VL24" at opacity 0.35 in the top-right corner, on the middle shot only.
ONE_MARKED_SHOT = C.VideoSpec("one_marked_shot.mp4", 640, 360, 25, (
    C.ShotSpec("astronaut", C.PAN_LEFT, 60, ()),
    C.ShotSpec("coffee", C.ZOOM_IN, 60, ("logo",)),
    C.ShotSpec("chelsea", C.TILT_UP, 60, ()),
))
# The same mark over a repetitive texture (coins) while the camera zooms out: the camera's motion
# must still be measured right.
ZOOM_OVER_COINS = C.VideoSpec("zoom_over_coins.mp4", 640, 360, 25, (
    C.ShotSpec("rocket", C.HANDHELD, 60, ()),
    C.ShotSpec("motorcycle", C.PAN_RIGHT, 60, ()),
    C.ShotSpec("coins", C.ZOOM_OUT, 60, ("logo",)),
))
CLEAN = C.VideoSpec("clean.mp4", 640, 360, 25, (
    C.ShotSpec("rocket", C.PAN_RIGHT, 60, ()),  # the rocket's painted lettering, launch tower edges
    C.ShotSpec("camera", C.ZOOM_OUT, 60, ()),
    C.ShotSpec("motorcycle", C.TILT_DOWN, 60, ()),
))


@pytest.fixture(scope="module")
def stages():
    config = load_curation_config().model_dump(mode="json")
    analysis, watermark = VideoAnalysisStage(config), WatermarkStage(config)
    analysis.setup()
    watermark.setup()
    return lambda path: loads(watermark.process_row(analysis.process_row(new_video_row(str(path))))["clips_json"])


def test_mark_on_one_shot_found_with_default_config(tmp_path, stages, pyscenedetect_dir):
    threshold = yaml.safe_load(TIERS.read_text())["tiers"]["360p"]["watermark_score_max"]
    path = tmp_path / ONE_MARKED_SHOT.file
    render_video_file(ONE_MARKED_SHOT, path, seed=1)
    clips = [c for c in stages(path) if c["status"] == "ok"]
    assert {c["shot_index"] for c in clips} == {0, 1, 2}
    marked = [c for c in clips if c["shot_index"] == 1]
    clean = [c for c in clips if c["shot_index"] != 1]
    assert all(c["watermark_score"] > threshold for c in marked), [c["watermark_score"] for c in clips]
    assert all(c["watermark_score"] < threshold for c in clean), [c["watermark_score"] for c in clips]
    # The box is in the top-right corner, where the mark is (display px).
    x0, y0, x1, y1 = marked[0]["watermark_boxes"][0]
    assert x0 > 640 / 2 and y1 < 360 / 2
    render_video_file(ZOOM_OVER_COINS, tmp_path / ZOOM_OVER_COINS.file, seed=1)
    clips = [c for c in stages(tmp_path / ZOOM_OVER_COINS.file) if c["status"] == "ok"]
    assert {c["shot_index"] for c in clips} == {0, 1, 2}
    scores = [c["watermark_score"] for c in clips]
    assert all((c["watermark_score"] > threshold) == (c["shot_index"] == 2) for c in clips), scores
    render_video_file(CLEAN, tmp_path / CLEAN.file, seed=1)
    clean = [c for c in stages(tmp_path / CLEAN.file) if c["status"] == "ok"]
    assert len(clean) == 3 and all(c["watermark_score"] < threshold for c in clean), [c["watermark_score"] for c in clean]
    # Real footage: testvideo.mp4 carries "Copyright © 2013 Brandon Castellano www.bcastell.com"
    # burned into the bottom of every frame.
    real = [c for c in stages(pyscenedetect_dir / "testvideo.mp4") if c["status"] == "ok"]
    assert real and all(c["watermark_score"] > threshold for c in real), [c["watermark_score"] for c in real]
    assert all(box[1] > 720 / 2 for c in real for box in c["watermark_boxes"][:1])


STATIC_MARKED = C.VideoSpec("static_marked.mp4", 640, 360, 25, (
    C.ShotSpec("chelsea", C.STATIC, 60, ("logo",)),
    C.ShotSpec("astronaut", C.PAN_LEFT, 60, ()),
    C.ShotSpec("coffee", C.TILT_DOWN, 60, ()),
))


def test_combined_backend_asks_the_detector_only_where_the_camera_did_not_move(tmp_path):
    """`backend: combined`: the static shot's score is the higher of persistence and the
    detector (its backend names both), the moving shots' is persistence alone."""
    config = load_curation_config(None, ["watermark.backend=combined"]).model_dump(mode="json")
    analysis, watermark = VideoAnalysisStage(config), WatermarkStage(config)
    analysis.setup()
    watermark.setup()
    render_video_file(STATIC_MARKED, tmp_path / STATIC_MARKED.file, seed=1)
    row = analysis.process_row(new_video_row(str(tmp_path / STATIC_MARKED.file)))
    clips = {c["shot_index"]: c for c in loads(watermark.process_row(row)["clips_json"]) if c["status"] == "ok"}
    persistence = WatermarkStage(load_curation_config(None, ["watermark.backend=persistence"]).model_dump(mode="json"))
    alone = {c["shot_index"]: c for c in loads(persistence.process_row(row)["clips_json"]) if c["status"] == "ok"}
    assert set(clips) == {0, 1, 2}
    detector = watermark.detector.backend
    assert clips[0]["watermark_backend"] == f"persistence-v3+{detector}"
    assert clips[0]["watermark_score"] >= alone[0]["watermark_score"]
    for k in (1, 2):
        assert clips[k]["watermark_backend"] == "persistence-v3"
        assert clips[k]["watermark_score"] == alone[k]["watermark_score"]


def test_held_out_evaluation_scores_every_clip_against_its_truth(tmp_path):
    """The evaluation behind docs/watermark.md's precision/recall table, on two videos: one with
    a random overlay on one shot, one clean."""
    from vidloom.pipelines.curation.watermark.evaluation import _pr, evaluate, render_table

    result = evaluate(videos=2, seed=100, work=tmp_path / "not-yet-made")
    rows = result["rows"]
    assert {r["video"] for r in rows} == {"heldout_00.mp4", "heldout_01.mp4"}
    assert [r["shot"] for r in rows if r["marked"]] == [0]  # video 0 carries the mark on its first shot
    # How visible the mark is (mean grey-level change on its pixels), for the marked clip only.
    assert all((r["mark_contrast"] is not None) == r["marked"] for r in rows)
    assert all(r["mark_contrast"] > 1.0 for r in rows if r["marked"])
    # `both` is at least the persistence check's score (the detector's part is weighed and joined
    # with it on moving shots).
    assert all(r["persistence"] <= r["both"] <= 1.0 for r in rows)
    assert all(r["combined"] in (r["persistence"], r["both"]) for r in rows)
    assert set(result["backends"]["both"]["tiers"]) >= {"256p", "360p"}
    assert "| persistence |" in render_table(result)
    pr = _pr([(0.9, True, False), (0.7, False, False), (0.2, True, True), (0.1, False, False)], 0.6)
    assert (pr["precision"], pr["recall"], pr["recall_moving"], pr["recall_static"]) == (0.5, 0.5, 1.0, 0.0)
