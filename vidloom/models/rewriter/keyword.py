"""The offline default rewriter: deterministic keyword extraction into caption fields.

No model, no network, no invention: every non-empty field is a phrase copied from the
prompt (camera movement is mapped onto the fixed vocabulary). What the prompt does not state
stays empty. Normal and Master modes give the same output here, because elaborating a scene
(Master) would mean inventing content; they differ only for the LLM backends.

Rules, applied to clauses (text between , ; . ! ? and newlines):

* short_description: the first sentence; dense_description: the whole prompt, whitespace
  normalised.
* style / lighting / atmosphere / background: a clause that names the field ("... style",
  "lighting", "mood"/"atmosphere", "in the background") is taken whole; otherwise known
  vocabulary phrases are taken (e.g. "watercolor", "golden hour", "serene", "on a beach").
* camera_movement: the first camera phrase ("camera pans left", "zooms in", "handheld",
  "static shot", "orbits ... to the right"); bare "pan"/"tilt" need "camera" or "shot" in
  the same sentence (or the -ing form) so a frying pan is not a camera move.
"""

from __future__ import annotations

import re

from vidloom.models.rewriter.base import PromptRewriter, RewriteResult
from vidloom.models.rewriter.instructions import normalize_mode
from vidloom.platform.caption_schema import CaptionFields, caption_to_prompt

_CLAUSE = re.compile(r"[^,;.!?\n]+")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def _words(*items: str) -> str:
    return "|".join(sorted(items, key=len, reverse=True))


_STYLE_WORDS = _words(
    "cinematic", "photorealistic", "hyperrealistic", "realistic", "anime", "cartoon", "animated",
    "3d animation", "3d render", "cgi", "pixel art", "watercolor", "watercolour", "oil painting",
    "pencil sketch", "sketch", "claymation", "stop-motion", "stop motion", "black and white",
    "black-and-white", "monochrome", "sepia", "vintage", "retro", "film noir", "noir", "documentary",
    "cyberpunk", "steampunk", "surreal", "minimalist", "impressionist", "vaporwave", "low poly",
    "ukiyo-e", "comic book", "painterly", "film grain", "35mm film", "16mm film", "vhs", "8k", "4k", "hdr",
)
_LIGHT_WORDS = _words(
    "golden hour", "blue hour", "sunset", "sunrise", "dusk", "dawn", "twilight", "at night", "nighttime",
    "midday", "noon", "overcast", "moonlight", "moonlit", "sunlight", "sunlit", "candlelight", "candlelit",
    "backlit", "backlighting", "neon lights", "neon light", "spotlight", "silhouette", "silhouetted",
    "high key", "low key", "chiaroscuro", "rim light", "volumetric light", "god rays",
)
_ATMOS_WORDS = _words(
    "calm", "peaceful", "serene", "tranquil", "tense", "suspenseful", "mysterious", "eerie", "spooky",
    "ominous", "joyful", "cheerful", "playful", "melancholic", "melancholy", "somber", "sombre",
    "romantic", "cozy", "cosy", "dreamy", "dreamlike", "nostalgic", "gloomy", "festive", "lively",
    "bustling", "chaotic", "energetic", "whimsical", "epic", "magical", "foggy", "misty", "hazy",
)
_SCENE_NOUNS = _words(
    "forest", "woods", "jungle", "beach", "shore", "coast", "ocean", "sea", "lake", "river", "waterfall",
    "mountain", "mountains", "hill", "hills", "valley", "desert", "field", "meadow", "grass", "grassland",
    "garden", "park", "city", "town", "village", "street", "road", "alley", "highway", "bridge", "square",
    "room", "kitchen", "bedroom", "living room", "office", "classroom", "studio", "stage", "library",
    "cafe", "restaurant", "bar", "market", "station", "airport", "stadium", "warehouse", "factory",
    "church", "temple", "castle", "house", "rooftop", "balcony", "sky", "space", "snow", "ice",
    "underwater", "cave", "farm", "island", "harbor", "harbour", "lab", "laboratory", "subway", "train",
)

_FIELD_LABEL = {
    "style": re.compile(r"\b(?:style|styled|aesthetic|art style)\b", re.I),
    "lighting": re.compile(r"\b(?:lighting|lit|illuminated|illumination)\b", re.I),
    "atmosphere": re.compile(r"\b(?:atmosphere|atmospheric|mood|ambience|ambiance|vibe)\b", re.I),
    "background": re.compile(r"\b(?:background|backdrop|in the distance|behind)\b", re.I),
}
_FIELD_VOCAB = {
    "style": re.compile(rf"(?<![\w-])(?:{_STYLE_WORDS})(?![\w-])", re.I),
    "lighting": re.compile(
        rf"(?<![\w-])(?:{_LIGHT_WORDS})(?![\w-])"
        # "<adjectives> light" used as a noun (not "light blue ..."): followed by a boundary.
        r"|(?:\b(?!a\b|an\b|the\b)[\w-]+\s+){1,2}(?:light|lights|glow)"
        r"(?=\s*(?:$|[,;.!?\n])|\s+(?:and|from|on|in|of|through|with|at|over|across|falls|fills|streams|shines|casts)\b)",
        re.I,
    ),
    "atmosphere": re.compile(rf"(?<![\w-])(?:{_ATMOS_WORDS})(?![\w-])", re.I),
    "background": re.compile(
        r"\b(?:in|on|at|inside|under|across|through|along|over|near|beside|into)\s+"
        rf"((?:the|a|an)\s+(?:[\w-]+\s+){{0,3}}?(?:{_SCENE_NOUNS}))(?![\w-])",
        re.I,
    ),
}

