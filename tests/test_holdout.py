"""The end-to-end hold-out (`python -m vidloom.pipelines.holdout`): multi-shot videos over
held-out real photographs with planted defects go through the real curation pipeline on Ray,
and the default tiers' own selection decides what is kept. Two videos here; docs/tiers.md has
the figures of the full draws."""

from __future__ import annotations

import json

from vidloom.pipelines.holdout import main


def test_default_tiers_keep_clean_moving_shots_and_keep_planted_defects_out(ray_session, tmp_path, capsys):
    out = tmp_path / "holdout.json"
    # Seed 3: a bold corner mark on a zoom out, burned-in subtitles on two static shots, a
    # blurred pan and clean pans.
    assert main(["--videos", "2", "--seed", "3", "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {(r["video"], r["shot"]) for r in rows} == {(f"holdout_0{v}.mp4", s) for v in (0, 1) for s in (0, 1, 2)}
    kinds = {r["kind"] for r in rows}
    assert kinds == {"clean", "mark", "text", "blur"}, kinds
    # The blurred shot fails the first tier's clarity threshold, so no tier has it.
    blurred = [r for r in rows if r["kind"] == "blur"]
    assert all(r["tiers"] == [] and r["removed_by"]["256p"] == "sharpness_min" for r in blurred), blurred
    # The corner mark is found and kept out by the watermark threshold.
    marked = [r for r in rows if r["kind"] == "mark"]
    assert all(r["watermark_score"] > 0.8 and r["removed_by"]["360p"] == "watermark_score_max" for r in marked), marked
    # Clean moving shots reach the 360p tier.
    clean = [r for r in rows if r["kind"] == "clean" and r["camera"] != "static shot"]
    assert any("360p" in r["tiers"] for r in clean), clean
    assert result["clean_kept"]["256p"] >= result["clean_kept"]["360p"]  # tiers nest
    # Nothing leaks from the hold-out's videos into the work folder: it is a temporary run.
    assert not any((tmp_path / "work").iterdir())
    printed = capsys.readouterr().out
    assert "clean clips kept in at least one video tier" in printed and "| 360p |" in printed
