"""Structured captions: the OpenAI-compatible VLM backend against a local stand-in server, the
offline signals backend on real frames of the sample corpus, the local transformers backend on
a tiny random Qwen2-VL saved with save_pretrained, and the stage under Ray Data."""

from __future__ import annotations

import importlib

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidloom.pipelines.curation.captions import (
    SYSTEM_PROMPT,
    CaptionConfig,
    CaptionError,
    build_caption_backend,
    parse_caption_reply,
)
from vidloom.pipelines.curation.captions import signals as sig
from vidloom.pipelines.curation.config import load_curation_config
from vidloom.pipelines.curation.rows import clip_frames, loads, new_video_row
from vidloom.pipelines.curation.stages.captioning import CaptioningStage
from vidloom.pipelines.curation.stages.text_detection import TextDetectionStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.platform.caption_schema import CAMERA_MOVEMENTS, CAPTION_FIELDS, CaptionFields, caption_json_schema
from vidloom.platform.weights import MissingWeightsError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "captions.md"


# -- rows of real sample videos, analysed in-process ----------------------------------------------
@pytest.fixture(scope="module")
def rows(sample_corpus: Path) -> dict[str, dict]:
    """Rows after analysis and text detection: letterboxed v03 and subtitled v00."""
    cfg = load_curation_config().model_dump(mode="json")
    analysis, text = VideoAnalysisStage(cfg), TextDetectionStage(cfg)
    analysis.setup()
    text.setup()
    return {name: text.process_row(analysis.process_row(new_video_row(str(sample_corpus / name))))
            for name in ("v03_rocket_film.mkv", "v00_astronaut.mp4")}


def _stage(**caption) -> CaptioningStage:
    stage = CaptioningStage({**load_curation_config().model_dump(mode="json"), "caption": caption})
    stage.setup()
    return stage


def _ok_clips(row: dict) -> list[dict]:
    return [c for c in loads(row["clips_json"]) if c["status"] == "ok"]


