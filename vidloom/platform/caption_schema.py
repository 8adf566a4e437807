"""The structured caption of the HunyuanVideo report: fields, JSON schema, tolerant parsing.

Training captions (curation's captioning stage) and prompt rewrites (the rewriter) are JSON
objects with the fields in `CAPTION_FIELDS`; ``camera_movement`` is one of `CAMERA_MOVEMENTS`
or empty. Empty means "not stated", never a guess. This module is the single definition of
that object: its fields, the JSON schema sent to servers that constrain their output, the
normalisation of whatever a model actually returned, and `caption_to_prompt`, the one place
that flattens a caption into text-encoder input, so training and inference flatten alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

CAPTION_FIELDS: tuple[str, ...] = (
    "short_description",
    "dense_description",
    "background",
    "style",
    "lighting",
    "atmosphere",
    "camera_movement",
)

# The report's 14 camera-movement types (the same vocabulary the motion classifier emits).
CAMERA_MOVEMENTS: tuple[str, ...] = (
    "zoom in",
    "zoom out",
    "pan left",
    "pan right",
    "pan up",
    "pan down",
    "tilt up",
    "tilt down",
    "tilt left",
    "tilt right",
    "around left",
    "around right",
    "static shot",
    "handheld shot",
)

# What each field holds, in words a model (and a reader of the manifest) can follow.
FIELD_DESCRIPTIONS: dict[str, str] = {
    "short_description": "one sentence summarising the main content of the clip",
    "dense_description": "several sentences describing everything visible and how it changes over the clip",
    "background": "the environment or setting behind the main content",
    "style": "the shot type (e.g. aerial, close-up, medium shot, wide shot) and visual style",
    "lighting": "the light: brightness, direction, colour temperature, contrast",
    "atmosphere": "the mood or feeling the clip conveys",
    "camera_movement": "how the camera moves, one of the fixed camera-movement labels",
}

# Labels used when a field is appended to the flattened prompt.
_LABELS = {
    "background": "Background",
    "style": "Style",
    "lighting": "Lighting",
    "atmosphere": "Atmosphere",
    "camera_movement": "Camera movement",
}


def caption_json_schema() -> dict[str, Any]:
    """JSON schema of one caption object (all fields required strings, no others)."""
    props: dict[str, Any] = {name: {"type": "string", "description": FIELD_DESCRIPTIONS[name]}
                             for name in CAPTION_FIELDS}
    props["camera_movement"] = {"type": "string", "enum": list(CAMERA_MOVEMENTS),
                                "description": FIELD_DESCRIPTIONS["camera_movement"]}
    return {"type": "object", "properties": props, "required": list(CAPTION_FIELDS),
            "additionalProperties": False}


@dataclass
class CaptionFields:
    """One structured caption; every field is a string, empty when unknown."""

    short_description: str = ""
    dense_description: str = ""
    background: str = ""
    style: str = ""
    lighting: str = ""
    atmosphere: str = ""
    camera_movement: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise TypeError(f"caption field {f.name} must be a string, got {type(value).__name__}")
        if self.camera_movement and self.camera_movement not in CAMERA_MOVEMENTS:
            raise ValueError(f"camera_movement {self.camera_movement!r} not in {CAMERA_MOVEMENTS}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaptionFields":
        """Build from a mapping; keys outside `CAPTION_FIELDS` are ignored, None -> ''."""
        return cls(**{k: ("" if data.get(k) is None else str(data[k])) for k in CAPTION_FIELDS if k in data})


def caption_to_prompt(caption: CaptionFields) -> str:
    """Flatten a caption into encoder text.

    The dense description (else the short one) comes first; each other non-empty field is
    appended as ``"Label: value."`` unless its value already appears in the text, so a caption
    extracted from a prompt flattens back to that prompt without repetition.
    """
    text = (caption.dense_description or caption.short_description).strip()
    parts = [text] if text else []
    lowered = text.lower()
    for name, label in _LABELS.items():
        value = getattr(caption, name).strip()
        if value and value.lower() not in lowered:
            parts.append(f"{label}: {value}.")
    return " ".join(parts)


_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model reply: the whole reply, a fenced block, or embedded.

    Models wrap JSON in code fences or in prose ("Here is the caption: {...} Hope it helps").
    Candidates are tried in that order; embedded objects are found by decoding from each
    ``{`` with a real JSON decoder, so braces inside strings do not confuse it.
    """
    body = text.strip()
    candidates = [body] + [m.group(1).strip() for m in _FENCE.finditer(body)]
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(body) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(body, start)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _as_text(value: Any) -> str:
    """A model's value for a text field as one string (lists joined, objects flattened)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in (_as_text(v) for v in value) if t)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {t}" for k, t in ((k, _as_text(v)) for k, v in value.items()) if t)
    if isinstance(value, bool):
        return ""  # true/false says nothing a caption field could hold
    return str(value)


def normalize_camera_movement(value: Any) -> str:
    """A camera-movement value mapped onto `CAMERA_MOVEMENTS` ('' when it is not one of them).

    Accepts case, spacing, hyphen/underscore variants and a missing "shot" ("static" ->
    "static shot"); anything else is dropped rather than guessed.
    """
    text = re.sub(r"[\s_\-]+", " ", _as_text(value).lower()).strip(" .")
    if text in CAMERA_MOVEMENTS:
        return text
    if f"{text} shot" in CAMERA_MOVEMENTS:
        return f"{text} shot"
    return ""


def normalize_caption(data: dict[str, Any]) -> CaptionFields:
    """A caption from whatever object a model returned.

    Field names are matched case-insensitively (spaces/hyphens as underscores); unknown keys
    are dropped, missing ones are empty, non-string values are turned into text, and a
    camera movement outside the vocabulary becomes empty.
    """
    keyed = {re.sub(r"[\s\-]+", "_", str(k).strip().lower()): v for k, v in data.items()}
    values = {name: _as_text(keyed.get(name)) for name in CAPTION_FIELDS}
    values["camera_movement"] = normalize_camera_movement(keyed.get("camera_movement"))
    return CaptionFields(**values)
