"""Clip embeddings: the offline descriptor's robustness on real decoded video, the open_clip
backend loading weights we create (no download), and EmbeddingStage's row contract."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vidloom.pipelines.curation.embeddings import (
    DESCRIPTOR_BACKEND,
    DESCRIPTOR_DIM,
    EmbeddingConfig,
    build_embedder,
    check_embedding_weights,
    describe_clip,
    load_embeddings,
)
from vidloom.platform.weights import file_digest
from vidloom.pipelines.curation.manifest import ManifestStore
from vidloom.pipelines.curation.rows import loads, new_video_row
from vidloom.pipelines.curation.stages.embedding import EmbeddingStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.platform.media import VideoReader
from vidloom.platform.weights import MissingWeightsError

# A tiny CLIP (a few hundred thousand parameters) so the open_clip path runs in a second.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}


def shot_frames(path, start: int, end: int, every: int = 12) -> list[np.ndarray]:
    """RGB frames at the pipeline's analysis size, every `every` frames of [start, end)."""
    with VideoReader(str(path)) as reader:
        out = []
        for f in reader.frames(short_side=256):
            if f.index >= end:
                break
            if f.index >= start and (f.index - start) % every == 0:
                out.append(f.image)
    return out


@pytest.fixture(scope="module")
def shots(sample_corpus):
    """Decoded shots: the duplicated motorcycle shot, its two re-encoded copies, and the
    astronaut photo filmed in four different shots of four videos."""
    truth = {v["file"]: v for v in json.loads((sample_corpus / "truth.json").read_text())["videos"]}
    out = {}
    for name in ("v01_motorcycle.mp4", "v01_motorcycle_small.mp4", "v01_motorcycle_crop.mp4"):
        s = truth[name]["shots"][0]
        out[name] = shot_frames(sample_corpus / name, s["start_frame"], s["end_frame"])
    for name, spec in truth.items():
        for s in spec["shots"]:
            if s["image"] == "astronaut" and not spec["duplicate_of"]:
                out[f"astronaut/{name}"] = shot_frames(sample_corpus / name, s["start_frame"], s["end_frame"])
    return out


def test_descriptor_is_a_deterministic_unit_vector_of_fixed_size(shots):
    frames = shots["v01_motorcycle.mp4"]
    a, b = describe_clip(frames), describe_clip([f.copy() for f in frames])
    assert a.shape == (DESCRIPTOR_DIM,) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert abs(np.linalg.norm(a) - 1.0) < 1e-5
    # one frame, a portrait frame and a greyscale frame give the same size
    portrait = np.ascontiguousarray(np.rot90(frames[0]))
    for clip in ([frames[0]], [portrait], [cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)]):
        assert describe_clip(clip).shape == (DESCRIPTOR_DIM,)
    with pytest.raises(ValueError):
        describe_clip([])


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _crop(img: np.ndarray, share: float) -> np.ndarray:
    h, w = img.shape[:2]
    dy, dx = int(h * share), int(w * share)
    return cv2.resize(img[dy:h - dy, dx:w - dx], (w, h), interpolation=cv2.INTER_AREA)


def test_descriptor_survives_reencoding_resizing_and_crops(shots):
    frames = shots["v01_motorcycle.mp4"]
    ref = describe_clip(frames)
    variants = {
        # the corpus' planted copies, decoded: 0.75x at CRF 31, and a 2 % crop at CRF 19
        "small copy": shots["v01_motorcycle_small.mp4"],
        "crop copy": shots["v01_motorcycle_crop.mp4"],
        "jpeg q20": [_jpeg(f, 20) for f in frames],
        "half size": [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in frames],
        "crop 3 %": [_crop(f, 0.03) for f in frames],
        "brighter": [cv2.convertScaleAbs(f, alpha=1.0, beta=12) for f in frames],
    }
    same = {k: float(ref @ describe_clip(v)) for k, v in variants.items()}
    astro = {k: describe_clip(v) for k, v in shots.items() if k.startswith("astronaut/")}
    assert len(astro) >= 4
    keys = sorted(astro)
    different = [float(astro[a] @ astro[b]) for i, a in enumerate(keys) for b in keys[i + 1:]]
    different += [float(ref @ v) for v in astro.values()]
    print("copies:", {k: round(v, 3) for k, v in same.items()}, "different shots max:", round(max(different), 3))
    assert min(same.values()) > 0.93, same
    # the same photograph under another camera move is content-similar, not a copy
    assert max(different) < 0.85, different
    assert min(same.values()) - max(different) > 0.1


def _tiny_clip_state(seed: int):
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    return model


