"""Instruction templates wrapped around a prompt before it goes through the decoder-only LLM.

The report feeds the MLLM an instruction ("describe the video along these aspects") followed
by the user prompt, then keeps only the hidden states of the prompt's own tokens: the
instruction steers the features without being part of them. The number of instruction
tokens to crop (`crop_start`) depends on the tokenizer, so we count it by tokenizing the part
of the template before the prompt instead of hard-coding it.

The wording below is vidloom's own. A DiT trained by others was trained with *their*
template; to serve such weights, set the encoder's ``template`` (and optionally
``crop_start``) to the one those weights expect.
"""

from __future__ import annotations

PROMPT_SLOT = "{prompt}"

#: Llama-3 chat layout; the prompt sits in the user turn, the instruction in the system turn.
VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Write a detailed description of the video covering: "
    "1. what the video shows and its subject. "
    "2. each object's colour, shape, size, texture, count, any visible text, and where objects "
    "are relative to one another. "
    "3. the actions and events, their order in time, and how things move and change. "
    "4. the background, the lighting, the visual style and the mood. "
    "5. the camera's angle, its movement, and any cuts or transitions:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n" + PROMPT_SLOT + "<|eot_id|>"
)

#: Same layout for single images (image-video joint training).
IMAGE_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Write a detailed description of the image covering the colour, shape, size, texture and "
    "count of the objects, any visible text, where objects are relative to one another, and the "
    "background:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n" + PROMPT_SLOT + "<|eot_id|>"
)

TEMPLATES: dict[str, str] = {"video": VIDEO_TEMPLATE, "image": IMAGE_TEMPLATE}


def _slot(template: str) -> str:
    # ``{}`` is accepted too, so templates written for str.format work unchanged.
    for mark in (PROMPT_SLOT, "{}"):
        if mark in template:
            return mark
    raise ValueError(f"template has no {PROMPT_SLOT} (or {{}}) slot")


def apply_template(template: str, prompt: str) -> str:
    """Insert `prompt` at the template's slot (no other formatting is applied)."""
    return template.replace(_slot(template), prompt, 1)


def template_prefix(template: str) -> str:
    """The instruction part that precedes the prompt (whose tokens are cropped)."""
    return template.split(_slot(template), 1)[0]
