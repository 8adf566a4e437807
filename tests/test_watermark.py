"""Watermark / logo detection: the persistence check on the sample corpus's planted logo (through
Ray, after the real analysis stage), the synthetic YOLO dataset, an offline 1-epoch training run
of `vidloom train-watermark-detector`, the YOLO backend on its weights, and missing weights."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

from vidloom.pipelines.curation.rows import loads
from vidloom.pipelines.samples.overlays import Logo

# The logo video, plus clean videos with static shots (v00, v05 portrait, v07 pillarboxed).
FILES = ("v02_chelsea_logo.mp4", "v00_astronaut.mp4", "v05_portrait.mp4", "v07_chelsea_4x3.mp4")


@pytest.fixture(scope="module")
def analysed(ray_session, sample_corpus):
    """Rows after the real analysis stage and the persistence watermark check on Ray."""
    import ray

    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.pipelines.curation.rows import new_video_row
    from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
    from vidloom.pipelines.curation.stages.watermark import WatermarkStage
    from vidloom.pipelines.ray_data import apply_stage
    from vidloom.pipelines.stage import StageResources

    cfg = load_curation_config(None, ["watermark.backend=persistence"]).model_dump(mode="json")
    one = StageResources(num_cpus=1, batch_size=1, min_workers=1, max_workers=2)
    ds = ray.data.from_items([new_video_row(str(sample_corpus / f)) for f in FILES], override_num_blocks=len(FILES))
    ds = apply_stage(ds, VideoAnalysisStage, {"config": cfg}, one)
    ds = apply_stage(ds, WatermarkStage, {"config": cfg}, one)
    return {Path(r["source"]).name: r for r in ds.iter_rows()}


def _labelled(analysed, sample_corpus):
    """(file, truth shot, clip) for every ok clip of the analysed videos."""
    truth = {v["file"]: v for v in json.loads((sample_corpus / "truth.json").read_text())["videos"]}
    out = []
    for name, row in analysed.items():
        for clip in loads(row["clips_json"]):
            if clip["status"] != "ok":
                continue
            shot = next(s for s in truth[name]["shots"] if s["start_frame"] - 1 <= clip["start_frame"] < s["end_frame"])
            out.append((name, shot, clip))
    return out


def test_persistence_separates_logo_shots_from_clean_ones(analysed, sample_corpus):
    labelled = _labelled(analysed, sample_corpus)
    logo = [c["watermark_score"] for _, s, c in labelled if "logo" in s["defects"]]
    # Subtitles and titles are fixed overlays too; a clip judged alone may flag them in a
    # corner (the portrait video's subtitle spans its narrow width), so they are not "clean".
    clean = [c["watermark_score"] for _, s, c in labelled if not {"logo", "subtitles", "title"} & set(s["defects"])]
    static_clean = [c["watermark_score"] for _, s, c in labelled
                    if "logo" not in s["defects"] and s["camera_motion"] == "static shot"]
    static_logo = [c["watermark_score"] for _, s, c in labelled
                   if "logo" in s["defects"] and s["camera_motion"] == "static shot"]
    assert len(logo) == 4 and len(static_logo) == 1 and len(static_clean) >= 3
    assert min(logo) >= 0.5, logo
    assert max(clean) <= 0.25, clean
    assert min(logo) > 2 * max(clean)
    assert all(c["watermark_backend"] == "persistence-v3" for _, _, c in labelled)
    assert all(0.0 <= c["watermark_score"] <= 1.0 for _, _, c in labelled)


def test_persistence_boxes_cover_the_top_right_logo(analysed, sample_corpus):
    x0, y0, x1, y1 = Logo(480, 270).box  # where the corpus drew it, in display pixels
    for name, shot, clip in _labelled(analysed, sample_corpus):
        if "logo" not in shot["defects"]:
            if not {"subtitles", "title"} & set(shot["defects"]):
                assert clip["watermark_boxes"] == [], (name, clip["watermark_boxes"])
            continue
        boxes = clip["watermark_boxes"]
        assert len(boxes) == 1, boxes
        bx0, by0, bx1, by1 = boxes[0]
        assert bx0 >= 240 and by1 <= 135, boxes  # top-right quadrant of 480x270
        # On the logo (a few px of slack for the smoothing), covering most of it: the orange
        # disc over the orange cat has little contrast, so the text part may be all there is.
        assert bx0 >= x0 - 4 and by0 >= y0 - 4 and bx1 <= x1 + 4 and by1 <= y1 + 4, (boxes, (x0, y0, x1, y1))
        inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
        assert inter / ((x1 - x0) * (y1 - y0)) >= 0.5, (boxes, (x0, y0, x1, y1))


def test_static_video_gives_no_evidence():
    """A static camera makes everything persistent: the check must not call that a watermark."""
    from skimage import data

    from vidloom.pipelines.curation.watermark.persistence import persistence_scores

    photo = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256 x 256, edges everywhere
    rng = np.random.default_rng(0)
    noisy = [np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    result = persistence_scores({0: noisy[:4], 1: noisy[4:]})
    assert all(r.score == 0.0 and r.boxes == [] for r in result.values())


def _camera(photo: np.ndarray, motion: str, frames: int = 4, size: tuple[int, int] = (456, 256)) -> list[np.ndarray]:
    """Frames of a virtual camera over a real photograph (>= 512 px square): a pan (45 px a
    frame) or a zoom out (15 % a frame)."""
    import cv2

    w, h = size
    out = []
    for i in range(frames):
        grow = 1.0 if motion == "pan" else 1 + 0.15 * i
        cw, ch = int(300 * grow), int(300 * grow * h / w)
        x0, y0 = (20 + 30 * i, 60) if motion == "pan" else (256 - cw // 2, 256 - ch // 2)
        out.append(cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA))
    return out


def test_faint_mark_on_one_moving_shot_is_found_and_clean_shots_are_not():
    """A faint corner mark on one shot of three: it stays put while the camera pans under it.
    The other shots do not share it, so only the clip judged alone can find it; the same shot
    without the mark, and the other shots (a pan, a zoom), stay low."""
    from skimage import data

    from vidloom.pipelines.curation.watermark.persistence import persistence_scores
    from vidloom.pipelines.curation.watermark.synthetic import _text_layer, ttf_fonts

    clean = _camera(np.ascontiguousarray(data.astronaut()), "pan")  # real photographs
    others = [_camera(np.ascontiguousarray(data.coffee()), "pan"), _camera(np.ascontiguousarray(data.rocket()), "zoom")]
    alpha = (_text_layer("STOCK 24", 22, np.random.default_rng(1), ttf_fonts()).astype(np.float32) / 255.0 * 0.25)[..., None]
    marked = [f.copy() for f in clean]
    oh, ow = alpha.shape[:2]
    for f in marked:  # white at opacity 0.25, top right, the same pixels in every frame
        roi = f[12:12 + oh, 456 - 12 - ow:456 - 12].astype(np.float32)
        f[12:12 + oh, 456 - 12 - ow:456 - 12] = np.clip(roi * (1 - alpha) + 255.0 * alpha + 0.5, 0, 255)
    found = persistence_scores({0: marked, 1: others[0], 2: others[1]})
    assert found[0].score > 0.5, found
    assert len(found[0].boxes) == 1, found[0].boxes  # the two words are one mark
    x0, y0, x1, y1 = found[0].boxes[0]
    assert x0 >= 456 - 12 - ow - 8 and y1 <= 12 + oh + 4, found[0].boxes
    assert found[1].score < 0.3 and found[2].score < 0.3, found
    unmarked = persistence_scores({0: clean, 1: others[0], 2: others[1]})
    assert all(r.score < 0.3 for r in unmarked.values()), unmarked
    # What `both` asks of a detection on a moving clip: a box on the mark keeps its confidence;
    # the same box on the unmarked clip, and a box on the moving content, keep less than a third of it.
    mark_box = [456 - 12 - ow, 12, 456 - 12, 12 + oh]
    assert found[0].moved and found[0].detection_weight(mark_box) > 0.9, found[0].detection_weight(mark_box)
    assert unmarked[0].detection_weight(mark_box) < 0.4, unmarked[0].detection_weight(mark_box)
    assert found[0].detection_weight([180, 60, 280, 160]) < 0.4  # the astronaut's face, panned
    # A detection on the mark and the check's own blob there are two witnesses of one mark: the
    # join is at least the noisy-OR of the weighed detection (weight > 0.9) and the blob's score,
    # above either alone. (The join's margin over the blob shrinks as the blob nears 1, so no
    # fixed margin is asked.)
    joined = found[0].detection_score(mark_box, 0.3)
    assert joined >= 1 - (1 - 0.3 * 0.9) * (1 - found[0].score) and joined > max(0.3, found[0].score), joined
    assert found[0].detection_score([180, 60, 280, 160], 0.3) < 0.15
    # A static clip proves nothing alone: the detector's confidence stands as it is.
    still = persistence_scores({0: [clean[0]] * 4, 1: others[0]})
    assert not still[0].moved and still[0].detection_weight(mark_box) == 1.0


def test_synthetic_generator_writes_a_valid_yolo_dataset(tmp_path):
    import cv2

    from vidloom.pipelines.curation.watermark.synthetic import write_yolo_dataset
    from vidloom.pipelines.curation.watermark.yolo import offline_ultralytics

    data_yaml = write_yolo_dataset(tmp_path / "ds", images=12, imgsz=160, seed=3)
    spec = yaml.safe_load(data_yaml.read_text())
    assert spec["names"] == {0: "watermark"} and spec["train"] == "images/train"
    images = sorted((tmp_path / "ds" / "images").rglob("*.jpg"))
    assert len(images) == 12 and len(list((tmp_path / "ds" / "images" / "val").glob("*.jpg"))) >= 2
    labelled = 0
    for img_path in images:
        img = cv2.imread(str(img_path))
        h, w = img.shape[:2]
        assert max(h, w) == 160
        label = img_path.parent.parent.parent / "labels" / img_path.parent.name / f"{img_path.stem}.txt"
        for line in label.read_text().splitlines():
            cls, cx, cy, bw, bh = line.split()
            cx, cy, bw, bh = map(float, (cx, cy, bw, bh))
            assert cls == "0" and 0 < bw <= 0.46 and 0 < bh < 0.5
            assert 0 <= cx - bw / 2 and cx + bw / 2 <= 1 and 0 <= cy - bh / 2 and cy + bh / 2 <= 1
            # corners and edges: the box reaches into the outer 15 % of some side
            assert min(cx - bw / 2, cy - bh / 2, 1 - cx - bw / 2, 1 - cy - bh / 2) <= 0.15
            labelled += 1
    assert labelled >= 8
    # Ultralytics' own dataset check accepts it (offline: nothing to fetch).
    offline_ultralytics()
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(data_yaml))
    assert checked["nc"] == 1 and checked["names"] == {0: "watermark"}
    # Same spec again: reused, not regenerated.
    before = images[0].stat().st_mtime_ns
    assert write_yolo_dataset(tmp_path / "ds", images=12, imgsz=160, seed=3) == data_yaml
    assert images[0].stat().st_mtime_ns == before


def test_overlay_fonts_are_the_same_on_every_machine_unless_folders_are_named(tmp_path):
    """The machine's own fonts (Debian's DejaVu, the Liberation set chromium brings) never enter
    the draw unasked: a seed makes the same overlays wherever matplotlib's pinned wheel is. A
    folder named with `fonts` adds its files, and a wrong folder is an error, not an empty set."""
    import shutil

    import matplotlib

    from vidloom.pipelines.curation.watermark.synthetic import random_overlay, ttf_fonts, write_yolo_dataset

    bundled = ttf_fonts()
    mpl = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    assert bundled and all(Path(f).parent == mpl for f in bundled), bundled
    assert not any("/usr/share/fonts" in f for f in bundled)
    (tmp_path / "fonts" / "sub").mkdir(parents=True)
    shutil.copyfile(bundled[0], tmp_path / "fonts" / "sub" / "ExtraFace.ttf")
    more = ttf_fonts([tmp_path / "fonts"])
    assert set(more) == set(bundled) | {str(tmp_path / "fonts" / "sub" / "ExtraFace.ttf")}
    with pytest.raises(FileNotFoundError, match="font folder not found"):
        ttf_fonts([tmp_path / "nope"])
    # The same seed, the same overlay, with the default fonts named or left out.
    a = random_overlay(np.random.default_rng(4), 640, 360)
    b = random_overlay(np.random.default_rng(4), 640, 360, fonts=bundled)
    assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.art, b.art)
    # A dataset records its font folders: other fonts, other images, so it is written again.
    data_yaml = write_yolo_dataset(tmp_path / "ds", images=4, imgsz=96, seed=1)
    assert yaml.safe_load(data_yaml.read_text())["vidloom_spec"]["fonts"] == []
    data_yaml = write_yolo_dataset(tmp_path / "ds", images=4, imgsz=96, seed=1, fonts=[tmp_path / "fonts"])
    assert yaml.safe_load(data_yaml.read_text())["vidloom_spec"]["fonts"] == [str((tmp_path / "fonts").resolve())]


def test_training_marks_can_be_faint_and_frames_degraded_like_decoded_video():
    import numpy as np

    from vidloom.pipelines.curation.watermark.synthetic import degrade, random_overlay, synth_image

    # Faint marks: opacity 0.2-0.4 when asked for, 0.2-0.8 otherwise (the evaluation's draw).
    faint = [random_overlay(np.random.default_rng(s), 456, 256, faint_share=1.0).alpha.max() for s in range(20)]
    usual = [random_overlay(np.random.default_rng(s), 456, 256).alpha.max() for s in range(20)]
    assert max(faint) <= 0.4 + 1e-6 and min(faint) >= 0.2 * 0.9
    assert max(usual) > 0.5
    # Degraded: same size, softer (less fine detail), and not a copy of the sharp image.
    sharp, boxes = synth_image(np.random.default_rng(7), 448, empty_share=0.0)
    soft = degrade(sharp, np.random.default_rng(0))
    assert soft.shape == sharp.shape and soft.dtype == np.uint8
    def detail(img):
        return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())
    assert detail(soft) < 0.95 * detail(sharp)
    # With the share at 1 every image is degraded; the boxes stay those of the overlays.
    again, boxes_again = synth_image(np.random.default_rng(7), 448, empty_share=0.0, degrade_share=1.0)
    assert boxes_again == boxes and boxes and not np.array_equal(again, sharp)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One offline 1-epoch run of the training job on 8 images at 160 px; network calls recorded."""
    from vidloom.jobs.train_watermark_detector import main

    out = tmp_path_factory.mktemp("wm_train")
    attempts: list[str] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address, *a, **k):
        # Local sockets (Ray, torch's local IPC) are fine; anything else is a fetch attempt.
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(f"connect {address}")
            raise OSError("network disabled by the test")
        return real_connect(self, address, *a, **k)

    def getaddrinfo(host, *a, **k):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            attempts.append(f"resolve {host}")
            raise socket.gaierror("network disabled by the test")
        return real_getaddrinfo(host, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        args = ["--out", str(out), "--images", "8", "--epochs", "1", "--imgsz", "160", "--batch", "4"]
        rc = main(args)
        rc_again = main(args)  # resume: finished run, dataset reused
    finally:
        mp.undo()
    return {"out": out, "rc": (rc, rc_again), "attempts": attempts}


def test_training_job_runs_offline_and_writes_weights_and_metrics(trained):
    out = trained["out"]
    assert trained["rc"] == (0, 0)
    assert trained["attempts"] == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["precision"] <= 1.0 and 0.0 <= metrics["recall"] <= 1.0
    assert metrics["dataset"]["train"] == 6 and metrics["dataset"]["val"] == 2
    assert (out / "watermark_yolo.pt").stat().st_size > 100_000
    assert metrics["onnx"] == str(out / "watermark_yolo.onnx") and (out / "watermark_yolo.onnx").is_file()
    assert (out / "train" / "weights" / "last.pt").is_file()
    assert not list(out.rglob("*.png")), "plots must be off (they fetch a font)"


def test_yolo_backend_runs_on_clip_frames(trained, analysed):
    from vidloom.pipelines.curation.stages.watermark import WatermarkStage
    from vidloom.platform.weights import file_digest

    weights = trained["out"] / "watermark_yolo.onnx"
    stage = WatermarkStage({"watermark": {"backend": "yolo", "weights": str(weights)}})
    stage.setup()
    row = stage.process_row(analysed["v02_chelsea_logo.mp4"])
    clips = [c for c in loads(row["clips_json"]) if c["status"] == "ok"]
    assert len(clips) == 4
    for clip in clips:
        assert clip["watermark_backend"] == f"yolo:{file_digest(weights)}:int8"  # the default precision
        assert 0.0 <= clip["watermark_score"] <= 1.0
        for box in clip["watermark_boxes"]:
            assert len(box) == 4 and 0 <= box[0] <= box[2] <= 480 and 0 <= box[1] <= box[3] <= 270


def test_missing_weights_error_names_the_setting(tmp_path):
    from vidloom.pipelines.curation.stages.watermark import WatermarkStage
    from vidloom.platform.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=r"curation\.watermark\.weights"):
        WatermarkStage({"watermark": {"backend": "yolo", "weights": str(tmp_path / "absent.onnx")}})