def _save_hf_layout(model, folder):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    cfg = {"model_cfg": TINY_CLIP, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def _reference(model, embedder, clips) -> np.ndarray:
    """The clip vector by definition: mean of the frames' unit CLIP embeddings, renormalised."""
    out = []
    for frames in clips:
        x = torch.from_numpy(np.stack([embedder._preprocess(f) for f in frames]))
        with torch.no_grad():
            e = torch.nn.functional.normalize(model.encode_image(x), dim=-1).mean(0)
        out.append((e / e.norm()).numpy())
    return np.stack(out)


def test_open_clip_backend_loads_local_weights(tmp_path, shots):
    import open_clip

    model = _tiny_clip_state(0)
    folder = _save_hf_layout(model, tmp_path / "tiny-clip")
    embedder = build_embedder(EmbeddingConfig(backend="open_clip", checkpoint=str(folder), batch_size=3))
    weights = folder / "open_clip_model.safetensors"
    assert embedder.backend == f"open_clip:tiny-clip:{file_digest(weights)}"
    assert embedder.dim == 32 and embedder.size == (64, 64)
    assert np.allclose(embedder.mean, 0.5)  # the folder's preprocessing, not CLIP's default
    clips = [shots["v01_motorcycle.mp4"], shots["v01_motorcycle_small.mp4"], shots["v01_motorcycle.mp4"][:1]]
    got = embedder.embed_clips(clips)
    assert got.shape == (3, 32) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # the weights in the file were the ones used
    assert np.allclose(got, _reference(model, embedder, clips), atol=1e-5)
    other = build_embedder(EmbeddingConfig(backend="open_clip", checkpoint=str(_save_hf_layout(_tiny_clip_state(1), tmp_path / "b"))))
    assert other.backend != embedder.backend
    assert not np.allclose(other.embed_clips(clips[:1]), got[:1], atol=1e-3)

    # a plain state-dict file with the architecture named by `model_name`
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "VidloomTinyCLIP.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(tmp_path / "configs")
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    by_file = build_embedder({"backend": "open_clip", "model_name": "VidloomTinyCLIP", "checkpoint": str(tmp_path / "tiny.pt")})
    assert by_file.backend == f"open_clip:VidloomTinyCLIP:{file_digest(tmp_path / 'tiny.pt')}"
    # CLIP's own normalisation this time, so compare with the reference of this embedder
    assert np.allclose(by_file.embed_clips(clips[:1]), _reference(model, by_file, clips[:1]), atol=1e-5)


@pytest.mark.parametrize("checkpoint", [None, "/nonexistent/clip.safetensors", "nobody-here/no-such-clip"])
def test_missing_open_clip_weights_name_the_setting(checkpoint):
    cfg = EmbeddingConfig(backend="open_clip", checkpoint=checkpoint)
    with pytest.raises(MissingWeightsError, match="curation.embedding.checkpoint"):
        check_embedding_weights(cfg)  # what the driver runs before any work
    with pytest.raises(MissingWeightsError, match="curation.embedding.checkpoint"):
        build_embedder(cfg)
    check_embedding_weights(EmbeddingConfig())  # the offline default needs none


def test_unknown_architecture_names_the_setting(tmp_path):
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="curation.embedding.model_name"):
        build_embedder(EmbeddingConfig(backend="open_clip", model_name="NoSuchNet", checkpoint=str(tmp_path / "w.pt")))


def test_embedding_stage_fills_the_row_and_the_manifest(sample_corpus, tmp_path):
    source = str(sample_corpus / "v01_motorcycle.mp4")
    analysis = VideoAnalysisStage({})
    analysis.setup()
    analysed = analysis.process_row(new_video_row(source))
    stage = EmbeddingStage({"embedding": {"frames_per_clip": 3}})
    stage.setup()
    row = stage.process_row(analysed)
    assert set(row) == set(analysed)  # every key kept
    clips = loads(row["clips_json"])
    ok = [c for c in clips if c["status"] == "ok"]
    assert len(ok) == 3 and all(c["embedding_backend"] == DESCRIPTOR_BACKEND for c in ok)
    assert [e["clip_id"] for e in row["embeddings"]] == [c["clip_id"] for c in ok]
    for e in row["embeddings"]:
        assert e["backend"] == DESCRIPTOR_BACKEND and len(e["vector"]) == DESCRIPTOR_DIM
    # the driver's commit writes them to embeddings.parquet, readable as one space
    store = ManifestStore(tmp_path)
    store.commit(loads(row["video_json"]), clips, row["thumbs"], row["embeddings"])
    store.consolidate([row["video_id"]])
    ids, vectors, backend = load_embeddings(tmp_path / "manifest" / "embeddings.parquet")
    assert ids == [c["clip_id"] for c in ok] and backend == DESCRIPTOR_BACKEND
    assert vectors.shape == (3, DESCRIPTOR_DIM)
    assert np.allclose(vectors, np.array([e["vector"] for e in row["embeddings"]], np.float32))
