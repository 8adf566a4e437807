"""Stable identifiers: the same source and frame range always get the same id."""

from __future__ import annotations

import hashlib


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def video_id(source: str) -> str:
    """Id of an input video: a hash of its source URI/path as given after normalisation."""
    return _digest(source)


def clip_id(source: str, start_frame: int, end_frame: int) -> str:
    """Id of a clip: a hash of its source and its frame range [start_frame, end_frame)."""
    return _digest(f"{source}|{int(start_frame)}|{int(end_frame)}")
