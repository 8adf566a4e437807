"""`vidloom export` on the curated sample corpus: tiers as queries over clips.parquet, clip files
of the exact tier size and length, image sets, WebDataset shards, re-exporting without the
sources, resuming, and the tier-definition checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from vidloom.pipelines.export import ExportConfig, load_export_config, run_export
from vidloom.pipelines.export.buckets import bucket_size, centre_crop, choose_bucket, picture_box
from vidloom.pipelines.export.query import ConceptsUnavailableError, load_balancer, select_all
from vidloom.platform.config import ConfigError

def _every_tier(key: str, value: str) -> list[str]:
    return [f"tiers.{n}.{key}={value}" for n in ("256p", "360p", "540p", "720p", "sft")]


# Fast encoder settings, small shards, and no concept resampling: on a 38-clip corpus with a
# handful of concepts a per-concept cap would decide tier membership more than the signals
# these tests are about (resampling has its own test below).
FAST = ["encode.preset=ultrafast", "encode.crf=23", "run.shard_max_bytes=1500000",
        *_every_tier("concepts.max_share", "null")]


def _truth(corpus: Path) -> dict:
    return json.loads((corpus / "truth.json").read_text())


def _manifest(d: Path, tier: str) -> list[dict]:
    return pq.read_table(d / "tiers" / tier / "manifest.parquet").to_pylist()


def _decode(path: Path) -> tuple[list[np.ndarray], av.VideoStream]:
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(stream)]
        return frames, (stream.codec_context.width, stream.codec_context.height, float(stream.average_rate))


def _shot_of(truth: dict, clip: dict) -> dict | None:
    name = Path(clip["source"]).name
    for video in truth["videos"]:
        if video["file"] == name:
            for shot in video["shots"]:
                if shot["start_frame"] - 1 <= clip["start_frame"] and clip["end_frame"] <= shot["end_frame"] + 1:
                    return shot
    return None


def _curated_copy(curated, sample_corpus, root: Path, names: set[str] | None = None, broken: str | None = None) -> tuple[Path, Path, pa.Table]:
    """A curated folder with the sample corpus's clips (of the files `names`, default all),
    its sources copied into `root/sources` (`broken` overwritten with garbage after curation)."""
    sources = root / "sources"
    sources.mkdir()
    table = pq.read_table(curated["out"] / "manifest" / "clips.parquet")
    keep = [Path(s).parent == sample_corpus and (names is None or Path(s).name in names)
            for s in table.column("source").to_pylist()]
    table = table.filter(pa.array(keep))
    moved = []
    for src in table.column("source").to_pylist():
        dst = sources / Path(src).name
        if not dst.exists():
            shutil.copyfile(src, dst)
        moved.append(str(dst))
    table = table.set_column(table.schema.get_field_index("source"), "source", pa.array(moved))
    if broken:
        (sources / broken).write_bytes(b"not a video any more")
    out = root / "cur"
    (out / "manifest").mkdir(parents=True)
    pq.write_table(table, out / "manifest" / "clips.parquet")
    return out, sources, table


@pytest.fixture(scope="module")
def exported(curated, sample_corpus, tmp_path_factory):
    """The sample corpus's curated folder (sources copied beside it) exported with the
    default tiers (fast encoder settings, small shards)."""
    out, sources, table = _curated_copy(curated, Path(sample_corpus), tmp_path_factory.mktemp("export"))
    config = load_export_config(None, FAST)
    summary = run_export(out, config)
    return {"out": out, "sources": sources, "summary": summary, "config": config,
            "clips_before": table, "truth": _truth(sample_corpus)}


def test_clips_have_the_exact_frames_size_and_rate_of_their_tier(exported):
    out, config = exported["out"], exported["config"]
    checked = 0
    for name, tier in config.tiers.items():
        rows = _manifest(out, name)
        assert rows, f"tier {name} is empty on the sample corpus"
        for row in rows:
            frames, (w, h, fps) = _decode(out / "tiers" / name / row["path"])
            assert len(frames) == tier.num_frames == row["num_frames"] == len(row["source_frames"])
            assert (w, h) == (row["width"], row["height"]) and frames[0].shape == (h, w, 3)
            assert fps == pytest.approx(tier.fps) and row["fps"] == tier.fps
            assert w % 16 == 0 and h % 16 == 0 and min(w, h) == bucket_size(tier.resolution, 1, 1)[0]
            ratio = dict((b, (rw, rh)) for b, rw, rh in config.bucket_ratios())[row["aspect_bucket"]]
            assert (w, h) == bucket_size(tier.resolution, *ratio)
            checked += 1
    assert checked >= 40
    # every source with a clip in any tier or image set was decoded once, all tiers together
    sources = {r["source"] for n in [*config.tiers, *config.image_sets] for r in _manifest(out, n)}
    assert exported["summary"].sources_decoded == len(sources) and exported["summary"].errors == 0
    # the sample corpus's geometries land in the buckets the docs promise
    buckets = {Path(r["source"]).name: r["aspect_bucket"] for r in _manifest(out, "256p")}
    assert buckets["v00_astronaut.mp4"] == "16:9" and buckets["v05_portrait.mp4"] == "9:16"
    assert buckets["v03_rocket_film.mkv"] == "16:9"  # 640x272 inside the bars


def test_frames_are_taken_by_presentation_time_from_the_clearest_frame(exported):
    out = exported["out"]
    for tier in ("256p", "540p"):
        for row in _manifest(out, tier):
            src_fps = 30.0 if "portrait" in row["source"] else (24.0 if "v06" in row["source"] else 25.0)
            first = row["source_frames"][0]
            assert row["start_frame"] <= first <= row["best_start_frame"]
            assert row["source_frames"][-1] < row["end_frame"]
            # output frame k shows the source frame on screen at t0 + k/24 (constant-rate sources)
            t0 = row["source_start_s"]
            assert first / src_fps - 1e-6 <= t0 < (first + 1) / src_fps
            expected = [int(np.floor((t0 + k / 24.0) * src_fps + 1e-6)) for k in range(row["num_frames"])]
            assert row["source_frames"] == expected
            if row["end_frame"] - row["best_start_frame"] >= row["num_frames"] / 24.0 * src_fps + 1:
                assert first == row["best_start_frame"] and t0 == pytest.approx(first / src_fps)
    # 49 frames at 24 fps do not fit after v04's zoom-out clearest frame: the start moved back
    (row,) = _manifest(out, "540p")
    assert row["source_frames"][0] < row["best_start_frame"]


def test_exported_pixels_are_the_source_frames_cropped_and_scaled(exported):
    out = exported["out"]
    for tier, name in (("256p", "v03_rocket_film.mkv"), ("360p", "v05_portrait.mp4"), ("720p", "v04_coffee_hd.mp4")):
        row = next(r for r in _manifest(out, tier) if Path(r["source"]).name == name)
        with av.open(row["source"]) as f:
            want = {i: fr.to_ndarray(format="rgb24") for i, fr in enumerate(f.decode(video=0)) if i in set(row["source_frames"])}
        got, _ = _decode(out / "tiers" / tier / row["path"])
        x0, y0, x1, y1 = row["crop"]
        for k in (0, len(got) // 2, len(got) - 1):
            ref = cv2.resize(want[row["source_frames"][k]][y0:y1, x0:x1], (row["width"], row["height"]), interpolation=cv2.INTER_AREA)
            mse = np.mean((ref.astype(np.float64) - got[k].astype(np.float64)) ** 2)
            assert 10 * np.log10(255.0**2 / max(mse, 1e-9)) > 28.0, (tier, name, k)


def test_stricter_tiers_are_subsets(exported):
    out, config = exported["out"], exported["config"]
    for chain in (list(config.tiers), list(config.image_sets)):
        for before, after in zip(chain, chain[1:]):
            a = {r["clip_id"] for r in _manifest(out, before)}
            b = {r["clip_id"] for r in _manifest(out, after)}
            assert b <= a, (before, after)
    sizes = [len(_manifest(out, n)) for n in config.tiers]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[1] > sizes[2]


def test_planted_defects_are_out_of_the_strict_tiers_and_clean_motion_is_kept(exported):
    out, truth = exported["out"], exported["truth"]
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    seen = {"blur": 0, "frozen": 0, "text": 0, "clean": 0}
    for clip in clips:
        shot = _shot_of(truth, clip)
        if shot is None or clip["status"] != "ok":
            continue
        tiers = set(clip["tiers"])
        reasons = json.loads(clip["drop_reason"])
        defects = set(shot["defects"])
        if "blur" in defects:
            assert not tiers & {"256p", "360p", "540p", "720p", "sft"} and reasons["256p"] == "sharpness_min"
            seen["blur"] += 1
        if "frozen" in defects:
            assert not tiers & {"256p", "360p", "540p", "720p", "sft"} and reasons["256p"] == "frame_diff_min"
            seen["frozen"] += 1
        if defects & {"subtitles", "title"}:
            assert not tiers & {"360p", "540p", "720p", "sft"}
            seen["text"] += 1
        if not defects and shot["camera_motion"] != "static shot":
            # kept, unless dedup or concept resampling (once those stages fill their columns) took it out
            assert "256p" in tiers or reasons["256p"] in ("duplicate", "concepts"), (clip["source"], clip["start_frame"], reasons)
            seen["clean"] += "256p" in tiers
    assert seen["blur"] == 2 and seen["frozen"] == 1 and seen["text"] >= 5 and seen["clean"] >= 8
    # a subtitled 640x360 shot is in 256p (text filtering starts at 360p) but not in 360p
    sub = next(c for c in clips if Path(c["source"]).name == "v00_astronaut.mp4" and c["start_frame"] == 0)
    assert "256p" in sub["tiers"] and json.loads(sub["drop_reason"])["360p"] == "text_ratio_max"


def test_letterboxed_shots_are_cropped_inside_the_bars(exported):
    out = exported["out"]
    rows = [r for r in _manifest(out, "256p") if r["border_box"]]
    assert {Path(r["source"]).name for r in rows} == {"v03_rocket_film.mkv", "v07_chelsea_4x3.mp4"}
    for row in rows:
        x0, y0, x1, y1 = row["crop"]
        bx0, by0, bx1, by1 = row["border_box"]
        assert bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1
        frames, _ = _decode(out / "tiers" / "256p" / row["path"])
        for edge in (frames[0][:4], frames[0][-4:], frames[0][:, :4], frames[0][:, -4:]):
            assert edge.mean() > 20, "a black bar survived the crop"
    pillar = next(r for r in rows if "4x3" in r["source"])
    assert pillar["aspect_bucket"] == "4:3" and (pillar["width"], pillar["height"]) == (336, 256)
    # letterboxed clips never reach 720p, whose letterbox policy is drop
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    film = [c for c in clips if "rocket_film" in c["source"]]
    assert film and all(json.loads(c["drop_reason"])["720p"] == "letterbox" for c in film)


def test_unreadable_source_fails_its_clips_only(curated, sample_corpus, tmp_path):
    broken = "v00_astronaut.mp4"  # not a near-duplicate of anything: all its clips reach 256p
    out, _, table = _curated_copy(curated, Path(sample_corpus), tmp_path, {broken, "v08_camera.mp4"}, broken=broken)
    summary = run_export(out, load_export_config(None, FAST))
    funnel = json.loads((out / "tiers" / "funnel.json").read_text())
    bad = {c["clip_id"] for c in table.to_pylist() if Path(c["source"]).name == broken}
    assert set(funnel["256p"]["errors"]) == bad and len(bad) == 4
    assert all("source unreadable" in e for e in funnel["256p"]["errors"].values())
    assert summary.errors >= 3 and summary.cut >= 2 and summary.sources_decoded == 2
    rows = _manifest(out, "256p")
    assert rows and all("v08_camera" in r["source"] for r in rows)
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    assert all(json.loads(c["drop_reason"])["256p"] == "export_error" for c in clips if c["clip_id"] in bad)
    assert not list((out / "tiers").rglob(".*.tmp-*"))


def test_shards_hold_the_manifest(exported):
    out, config = exported["out"], exported["config"]
    for name in [*config.tiers, *config.image_sets]:
        rows = _manifest(out, name)
        shards = sorted((out / "tiers" / name / "shards").glob("shard-*.tar"))
        keys, members = [], {}
        for shard in shards:
            with tarfile.open(shard) as tar:
                names = tar.getnames()
                for n in names:
                    members[n] = tar.extractfile(n).read()
            if len(names) > 2:
                assert shard.stat().st_size <= config.run.shard_max_bytes
            keys += [n.rsplit(".", 1)[0] for n in names[::2]]
            assert all(a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0] for a, b in zip(names[::2], names[1::2]))
        assert keys == [r["clip_id"] for r in rows]
        for row in rows:
            ext = row["path"].rsplit(".", 1)[1]
            assert members[f"{row['clip_id']}.{ext}"] == (out / "tiers" / name / row["path"]).read_bytes()
            meta = json.loads(members[f"{row['clip_id']}.json"])
            assert meta["num_frames"] == row["num_frames"] and meta["source_frames"] == row["source_frames"]
    assert len(list((out / "tiers" / "256p" / "shards").glob("shard-*.tar"))) > 1


def test_image_sets_have_their_sizes(exported):
    out = exported["out"]
    imgs = _manifest(out, "images_256")
    assert len(imgs) >= 25
    for row in imgs:
        image = cv2.imread(str(out / "tiers" / "images_256" / row["path"]))
        assert image.shape[:2] == (row["height"], row["width"]) and min(image.shape[:2]) == 256
        assert row["source_frames"] == [row["best_start_frame"]] and row["fps"] is None
    big = _manifest(out, "images_512")
    assert big and {Path(r["source"]).name for r in big} == {"v04_coffee_hd.mp4"}
    for row in big:
        assert cv2.imread(str(out / "tiers" / "images_512" / row["path"])).shape[:2] == (512, 912)


def test_clips_table_gains_tiers_and_drop_reason_and_keeps_the_rest(exported):
    out, before = exported["out"], exported["clips_before"]
    after = pq.read_table(out / "manifest" / "clips.parquet")
    assert after.column_names == before.column_names + ["tiers", "drop_reason"]
    assert after.drop_columns(["tiers", "drop_reason"]).equals(before)
    funnel = json.loads((out / "tiers" / "funnel.json").read_text())
    names = list(exported["config"].tiers) + list(exported["config"].image_sets)
    assert list(funnel) == names
    for name, f in funnel.items():
        assert f["candidates"] == before.num_rows == f["kept"] + sum(f["removed"].values())
        assert f["kept"] == len(_manifest(out, name))
        assert set(f["unknown"]) <= set(f["removed"])
    assert list(funnel["256p"]["removed"])[:3] == ["status", "duplicate", "letterbox"]
    for clip in after.to_pylist():
        reasons = json.loads(clip["drop_reason"])
        assert set(reasons) == set(names)
        assert sorted(clip["tiers"]) == sorted(n for n, r in reasons.items() if r is None)
    resolved = yaml.safe_load((out / "tiers" / "tiers.yaml").read_text())
    assert ExportConfig.model_validate(resolved) == exported["config"]


def test_tighter_threshold_reexports_without_the_sources(exported, tmp_path):
    src, sources = exported["out"], exported["sources"]
    out = tmp_path / "cur"
    shutil.copytree(src, out)
    before = {r["clip_id"] for r in _manifest(out, "256p")}
    hidden = sources.with_name("sources-moved-away")
    sources.rename(hidden)
    try:
        tiers = list(exported["config"].tiers)
        tight = FAST + ["tiers.256p.sharpness_min=0.45"] + [f"tiers.{n}.sharpness_min=0.45" for n in tiers[1:]]
        tight += [f"tiers.{n}.letterbox=drop" for n in tiers]
        summary = run_export(out, load_export_config(None, tight))
    finally:
        hidden.rename(sources)
    assert summary.sources_decoded == 0 and summary.cut == 0 and summary.errors == 0
    rows = _manifest(out, "256p")
    after = {r["clip_id"] for r in rows}
    assert after < before and all(r["sharpness"] >= 0.45 and not r["border_box"] for r in rows)
    assert {p.stem for p in (out / "tiers" / "256p" / "clips").glob("*.mp4")} == after
    clips = pq.read_table(out / "manifest" / "clips.parquet").to_pylist()
    newly_out = [c for c in clips if c["clip_id"] in before - after]
    assert {json.loads(c["drop_reason"])["256p"] for c in newly_out} == {"sharpness_min", "letterbox"}
    funnel = json.loads((out / "tiers" / "funnel.json").read_text())
    assert funnel["256p"]["thresholds"]["sharpness_min"] == 0.45 and funnel["256p"]["kept"] == len(after)


def test_export_is_idempotent_and_resumes(exported, tmp_path):
    src = exported["out"]
    out = tmp_path / "cur"
    shutil.copytree(src, out)
    config = load_export_config(None, FAST)
    again = run_export(out, config)
    assert again.cut == 0 and again.sources_decoded == 0 and again.reused == again.jobs
    # a killed run: one clip missing, one half-written temp file, one file with the wrong length
    rows = [r for r in _manifest(out, "256p") if "astronaut" in r["source"]]
    missing, wrong = out / "tiers" / "256p" / rows[0]["path"], out / "tiers" / "256p" / rows[1]["path"]
    missing.unlink()
    (missing.parent / f".{missing.name}.tmp-999").write_bytes(b"\0" * 100)
    shutil.copyfile(out / "tiers" / "540p" / _manifest(out, "540p")[0]["path"], wrong)
    resumed = run_export(out, config)
    assert resumed.cut == 2 and resumed.sources_decoded == 1 and resumed.errors == 0
    for path in (missing, wrong):
        frames, (w, h, _) = _decode(path)
        assert len(frames) == 33 and min(w, h) == 256
    assert not list((out / "tiers").rglob(".*.tmp-*"))


# -- definitions and queries (no video) ---------------------------------------------------

def test_default_tiers_form_a_strict_chain():
    cfg = load_export_config()
    assert list(cfg.tiers) == ["256p", "360p", "540p", "720p", "sft"]
    assert list(cfg.image_sets) == ["images_256", "images_512"]
    assert cfg.tiers["sft"].top_quality is not None
    assert [bucket_size(r, 16, 9) for r in (256, 360, 540, 720)] == [(448, 256), (656, 368), (960, 544), (1280, 720)]


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("tiers:\n  a: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24, sharpness_min: 50}\n"
         "  b: {resolution: 360, min_short_side: 360, num_frames: 33, fps: 24, sharpness_min: 20}\n",
         "tier 'b': sharpness_min 20.0 is looser than in tier 'a' (50.0)"),
        ("tiers:\n  a: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24, text_ratio_max: 0.05}\n"
         "  b: {resolution: 360, min_short_side: 360, num_frames: 33, fps: 24}\n",
         "tier 'b': text_ratio_max null (no threshold) is looser than in tier 'a' (0.05)"),
        ("tiers:\n  a: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24, letterbox: drop}\n"
         "  b: {resolution: 360, min_short_side: 360, num_frames: 33, fps: 24, letterbox: crop}\n",
         "tier 'b': letterbox 'crop' is looser than in tier 'a'"),
        ("tiers:\n  a: {resolution: 360, min_short_side: 360, num_frames: 33, fps: 24}\n"
         "  b: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24}\n",
         "tier 'b': resolution 256 is looser than in tier 'a' (360)"),
        ("image_sets:\n  i1: {resolution: 256, min_short_side: 256, watermark_score_max: 0.3}\n"
         "  i2: {resolution: 512, min_short_side: 512, watermark_score_max: 0.5}\n",
         "tier 'i2': watermark_score_max 0.5 is looser than in tier 'i1' (0.3)"),
        ("tiers:\n  a: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24, sharpnes_min: 5}\n",
         "sharpnes_min: unknown key"),
        ("tiers:\n  a: {resolution: 256, min_short_side: 256, num_frames: 33, fps: 24, top_quality: {fraction: 0.1, count: 3}}\n",
         "top_quality needs exactly one of fraction or count"),
    ],
)
def test_bad_tier_definitions_name_the_tier_and_key(tmp_path, yaml_text, expected):
    path = tmp_path / "tiers.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_export_config(path)
    assert expected in str(info.value)


def test_frames_that_are_not_4k_plus_1_are_rejected_naming_the_tier_and_the_nearest_counts():
    with pytest.raises(ConfigError) as info:
        load_export_config(None, ["tiers.256p.num_frames=32"])
    assert "tiers.256p.num_frames: 32 is not 4k+1 (the causal VAE compresses time 4x); use 29 or 33" in str(info.value)
    assert load_export_config(None, ["tiers.256p.num_frames=29"]).tiers["256p"].num_frames == 29


def test_cli_rejects_a_looser_tier_before_any_work(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vidloom.jobs.export", str(tmp_path), "--set", "tiers.540p.text_ratio_max=0.5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "tier '540p': text_ratio_max 0.5 is looser than in tier '360p'" in proc.stderr
    assert not (tmp_path / "tiers").exists()


def _rows(n: int, **columns) -> list[dict]:
    base = {"status": "ok", "dup_of": None, "width": 640, "height": 360, "border_box": None,
            "duration_s": 3.0, "sharpness": 100.0, "frame_diff": 5.0, "motion": 0.01, "text_ratio": 0.0,
            "watermark_score": None, "quality": None, "cluster_id": None}
    rows = []
    for i in range(n):
        row = dict(base, clip_id=f"c{i:03d}")
        row.update({k: (v[i] if isinstance(v, list) else v) for k, v in columns.items()})
        rows.append(row)
    return rows


def test_unknown_signals_pass_and_are_counted_duplicates_leave_every_tier():
    cfg = load_export_config(None, _every_tier("quality_min", "0.5"))
    rows = _rows(4, quality=[None, 0.9, 0.1, None], dup_of=[None, None, None, "c000"])
    sel = select_all(cfg, rows)
    assert sel["256p"].kept == ["c000", "c001"]
    assert sel["256p"].reasons == {"c000": None, "c001": None, "c002": "quality_min", "c003": "duplicate"}
    assert sel["256p"].funnel["unknown"]["quality_min"] == 1
    assert all(s.reasons["c003"] == "duplicate" for s in sel.values())


def test_sft_keeps_the_top_quality_slice():
    cfg = load_export_config(None, ["tiers.sft.top_quality={fraction: null, count: 2}"])
    rows = _rows(5, width=1280, height=720, quality=[0.2, 0.9, None, 0.5, 0.7])
    sel = select_all(cfg, rows)
    assert sel["720p"].kept == [r["clip_id"] for r in rows]
    assert sel["sft"].kept == ["c001", "c004"] and sel["sft"].reasons["c003"] == "top_quality"
    frac = select_all(load_export_config(None, ["tiers.sft.top_quality={fraction: 0.6}"]), rows)["sft"]
    assert frac.kept == ["c001", "c003", "c004"]


def test_concept_resampling_uses_the_concepts_module_when_clusters_exist():
    cfg = load_export_config(None, _every_tier("concepts.max_per_cluster", "2") + ["tiers.256p.concepts.max_share=null"])
    rows = _rows(8, cluster_id=[0, 0, 0, 0, 0, 1, 2, None])
    balancer = load_balancer()
    if balancer is None:
        with pytest.raises(ConceptsUnavailableError, match="tier '256p'"):
            select_all(cfg, rows, balancer)
        # without cluster ids nothing is called, and the funnel says resampling was unknown
        sel = select_all(cfg, _rows(3), balancer)
        assert sel["256p"].funnel["unknown"]["concepts"] == 3 and len(sel["256p"].kept) == 3
        return
    sel = select_all(cfg, rows, balancer)
    kept = sel["256p"].kept
    assert sum(1 for r in rows if r["clip_id"] in kept and r["cluster_id"] == 0) <= 2
    assert {"c005", "c006", "c007"} <= set(kept)  # small clusters and unclustered clips stay
    assert sel["256p"].funnel["removed"]["concepts"] == len(rows) - len(kept)


def test_buckets_pick_the_nearest_ratio_and_crop_centred():
    ratios = load_export_config().bucket_ratios()
    assert choose_bucket(640, 272, 256, ratios).name == "16:9"
    assert choose_bucket(482, 360, 360, ratios).name == "4:3"
    assert choose_bucket(360, 640, 360, ratios) .name == "9:16"
    assert choose_bucket(500, 500, 540, ratios).width == 544
    box = picture_box(640, 360, [0, 44, 640, 316])
    x0, y0, x1, y1 = centre_crop(box, 448 / 256)
    assert (y0, y1) == (44, 316) and x1 - x0 == 476 and x0 == (640 - 476) // 2
