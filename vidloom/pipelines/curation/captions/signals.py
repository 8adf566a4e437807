"""The offline default caption backend, ``signals``: a caption made only of measurements.

It never names objects, subjects, places or moods, because nothing here recognises them. Every
sentence comes from the templates below (documented verbatim in docs/captions.md), filled with
words from the tables below, so the whole vocabulary it can use is `VOCABULARY`.

* ``camera_movement``: the clip's measured ``camera_motion`` label.
* ``lighting``: colour temperature (warmth), brightness (mean luma) and contrast (luma spread).
* ``style``: shot scale (only when a frontal face gives evidence of it), letterbox/pillarbox
  from ``border_box``, and the colour palette.
* ``short_description`` / ``dense_description``: the same facts as sentences, plus on-screen
  text from ``text_ratio``.
* ``background`` and ``atmosphere`` stay empty: they would need recognition.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vidloom.pipelines.curation.captions.base import CaptionBackend
from vidloom.pipelines.curation.captions.measure import COLOUR_NAMES, MIN_FACE_HEIGHT, FrameStats, frame_stats
from vidloom.pipelines.curation.captions.prompt import measured_movement
from vidloom.platform.caption_schema import CAMERA_MOVEMENTS, CaptionFields

# -- templates (docs/captions.md lists them verbatim) ----------------------------------------
SHORT_TEMPLATE = "A {movement} in {temperature}, {brightness} light{text}."
SHORT_TEMPLATE_NO_FRAMES = "A {movement}{text}."
TEXT_CLAUSE = " with on-screen text"
LIGHTING_TEMPLATE = "{temperature}, {brightness}, {contrast}-contrast light"
PALETTE_TEMPLATE = "{saturation} palette of {colours}"
COLOURLESS_PALETTE = "nearly colourless palette of {colours}"
DENSE_COLOURS = "The colours are {saturation}, mostly {colours}."
DENSE_COLOURLESS = "The picture is nearly colourless, mostly {colours}."
DENSE_CONTRAST = "Contrast is {contrast}."
DENSE_FRAMING = "The framing is a {scale}."
DENSE_BARS = {
    "letterboxed": "The picture is letterboxed, with bars at the top and bottom.",
    "pillarboxed": "The picture is pillarboxed, with bars at the left and right.",
    "windowboxed": "The picture is windowboxed, with bars on all sides.",
}
DENSE_TEXT = "On-screen text covers about {percent} percent of the frame."

# -- word tables -----------------------------------------------------------------------------
MOVEMENT_PHRASES: dict[str, str] = {
    "static shot": "static shot", "handheld shot": "handheld shot",
    "zoom in": "zoom-in shot", "zoom out": "zoom-out shot",
    "pan left": "shot panning left", "pan right": "shot panning right",
    "pan up": "shot panning up", "pan down": "shot panning down",
    "tilt up": "shot tilting up", "tilt down": "shot tilting down",
    "tilt left": "shot tilting left", "tilt right": "shot tilting right",
    "around left": "shot circling left", "around right": "shot circling right",
    "": "shot",
}
# (upper bound, word): the first bound above the measured value gives the word.
BRIGHTNESS_WORDS = ((50.0, "dark"), (100.0, "dim"), (160.0, "moderate"), (float("inf"), "bright"))  # mean luma
CONTRAST_WORDS = ((40.0, "low"), (64.0, "moderate"), (float("inf"), "high"))  # luma std
SATURATION_WORDS = ((0.35, "muted"), (0.6, "moderately saturated"), (float("inf"), "vivid"))  # mean saturation
#: Mean red minus mean blue (grey levels) beyond which light is called warm (or, negated, cool).
WARMTH_THRESHOLD = 12.0
#: Frontal-face height / content height from which the framing is a close-up or medium shot;
#: smaller faces (or none) give no shot scale, since nothing else measured supports one.
CLOSE_UP_FACE = 0.30
MEDIUM_SHOT_FACE = MIN_FACE_HEIGHT  # the face search looks for nothing smaller
#: Named colours must cover at least this share of the pixels to be listed (at most 3 are).
MIN_COLOUR_SHARE = 0.10
#: Coloured pixels below this share make the palette "nearly colourless".
MIN_COLOURED_SHARE = 0.05
#: text_ratio (share of frame area covered by text boxes) from which text is mentioned.
MIN_TEXT_RATIO = 0.002
#: Bars thinner than this fraction of the side are not mentioned.
MIN_BAR_FRACTION = 0.02

_TEMPLATES = (SHORT_TEMPLATE, SHORT_TEMPLATE_NO_FRAMES, TEXT_CLAUSE, LIGHTING_TEMPLATE, PALETTE_TEMPLATE,
              COLOURLESS_PALETTE, DENSE_COLOURS, DENSE_COLOURLESS, DENSE_CONTRAST, DENSE_FRAMING,
              DENSE_TEXT, *DENSE_BARS.values())
_FILLERS = (*MOVEMENT_PHRASES.values(), *CAMERA_MOVEMENTS, *COLOUR_NAMES, "warm", "cool", "neutral", "and",
            "close-up", "medium shot", *DENSE_BARS, *(w for table in (BRIGHTNESS_WORDS, CONTRAST_WORDS,
                                                                        SATURATION_WORDS) for _, w in table))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", re.sub(r"\{[a-z_]+\}", " ", text.lower())))


#: Every word a signals caption can contain (numbers aside).
VOCABULARY: frozenset[str] = frozenset().union(*(_words(t) for t in (*_TEMPLATES, *_FILLERS)))


def _grade(value: float, table: tuple[tuple[float, str], ...]) -> str:
    return next(word for bound, word in table if value < bound)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def temperature_word(stats: FrameStats) -> str:
    if stats.warmth > WARMTH_THRESHOLD:
        return "warm"
    return "cool" if stats.warmth < -WARMTH_THRESHOLD else "neutral"


def shot_scale(stats: FrameStats) -> str:
    """"close-up" / "medium shot" from a consistent frontal face, else '' (no evidence)."""
    if stats.face_height is None:
        return ""
    if stats.face_height >= CLOSE_UP_FACE:
        return "close-up"
    return "medium shot" if stats.face_height >= MEDIUM_SHOT_FACE else ""


def bars(clip: dict[str, Any]) -> str:
    """"letterboxed" / "pillarboxed" / "windowboxed" from the clip's border_box, else ''."""
    box, w, h = clip.get("border_box"), clip.get("width"), clip.get("height")
    if not box or not w or not h:
        return ""
    x0, y0, x1, y1 = box
    rows = y0 / h >= MIN_BAR_FRACTION or (h - y1) / h >= MIN_BAR_FRACTION
    cols = x0 / w >= MIN_BAR_FRACTION or (w - x1) / w >= MIN_BAR_FRACTION
    return "windowboxed" if rows and cols else "letterboxed" if rows else "pillarboxed" if cols else ""


