"""What the default tiers keep, end to end, on multi-shot videos over held-out real photographs.

    python -m vidloom.pipelines.holdout [--videos 24] [--seed 500] [--work DIR] [--json OUT]

The outcome a user sees after `vidloom curate` and `vidloom export` with the default config:
which clips each video tier keeps. Every video has three shots (640 x 360, 25 fps, 60 frames
a shot, the sample corpus's virtual camera: pan, tilt, zoom, handheld or static; the watermark
evaluation's format) over three different real photographs that neither the sample corpus, the
clarity calibration nor the watermark detector's training used (`held_out_images`; the
watermark evaluation's draws use them too, with other marks and camera paths). Each shot is
clean (half of them) or carries one planted defect:
- `text`: burned-in subtitles (the sample corpus's subtitle lines, changing every 1.2 s);
- `mark`: a random overlay from the watermark detector's generator (text, handles, URLs,
  shapes, logos; opacity 0.2-0.8) at a random corner, on this shot only;
- `blur`: the whole shot Gaussian-blurred, as the sample corpus's `blur` defect.

The videos go through the real pipeline on a local Ray (`run_curation`, every default stage),
and the tiers are the export's own selection (`select_all` on `clips.parquet`: what
`vidloom export` would cut). It prints, per tier, the clean clips kept (moving shots apart),
the planted defects kept out, and what removed the clean clips that were not kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from vidloom.pipelines.curation.signals.clarity_calibration import held_out_images, read_rgb
from vidloom.pipelines.curation.watermark.evaluation import CORNERS, FPS, HEIGHT, MOTIONS, SHOT_FRAMES, WIDTH
from vidloom.pipelines.curation.watermark.synthetic import place_overlay, random_overlay
from vidloom.pipelines.samples import corpus as C
from vidloom.pipelines.samples.render import encode_video, render_shot

KINDS = ("clean", "clean", "clean", "text", "mark", "blur")  # half clean, a sixth each defect
DEFECTS = {"clean": (), "text": ("subtitles",), "mark": (), "blur": ("blur",)}
SIGNALS = ("sharpness", "text_ratio", "watermark_score", "motion", "dup_of")  # kept per clip in --json


def render_holdout(out: Path, videos: int, seed: int) -> list[dict]:
    """Write the videos; per video its path and, per shot, its kind and its camera motion (`camera`)."""
    photos = [read_rgb(p) for p in held_out_images()]
    rng = np.random.default_rng(seed)
    truth = []
    for v in range(videos):
        picks = rng.choice(len(photos), size=3, replace=False)
        shots = [{"kind": KINDS[int(rng.integers(len(KINDS)))], "camera": MOTIONS[int(rng.integers(len(MOTIONS)))]}
                 for _ in range(3)]
        frames = []
        for s, shot in enumerate(shots):
            overlay, corner, place = None, None, None
            if shot["kind"] == "mark":
                overlay = random_overlay(rng, WIDTH, HEIGHT)
                corner, place = CORNERS[int(rng.integers(4))], int(rng.integers(1 << 31))
                if overlay.drawn_box() is None:  # a font without the glyphs: nothing drawn
                    shot["kind"], overlay = "clean", None
            spec = C.ShotSpec(f"held-out {picks[s]}", shot["camera"], SHOT_FRAMES, DEFECTS[shot["kind"]])
            for frame in render_shot(spec, WIDTH, HEIGHT, FPS, rng, photo=photos[picks[s]]):
                if overlay is not None:  # the same place on every frame of the shot
                    place_overlay(frame, overlay, corner, np.random.default_rng(place))
                frames.append(frame)
        path = out / f"holdout_{v:02d}.mp4"
        encode_video(path, frames, FPS, WIDTH, HEIGHT)
        truth.append({"path": str(path), "shots": shots})
    return truth


def score_tiers(truth: list[dict], rows: list[dict], selections: dict) -> dict:
    """Per clip its truth shot and the video tiers that keep it; the shares the module prints."""
    by_path = {Path(t["path"]).name: t for t in truth}
    video_tiers = [n for n, sel in selections.items() if sel.kind == "video"]
    clips = []
    for row in rows:
        t = by_path.get(Path(row["source"]).name)
        if t is None or row.get("status") != "ok":
            continue
        shot = min(2, (int(row["start_frame"]) + int(row["end_frame"])) // 2 // SHOT_FRAMES)
        kept = [n for n in video_tiers if selections[n].reasons.get(row["clip_id"], "absent") is None]
        clips.append({"clip_id": row["clip_id"], "video": Path(row["source"]).name, "shot": shot,
                      **t["shots"][shot], "tiers": kept, **{k: row.get(k) for k in SIGNALS},
                      "removed_by": {n: selections[n].reasons.get(row["clip_id"]) for n in video_tiers
                                     if n not in kept}})
    clean = [c for c in clips if c["kind"] == "clean"]
    moving = [c for c in clean if c["camera"] != C.STATIC]
    first = video_tiers[0] if video_tiers else None

    def share(items, test):
        return round(sum(map(test, items)) / len(items), 3) if items else float("nan")

    result = {"clips": len(clips), "kinds": dict(Counter(c["kind"] for c in clips)),
              "clean_kept_any_tier": share(clean, lambda c: bool(c["tiers"])),
              "clean_moving_kept_any_tier": share(moving, lambda c: bool(c["tiers"])),
              "clean_kept": {n: share(clean, lambda c, n=n: n in c["tiers"]) for n in video_tiers},
              "defects_out": {}, "clean_removed_by": {}, "rows": clips}
    bad = [c for c in clips if c["kind"] != "clean"]
    for n in video_tiers:
        result["defects_out"][n] = {"all": share(bad, lambda c, n=n: n not in c["tiers"]),
                                    **{k: share([c for c in bad if c["kind"] == k], lambda c, n=n: n not in c["tiers"])
                                       for k in ("text", "mark", "blur")}}
    if first:
        result["clean_removed_by"] = dict(Counter(str(c["removed_by"][first]).split(":")[0]
                                                  for c in clean if first in c["removed_by"]))
    return result


def evaluate(videos: int = 24, seed: int = 500, work: Path | None = None, num_cpus: int | None = None,
             tier_overrides: Sequence[str] = ()) -> dict:
    """Render, curate on a local Ray with the default config, select the default tiers (with
    `tier_overrides`, ``tiers.360p.watermark_score_max=0.5`` and the like, applied)."""
    import pyarrow.parquet as pq

    from vidloom.pipelines.curation.config import load_curation_config
    from vidloom.pipelines.curation.pipeline import run_curation
    from vidloom.pipelines.curation.progress import ray_output_to
    from vidloom.pipelines.export.query import load_balancer, select_all
    from vidloom.pipelines.export.tiers import load_export_config
    from vidloom.platform.ray_runtime import init_ray

    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        videos_dir, curated = Path(tmp) / "videos", Path(tmp) / "curated"
        videos_dir.mkdir()
        truth = render_holdout(videos_dir, videos, seed)
        (curated / "logs").mkdir(parents=True)
        with ray_output_to(curated / "logs" / "ray.log") as console:
            init_ray(num_cpus=num_cpus, log_to_driver=False)
            run_curation([str(videos_dir)], curated, load_curation_config(), display=console)
        rows = pq.read_table(curated / "manifest" / "clips.parquet").to_pylist()
        selections = select_all(load_export_config(None, tier_overrides), rows, load_balancer())
        result = score_tiers(truth, rows, selections)
    return {"videos": videos, "seed": seed, "tier_overrides": list(tier_overrides), **result}


def render_table(result: dict) -> str:
    lines = [f"{result['videos']} held-out videos (seed {result['seed']}): {result['clips']} ok clips "
             f"({', '.join(f'{k} {n}' for k, n in sorted(result['kinds'].items()))})",
             f"clean clips kept in at least one video tier: {result['clean_kept_any_tier']:.0%} "
             f"(moving shots: {result['clean_moving_kept_any_tier']:.0%})",
             "| tier | clean kept | defects kept out | text out | mark out | blur out |", "|---|---|---|---|---|---|"]
    for n, kept in result["clean_kept"].items():
        d = result["defects_out"][n]
        lines.append(f"| {n} | {kept:.0%} | {d['all']:.0%} | {d['text']:.0%} | {d['mark']:.0%} | {d['blur']:.0%} |")
    lines.append(f"clean clips the first tier removed, by filter: {result['clean_removed_by'] or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--seed", type=int, default=500)
    p.add_argument("--work", type=Path, help="folder for the videos and the curated run (default: the system's temp)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--json", type=Path, help="also write every clip's kind, motion, signals and tiers here")
    p.add_argument("--set", action="append", default=[], metavar="tiers.TIER.FIELD=VALUE",
                   help="export config override for the selection (repeatable), e.g. tiers.360p.watermark_score_max=0.5")
    args = p.parse_args(argv)
    result = evaluate(args.videos, args.seed, args.work, args.num_cpus, args.set)
    print(render_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