def test_a_pickled_checkpoint_is_refused_before_any_worker_starts(trained):
    """An Ultralytics .pt is a pickle: the config names the setting and the command that makes
    the ONNX file, and that command writes one the stage loads."""
    from vidloom.jobs.train_watermark_detector import main
    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.platform.config import ConfigError

    pt = trained["out"] / "watermark_yolo.pt"
    with pytest.raises(ConfigError, match=r"curation\.watermark\.weights must be an ONNX file.*--export-onnx"):
        load_curation_config(None, ["watermark.backend=yolo", f"watermark.weights={pt}"])
    copy = trained["out"] / "copy" / "other.pt"
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(pt.read_bytes())
    assert main(["--export-onnx", str(copy), "--imgsz", "160"]) == 0
    load_curation_config(None, ["watermark.backend=yolo", f"watermark.weights={copy.with_suffix('.onnx')}"])


def test_fine_tuning_takes_a_small_learning_rate_without_warm_up(trained, tmp_path, capsys):
    """`--init` with `--lr0` and `--warmup-epochs 0`: AdamW at that rate from the first step (the
    run's own args.yaml says so), the init file's hash in metrics.json; bad values are refused
    before anything is written."""
    from vidloom.jobs.train_watermark_detector import main
    from vidloom.platform.weights import file_digest

    init = trained["out"] / "watermark_yolo.pt"
    out = tmp_path / "ft"
    assert main(["--out", str(out), "--lr0", "0", "--init", str(init)]) == 2
    assert main(["--out", str(out), "--warmup-epochs", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--lr0 must be in (0, 0.1], got 0.0" in err and "--warmup-epochs must be >= 0, got -1.0" in err
    assert not out.exists()
    args = ["--out", str(out), "--images", "8", "--epochs", "1", "--imgsz", "160", "--batch", "4",
            "--init", str(init), "--lr0", "0.0005", "--warmup-epochs", "0", "--seed", "1"]
    assert main(args) == 0
    run = yaml.safe_load((out / "train" / "args.yaml").read_text())
    assert (run["optimizer"], run["lr0"], run["warmup_epochs"]) == ("AdamW", 0.0005, 0.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init_sha256_12"] == file_digest(init)
    assert metrics["config"]["lr0"] == 0.0005 and metrics["config"]["warmup_epochs"] == 0.0


def test_onnx_runtime_matches_ultralytics_on_the_committed_checkpoint():
    """The stage's onnxruntime path (letterbox, decoding, NMS) gives Ultralytics' own boxes and
    confidences for the committed checkpoint, on real photographs with planted marks."""
    from vidloom.pipelines.curation.signals.clarity_calibration import held_out_images, read_rgb
    from vidloom.pipelines.curation.watermark.config import PACKAGED_WEIGHTS
    from vidloom.pipelines.curation.watermark.synthetic import place_overlay, random_overlay
    from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector, offline_ultralytics

    import cv2

    offline_ultralytics()
    from ultralytics import YOLO

    reference = YOLO(str(PACKAGED_WEIGHTS.with_suffix(".pt")), task="detect")
    ours = YoloWatermarkDetector(PACKAGED_WEIGHTS)
    rng = np.random.default_rng(5)
    compared = 0
    for path in held_out_images()[:6]:
        frame = cv2.resize(read_rgb(path), (640, 360), interpolation=cv2.INTER_AREA)
        place_overlay(frame, random_overlay(rng, 640, 360), "br", rng)
        got = sorted(ours.detect([frame], conf=0.05)[0], reverse=True)
        r = reference.predict([np.ascontiguousarray(frame[:, :, ::-1])], imgsz=320, conf=0.05, verbose=False)[0]
        want = sorted(zip(r.boxes.conf.numpy().tolist(), r.boxes.xyxy.numpy().tolist()), reverse=True)
        assert len(got) == len(want)
        for (c, box), (c_ref, box_ref) in zip(got, want):
            assert abs(c - c_ref) < 0.005
            assert np.abs(np.array(box) - np.array(box_ref)).max() < 1.0
            compared += 1
    assert compared >= 6


def test_int8_detector_is_made_once_per_machine_and_scores_like_fp32(tmp_path, monkeypatch):
    """The default precision: an int8 copy of the committed ONNX file, made in the cache on first
    use and reused after; on real photographs with planted marks, and on clean ones, its clip
    scores stay within 0.1 of the fp32 file's, and it ranks every marked clip above every clean one
    wherever fp32 does."""
    from vidloom.pipelines.curation.signals.clarity_calibration import held_out_images, read_rgb
    from vidloom.pipelines.curation.watermark.config import PACKAGED_WEIGHTS
    from vidloom.pipelines.curation.watermark.synthetic import place_overlay, random_overlay
    from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector

    import cv2

    monkeypatch.setenv("VIDLOOM_CACHE_DIR", str(tmp_path))
    fp32 = YoloWatermarkDetector(PACKAGED_WEIGHTS, imgsz=448)
    int8 = YoloWatermarkDetector(PACKAGED_WEIGHTS, imgsz=448, precision="int8")
    made = list((tmp_path / "watermark").glob("*.int8.*.onnx"))
    assert len(made) == 1 and int8.backend == fp32.backend + ":int8"
    stamp = made[0].stat().st_mtime_ns
    YoloWatermarkDetector(PACKAGED_WEIGHTS, imgsz=448, precision="int8")
    assert made[0].stat().st_mtime_ns == stamp  # reused, not made again
    rng = np.random.default_rng(11)
    scores = {"fp32": {True: [], False: []}, "int8": {True: [], False: []}}
    for path in held_out_images()[:8]:
        still = cv2.resize(read_rgb(path), (455, 256), interpolation=cv2.INTER_AREA)
        marked = still.copy()
        place_overlay(marked, random_overlay(rng, 455, 256), "tr", rng)
        for name, det in (("fp32", fp32), ("int8", int8)):
            scores[name][True].append(det.score_clip([marked, marked])[0])
            scores[name][False].append(det.score_clip([still, still])[0])
    for kind in (True, False):
        assert np.abs(np.subtract(scores["fp32"][kind], scores["int8"][kind])).max() < 0.1, scores
    if min(scores["fp32"][True]) > max(scores["fp32"][False]):
        assert min(scores["int8"][True]) > max(scores["int8"][False]), scores


def test_detector_counts_a_mark_that_stays_put_not_one_the_camera_pans_past():
    """The same mark on a panning shot: burned in after the camera (a watermark, at the same
    pixels on every frame) it scores as high as the detector is sure of it; painted on the
    scene (a sign the camera pans past) it scores as one frame of the two the stage shows the
    detector (the clip's first and last of four, 240 px apart)."""
    from vidloom.pipelines.curation.signals.clarity_calibration import held_out_images, read_rgb
    from vidloom.pipelines.curation.rows import evenly
    from vidloom.pipelines.curation.watermark.config import PACKAGED_WEIGHTS, WatermarkConfig
    from vidloom.pipelines.curation.watermark.synthetic import Overlay, place_overlay
    from vidloom.pipelines.curation.watermark.yolo import YoloWatermarkDetector

    import cv2

    mask = np.zeros((40, 190), np.uint8)
    cv2.putText(mask, "@vidloom", (4, 31), cv2.FONT_HERSHEY_DUPLEX, 1.1, 255, 2, cv2.LINE_AA)
    mark = Overlay(art=np.full((40, 190, 3), 255.0, np.float32), alpha=mask.astype(np.float32) / 255.0 * 0.8)
    scene = cv2.resize(read_rgb(held_out_images()[0]), (900, 360), interpolation=cv2.INTER_AREA)
    painted = scene.copy()
    place_overlay(painted, mark, "bc", np.random.default_rng(0))  # on the scene, bottom centre
    pan = [slice(x, x + 640) for x in (20, 100, 180, 260)]  # 80 px a frame to the left
    detector = YoloWatermarkDetector(PACKAGED_WEIGHTS)
    burned = []
    for cols in pan:
        frame = np.ascontiguousarray(scene[:, cols])
        place_overlay(frame, mark, "br", np.random.default_rng(0))
        burned.append(frame)
    on_scene = [np.ascontiguousarray(painted[:, cols]) for cols in pan]
    # The frames the stage gives the detector (`detector_frames`, first and last by default).
    shown = WatermarkConfig().detector_frames
    burned, on_scene = evenly(burned, shown), evenly(on_scene, shown)
    fixed_score, fixed_boxes = detector.score_clip(burned)
    best_frame = max((c for dets in detector.detect(on_scene, conf=0.05) for c, _ in dets), default=0.0)
    panned_score, panned_boxes = detector.score_clip(on_scene)
    assert fixed_score > 0.3 and fixed_boxes
    assert all(b[0] > 640 / 3 and b[1] > 360 * 0.75 for b in fixed_boxes)  # about the mark
    assert best_frame > 0.3  # the detector sees the painted mark in single frames ...
    assert panned_score <= best_frame / 2 and panned_boxes == []  # ... but it does not stay put
    assert fixed_score > panned_score  # a mark that stays put ranks above one the camera pans past


def test_committed_detector_flags_overlays_above_clean_clips(analysed, sample_corpus):
    """The weights committed under vidloom/models/weights/ are what `backend: yolo` loads when
    `watermark.weights` is unset; on the corpus each video with a planted overlay (corner logo,
    burned-in subtitles) has its best overlay clip above every clean clip."""
    from vidloom.pipelines.curation.stages.watermark import WatermarkStage
    from vidloom.pipelines.curation.watermark.config import PACKAGED_WEIGHTS
    from vidloom.platform.weights import file_digest

    assert PACKAGED_WEIGHTS.is_file() and PACKAGED_WEIGHTS.stat().st_size < 8_000_000
    stage = WatermarkStage({"watermark": {"backend": "yolo"}})
    stage.setup()
    truth = {v["file"]: v for v in json.loads((sample_corpus / "truth.json").read_text())["videos"]}
    overlay_best, clean = {}, []
    for name, row in analysed.items():
        for clip in loads(stage.process_row(dict(row))["clips_json"]):
            if clip["status"] != "ok":
                continue
            assert clip["watermark_backend"] == f"yolo:{file_digest(PACKAGED_WEIGHTS)}:int8"
            shot = next(s for s in truth[name]["shots"] if s["start_frame"] - 1 <= clip["start_frame"] < s["end_frame"])
            if {"logo", "subtitles", "title"} & set(shot["defects"]):
                overlay_best[name] = max(overlay_best.get(name, 0.0), clip["watermark_score"])
            else:
                clean.append(clip["watermark_score"])
    assert set(overlay_best) == {"v02_chelsea_logo.mp4", "v00_astronaut.mp4", "v05_portrait.mp4"}
    assert len(clean) >= 6
    assert min(overlay_best.values()) > max(clean), (overlay_best, clean)
