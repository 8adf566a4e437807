"""Prompt rewriter: OpenAI-compatible client against a local stand-in server, keyword backend."""

from __future__ import annotations

import json

import pytest

from vidloom.models.rewriter import (
    INSTRUCTIONS,
    OpenAICompatRewriter,
    OpenAIRewriterConfig,
    RewriterError,
    build_messages,
    build_rewriter,
    extract_camera_movement,
    extract_caption,
)
from vidloom.platform.caption_schema import CAMERA_MOVEMENTS, CAPTION_FIELDS, CaptionFields, caption_to_prompt
from vidloom.platform.weights import MissingWeightsError


def _stand_in(factory, reply_text: str, fail_first: int = 0, fail_status: int = 500):
    """The shared chat stand-in, failing the first `fail_first` calls with `fail_status`."""
    return factory(lambda body, n: (fail_status, "busy") if n <= fail_first else (200, reply_text))


def _client(url: str, **kw) -> OpenAICompatRewriter:
    return OpenAICompatRewriter(OpenAIRewriterConfig(**{"base_url": url, "model": "m", "backoff_s": 0.01,
                                                        "timeout_s": 5.0, **kw}))


def test_openai_client_sends_chat_and_parses_reply(monkeypatch, chat_stand_in) -> None:
    monkeypatch.setenv("VIDLOOM_REWRITER_API_KEY", "sekret")
    with _stand_in(chat_stand_in, "  A small dog sprints across green grass in bright daylight.  ") as srv:
        res = _client(srv.base_url).rewrite("小狗在草地上奔跑", mode="Master")
    assert res.text == "A small dog sprints across green grass in bright daylight."
    assert res.mode == "master" and res.backend == "openai" and res.fields is None
    req = srv.requests[0]
    assert req["model"] == "m"
    assert req["messages"][0] == {"role": "system", "content": INSTRUCTIONS["master"]}
    assert "小狗在草地上奔跑" in req["messages"][1]["content"]
    assert srv.headers[0]["Authorization"] == "Bearer sekret"


def test_openai_client_retries_on_500(chat_stand_in) -> None:
    with _stand_in(chat_stand_in, "ok text", fail_first=2) as srv:
        res = _client(srv.base_url, max_retries=3).rewrite("a cat")
    assert res.text == "ok text"
    assert len(srv.requests) == 3


def test_openai_client_gives_up_after_retries_and_on_4xx(chat_stand_in) -> None:
    with _stand_in(chat_stand_in, "never", fail_first=10) as srv:
        with pytest.raises(RewriterError, match="after 3 attempts"):
            _client(srv.base_url, max_retries=2).rewrite("a cat")
    assert len(srv.requests) == 3
    with _stand_in(chat_stand_in, "never", fail_first=10, fail_status=401) as srv:
        with pytest.raises(RewriterError, match="HTTP 401"):
            _client(srv.base_url, max_retries=2).rewrite("a cat")
    assert len(srv.requests) == 1  # a client error is not retried


def test_openai_client_parses_caption_json_reply(chat_stand_in) -> None:
    caption = {"short_description": "A cat naps.", "dense_description": "A grey cat naps on a sofa.",
               "lighting": "soft window light", "camera_movement": "static shot"}
    with _stand_in(chat_stand_in, "```json\n" + json.dumps(caption) + "\n```") as srv:
        res = _client(srv.base_url).rewrite("cat")
    assert res.fields is not None and res.fields["camera_movement"] == "static shot"
    assert res.text.startswith("A grey cat naps on a sofa.") and "Lighting: soft window light." in res.text


def test_unreachable_server_raises_after_retries(chat_stand_in) -> None:
    with _stand_in(chat_stand_in, "x") as srv:
        url = srv.base_url
    with pytest.raises(RewriterError):
        _client(url, max_retries=1, timeout_s=1).rewrite("a cat")


def test_modes_have_distinct_instructions() -> None:
    assert set(INSTRUCTIONS) == {"normal", "master"}
    assert INSTRUCTIONS["normal"] != INSTRUCTIONS["master"]
    assert build_messages("x", "Normal")[0]["content"] == INSTRUCTIONS["normal"]
    with pytest.raises(ValueError):
        build_messages("x", "fancy")


def test_keyword_rewriter_fields() -> None:
    prompt = ("A corgi runs on a sunny beach at sunset, cinematic style, warm golden light, "
              "the camera pans left.  Calm atmosphere.")
    res = build_rewriter().rewrite(prompt)
    f = res.fields
    assert set(f) == set(CAPTION_FIELDS)
    assert f["short_description"] == ("A corgi runs on a sunny beach at sunset, cinematic style, "
                                      "warm golden light, the camera pans left.")
    assert f["dense_description"] == prompt.replace("  ", " ")
    assert f["background"] == "a sunny beach"
    assert f["style"] == "cinematic style"
    assert f["lighting"] == "sunset, warm golden light"
    assert f["atmosphere"] == "Calm atmosphere"
    assert f["camera_movement"] == "pan left"
    assert res.text.startswith(f["dense_description"])


def test_keyword_rewriter_invents_nothing() -> None:
    res = build_rewriter("keyword").rewrite("A red apple.", mode="master")
    assert res.fields == {**{k: "" for k in CAPTION_FIELDS}, "short_description": "A red apple.",
                          "dense_description": "A red apple."}
    assert res.text == "A red apple."
    assert build_rewriter().rewrite("   ").fields == {k: "" for k in CAPTION_FIELDS}
    # a whole clause naming the field is kept; "light blue" is a colour, not lighting
    cap = extract_caption("A cat in a light blue hat. In the background, snowy mountains under soft morning light.")
    assert cap.lighting == "soft morning light"
    assert cap.background == "snowy mountains under soft morning light"
    assert extract_caption("Kids play; in the background a tram passes").background == "a tram passes"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The camera slowly zooms in on her face", "zoom in"),
        ("slow dolly out from the stage", "zoom out"),
        ("camera tilts up to reveal the tower", "tilt up"),
        ("the camera orbits around the dancer to the right", "around right"),
        ("handheld footage of a crowd", "handheld shot"),
        ("static shot of a lake", "static shot"),
        ("A frying pan left on the stove", ""),
        ("two pans left on the table, he pulls out a knife", ""),
        ("panning right over the rooftops", "pan right"),
        ("a quiet street", ""),
    ],
)
def test_camera_movement_vocabulary(text: str, expected: str) -> None:
    got = extract_camera_movement(text)
    assert got == expected
    assert got == "" or got in CAMERA_MOVEMENTS


def test_caption_flattening_and_validation() -> None:
    cap = CaptionFields(dense_description="A fox in snow.", style="watercolor", camera_movement="zoom out")
    assert caption_to_prompt(cap) == "A fox in snow. Style: watercolor. Camera movement: zoom out."
    with pytest.raises(ValueError):
        CaptionFields(camera_movement="fly through")


def test_local_rewriter_without_weights_names_setting(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="rewriter.model_path"):
        build_rewriter({"backend": "local"})
    with pytest.raises(MissingWeightsError, match="rewriter.model_path"):
        build_rewriter({"backend": "local", "model_path": str(tmp_path / "nope")})
