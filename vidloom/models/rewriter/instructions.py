"""Instructions for LLM-backed prompt rewriting: the report's Normal and Master modes.

Both modes turn a user's prompt into the kind of description the DiT was trained on. Normal
mode stays close to the user's intent and keeps short inputs short; Master mode elaborates
composition, lighting and camera work for a more cinematic result. The wording here is
vidloom's own; the instructions go in the system turn and the user's prompt in the user turn.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["normal", "master"]
MODES: tuple[str, ...] = ("normal", "master")

_COMMON_HEAD = (
    "You rewrite prompts for a text-to-video model so that they read like the video "
    "descriptions it was trained on. Rules:\n"
    "1. Keep every piece of information in the input, including style words and technical "
    "terms; never contradict it.\n"
    "2. If the input is not in English, translate all of it into English.\n"
)

_COMMON_TAIL = (
    "5. Write the result in English only.\n"
    "6. Reply with the rewritten description alone: no preamble, no quotes, no lists."
)

NORMAL_INSTRUCTIONS = (
    _COMMON_HEAD
    + "3. If the input is only a word or two naming a thing or a person, answer with one or "
    "two short sentences about how it looks.\n"
    "4. Where the input says nothing about style, lighting or mood, you may add plausible "
    "ones that fit it.\n"
    + _COMMON_TAIL
)

MASTER_INSTRUCTIONS = (
    _COMMON_HEAD
    + "3. Aim for a visually striking, well-composed scene: describe each visual element "
    "with care - subject, composition, colour, light, texture, camera - so the result has "
    "a distinct aesthetic.\n"
    "4. Where the input says nothing about style, lighting or mood, you may add plausible "
    "ones that fit it.\n"
    + _COMMON_TAIL
)

INSTRUCTIONS: dict[str, str] = {"normal": NORMAL_INSTRUCTIONS, "master": MASTER_INSTRUCTIONS}


def normalize_mode(mode: str) -> Mode:
    """Accept ``"Normal"``/``"Master"`` in any case; reject anything else."""
    key = mode.strip().lower()
    if key not in MODES:
        raise ValueError(f"rewrite mode must be one of {MODES}, got {mode!r}")
    return key  # type: ignore[return-value]


def build_messages(prompt: str, mode: str = "normal") -> list[dict[str, str]]:
    """Chat messages for one rewrite: system = the mode's instructions, user = the prompt."""
    return [
        {"role": "system", "content": INSTRUCTIONS[normalize_mode(mode)]},
        {"role": "user", "content": f"Input: {prompt}"},
    ]