def _prompt_text(body: dict) -> str:
    return "".join(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")


def _caption_reply(body: dict, camera: str = "zoom out") -> str:
    measured = re.search(r'measured the camera movement "([a-z ]+)"', _prompt_text(body))
    return json.dumps({"short_description": "A scene.", "dense_description": f"A scene seen in a {measured.group(1)}.",
                       "background": "a sky", "style": "wide shot", "lighting": "daylight",
                       "atmosphere": "calm", "camera_movement": camera})


def _openai(url: str, **kw) -> dict:
    return {"backend": "openai", "base_url": url, "model": "vlm-test", "backoff_s": 0.01, "timeout_s": 10.0, **kw}


def test_openai_backend_sends_frames_as_images_with_schema_prompt(rows, monkeypatch, chat_stand_in) -> None:
    monkeypatch.setenv("VIDLOOM_CAPTION_API_KEY", "sekret")
    row = rows["v03_rocket_film.mkv"]
    with chat_stand_in(lambda body, n: (200, _caption_reply(body))) as srv:
        out = _stage(**_openai(srv.base_url, frames_per_clip=3, max_concurrent_requests=2)).process_row(row)
    clips, frames = _ok_clips(out), clip_frames(row)
    assert len(srv.requests) == len(clips) == 3
    assert all(h["Authorization"] == "Bearer sekret" for h in srv.headers)
    measured_seen = set()
    for body in srv.requests:
        assert body["model"] == "vlm-test" and body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == caption_json_schema()
        parts = body["messages"][1]["content"]
        images = [p for p in parts if p["type"] == "image_url"]
        assert len(images) == 3  # at most frames_per_clip of the 4 shipped frames
        for part in images:
            url = part["image_url"]["url"]
            assert url.startswith("data:image/jpeg;base64,")
            decoded = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
            assert decoded.shape == frames[0][0].shape  # the shipped analysis frames, not a re-decode
        text = _prompt_text(body)
        assert json.dumps(caption_json_schema(), separators=(",", ":")) in text
        assert all(f'"{name}"' in text for name in CAPTION_FIELDS)
        measured_seen.add(re.search(r'measured the camera movement "([a-z ]+)"', text).group(1))
    assert measured_seen == {c["camera_motion"] for c in clips}
    for clip in clips:
        caption = json.loads(clip["caption"])
        assert clip["caption_backend"] == "openai:vlm-test"
        assert set(caption) == set(CAPTION_FIELDS)
        # the server said "zoom out" for every clip; the measured label wins by default
        assert caption["camera_movement"] == clip["camera_motion"]
        assert caption["dense_description"] == f"A scene seen in a {clip['camera_motion']}."


@pytest.mark.parametrize(
    "reply",
    [
        '{"short_description": "A boat.", "dense_description": "A red boat on a lake."}',
        '```json\n{"short_description": "A boat.", "dense_description": "A red boat on a lake."}\n```',
        'Sure! Here is the caption:\n{"short_description": "A boat.", "dense_description": "A red boat on a lake."}'
        "\nLet me know if you need more {details}.",
    ],
)
def test_reply_json_plain_fenced_or_in_prose(reply: str) -> None:
    caption = parse_caption_reply(reply, {"camera_motion": "pan left"})
    assert caption.short_description == "A boat." and caption.dense_description == "A red boat on a lake."
    assert caption.camera_movement == "pan left" and caption.background == ""


def test_reply_normalisation_of_fields_and_types() -> None:
    reply = json.dumps({"Short Description": "  A   dog.  ", "dense_description": ["A dog", "on grass"],
                        "style": {"shot": "close-up", "look": "film"}, "lighting": 5, "atmosphere": None,
                        "camera_movement": "Static", "mood_score": 0.7})
    cap = parse_caption_reply(reply, {"camera_motion": "zoom in"}, camera_movement="model")
    assert cap.to_dict() == {"short_description": "A dog.", "dense_description": "A dog, on grass",
                             "background": "", "style": "shot: close-up; look: film", "lighting": "5",
                             "atmosphere": "", "camera_movement": "static shot"}
    # the model's label is used only when configured and valid; otherwise the measured one
    assert parse_caption_reply(reply, {"camera_motion": "zoom in"}).camera_movement == "zoom in"
    bad = reply.replace("Static", "dolly sideways")
    assert parse_caption_reply(bad, {"camera_motion": "zoom in"}, camera_movement="model").camera_movement == "zoom in"
    with pytest.raises(CaptionError, match="no JSON object"):
        parse_caption_reply("I cannot see any frames.", {"camera_motion": "zoom in"})


def test_openai_backend_retries_429_and_500_then_succeeds(rows, chat_stand_in) -> None:
    row = rows["v03_rocket_film.mkv"]
    clip, frames = _ok_clips(row)[0], clip_frames(row)[0]
    statuses = {1: 500, 2: 429}
    with chat_stand_in(lambda body, n: (statuses.get(n, 200), "```json\n" + _caption_reply(body) + "\n```")) as srv:
        backend = build_caption_backend(CaptionConfig(**_openai(srv.base_url, max_retries=3)))
        (outcome,) = backend.caption_many([(clip, frames)])
    assert len(srv.requests) == 3
    assert outcome.error == "" and outcome.caption.camera_movement == clip["camera_motion"]


def test_failing_clip_gets_reason_while_others_are_captioned(rows, chat_stand_in) -> None:
    row = rows["v03_rocket_film.mkv"]
    victim = _ok_clips(row)[1]["camera_motion"]

    def respond(body: dict, n: int) -> tuple[int, str]:
        if f'movement "{victim}"' in _prompt_text(body):
            return 503, "overloaded"
        return 200, "Caption follows. " + _caption_reply(body) + " Thanks."

    with chat_stand_in(respond) as srv:
        out = _stage(**_openai(srv.base_url, max_retries=2)).process_row(row)
    clips = loads(out["clips_json"])
    failed = [c for c in clips if c["camera_motion"] == victim]
    assert len(failed) == 1 and failed[0]["status"] == "error" and failed[0]["caption"] is None
    assert failed[0]["error"].startswith("captioning: ") and "failed after 3 attempts" in failed[0]["error"]
    assert "HTTP 503" in failed[0]["error"]
    others = [c for c in clips if c["camera_motion"] != victim]
    assert len(others) == 2 and all(c["status"] == "ok" and json.loads(c["caption"])["short_description"] for c in others)
    assert len(srv.requests) == 3 + 2  # 3 attempts for the failing clip, one each for the others


# -- offline signals backend ---------------------------------------------------------------------
NOUNS = {"person", "man", "woman", "people", "face", "astronaut", "rocket", "cat", "dog", "coffee", "cup",
         "motorcycle", "car", "sky", "tree", "building", "water", "city", "room", "street", "object"}


def test_signals_captions_on_sample_frames(rows) -> None:
    for name, row in rows.items():
        first = _stage().process_row(row)
        if name == "v03_rocket_film.mkv":  # deterministic across actors
            assert _stage().process_row(row)["clips_json"] == first["clips_json"]
        clips, frames = _ok_clips(first), clip_frames(row)
        assert clips and first.keys() == row.keys() and first["frames"] == row["frames"]
        for k, clip in enumerate(loads(first["clips_json"])):
            if clip["status"] != "ok":
                continue
            data = json.loads(clip["caption"])
            caption = CaptionFields(**data)  # every field present, strings, label in the vocabulary
            assert clip["caption_backend"] == "signals"
            assert caption.camera_movement == clip["camera_motion"] and caption.camera_movement in CAMERA_MOVEMENTS
            assert caption.background == "" and caption.atmosphere == ""  # nothing measured for these
            words = set(re.findall(r"[a-z]+", " ".join(data.values()).lower()))
            assert words <= sig.VOCABULARY, words - sig.VOCABULARY
            assert not words & NOUNS
            # the brightness word matches the luma of the frames, measured independently here
            crop = frames[k]
            if clip["border_box"]:  # display pixels -> analysis pixels, bars cut off
                x0, y0, x1, y1 = clip["border_box"]
                sy, sx = crop[0].shape[0] / clip["height"], crop[0].shape[1] / clip["width"]
                crop = [f[round(y0 * sy):round(y1 * sy), round(x0 * sx):round(x1 * sx)] for f in crop]
            luma = np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean() for f in crop])
            word = next(w for bound, w in sig.BRIGHTNESS_WORDS if luma < bound)
            assert f", {word} light" in caption.short_description, (luma, caption.short_description)
            assert ("letterboxed" in caption.style) == (name == "v03_rocket_film.mkv")
            assert ("on-screen text" in caption.short_description) == (clip["text_ratio"] >= sig.MIN_TEXT_RATIO)
    subtitled = _ok_clips(_stage().process_row(rows["v00_astronaut.mp4"]))[0]
    assert subtitled["text_ratio"] >= sig.MIN_TEXT_RATIO  # the planted subtitles are measured and stated
    assert json.loads(subtitled["caption"])["short_description"].endswith(" with on-screen text.")


