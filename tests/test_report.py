"""The curation report (`vidloom report DIR`) on a real curated folder of the sample corpus:
before export (no funnel), after export (funnel, thresholds, drop reasons), and rendered in
headless Chromium (screenshot, console, requests, images)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidloom.jobs.report import main as report_main
from vidloom.pipelines.report import load_report_data
from vidloom.pipelines.report.browser import find_chromium, open_in_chromium
from vidloom.pipelines.report.data import SIGNALS
from vidloom.pipelines.report.render import SECTIONS

# Two video tiers for the funnel, with thresholds that split the sample corpus where its
# planted defects are: blurred shots have sharpness (clarity) < 0.1, frozen ones frame_diff < 0.05,
# subtitles and titles cover more than 1 % of the frame. Short samples (9 frames) keep the
# real export cheap.
TIERS = {
    "256p": dict(resolution=256, min_short_side=256, num_frames=9, fps=24, sharpness_min=0.25, frame_diff_min=0.2),
    "360p": dict(resolution=360, min_short_side=256, num_frames=9, fps=24, duration_min_s=2.5, sharpness_min=0.25,
                 frame_diff_min=0.2, text_ratio_max=0.01),
}


def _copy_curated(src: Path, dst: Path) -> Path:
    for name in ("manifest", "thumbs"):
        shutil.copytree(src / name, dst / name)
    for name in ("summary.json", "config.yaml"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst


def _shot_of(clip: dict, shots: list[dict]) -> int:
    overlap = [min(clip["end_frame"], s["end_frame"]) - max(clip["start_frame"], s["start_frame"]) for s in shots]
    return int(np.argmax(overlap))


def _fill_from_truth(out: Path, truth: dict) -> None:
    """TEST INPUT: dup_of, cluster_id and caption from the corpus's ground truth (the known
    duplicate files, the photo each shot shows, its true camera motion), for the columns whose
    stages may not have run; real values from those stages are replaced."""
    videos = {v["file"]: v for v in truth["videos"]}
    images = sorted({s["image"] for v in truth["videos"] for s in v["shots"]})
    path = out / "manifest" / "clips.parquet"
    table = pq.read_table(path)
    clips = table.to_pylist()
    by_key = {}
    for c in clips:
        v = videos.get(Path(c["source"]).name)
        if c["status"] == "ok" and v and v["shots"]:
            by_key[(v["file"], _shot_of(c, v["shots"]))] = c
    for c in clips:
        v = videos.get(Path(c["source"]).name)
        c["dup_of"] = c["cluster_id"] = c["caption"] = c["caption_backend"] = None
        if c["status"] != "ok" or not v or not v["shots"]:
            continue
        k = _shot_of(c, v["shots"])
        shot = v["shots"][k]
        if v["duplicate_of"]:
            original = by_key.get((v["duplicate_of"], k))
            c["dup_of"] = original["clip_id"] if original else None
        c["cluster_id"] = images.index(shot["image"])
        c["caption"] = json.dumps({
            "short_description": f"A photo of {shot['image']} filmed with a {shot['camera_motion']}.",
            "dense_description": f"Ground truth of {v['file']} shot {k}: {shot['image']}, defects "
                                 f"{', '.join(shot['defects']) or 'none'}.",
            "background": shot["image"], "style": "photograph", "lighting": "unknown", "atmosphere": "neutral",
            "camera_movement": shot["camera_motion"]})
        c["caption_backend"] = "truth.json (test input)"
    pq.write_table(pa.Table.from_pylist(clips, schema=table.schema), path)


def _real_export(out: Path) -> bool:
    """Run `vidloom export` (cutting real files) with TIERS; False if it is not installed."""
    try:
        from vidloom.pipelines.export import ExportConfig, TierConfig, run_export
    except ImportError:
        return False
    config = ExportConfig(encode={"preset": "ultrafast", "crf": 30},
                          tiers={name: TierConfig(**t) for name, t in TIERS.items()})
    run_export(out, config)
    return True


def _test_input_export(out: Path) -> None:
    """TEST INPUT, only when `vidloom export` is not installed: tiers/funnel.json, tiers.yaml
    and the `tiers` / `drop_reason` columns as docs/tiers.md specifies them, computed from the
    clips with TIERS (filters in the export's order, a tier's own thresholds before `parent`)."""
    path = out / "manifest" / "clips.parquet"
    clips = pq.read_table(path).to_pylist()
    order = ["status", "duplicate", "duration", "sharpness_min", "frame_diff_min", "text_ratio_max", "parent"]

    def first_failure(c: dict, t: dict, parent: set | None) -> str | None:
        if c["status"] != "ok":
            return "status"
        if c["dup_of"]:
            return "duplicate"
        checks = [("duration", c["duration_s"] < max(t.get("duration_min_s", 0.0), t["num_frames"] / t["fps"])),
                  ("sharpness_min", c["sharpness"] < t["sharpness_min"]),
                  ("frame_diff_min", c["frame_diff"] < t["frame_diff_min"]),
                  ("text_ratio_max", "text_ratio_max" in t and (c["text_ratio"] or 0.0) > t["text_ratio_max"]),
                  ("parent", parent is not None and c["clip_id"] not in parent)]
        return next((name for name, failed in checks if failed), None)

    funnel, parent = {}, None
    for c in clips:
        c["tiers"], c["drop_reason"] = [], {}
    for name, t in TIERS.items():
        removed = dict.fromkeys(order, 0)
        for c in clips:
            reason = first_failure(c, t, parent)
            c["drop_reason"][name] = reason
            if reason:
                removed[reason] += 1
            else:
                c["tiers"].append(name)
        kept = {c["clip_id"] for c in clips if name in c["tiers"]}
        funnel[name] = {"kind": "video", "candidates": len(clips), "kept": len(kept), "removed": removed,
                        "unknown": {}, "thresholds": t, "errors": {}}
        parent = kept
    for c in clips:
        c["drop_reason"] = json.dumps(c["drop_reason"])
    pq.write_table(pa.Table.from_pylist(clips), path)
    (out / "tiers").mkdir()
    (out / "tiers" / "funnel.json").write_text(json.dumps(funnel, indent=1))
    (out / "tiers" / "tiers.yaml").write_text(json.dumps({"tiers": TIERS}, indent=1))


@pytest.fixture(scope="module")
def before_export(curated, tmp_path_factory) -> Path:
    return _copy_curated(curated["out"], tmp_path_factory.mktemp("report_before"))


@pytest.fixture(scope="module")
def after_export(curated, sample_corpus, tmp_path_factory) -> Path:
    out = _copy_curated(curated["out"], tmp_path_factory.mktemp("report_after"))
    _fill_from_truth(out, json.loads((sample_corpus / "truth.json").read_text()))
    if not _real_export(out):
        _test_input_export(out)
    return out


def _html(out: Path) -> str:
    assert report_main([str(out)]) == 0
    page = out / "report" / "index.html"
    assert page.exists()
    return page.read_text()


def _assert_self_contained(html: str) -> None:
    attrs = re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', html)
    assert attrs
    assert all(a.startswith(("data:", "#")) for a in attrs), [a[:60] for a in attrs if not a.startswith(("data:", "#"))]
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_report_before_export(before_export, curated):
    html = _html(before_export)
    _assert_self_contained(html)
    for key, _ in SECTIONS:
        assert f'<section id="{key}">' in html
    assert "Run <code>vidloom export DIR</code>" in html
    # A column no stage filled says so; a measured one gets a histogram.
    ok = [c for c in curated["clips"] if c["status"] == "ok"]
    for column, title, _ in SIGNALS:
        computed = any(c.get(column) is not None for c in ok)
        assert (f"Not computed: <code>{column}</code>" in html) != computed, column
        assert (f'aria-label="Histogram of {title}"' in html) == computed, column
    # Every rejected input is listed with its reason.
    for v in curated["videos"]:
        if v["status"] != "ok":
            assert Path(v["source"]).name in html
            assert (v["error"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                    .replace('"', "&quot;").replace("'", "&#x27;")) in html
    assert "zero_bytes.mp4" in html and "too_short" in html
    # Camera-motion counts are those of the manifest.
    labels = {}
    for c in ok:
        labels[c["camera_motion"]] = labels.get(c["camera_motion"], 0) + 1
    data = load_report_data(before_export)
    assert {k: n for k, n, _ in data.camera_motion} == labels
    assert data.funnel is None
    assert (before_export / "report" / "index.html").stat().st_size < 3_000_000


def test_report_after_export(after_export):
    html = _html(after_export)
    _assert_self_contained(html)
    funnel = json.loads((after_export / "tiers" / "funnel.json").read_text())
    assert 'aria-label="Funnel: clips kept and removed by each filter at each tier"' in html
    assert "Run <code>vidloom export DIR</code>" not in html
    data = load_report_data(after_export)
    assert [t.name for t in data.funnel] == list(funnel)
    for t in data.funnel:
        raw = funnel[t.name]
        assert t.remaining()[-1] == raw["kept"] == t.kept
        assert f"{raw['kept']} kept" in html  # the chart's tier label
        for name, n in raw["removed"].items():
            if n:
                assert f"−{n}" in html
    # Thresholds on histograms: sharpness and text_ratio lines with their tier.
    sharp = next(s for s in data.signals if s.column == "sharpness")
    assert ("256p", 0.25, "min") in sharp.thresholds and "256p, 360p ≥ 0.25" in html
    text = next(s for s in data.signals if s.column == "text_ratio")
    assert ("360p", 0.01, "max") in text.thresholds and "360p ≤ 0.01" in html
    duration = next(s for s in data.signals if s.column == "duration_s")
    assert ("360p", 2.5, "min") in duration.thresholds
    # Drop groups: counts match the funnel, each card names the signal that dropped it.
    groups = {g.title: g for g in data.examples}
    first = funnel["256p"]["removed"]
    for name, n in first.items():
        if n and name != "status":  # clips that are not ok are shown by status instead
            title = f"Dropped at 256p by {name}"
            assert groups[title].count == n and 0 < len(groups[title].cards) <= 6
            assert title in html
    blur = groups["Dropped at 256p by sharpness_min"].cards
    assert all(re.fullmatch(r"dropped by sharpness_min: sharpness = [\d.e+-]+ \(needs ≥ 0.25\)", c.note) for c in blur)
    assert {"v06_coffee.mp4", "v08_camera.mp4"} <= {c.source_name for c in blur}  # the blurred shots
    subtitles = groups["Dropped at 360p by text_ratio_max"].cards
    assert "v00_astronaut.mp4" in {c.source_name for c in subtitles}
    kept = groups["Kept in every video tier (up to 360p)"]
    assert kept.count == funnel["360p"]["kept"] > 0
    # Near-duplicates: the motorcycle copies next to the original's clips.
    assert data.dedup_total is not None and data.dedup_total[1] >= 4
    assert {c.source_name for g in data.dedup_groups for c in g.duplicates} == {
        "v01_motorcycle_small.mp4", "v01_motorcycle_crop.mp4"}
    assert all(g.kept.source_name == "v01_motorcycle.mp4" for g in data.dedup_groups)
    assert 'aria-label="Cluster sizes"' in html and data.cluster_sizes
    assert "dense description:" in html and len(data.captions) == 10
    # Thumbnails are shrunk: every data URI image is small.
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert images and max(len(i) for i in images) < 40_000
    assert (after_export / "report" / "index.html").stat().st_size < 3_000_000


def test_report_renders_in_chromium(after_export, tmp_path):
    assert find_chromium() is not None, "Chromium not found: install Debian's `chromium` (see .ci/run)"
    page = after_export / "report" / "index.html"
    if not page.exists():
        assert report_main([str(after_export)]) == 0
    png = tmp_path / "report.png"
    result = open_in_chromium(page, png, width=1280, height=2000)
    assert result.problems() == []
    assert result.sections == [k for k, _ in SECTIONS]
    assert result.images >= 20 and result.svgs >= 8 and result.page_height > 2000
    assert png.exists() and png.stat().st_size > 10_000
    import cv2

    img = cv2.imread(str(png))
    assert img.shape[:2] == (2000, 1280)
    assert float(img.std()) > 20.0  # not a blank page
    # The first screen shows the header (dark band) and white section cards below it.
    assert img[:60].mean() < 100 and img[400:1200].mean() > 180


def test_report_without_manifest_fails_clearly(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "run `vidloom curate" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_browser_check_catches_what_a_reader_would_see(tmp_path):
    """The Chromium check is not vacuous: a script error, a request to the network and an
    image that does not decode are all reported."""
    assert find_chromium() is not None, "Chromium not found: install Debian's `chromium` (see .ci/run)"
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><section id="a">x</section>'
                    '<img src="data:image/jpeg;base64,AAAA" alt="broken">'
                    '<img src="http://127.0.0.1:9/x.png" alt="remote">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    result = open_in_chromium(page, tmp_path / "bad.png", width=640, height=480)
    assert "boom" in result.console_errors
    assert any("undefinedFunction" in e for e in result.console_errors)
    assert result.external_requests == ["http://127.0.0.1:9/x.png"]
    assert "broken" in result.broken_images and result.sections == ["a"]
    assert (tmp_path / "bad.png").stat().st_size > 0
