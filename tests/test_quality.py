"""The quality stage: the offline proxy on the real sample corpus, the stage on real rows, and
the DOVER-compatible model loading a checkpoint written under DOVER.pth's key layout."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.pipelines.curation.quality import (
    CALIBRATION,
    CHECKPOINT_SETTING,
    DOVER,
    DoverCheckpointError,
    DoverScorer,
    aesthetic_view,
    check_quality_weights,
    fragment_mosaic,
    fuse,
    load_dover,
    load_dover_state,
    proxy_factors,
    proxy_quality,
    technical_view,
    unwrap_state_dict,
)
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.stages.quality import QualityStage
from vidloom.pipelines.curation.stages.text_detection import TextDetectionStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.platform.weights import MissingWeightsError

# Small DOVER views so the 56 M-parameter model runs in about a second on a CPU.
SMALL_VIEWS = {"technical_clips": 2, "clip_len": 4, "fragment_size": 8, "aesthetic_size": 64}


# ---------------------------------------------------------------- corpus helpers
def _shot_of(clip: dict, truth: dict) -> dict | None:
    """The truth shot a clip lies in (by file name and start frame), if any."""
    name = Path(clip["source"]).name
    for video in truth["videos"]:
        if video["file"] == name:
            for shot in video["shots"]:
                if shot["start_frame"] - 1 <= clip["start_frame"] < shot["end_frame"]:
                    return shot
    return None


def _labelled(curated, sample_corpus) -> list[tuple[dict, dict]]:
    truth = json.loads((Path(sample_corpus) / "truth.json").read_text())
    out = []
    for clip in curated["clips"]:
        shot = _shot_of(clip, truth) if clip["status"] == "ok" else None
        if shot is not None:
            out.append((clip, shot))
    return out


# ---------------------------------------------------------------- proxy on the corpus
def test_proxy_scores_blur_and_frozen_below_every_clean_moving_shot(curated, sample_corpus):
    rows = _labelled(curated, sample_corpus)
    bad = [proxy_quality(c) for c, s in rows if {"blur", "frozen"} & set(s["defects"])]
    clean_moving = [proxy_quality(c) for c, s in rows if not s["defects"] and s["camera_motion"] != "static shot"]
    blurred = [c for c, s in rows if "blur" in s["defects"]]
    frozen = [c for c, s in rows if "frozen" in s["defects"]]
    assert len(blurred) >= 2 and len(frozen) >= 1 and len(clean_moving) >= 10
    # "clearly": the worst clean moving shot scores several times the best defective one
    assert max(bad) < 0.2 < min(clean_moving)
    assert min(clean_moving) > 3 * max(bad)


def test_proxy_is_in_unit_interval_and_deterministic(curated):
    ok = [c for c in curated["clips"] if c["status"] == "ok"]
    assert ok
    first = [proxy_quality(c) for c in ok]
    second = [proxy_quality(dict(c)) for c in ok]
    assert first == second
    assert all(0.0 <= q <= 1.0 and math.isfinite(q) for q in first)
    factors = proxy_factors(ok[0])
    assert math.isclose(factors.quality, first[0], rel_tol=1e-12)


def test_proxy_calibration_still_matches_the_corpus(curated, sample_corpus):
    """The constants documented in docs/quality.md, re-measured on the rendered corpus."""
    rows = _labelled(curated, sample_corpus)
    blurred = [c["sharpness"] for c, s in rows if "blur" in s["defects"]]
    clean = [c["sharpness"] for c, s in rows if not s["defects"]]
    frozen = [c["frame_diff"] for c, s in rows if "frozen" in s["defects"]]
    moving = [c["frame_diff"] for c, s in rows if not s["defects"] and s["camera_motion"] != "static shot"]
    handheld = [c["motion"] for c, s in rows if s["camera_motion"] == "handheld shot"]
    assert np.mean(blurred) == pytest.approx(CALIBRATION.sharpness_blurred, rel=0.25)
    assert np.median(clean) == pytest.approx(CALIBRATION.sharpness_clean, rel=0.25)
    assert max(frozen) < 2 * CALIBRATION.frame_diff_frozen + 0.05
    assert min(moving) == pytest.approx(CALIBRATION.frame_diff_moving, rel=0.3)
    assert np.median(handheld) == pytest.approx(CALIBRATION.handheld_motion, rel=0.3)


def test_proxy_factors_respond_to_each_signal():
    base = {
        "sharpness": 0.55, "frame_diff": 5.0, "motion": 0.005, "camera_motion": "pan left",
        "camera_motion_confidence": 0.9, "text_ratio": 0.0, "border_box": None, "width": 640, "height": 360,
    }
    q = proxy_quality(base)
    assert q > 0.9
    assert proxy_quality({**base, "sharpness": 0.08}) < 0.1 * q  # blur
    assert proxy_quality({**base, "frame_diff": 0.04}) < 0.1 * q  # frozen
    assert proxy_quality({**base, "frame_diff": 0.6}) < q  # near-static
    assert proxy_quality({**base, "camera_motion": "handheld shot"}) < q  # shake
    assert proxy_quality({**base, "text_ratio": 0.3}) == pytest.approx(0.7 * q)
    letterboxed = {**base, "border_box": [0, 45, 640, 315]}  # 75 % picture
    assert proxy_factors(letterboxed).picture == pytest.approx(0.75)
    # clarity is monotone: a softer clip scores lower
    assert proxy_factors({**base, "sharpness": 0.3}).sharp < proxy_factors(base).sharp
    with pytest.raises(ValueError, match="text-detection"):
        proxy_quality({**base, "text_ratio": None})


# ---------------------------------------------------------------- the stage on real rows
@pytest.fixture(scope="module")
def analysed_row(sample_corpus):
    """v06_coffee.mp4 (handheld, blur, pan, frozen) after video analysis and text detection."""
    config = load_curation_config().model_dump(mode="json")
    analysis, text = VideoAnalysisStage(config), TextDetectionStage(config)
    analysis.setup()
    text.setup()
    row = analysis.process_row(new_video_row(str(Path(sample_corpus) / "v06_coffee.mp4")))
    return text.process_row(row)


def test_stage_proxy_fills_quality_on_a_real_row(analysed_row):
    config = load_curation_config().model_dump(mode="json")
    stage = QualityStage(config)
    stage.setup()
    out = stage.process_row(analysed_row)
    assert set(out) == set(analysed_row)
    assert out["frames"] == analysed_row["frames"]
    clips = [c for c in loads(out["clips_json"]) if c["status"] == "ok"]
    assert len(clips) == 4
    for clip in clips:
        assert clip["quality_backend"] == "proxy-v1"
        assert 0.0 <= clip["quality"] <= 1.0
        assert clip["quality"] == proxy_quality(clip)
    handheld, blur, pan, frozen = (c["quality"] for c in clips)
    assert max(blur, frozen) < 0.2 < min(handheld, pan)


def test_stage_runs_as_a_ray_data_stage(ray_session, analysed_row):
    from vidloom.pipelines.ray_data import apply_stage
    from vidloom.pipelines.stage import StageResources

    config = load_curation_config().model_dump(mode="json")
    ds = ray_session.data.from_items([analysed_row])
    ds = apply_stage(ds, QualityStage, {"config": config}, StageResources(num_cpus=1, max_workers=1))
    (row,) = ds.take_all()
    clips = [c for c in loads(row["clips_json"]) if c["status"] == "ok"]
    assert [c["quality"] for c in clips] == [proxy_quality(c) for c in clips]


def test_dover_backend_without_checkpoint_fails_at_setup_naming_the_setting(tmp_path):
    for value in (None, str(tmp_path / "nowhere" / "DOVER.pth"), str(tmp_path)):
        config = load_curation_config().model_dump(mode="json")
        config["quality"] = {"backend": "dover", "dover_checkpoint": value}
        with pytest.raises(MissingWeightsError, match=CHECKPOINT_SETTING.replace(".", r"\.")):
            check_quality_weights(config["quality"])  # what the driver can run before any work
        stage = QualityStage(config)
        with pytest.raises(MissingWeightsError, match=CHECKPOINT_SETTING.replace(".", r"\.")):
            stage.setup()
    check_quality_weights({})  # the offline default needs no weights


# ---------------------------------------------------------------- DOVER model and loader
@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread, as a Ray worker with num_cpus=1 gets (OMP_NUM_THREADS=1): the tiny
    test views are bound by thread hand-offs, which cost 10x on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _layout() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return DOVER().state_dict()


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random DOVER state dict in the official key layout (index buffers kept exact)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in _layout().items():
        if tensor.is_floating_point():
            state[key] = torch.randn(tensor.shape, generator=gen) * 0.02
            if key.endswith("gamma"):  # layer scale: let the blocks contribute
                state[key] = state[key].abs() + 0.1
            if "norm" in key and key.endswith("weight"):
                state[key] = state[key] + 1.0
        else:
            state[key] = tensor.clone()
    return state


@pytest.fixture(scope="module")
def dover_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """DOVER.pth as the official file is: a bare state dict saved with torch.save."""
    state = _random_state()
    path = tmp_path_factory.mktemp("dover") / "DOVER.pth"
    torch.save(state, path)
    return path, state


def _frames(seed: int = 0, shape=(256, 455, 3), count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def test_dover_state_dict_has_the_official_layout():
    layout = _layout()
    # counts and shapes of DOVER.pth (DOVER(**dover.yml["model"]["args"]).state_dict())
    assert len(layout) == 381
    assert sum(v.numel() for k, v in layout.items() if "relative_position_index" not in k) == 56_218_302
    expected = {
        "technical_backbone.patch_embed.proj.weight": (96, 3, 2, 4, 4),
        "technical_backbone.layers.0.blocks.1.attn.relative_position_bias_table": (15 * 13 * 13, 3),
        "technical_backbone.layers.2.blocks.5.attn.fragment_position_bias_table": (15 * 13 * 13, 12),
        "technical_backbone.layers.0.blocks.0.attn.relative_position_index": (392, 392),
        "technical_backbone.layers.0.downsample.reduction.weight": (192, 384),
        "technical_backbone.layers.3.blocks.1.mlp.fc2.weight": (768, 3072),
        "technical_backbone.norm.weight": (768,),
        "aesthetic_backbone.downsample_layers.0.0.weight": (96, 3, 2, 4, 4),
        "aesthetic_backbone.downsample_layers.3.1.weight": (768, 384, 1, 2, 2),
        "aesthetic_backbone.stages.0.0.dwconv.weight": (96, 1, 1, 7, 7),
        "aesthetic_backbone.stages.0.1.dwconv.weight": (96, 1, 3, 7, 7),
        "aesthetic_backbone.stages.2.8.gamma": (384,),
        "technical_head.fc_hid.weight": (64, 768, 1, 1, 1),
        "aesthetic_head.fc_last.weight": (1, 64, 1, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(layout[key].shape) == shape, key
    # the last Swin stage has no fragment table
    assert not any(k.startswith("technical_backbone.layers.3.") and "fragment" in k for k in layout)


def test_dover_loads_the_official_file_layout_and_scores_deterministically(dover_checkpoint):
    path, state = dover_checkpoint
    model, digest = load_dover(str(path))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    scorer = DoverScorer(model, digest, **SMALL_VIEWS)
    frames = _frames()
    first = scorer.score(frames)
    again = DoverScorer(load_dover(str(path))[0], digest, **SMALL_VIEWS).score(frames)
    assert first == again
    values = [first.technical_raw, first.aesthetic_raw, first.technical, first.aesthetic, first.overall]
    assert all(math.isfinite(v) for v in values)
    assert all(0.0 < v < 1.0 for v in values[2:])
    assert scorer.backend == f"dover-stills:{digest}"
    # the technical branch sees pixels: different frames, different scores
    assert scorer.score(_frames(seed=1)).technical_raw != first.technical_raw


def test_dover_accepts_the_fine_tuning_scripts_wrapped_layout(dover_checkpoint):
    _, state = dover_checkpoint
    wrapped = {"state_dict": state, "validation_results": [0.9, 0.88, 0.7, 0.3]}
    with torch.device("meta"):
        model = DOVER()
    load_dover_state(model, unwrap_state_dict(wrapped), assign=True)
    assert torch.equal(model.technical_head.fc_hid.weight, state["technical_head.fc_hid.weight"])


def test_dover_key_mismatches_fail_loudly(tmp_path, dover_checkpoint):
    _, state = dover_checkpoint
    with torch.device("meta"):
        model = DOVER()
    missing = {k: v for k, v in state.items() if k != "aesthetic_head.fc_last.bias"}
    with pytest.raises(DoverCheckpointError, match=r"missing: aesthetic_head\.fc_last\.bias"):
        load_dover_state(model, missing)
    renamed = {f"module.{k}": v for k, v in state.items()}  # a DataParallel-style prefix
    with pytest.raises(DoverCheckpointError, match=r"unexpected: module\..*\(381 in all\)"):
        load_dover_state(model, renamed)
    wrong = dict(state)
    wrong["technical_head.fc_hid.weight"] = torch.zeros(32, 768, 1, 1, 1)
    with pytest.raises(DoverCheckpointError, match=r"wrong shape: technical_head\.fc_hid\.weight"):
        load_dover_state(model, wrong)
    head_only = {k: v for k, v in state.items() if "head" in k}  # DOVER's head-only fine-tune files
    path = tmp_path / "DOVER.pth"
    torch.save(head_only, path)
    with pytest.raises(DoverCheckpointError, match="missing: aesthetic_backbone"):
        load_dover(str(path))
    torch.save([1, 2, 3], path)
    with pytest.raises(DoverCheckpointError, match="not a DOVER state dict"):
        load_dover(str(path))


def test_stage_dover_backend_on_a_real_row(dover_checkpoint, analysed_row):
    path, _ = dover_checkpoint
    config = load_curation_config().model_dump(mode="json")
    # one technical segment per clip keeps this CPU test short; segments are tested above
    views = {**SMALL_VIEWS, "technical_clips": 1}
    config["quality"] = {"backend": "dover", "dover_checkpoint": str(path.parent), "device": "cpu", **views}
    stage = QualityStage(config)
    stage.setup()
    out = stage.process_row(analysed_row)
    clips = [c for c in loads(out["clips_json"]) if c["status"] == "ok"]
    assert len(clips) == 4
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    for clip in clips:
        assert clip["quality_backend"] == f"dover-stills:{digest}"
        for key in ("quality", "quality_technical", "quality_aesthetic"):
            assert 0.0 < clip[key] < 1.0


# ---------------------------------------------------------------- views and fusion
def test_fragment_mosaic_takes_cell_centres():
    h, w = 256, 455
    ys, xs = np.mgrid[0:h, 0:w]
    frame = np.stack([ys % 256, xs % 256, xs // 256], axis=-1).astype(np.uint8)  # pixel = its position
    mosaic = fragment_mosaic(frame, fragment_size=32).numpy()
    assert mosaic.shape == (3, 224, 224)
    cell_h, cell_w = h // 7, w // 7  # 36, 65
    for i in range(7):
        for j in range(7):
            y = min(cell_h * i, h - 32) + (cell_h - 32) // 2
            x = min(cell_w * j, w - 32) + (cell_w - 32) // 2
            assert mosaic[0, 32 * i, 32 * j] == y % 256
            assert mosaic[1, 32 * i, 32 * j] + 256 * mosaic[2, 32 * i, 32 * j] == x
    # frames smaller than the 224 px mosaic are upscaled first, as DOVER does
    assert fragment_mosaic(frame[:120, :200]).shape == (3, 224, 224)


def test_views_shapes_and_time_order():
    frames = [np.full((256, 455, 3), 40 * k, np.uint8) for k in range(4)]
    tech = technical_view(frames, clips=3, clip_len=8, fragment_size=8)
    assert tech.shape == (3, 3, 8, 56, 56)
    aes = aesthetic_view(frames, clip_len=8, size=64)
    assert aes.shape == (1, 3, 8, 64, 64)
    # each shipped frame holds an equal, time-ordered share of the aesthetic slots
    levels = aes[0, 0, :, 0, 0] * 58.395 + 123.675
    assert torch.allclose(levels, torch.tensor([0, 0, 40, 40, 80, 80, 120, 120], dtype=torch.float32), atol=1e-3)


def test_fusion_follows_dover():
    mid = fuse(0.1107, -0.08285)  # the standardisation means: every score is 0.5
    assert mid.technical == pytest.approx(0.5) and mid.aesthetic == pytest.approx(0.5)
    assert mid.overall == pytest.approx(0.5)
    better_tech = fuse(0.1107 + 0.07355, -0.08285)
    better_aes = fuse(0.1107, -0.08285 + 0.03774)
    # one standard deviation of the technical score moves the fused score more (0.6104 vs 0.3896)
    assert better_tech.overall == pytest.approx(1 / (1 + math.exp(-0.6104)))
    assert better_aes.overall == pytest.approx(1 / (1 + math.exp(-0.3896)))