def test_signals_templates_are_documented() -> None:
    doc = DOCS.read_text()
    for template in (sig.SHORT_TEMPLATE, sig.SHORT_TEMPLATE_NO_FRAMES, sig.TEXT_CLAUSE.strip(), sig.LIGHTING_TEMPLATE,
                     sig.PALETTE_TEMPLATE, sig.COLOURLESS_PALETTE, sig.DENSE_COLOURS, sig.DENSE_COLOURLESS,
                     sig.DENSE_CONTRAST, sig.DENSE_FRAMING, sig.DENSE_TEXT, *sig.DENSE_BARS.values()):
        assert template in doc, template
    for phrase in sig.MOVEMENT_PHRASES.values():
        assert f"`{phrase}`" in doc


def test_signals_caption_without_frames_states_only_motion() -> None:
    clip = {"camera_motion": "handheld shot", "text_ratio": 0.0, "border_box": None, "width": 640, "height": 360}
    cap = sig.signals_caption(clip, [])
    assert cap.short_description == "A handheld shot." and cap.lighting == "" and cap.style == ""


# -- local transformers VLM ----------------------------------------------------------------------
def test_local_backend_without_weights_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"curation\.caption\.local_model_path"):
        build_caption_backend(CaptionConfig(backend="local"))
    with pytest.raises(MissingWeightsError, match=r"curation\.caption\.local_model_path"):
        _stage(backend="local", local_model_path=str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    """A randomly initialised one-layer Qwen2-VL and its processor, saved with save_pretrained."""
    torch = importlib.import_module("torch")
    tokenizers = importlib.import_module("tokenizers")
    transformers = importlib.import_module("transformers")
    folder = tmp_path_factory.mktemp("tiny_qwen2_vl")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>", "[UNK]"]
    words = "a the shot in light camera system user assistant".split()  # no braces: it must not emit JSON
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                                unk_token="[UNK]", additional_special_tokens=specials[1:7])
    config = transformers.Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         bos_token_id=None, eos_token_id=vocab["<|im_end|>"], pad_token_id=0),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )
    torch.manual_seed(0)
    transformers.Qwen2VLForConditionalGeneration(config).save_pretrained(str(folder))
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}"
                "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = transformers.Qwen2VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=fast, video_processor=transformers.Qwen2VLVideoProcessor(), chat_template=template)
    processor.save_pretrained(str(folder))
    return folder


