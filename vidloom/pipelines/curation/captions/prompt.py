"""What a vision-language model is asked (our own wording), and how its reply becomes a caption.

The prompt lists the caption fields with what each holds, states the camera movement the
motion analysis measured, and carries the JSON schema. Parsing is tolerant (JSON in code
fences or prose, missing or extra fields, non-string values: see
`vidloom.platform.caption_schema.normalize_caption`), and the camera movement is the
measured label unless `caption.camera_movement` is ``model``.
"""

from __future__ import annotations

import json
from typing import Any

from vidloom.pipelines.curation.captions.base import CaptionError
from vidloom.platform.caption_schema import (
    CAMERA_MOVEMENTS,
    CAPTION_FIELDS,
    FIELD_DESCRIPTIONS,
    CaptionFields,
    caption_json_schema,
    extract_json_object,
    normalize_camera_movement,
    normalize_caption,
)

SYSTEM_PROMPT = (
    "You write structured captions of short video clips; the captions train a text-to-video "
    "model. You are shown frames taken at even intervals from one clip, in time order. Describe "
    "only what the frames show; do not guess names, places or events you cannot see. Answer "
    "with a single JSON object and no other text."
)


def measured_movement(clip: dict[str, Any]) -> str:
    """The clip's measured camera-motion label when it is one of the 14 labels, else ''."""
    return normalize_camera_movement(clip.get("camera_motion"))


def user_prompt(clip: dict[str, Any], num_frames: int, camera_movement: str = "measured") -> str:
    """The user-turn text for one clip (the frames are sent as image parts beside it)."""
    lines = [f"These {num_frames} frames come from one clip of {float(clip.get('duration_s') or 0):.1f} s.",
             "Write its caption as a JSON object with exactly these string fields:"]
    lines += [f'- "{name}": {FIELD_DESCRIPTIONS[name]}' for name in CAPTION_FIELDS]
    measured = measured_movement(clip)
    if measured and camera_movement == "measured":
        lines.append(f'Motion analysis of the clip measured the camera movement "{measured}"; '
                     f'write camera_movement as "{measured}" and keep the descriptions consistent with it.')
    elif measured:
        lines.append(f'Motion analysis of the clip measured the camera movement "{measured}". Set '
                     "camera_movement to the label that fits what you see, one of: "
                     + ", ".join(CAMERA_MOVEMENTS) + ".")
    else:
        lines.append("Set camera_movement to one of: " + ", ".join(CAMERA_MOVEMENTS) + ".")
    lines.append("JSON schema of the answer:")
    lines.append(json.dumps(caption_json_schema(), separators=(",", ":")))
    return "\n".join(lines)


def parse_caption_reply(text: str, clip: dict[str, Any], camera_movement: str = "measured") -> CaptionFields:
    """The caption in a model reply, normalised; raises CaptionError when there is none."""
    obj = extract_json_object(text)
    if obj is None:
        raise CaptionError(f"reply has no JSON object: {text.strip()[:160]!r}")
    caption = normalize_caption(obj)
    if not (caption.short_description or caption.dense_description):
        raise CaptionError(f"reply JSON has no description: {json.dumps(obj, ensure_ascii=False)[:160]}")
    measured = measured_movement(clip)
    if camera_movement == "measured" or not caption.camera_movement:
        caption.camera_movement = measured
    return caption