# (pattern, movement); a leading "camera" check is applied to ambiguous verbs.
_CAMERA: list[tuple[re.Pattern[str], str | None, bool]] = [
    (re.compile(r"\b(?:zoom(?:s|ed|ing)?|push(?:es|ed|ing)?|doll(?:y|ies|ied|ying))\s+in\b", re.I), "zoom in", False),
    (re.compile(r"\b(?:zoom(?:s|ed|ing)?|doll(?:y|ies|ied|ying))\s+out\b", re.I), "zoom out", False),
    # "pulls out a knife" is no camera move: needs camera context like pan/tilt.
    (re.compile(r"\bpull(?:s|ed|ing)?\s+(?:back|out)\b", re.I), "zoom out", True),
    (re.compile(r"\bpan(?:s|ned|ning)?\s+(?:to\s+the\s+)?(left|right|up|down)\b", re.I), "pan", True),
    (re.compile(r"\btilt(?:s|ed|ing)?\s+(?:to\s+the\s+)?(up|down|left|right)\b", re.I), "tilt", True),
    (
        re.compile(
            r"\b(?:orbit(?:s|ed|ing)?|circl(?:e|es|ed|ing)|arc(?:s|ed|ing)?|(?:mov|rotat)(?:e|es|ed|ing)\s+around)"
            r"(?:\s+[\w-]+){0,4}?\s+(?:to\s+the\s+)?(left|right)\b|\baround\s+(left|right)\b",
            re.I,
        ),
        "around",
        False,
    ),
    (re.compile(r"\bstatic\s+(?:shot|camera)\b|\b(?:fixed|locked[- ]off|stationary|still)\s+camera\b|\btripod\s+shot\b", re.I), "static shot", False),
    (re.compile(r"\bhand[- ]?held\b|\bshaky\s+cam(?:era)?\b", re.I), "handheld shot", False),
]
_BACKGROUND_LEAD = re.compile(
    r"^(?:(?:in|on|against)\s+)?(?:the|a)\s+(?:background|backdrop|distance)\b[\s:-]*(?:(?:is|are|shows?|of)\b)?\s*",
    re.I,
)
_CAMERA_CONTEXT = re.compile(r"\b(?:camera|shot|lens|view)\b", re.I)


def _normalise(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip("\"'“”‘’ ").strip()


def _clean(phrase: str) -> str:
    return re.sub(r"^(?:and|with|in|under)\s+", "", phrase.strip(), flags=re.I).strip()


def _extract(text: str, field: str) -> str:
    """Phrases for one field, in prompt order, de-duplicated."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    label = _FIELD_LABEL[field]
    clauses = list(_CLAUSE.finditer(text))
    for i, m in enumerate(clauses):
        if label.search(m.group(0)):
            phrase, end = m.group(0), m.end()
            if field == "background":
                # "In the background, X" -> X: drop the label, take the next clause if bare.
                phrase = _BACKGROUND_LEAD.sub("", phrase.strip())
                if not phrase and i + 1 < len(clauses) and text[m.end()] == ",":
                    phrase, end = clauses[i + 1].group(0), clauses[i + 1].end()
            found.append((m.start(), _clean(phrase)))
            taken.append((m.start(), end))
    for m in _FIELD_VOCAB[field].finditer(text):
        start, end = m.span(m.lastindex or 0)
        if any(a <= start and end <= b for a, b in taken):
            continue  # already covered by a labelled clause
        found.append((start, _clean(text[start:end])))
        taken.append((start, end))
    seen: set[str] = set()
    out = []
    for _, phrase in sorted(found):
        key = phrase.lower()
        if phrase and key not in seen:
            seen.add(key)
            out.append(phrase)
    return ", ".join(out)


def _sentence_at(text: str, pos: int) -> str:
    for m in _SENTENCE.finditer(text):
        if m.start() <= pos < m.end():
            return m.group(0)
    return text


def extract_camera_movement(text: str) -> str:
    """The first camera movement stated in `text`, mapped to `CAMERA_MOVEMENTS`, or ''."""
    best: tuple[int, str] | None = None
    for pattern, movement, needs_context in _CAMERA:
        for m in pattern.finditer(text):
            # "panning"/"tilting" are camera words on their own; "pans"/"pulls out" are not.
            if needs_context and not (
                _CAMERA_CONTEXT.search(_sentence_at(text, m.start())) or re.match(r"(?:pann|tilt)ing\b", m.group(0), re.I)
            ):
                continue
            if movement in ("pan", "tilt", "around"):
                direction = next(g for g in m.groups() if g)
                name = f"{movement} {direction.lower()}"
            else:
                name = movement or ""
            if best is None or m.start() < best[0]:
                best = (m.start(), name)
            break
    return best[1] if best else ""


def extract_caption(prompt: str) -> CaptionFields:
    """Caption fields stated in `prompt` (keyword extraction only; unstated fields are '')."""
    text = _normalise(prompt)
    if not text:
        return CaptionFields()
    first = _SENTENCE.search(text)
    return CaptionFields(
        short_description=first.group(0).strip() if first else text,
        dense_description=text,
        background=_extract(text, "background"),
        style=_extract(text, "style"),
        lighting=_extract(text, "lighting"),
        atmosphere=_extract(text, "atmosphere"),
        camera_movement=extract_camera_movement(text),
    )


class KeywordRewriter(PromptRewriter):
    """Deterministic, offline rewriter: prompt -> caption fields -> flattened prompt."""

    backend = "keyword"

    def rewrite(self, prompt: str, mode: str = "normal") -> RewriteResult:
        mode = normalize_mode(mode)
        caption = extract_caption(prompt)
        return RewriteResult(
            text=caption_to_prompt(caption),
            mode=mode,
            backend=self.backend,
            original=prompt,
            fields=caption.to_dict(),
        )