def has_text(clip: dict[str, Any]) -> bool:
    ratio = clip.get("text_ratio")
    return ratio is not None and float(ratio) >= MIN_TEXT_RATIO


def signals_caption(clip: dict[str, Any], frames: list[np.ndarray]) -> CaptionFields:
    """The signals caption of one clip from its record and shipped frames (deterministic)."""
    movement = measured_movement(clip)
    text = TEXT_CLAUSE if has_text(clip) else ""
    framing = bars(clip)
    dense: list[str] = []
    style: list[str] = []
    lighting = ""
    if frames:
        stats = frame_stats(frames, clip.get("border_box"), clip.get("width"), clip.get("height"))
        temperature = temperature_word(stats)
        brightness = _grade(stats.luma_mean, BRIGHTNESS_WORDS)
        contrast = _grade(stats.luma_std, CONTRAST_WORDS)
        short = SHORT_TEMPLATE.format(movement=MOVEMENT_PHRASES[movement], temperature=temperature,
                                      brightness=brightness, text=text)
        lighting = LIGHTING_TEMPLATE.format(temperature=temperature, brightness=brightness, contrast=contrast)
        colours = _join([n for n, share in stats.palette[:3] if share >= MIN_COLOUR_SHARE] or [stats.palette[0][0]])
        scale = shot_scale(stats)
        if scale:
            style.append(scale)
        if stats.colour_share < MIN_COLOURED_SHARE:
            palette = COLOURLESS_PALETTE.format(colours=colours)
            colour_sentence = DENSE_COLOURLESS.format(colours=colours)
        else:
            saturation = _grade(stats.saturation, SATURATION_WORDS)
            palette = PALETTE_TEMPLATE.format(saturation=saturation, colours=colours)
            colour_sentence = DENSE_COLOURS.format(saturation=saturation, colours=colours)
        dense += [short, colour_sentence, DENSE_CONTRAST.format(contrast=contrast)]
        if scale:
            dense.append(DENSE_FRAMING.format(scale=scale))
    else:
        short = SHORT_TEMPLATE_NO_FRAMES.format(movement=MOVEMENT_PHRASES[movement], text=text)
        dense.append(short)
        palette = ""
    if framing:
        style.append(framing)
        dense.append(DENSE_BARS[framing])
    if palette:
        style.append(palette)
    if text:
        dense.append(DENSE_TEXT.format(percent=max(1, int(round(100 * float(clip["text_ratio"]))))))
    return CaptionFields(short_description=short, dense_description=" ".join(dense), style=", ".join(style),
                         lighting=lighting, camera_movement=movement)


class SignalsCaptioner(CaptionBackend):
    """Offline captions from measured signals only (``caption_backend: "signals"``)."""

    name = "signals"

    def caption(self, clip: dict[str, Any], frames: list[np.ndarray]) -> CaptionFields:
        return signals_caption(clip, frames)
