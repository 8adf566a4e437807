"""State-dict layouts: ours ↔ official HunyuanVideo ↔ diffusers `HunyuanVideoTransformer3DModel`.

Ours: parameter names are *identical* to the official release (``double_blocks.N.img_attn_qkv``
…), so the official map is the identity after unwrapping the DeepSpeed ``{"module": ...}`` dict.

Diffusers renames every module and changes three tensor layouts:
  * fused qkv (``img_attn_qkv``, ``txt_attn_qkv``, refiner ``self_attn_qkv``) is split into
    ``to_q/to_k/to_v`` (text stream: ``add_q_proj/add_k_proj/add_v_proj``);
  * the single block's ``linear1`` is split into ``to_q/to_k/to_v/proj_mlp``;
  * the final layer's modulation stores (scale, shift) instead of (shift, scale).
All splits are along dim 0 (output features) of both weight and bias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from vidloom.models.dit.config import DiTConfig, default_rope_dims

# --------------------------------------------------------------------------------- official


def unwrap_official(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the tensor dict inside an official checkpoint (``module``/``model``/``state_dict``)."""
    state: Any = obj
    for wrapper in ("module", "model", "state_dict"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    return dict(state)


def official_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official key layout -> ours (identity by design; kept explicit so callers never assume)."""
    return dict(unwrap_official(state))


def ours_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our key layout -> official (identity by design)."""
    return dict(state)


# --------------------------------------------------------------------------------- diffusers

_P = r"\.(?P<param>weight|bias)$"  # every rule keeps the trailing parameter name
_R = r"txt_in\.individual_token_refiner\.blocks\.(?P<i>\d+)\."
_RD = "context_embedder.token_refiner.refiner_blocks.{i}."
_D = r"double_blocks\.(?P<i>\d+)\."
_DD = "transformer_blocks.{i}."
_S = r"single_blocks\.(?P<i>\d+)\."
_SD = "single_transformer_blocks.{i}."

# (our-key regex, diffusers key templates, op). op: "rename" | "split" | "swap".
DIFFUSERS_RULES: list[tuple[str, tuple[str, ...], str]] = [
    (r"img_in\.proj" + _P, ("x_embedder.proj",), "rename"),
    (r"txt_in\.input_embedder" + _P, ("context_embedder.proj_in",), "rename"),
    (r"txt_in\.t_embedder\.mlp\.0" + _P, ("context_embedder.time_text_embed.timestep_embedder.linear_1",), "rename"),
    (r"txt_in\.t_embedder\.mlp\.2" + _P, ("context_embedder.time_text_embed.timestep_embedder.linear_2",), "rename"),
    (r"txt_in\.c_embedder\.linear_1" + _P, ("context_embedder.time_text_embed.text_embedder.linear_1",), "rename"),
    (r"txt_in\.c_embedder\.linear_2" + _P, ("context_embedder.time_text_embed.text_embedder.linear_2",), "rename"),
    (_R + "norm1" + _P, (_RD + "norm1",), "rename"),
    (_R + "norm2" + _P, (_RD + "norm2",), "rename"),
    (_R + "self_attn_qkv" + _P, (_RD + "attn.to_q", _RD + "attn.to_k", _RD + "attn.to_v"), "split"),
    (_R + "self_attn_proj" + _P, (_RD + "attn.to_out.0",), "rename"),
    (_R + r"mlp\.fc1" + _P, (_RD + "ff.net.0.proj",), "rename"),
    (_R + r"mlp\.fc2" + _P, (_RD + "ff.net.2",), "rename"),
    (_R + r"adaLN_modulation\.1" + _P, (_RD + "norm_out.linear",), "rename"),
    (r"time_in\.mlp\.0" + _P, ("time_text_embed.timestep_embedder.linear_1",), "rename"),
    (r"time_in\.mlp\.2" + _P, ("time_text_embed.timestep_embedder.linear_2",), "rename"),
    (r"guidance_in\.mlp\.0" + _P, ("time_text_embed.guidance_embedder.linear_1",), "rename"),
    (r"guidance_in\.mlp\.2" + _P, ("time_text_embed.guidance_embedder.linear_2",), "rename"),
    (r"vector_in\.in_layer" + _P, ("time_text_embed.text_embedder.linear_1",), "rename"),
    (r"vector_in\.out_layer" + _P, ("time_text_embed.text_embedder.linear_2",), "rename"),
    (_D + r"img_mod\.linear" + _P, (_DD + "norm1.linear",), "rename"),
    (_D + r"txt_mod\.linear" + _P, (_DD + "norm1_context.linear",), "rename"),
    (_D + "img_attn_qkv" + _P, (_DD + "attn.to_q", _DD + "attn.to_k", _DD + "attn.to_v"), "split"),
    (_D + "txt_attn_qkv" + _P, (_DD + "attn.add_q_proj", _DD + "attn.add_k_proj", _DD + "attn.add_v_proj"), "split"),
    (_D + "img_attn_q_norm" + _P, (_DD + "attn.norm_q",), "rename"),
    (_D + "img_attn_k_norm" + _P, (_DD + "attn.norm_k",), "rename"),
    (_D + "txt_attn_q_norm" + _P, (_DD + "attn.norm_added_q",), "rename"),
    (_D + "txt_attn_k_norm" + _P, (_DD + "attn.norm_added_k",), "rename"),
    (_D + "img_attn_proj" + _P, (_DD + "attn.to_out.0",), "rename"),
    (_D + "txt_attn_proj" + _P, (_DD + "attn.to_add_out",), "rename"),
    (_D + r"img_mlp\.fc1" + _P, (_DD + "ff.net.0.proj",), "rename"),
    (_D + r"img_mlp\.fc2" + _P, (_DD + "ff.net.2",), "rename"),
    (_D + r"txt_mlp\.fc1" + _P, (_DD + "ff_context.net.0.proj",), "rename"),
    (_D + r"txt_mlp\.fc2" + _P, (_DD + "ff_context.net.2",), "rename"),
    (_S + "linear1" + _P, (_SD + "attn.to_q", _SD + "attn.to_k", _SD + "attn.to_v", _SD + "proj_mlp"), "split"),
    (_S + "linear2" + _P, (_SD + "proj_out",), "rename"),
    (_S + "q_norm" + _P, (_SD + "attn.norm_q",), "rename"),
    (_S + "k_norm" + _P, (_SD + "attn.norm_k",), "rename"),
    (_S + r"modulation\.linear" + _P, (_SD + "norm.linear",), "rename"),
    (r"final_layer\.linear" + _P, ("proj_out",), "rename"),
    (r"final_layer\.adaLN_modulation\.1" + _P, ("norm_out.linear",), "swap"),
]
_COMPILED = [(re.compile("^" + pat), targets, op) for pat, targets, op in DIFFUSERS_RULES]


@dataclass(frozen=True)
class KeyMapping:
    """How one of our tensors is stored in diffusers: as `keys` (split along dim 0 when several)."""

    ours: str
    keys: tuple[str, ...]
    op: str


def diffusers_mapping(our_key: str) -> KeyMapping:
    """The diffusers key(s) of one of our keys; raises KeyError for an unknown key."""
    for rx, targets, op in _COMPILED:
        m = rx.match(our_key)
        if m:
            fields = m.groupdict()
            keys = tuple(t.format(**fields) + "." + fields["param"] for t in targets)
            return KeyMapping(our_key, keys, op)
    raise KeyError(f"no diffusers mapping for {our_key!r}")


def _split_sizes(n_keys: int, total: int, hidden: int) -> list[int]:
    if n_keys == 3:
        return [total // 3] * 3
    # single-block linear1: q, k, v each `hidden`, the rest is the MLP input
    return [hidden, hidden, hidden, total - 3 * hidden]


def ours_to_diffusers(state: Mapping[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    """Convert our state dict to diffusers' key layout."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        m = diffusers_mapping(key)
        if m.op == "rename":
            out[m.keys[0]] = tensor
        elif m.op == "swap":
            shift, scale = tensor.chunk(2, dim=0)
            out[m.keys[0]] = torch.cat([scale, shift], dim=0)
        else:
            parts = tensor.split(_split_sizes(len(m.keys), tensor.shape[0], hidden_size), dim=0)
            out.update(zip(m.keys, parts))
    return out


def our_state_keys(cfg: DiTConfig) -> list[str]:
    """Parameter names of our model for `cfg` (built on the meta device: no memory)."""
    from vidloom.models.dit.model import HunyuanVideoDiT

    with torch.device("meta"):
        return list(HunyuanVideoDiT(cfg).state_dict().keys())


def diffusers_to_ours(state: Mapping[str, torch.Tensor], cfg: DiTConfig) -> dict[str, torch.Tensor]:
    """Convert a diffusers state dict to our layout; every tensor must be used exactly once."""
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    used: set[str] = set()
    for key in our_state_keys(cfg):
        m = diffusers_mapping(key)
        if any(k not in state for k in m.keys):
            missing.extend(k for k in m.keys if k not in state)
            continue
        used.update(m.keys)
        if m.op == "rename":
            out[key] = state[m.keys[0]]
        elif m.op == "swap":
            scale, shift = state[m.keys[0]].chunk(2, dim=0)
            out[key] = torch.cat([shift, scale], dim=0)
        else:
            out[key] = torch.cat([state[k] for k in m.keys], dim=0)
    unexpected = sorted(set(state) - used)
    if missing or unexpected:
        raise KeyError(f"diffusers state does not match the config: missing {missing[:8]}, "
                       f"unexpected {unexpected[:8]}")
    return out


# ------------------------------------------------------------------------------------ configs


def config_to_diffusers(cfg: DiTConfig) -> dict[str, Any]:
    """Constructor kwargs of `HunyuanVideoTransformer3DModel` for our config."""
    pt, ph, pw = cfg.patch_size
    if ph != pw:
        raise ValueError(f"diffusers needs square spatial patches, got {cfg.patch_size}")
    if not cfg.qkv_bias:
        raise ValueError("diffusers' HunyuanVideo blocks always have qkv bias")
    return {
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "num_attention_heads": cfg.heads,
        "attention_head_dim": cfg.head_dim,
        "num_layers": cfg.depth_double,
        "num_single_layers": cfg.depth_single,
        "num_refiner_layers": cfg.refiner_depth,
        "mlp_ratio": cfg.mlp_ratio,
        "patch_size": ph,
        "patch_size_t": pt,
        "qk_norm": "rms_norm",
        "guidance_embeds": cfg.guidance_embed,
        "text_embed_dim": cfg.text_dim,
        "pooled_projection_dim": cfg.pooled_dim,
        "rope_theta": cfg.rope_theta,
        "rope_axes_dim": list(cfg.rope_dims),
        "image_condition_type": None,
    }


def config_from_diffusers(d: Mapping[str, Any]) -> DiTConfig:
    """Our config from a diffusers ``config.json`` (defaults are diffusers' defaults)."""
    if d.get("image_condition_type"):
        raise ValueError(f"image-conditioned HunyuanVideo ({d['image_condition_type']}) is not this model")
    if d.get("qk_norm", "rms_norm") != "rms_norm":
        raise ValueError(f"unsupported qk_norm {d['qk_norm']!r}")
    heads = int(d.get("num_attention_heads", 24))
    head_dim = int(d.get("attention_head_dim", 128))
    p = int(d.get("patch_size", 2))
    return DiTConfig(
        in_channels=int(d.get("in_channels", 16)),
        out_channels=int(d.get("out_channels") or d.get("in_channels", 16)),
        hidden_size=heads * head_dim,
        heads=heads,
        mlp_ratio=float(d.get("mlp_ratio", 4.0)),
        depth_double=int(d.get("num_layers", 20)),
        depth_single=int(d.get("num_single_layers", 40)),
        refiner_depth=int(d.get("num_refiner_layers", 2)),
        text_dim=int(d.get("text_embed_dim", 4096)),
        pooled_dim=int(d.get("pooled_projection_dim", 768)),
        patch_size=(int(d.get("patch_size_t", 1)), p, p),
        rope_dims=tuple(d.get("rope_axes_dim", (16, 56, 56))),
        rope_theta=float(d.get("rope_theta", 256.0)),
        guidance_embed=bool(d.get("guidance_embeds", True)),
    )


def config_from_official(state: Mapping[str, torch.Tensor], **overrides: Any) -> DiTConfig:
    """Infer our config from official tensor shapes (RoPE split and theta are not stored in
    the checkpoint: the report's values, or `overrides`, are used)."""
    w = state["img_in.proj.weight"]
    hidden, in_ch = int(w.shape[0]), int(w.shape[1])
    patch = tuple(int(s) for s in w.shape[2:])
    norm_key = "double_blocks.0.img_attn_q_norm.weight"
    head_dim = int(state[norm_key if norm_key in state else "single_blocks.0.q_norm.weight"].shape[0])

    def depth(prefix: str) -> int:
        idx = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
        return max(idx) + 1 if idx else 0

    mlp_key = "double_blocks.0.img_mlp.fc1.weight"
    mlp_ratio = (int(state[mlp_key].shape[0]) / hidden) if mlp_key in state else (
        (int(state["single_blocks.0.linear1.weight"].shape[0]) - 3 * hidden) / hidden)
    final = int(state["final_layer.linear.weight"].shape[0])
    prod = patch[0] * patch[1] * patch[2]
    kwargs: dict[str, Any] = dict(
        in_channels=in_ch,
        out_channels=final // prod,
        hidden_size=hidden,
        heads=hidden // head_dim,
        mlp_ratio=mlp_ratio,
        depth_double=depth("double_blocks."),
        depth_single=depth("single_blocks."),
        refiner_depth=depth("txt_in.individual_token_refiner.blocks."),
        text_dim=int(state["txt_in.input_embedder.weight"].shape[1]),
        pooled_dim=int(state["vector_in.in_layer.weight"].shape[1]),
        patch_size=patch,
        rope_dims=default_rope_dims(head_dim),
        guidance_embed="guidance_in.mlp.0.weight" in state,
        qkv_bias="double_blocks.0.img_attn_qkv.bias" in state or "double_blocks.0.img_attn_qkv.weight" not in state,
    )
    kwargs.update(overrides)
    return DiTConfig(**kwargs)
