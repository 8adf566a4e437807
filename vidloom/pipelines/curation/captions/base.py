"""The interface every caption backend implements, and the per-clip outcome it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidloom.platform.caption_schema import CaptionFields
from vidloom.platform.openai_client import ChatError


class CaptionError(RuntimeError):
    """One clip could not be captioned (no usable reply, no frames...); others continue."""


@dataclass
class CaptionOutcome:
    """A clip's caption, or the reason there is none."""

    caption: CaptionFields | None
    error: str = ""


# What a backend is given for one clip: its manifest record and its shipped RGB frames.
ClipInput = tuple[dict[str, Any], list[np.ndarray]]


class CaptionBackend(ABC):
    """Writes one structured caption per clip; `name` is stored as the clip's caption_backend."""

    name: str

    @abstractmethod
    def caption(self, clip: dict[str, Any], frames: list[np.ndarray]) -> CaptionFields:
        """Caption one clip from its record (measured signals) and frames, or raise CaptionError."""

    def caption_one(self, item: ClipInput) -> CaptionOutcome:
        """`caption` with a clip's expected failures turned into an outcome with the reason."""
        clip, frames = item
        try:
            return CaptionOutcome(self.caption(clip, frames))
        except (CaptionError, ChatError) as exc:
            return CaptionOutcome(None, str(exc)[:450])

    def caption_many(self, items: list[ClipInput]) -> list[CaptionOutcome]:
        """Caption several clips, in order (backends that can overlap requests override this)."""
        return [self.caption_one(item) for item in items]
