"""The structured caption the DiT is trained on, and how it is flattened into one prompt.

Training captions (and the deterministic rewriter's output) are JSON objects with the fields
in `CAPTION_FIELDS`; ``camera_movement`` is one of `CAMERA_MOVEMENTS` or empty. Empty means
"not stated" — never a guess. `caption_to_prompt` is the single place that turns such an
object into the text given to the text encoder, so training and inference flatten alike.
"""

from __future__ import annotations

import json
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

# Labels used when a field is appended to the flattened prompt.
_LABELS = {
    "background": "Background",
    "style": "Style",
    "lighting": "Lighting",
    "atmosphere": "Atmosphere",
    "camera_movement": "Camera movement",
}


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
