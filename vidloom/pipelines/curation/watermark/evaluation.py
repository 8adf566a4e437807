"""Precision and recall of the watermark scores on a held-out set of multi-shot videos.

    python -m vidloom.pipelines.curation.watermark.evaluation [--videos 48] [--seed 100] [--json OUT]

What the thresholds in `export/default_tiers.yaml` are checked on, and what no threshold or
detector was fitted to:
- backgrounds: real photographs that are neither the sample corpus's nor the detector's training
  photographs (scikit-learn's, matplotlib's and ultralytics' bundled images, two of
  scikit-image's not used for training; the clarity calibration's held-out list);
- marks: the detector's random overlay generator (text, `@handles`, URLs, shapes, logos; any
  colour, outlined or not, opacity 0.2-0.8) drawn from a stream of its own (`--seed`), at a
  random corner, on **one** shot of a three-shot video, as stock-footage marks and channel
  bugs appear; half the videos carry no mark;
- shots: the sample corpus's virtual camera (pan, tilt, zoom, handheld, static) over the photo,
  25 fps, H.264.

Each video goes through the default `video_analysis` stage once, then the watermark stage with
`backend: persistence`, `yolo`, `both` (the default) and `combined`. Per backend it prints the ROC AUC (marked vs clean clips), and precision and recall
at each tier's `watermark_score_max`, with the recall on static shots apart (a mark on a static
shot of a video whose other shots do not share it is invisible to persistence).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidloom.pipelines.curation.signals.clarity_calibration import auc, held_out_images, read_rgb
from vidloom.pipelines.curation.watermark.synthetic import Overlay, place_overlay, random_overlay
from vidloom.pipelines.samples import corpus as C
from vidloom.pipelines.samples.render import encode_video, render_shot

MOTIONS = (C.STATIC, C.PAN_LEFT, C.PAN_RIGHT, C.TILT_UP, C.TILT_DOWN, C.ZOOM_IN, C.ZOOM_OUT, C.HANDHELD)
CORNERS = ("tl", "tr", "bl", "br")
WIDTH, HEIGHT, FPS, SHOT_FRAMES = 640, 360, 25, 60
BACKENDS = ("persistence", "yolo", "both", "combined")  # each run as a real stage


def render_held_out(out: Path, videos: int, seed: int) -> list[dict]:
    """Write the videos; one truth entry per video: shots' motions and the marked shot (or None)."""
    photos = [read_rgb(p) for p in held_out_images()]
    rng = np.random.default_rng(seed)
    truth = []
    for v in range(videos):
        picks = rng.choice(len(photos), size=3, replace=False)
        motions = [MOTIONS[int(i)] for i in rng.integers(len(MOTIONS), size=3)]
        # Every other video is clean; the marked shot cycles through the three positions.
        marked = None if v % 2 else (v // 2) % 3
        overlay = random_overlay(rng, WIDTH, HEIGHT) if marked is not None else None
        if overlay is not None and overlay.drawn_box() is None:  # a font without the glyphs: nothing drawn
            marked = overlay = None  # a clean video (the stream of draws stays as it was)
        corner, place_seed = CORNERS[int(rng.integers(4))], int(rng.integers(1 << 31))
        frames, contrast = [], []
        covered = _covered(overlay) if overlay is not None else None
        for s in range(3):
            shot = C.ShotSpec(f"held-out {picks[s]}", motions[s], SHOT_FRAMES)
            for frame in render_shot(shot, WIDTH, HEIGHT, FPS, rng, photo=photos[picks[s]]):
                if s == marked:  # same margin on every frame: the mark does not move
                    before = frame.copy()
                    box = place_overlay(frame, overlay, corner, np.random.default_rng(place_seed))
                    contrast.append(mark_contrast(before, frame, covered, box))
                frames.append(frame)
        path = out / f"heldout_{v:02d}.mp4"
        encode_video(path, frames, FPS, WIDTH, HEIGHT)
        truth.append({"path": str(path), "motions": motions, "marked_shot": marked, "corner": corner,
                      "mark_contrast": float(np.mean(contrast)) if contrast else None})
    return truth


def _covered(overlay: Overlay) -> np.ndarray | None:
    """The pixels an overlay draws, cropped to their box (the box `place_overlay` returns);
    None when it draws nothing."""
    box = overlay.drawn_box()
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return overlay.drawn[y0:y1, x0:x1]


def mark_contrast(before: np.ndarray, after: np.ndarray, covered: np.ndarray | None,
                  box: Sequence[int] | None) -> float:
    """How visible a composited mark is in one frame: the mean change of grey level (0-255) it
    makes on the pixels it covers (`covered`, from `_covered`, at `box` as `place_overlay`
    returned it). A faint white mark over a bright sky changes a few levels; an opaque one over
    dark content, a hundred or more. A video's figure is the mean over the frames of its marked
    shot (the content under the mark changes as the camera moves)."""
    if box is None or covered is None:
        return 0.0
    x0, y0, x1, y1 = box
    grey = [cv2.cvtColor(np.ascontiguousarray(f[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
            for f in (before, after)]
    return float(np.abs(grey[1] - grey[0])[covered].mean())


def _auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    return auc(np.array([1] * len(pos) + [0] * len(neg)), np.array(pos + neg))


def _recall(marked: list[float], threshold: float) -> float:
    return sum(s > threshold for s in marked) / len(marked) if marked else float("nan")


def _pr(scores: list[tuple[float, bool, bool]], threshold: float) -> dict:
    """Precision/recall of `score > threshold` (the tier keeps score <= max: above = flagged);
    `scores` holds (score, marked, static shot) per clip."""
    tp = sum(s > threshold and m for s, m, _ in scores)
    fp = sum(s > threshold and not m for s, m, _ in scores)
    return {"threshold": threshold, "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": _recall([s for s, m, _ in scores if m], threshold),
            "recall_moving": _recall([s for s, m, st in scores if m and not st], threshold),
            "recall_static": _recall([s for s, m, st in scores if m and st], threshold),
            "false_positives": fp}


def evaluate(videos: int = 48, seed: int = 100, work: Path | None = None,
             overrides: Sequence[str] = (), backends: Sequence[str] = BACKENDS) -> dict:
    """Render the held-out videos and score their clips with each backend.

    `overrides` are curation config overrides (``section.field=value``) applied to the analysis
    and watermark stages alike."""
    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.pipelines.curation.rows import loads, new_video_row
    from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
    from vidloom.pipelines.curation.stages.watermark import WatermarkStage
    from vidloom.pipelines.export import load_export_config

    tiers = {name: t.watermark_score_max for name, t in load_export_config().tiers.items()
             if t.watermark_score_max is not None}
    analysis = VideoAnalysisStage(load_curation_config(None, list(overrides)).model_dump(mode="json"))
    analysis.setup()
    stages = {}
    for backend in backends:
        stages[backend] = WatermarkStage(load_curation_config(None, [*overrides, f"watermark.backend={backend}"])
                                         .model_dump(mode="json"))
        stages[backend].setup()
    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)  # a --work folder that does not exist yet
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        truth = render_held_out(Path(tmp), videos, seed)
        clips = []  # one dict per ok clip: video, shot, marked, static, motion and each backend's score
        for t in truth:
            row = analysis.process_row(new_video_row(t["path"]))
            scores = {b: {c["clip_id"]: c for c in loads(st.process_row(row)["clips_json"])}
                      for b, st in stages.items()}
            for clip in loads(row["clips_json"]):
                if clip["status"] != "ok":
                    continue
                # The shot by the clip's middle frame (a detector may split a shot in two).
                shot = min(2, (clip["start_frame"] + clip["end_frame"]) // 2 // SHOT_FRAMES)
                per = {b: float(scores[b][clip["clip_id"]]["watermark_score"]) for b in stages}
                if "combined" in scores:  # the detector was asked: the camera did not move
                    per["camera_moved"] = "yolo:" not in scores["combined"][clip["clip_id"]]["watermark_backend"]
                marked = shot == t["marked_shot"]
                clips.append({"video": Path(t["path"]).name, "shot": shot, "marked": marked,
                              "static": t["motions"][shot] == C.STATIC, "motion": t["motions"][shot],
                              "camera_motion": clip.get("camera_motion"),
                              "mark_contrast": round(t["mark_contrast"], 2) if marked else None, **per})
    result = {"videos": videos, "seed": seed, "overrides": list(overrides), "clips": len(clips),
              "marked": sum(c["marked"] for c in clips), "backends": {}, "rows": clips}
    for b in backends:
        scored = [(c[b], c["marked"], c["static"]) for c in clips]
        result["backends"][b] = {
            "auc": _auc([s for s, m, _ in scored if m], [s for s, m, _ in scored if not m]),
            "auc_moving": _auc([s for s, m, st in scored if m and not st], [s for s, m, _ in scored if not m]),
            "tiers": {name: _pr(scored, thr) for name, thr in tiers.items()}}
    return result


def render_table(result: dict) -> str:
    lines = [f"{result['videos']} held-out videos (seed {result['seed']}): {result['clips']} clips, "
             f"{result['marked']} marked", "| backend | AUC | AUC (moving marked shots) | tier | threshold | "
             "precision | recall | recall, moving | recall, static | false positives |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b, r in result["backends"].items():
        for name, pr in r["tiers"].items():
            lines.append(f"| {b} | {r['auc']:.3f} | {r['auc_moving']:.3f} | {name} | {pr['threshold']:g} | "
                         f"{pr['precision']:.2f} | {pr['recall']:.2f} | {pr['recall_moving']:.2f} | "
                         f"{pr['recall_static']:.2f} | {pr['false_positives']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=48)
    p.add_argument("--seed", type=int, default=100, help="of the held-out stream (docs/watermark.md's table: 100)")
    p.add_argument("--work", type=Path, help="folder for the rendered videos (default: the system's temp)")
    p.add_argument("--json", type=Path, help="also write every clip's scores here")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="curation config override for the analysis and watermark stages (repeatable), "
                   "e.g. watermark.weights=runs/watermark/watermark_yolo.onnx")
    p.add_argument("--backend", action="append", choices=BACKENDS,
                   help="backend to score (repeatable; default all four)")
    args = p.parse_args(argv)
    result = evaluate(args.videos, args.seed, args.work, args.set,
                      tuple(args.backend or BACKENDS))
    print(render_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
