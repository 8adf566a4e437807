"""Explicit map between vidloom's VAE parameter names and diffusers' / the official release's.

The official HunyuanVideo ``884-16c-hy`` checkpoint uses exactly diffusers'
``AutoencoderKLHunyuanVideo`` names, possibly wrapped in ``{"state_dict": ...}`` (or
``"module"``/``"model"``) and/or prefixed with ``vae.``. Ours differ where our modules are
flatter: a causal conv *is* an ``nn.Conv3d`` (no inner ``.conv``), a block has one
``downsample``/``upsample`` instead of a one-element list, and the mid-block attention is
our own module.
"""

from __future__ import annotations

import re

import torch

#: Placeholders usable in `KEY_LAYOUT`, with the names they may stand for.
_SLOTS = {
    "m": r"encoder|decoder",
    "i": r"\d+",
    "j": r"\d+",
    "p": r"weight|bias",
    "conv": r"conv1|conv2|conv_shortcut",
    "norm": r"norm1|norm2",
    "proj": r"to_q|to_k|to_v",
}

#: (vidloom name, diffusers name) templates; every parameter matches exactly one row.
KEY_LAYOUT: list[tuple[str, str]] = [
    ("quant_conv.{p}", "quant_conv.{p}"),
    ("post_quant_conv.{p}", "post_quant_conv.{p}"),
    ("{m}.conv_in.{p}", "{m}.conv_in.conv.{p}"),
    ("{m}.conv_out.{p}", "{m}.conv_out.conv.{p}"),
    ("{m}.norm_out.{p}", "{m}.conv_norm_out.{p}"),
    ("encoder.down_blocks.{i}.resnets.{j}.{conv}.{p}", "encoder.down_blocks.{i}.resnets.{j}.{conv}.conv.{p}"),
    ("encoder.down_blocks.{i}.resnets.{j}.{norm}.{p}", "encoder.down_blocks.{i}.resnets.{j}.{norm}.{p}"),
    ("encoder.down_blocks.{i}.downsample.{p}", "encoder.down_blocks.{i}.downsamplers.0.conv.conv.{p}"),
    ("decoder.up_blocks.{i}.resnets.{j}.{conv}.{p}", "decoder.up_blocks.{i}.resnets.{j}.{conv}.conv.{p}"),
    ("decoder.up_blocks.{i}.resnets.{j}.{norm}.{p}", "decoder.up_blocks.{i}.resnets.{j}.{norm}.{p}"),
    ("decoder.up_blocks.{i}.upsample.conv.{p}", "decoder.up_blocks.{i}.upsamplers.0.conv.conv.{p}"),
    ("{m}.mid_block.resnets.{j}.{conv}.{p}", "{m}.mid_block.resnets.{j}.{conv}.conv.{p}"),
    ("{m}.mid_block.resnets.{j}.{norm}.{p}", "{m}.mid_block.resnets.{j}.{norm}.{p}"),
    ("{m}.mid_block.attention.norm.{p}", "{m}.mid_block.attentions.0.group_norm.{p}"),
    ("{m}.mid_block.attention.{proj}.{p}", "{m}.mid_block.attentions.0.{proj}.{p}"),
    ("{m}.mid_block.attention.to_out.{p}", "{m}.mid_block.attentions.0.to_out.0.{p}"),
]


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for slot, alternatives in _SLOTS.items():
        pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{alternatives})")
    return re.compile(pattern + r"\Z")


_TO_DIFFUSERS = [(_compile(ours), theirs) for ours, theirs in KEY_LAYOUT]
_FROM_DIFFUSERS = [(_compile(theirs), ours) for ours, theirs in KEY_LAYOUT]


def _translate(key: str, rules: list[tuple[re.Pattern[str], str]], direction: str) -> str:
    for pattern, target in rules:
        match = pattern.match(key)
        if match:
            return target.format(**match.groupdict())
    raise KeyError(f"VAE parameter {key!r} has no {direction} name in the key map")


def to_diffusers_key(key: str) -> str:
    """vidloom parameter name -> diffusers / official name."""
    return _translate(key, _TO_DIFFUSERS, "diffusers")


def from_diffusers_key(key: str) -> str:
    """diffusers / official parameter name -> vidloom name."""
    return _translate(key, _FROM_DIFFUSERS, "vidloom")


def to_diffusers_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a vidloom VAE state dict to diffusers' layout."""
    return {to_diffusers_key(k): v for k, v in state.items()}


def from_diffusers_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a diffusers / official VAE state dict to vidloom's layout."""
    return {from_diffusers_key(k): v for k, v in state.items()}


def unwrap_official_state_dict(obj: dict) -> dict[str, torch.Tensor]:
    """Strip the wrappers of a released checkpoint: ``state_dict``/``module``/``model`` and a ``vae.`` prefix."""
    for wrapper in ("state_dict", "module", "model"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if any(k.startswith("vae.") for k in obj):
        obj = {k[len("vae."):]: v for k, v in obj.items() if k.startswith("vae.")}
    return obj