def test_local_backend_loads_saved_vlm_and_assembles_prompt(rows, tiny_vlm: Path) -> None:
    stage = _stage(backend="local", local_model_path=str(tiny_vlm), frames_per_clip=2, local_max_new_tokens=16)
    backend = stage.backend
    assert type(backend.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert backend.name == f"local:{tiny_vlm.name}"
    row = rows["v03_rocket_film.mkv"]
    clip, frames = _ok_clips(row)[0], clip_frames(row)[0]
    text = backend.chat_text(clip, 2)
    assert text.count("<|image_pad|>") == 2 and SYSTEM_PROMPT in text
    assert f'measured the camera movement "{clip["camera_motion"]}"' in text and text.endswith("assistant\n")
    batch = backend.inputs(clip, frames)
    grid = batch["image_grid_thw"]
    assert grid.shape[0] == 2  # two frames became two images
    image_tokens = int((batch["input_ids"] == backend.model.config.image_token_id).sum())
    assert image_tokens == int(grid.prod(-1).sum()) // 4  # one token per merged 2x2 patch group
    # A random model writes no JSON: the clip records why; the stage does not raise.
    ok_ids = {c["clip_id"] for c in _ok_clips(row)}
    out = [c for c in loads(stage.process_row(row)["clips_json"]) if c["clip_id"] in ok_ids]
    assert len(out) == len(ok_ids) == 3
    assert all(c["status"] == "error" and c["error"].startswith("captioning: reply has no JSON object")
               and c["caption_backend"] == backend.name for c in out)


# -- under Ray Data -----------------------------------------------------------------------------
def test_captioning_stage_under_ray_data(ray_session, sample_corpus: Path) -> None:
    from vidloom.pipelines.ray_data import apply_stage
    from vidloom.pipelines.stage import StageResources

    cfg = load_curation_config().model_dump(mode="json")
    one = StageResources(num_cpus=1, batch_size=1, min_workers=1, max_workers=1)
    ds = ray_session.data.from_items([new_video_row(str(sample_corpus / "v07_chelsea_4x3.mp4"))])
    ds = apply_stage(ds, VideoAnalysisStage, {"config": cfg}, one)
    ds = apply_stage(ds, CaptioningStage, {"config": cfg}, one)
    (row,) = ds.select_columns(["video_id", "clips_json"]).take_all()
    clips = _ok_clips(row)
    assert len(clips) == 4 and all(c["caption_backend"] == "signals" for c in clips)
    for clip in clips:  # side bars measured by the analysis stage are what the caption states
        side_bars = bool(clip["border_box"]) and clip["border_box"][0] > 0
        assert ("pillarboxed" in json.loads(clip["caption"])["style"]) == side_bars
    assert any("pillarboxed" in json.loads(c["caption"])["style"] for c in clips)  # 3 of 4 shots have them
