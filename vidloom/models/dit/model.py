"""HunyuanVideo diffusion transformer: dual-stream blocks, then single-stream blocks, 3D RoPE.

Data flow (report §4): video latents are patchified into tokens, the LLM text states pass the
token refiner, a conditioning vector (timestep + pooled CLIP text [+ guidance]) modulates every
block, double-stream blocks process the two modalities with separate weights, single-stream
blocks process the concatenation, and the final layer maps image tokens back to latent patches.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidloom.models.dit.attention import AttentionFn, sdpa_attention
from vidloom.models.dit.config import DiTConfig
from vidloom.models.dit.double_block import DoubleStreamBlock
from vidloom.models.dit.embeddings import PatchEmbed, TimestepEmbedder, VectorEmbedder
from vidloom.models.dit.final_layer import FinalLayer, unpatchify
from vidloom.models.dit.rope import rope_3d
from vidloom.models.dit.single_block import SingleStreamBlock
from vidloom.models.dit.token_refiner import SingleTokenRefiner
from vidloom.models.fast_path import FAST_PATH_MODES, FastPathMode

def drop_padding_columns(text: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Remove text positions that are padding in every sample of the batch; mask None if the rest
    is all valid.

    Such tokens are never attended (masked keys; the refiner's padded queries only feed padded
    outputs) and never reach the video, so the velocity is unchanged; with right-padded prompts
    of one length nothing is masked afterwards, in the refiner or in the blocks.
    """
    valid = mask.bool()
    keep = valid.any(0)
    if not bool(keep.all()):
        idx = keep.nonzero().squeeze(1)
        text, mask, valid = text[:, idx], mask[:, idx], valid[:, idx]
    return text, None if bool(valid.all()) else mask


class DiTTokens(NamedTuple):
    """What `HunyuanVideoDiT.embed` hands to the blocks."""

    img: torch.Tensor  # (B, Li, D) video tokens in (t, h, w) raster order
    txt: torch.Tensor  # (B, Lt, D) refined text tokens
    vec: torch.Tensor  # (B, D) condition vector
    rope: tuple[torch.Tensor, torch.Tensor]  # cos, sin tables (Li, head_dim), float32
    key_mask: torch.Tensor | None  # (B, Li + Lt) True = may be attended; None = all
    grid: tuple[int, int, int]  # token grid (T, H, W)


# Guidance-distilled checkpoints embed the guidance scale multiplied by this, like a timestep.
GUIDANCE_MULTIPLIER = 1000.0


class HunyuanVideoDiT(nn.Module):
    """The HunyuanVideo DiT. Parameter names follow the official checkpoint layout.

    Args:
        config: architecture (see `vidloom.models.dit.config.CONFIGS` for the named tiers).
        attention_fn: replaces SDPA in the double/single blocks (sequence-parallel hook).
    """

    def __init__(self, config: DiTConfig, attention_fn: AttentionFn | None = None):
        super().__init__()
        self.config = config
        c = config
        self.attention_fn: AttentionFn = attention_fn or sdpa_attention
        self.img_in = PatchEmbed(c.patch_size, c.in_channels, c.hidden_size)
        self.txt_in = SingleTokenRefiner(c.text_dim, c.hidden_size, c.heads, c.refiner_depth, c.mlp_ratio, c.qkv_bias)
        self.time_in = TimestepEmbedder(c.hidden_size)
        self.vector_in = VectorEmbedder(c.pooled_dim, c.hidden_size)
        self.guidance_in = TimestepEmbedder(c.hidden_size) if c.guidance_embed else None
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(c.hidden_size, c.heads, c.mlp_ratio, c.qkv_bias) for _ in range(c.depth_double)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(c.hidden_size, c.heads, c.mlp_ratio) for _ in range(c.depth_single)
        )
        self.final_layer = FinalLayer(c.hidden_size, c.patch_size, c.out_channels)
        self.fast_path = False
        self.sequence_parallel: Callable | None = None  # see set_sequence_parallel
        self._compiled: dict[int, Callable] = {}  # id(block) -> torch.compile'd block
        self._init_special()

    def _init_special(self) -> None:
        # Same starting point as the official model: xavier patch embed, N(0, 0.02) time MLPs;
        # modulations and the final layer are zero-initialised in their own modules.
        w = self.img_in.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.img_in.proj.bias)
        for emb in (self.time_in, self.guidance_in, self.txt_in.t_embedder):
            if emb is not None:
                nn.init.normal_(emb.mlp[0].weight, std=0.02)
                nn.init.normal_(emb.mlp[2].weight, std=0.02)

    # -- configuration hooks -------------------------------------------------------------------

    def set_attention_fn(self, fn: AttentionFn | None) -> None:
        """Install an attention implementation (e.g. sequence parallel); None restores SDPA."""
        self.attention_fn = fn or sdpa_attention

    def set_sequence_parallel(self, forward: Callable | None) -> None:
        """Install a sequence-parallel forward, ``forward(model, x, t, text_states, text_mask,
        pooled, guidance)`` (`vidloom.models.dit.parallel.enable_sequence_parallel`); None: off."""
        self.sequence_parallel = forward

    def set_fast_path(self, enabled: bool = True, compile: bool = False) -> None:
        """The runtime switch of the fast path (not part of the config or the weights).

        On: fused elementwise kernels in every block (fused.py), and text columns that are padding
        in every sample are dropped before the model runs, so a batch whose prompts fill the kept
        columns needs no attention mask and takes SDPA's unmasked kernels. Outputs equal the
        reference path to float rounding (fp32 ~1e-6, bf16 within bf16 tolerance).
        `compile=True` also wraps each block in `torch.compile` (inductor); the first forward and
        backward at a new shape pay the compilation (docs/benchmarks.md has the measured warm-up),
        blocks of one kind share the compiled code. Training and serving call this once after
        loading; off restores the reference path bit for bit.
        """
        self.fast_path = enabled
        for module in self.modules():
            if module is not self and hasattr(module, "fast"):
                module.fast = enabled
        blocks = [*self.double_blocks, *self.single_blocks]
        self._compiled = {id(b): torch.compile(b) for b in blocks} if enabled and compile else {}

    def use_fast_path(self, mode: FastPathMode) -> None:
        """`set_fast_path` from a config's `fast_path` value: "off", "on" or "compile"."""
        if mode not in FAST_PATH_MODES:
            raise ValueError(f"fast_path: {mode!r} is not one of {', '.join(FAST_PATH_MODES)}")
        self.set_fast_path(mode != "off", compile=mode == "compile")

    def set_gradient_checkpointing(
        self, enabled: bool = True, double: Iterable[int] | None = None, single: Iterable[int] | None = None
    ) -> None:
        """Switch activation checkpointing per block; `double`/`single` list block indices
        (None: all blocks of that kind)."""
        for blocks, chosen in ((self.double_blocks, double), (self.single_blocks, single)):
            idx = set(range(len(blocks))) if chosen is None else set(chosen)
            for i, block in enumerate(blocks):
                if i in idx:
                    block.gradient_checkpointing = enabled

    def num_parameters(self) -> int:
        """Total parameter count."""
        return sum(p.numel() for p in self.parameters())

    # -- forward -------------------------------------------------------------------------------

    def condition_vector(
        self, t: torch.Tensor, pooled: torch.Tensor, guidance: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """Timestep MLP + pooled-text MLP (+ guidance MLP of guidance × 1000)."""
        vec = self.time_in(t) + self.vector_in(pooled)
        if self.guidance_in is not None:
            if guidance is None:
                raise ValueError("this DiT is guidance-distilled: pass guidance (e.g. 6.0)")
            g = torch.as_tensor(guidance, dtype=torch.float32, device=t.device).reshape(-1).expand(t.shape[0])
            vec = vec + self.guidance_in(g * GUIDANCE_MULTIPLIER)
        return vec

    def _run(self, block: nn.Module, *args):
        fn = self._compiled.get(id(block), block)
        if block.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def embed(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        text_states: torch.Tensor,
        text_mask: torch.Tensor | None,
        pooled: torch.Tensor,
        guidance: torch.Tensor | float | None = None,
    ) -> DiTTokens:
        """Inputs -> tokens: patchified video, refined text, condition vector, RoPE tables, key mask.

        Split from `forward` so a sequence-parallel wrapper can shard the video tokens between
        this and `run_blocks` (see `vidloom.models.dit.parallel`).
        """
        c = self.config
        dtype = self.img_in.proj.weight.dtype
        b, _, frames, height, width = x.shape
        pt, ph, pw = c.patch_size
        if frames % pt or height % ph or width % pw:
            raise ValueError(f"latent size {(frames, height, width)} not divisible by patch {c.patch_size}")
        grid = (frames // pt, height // ph, width // pw)
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1).expand(b)

        if self.fast_path and text_mask is not None and text_mask.device.type != "meta":
            text_states, text_mask = drop_padding_columns(text_states, text_mask)
        vec = self.condition_vector(t, pooled.to(dtype), guidance)
        img = self.img_in(x.to(dtype))
        txt = self.txt_in(text_states.to(dtype), t, text_mask)
        img_len = img.shape[1]

        key_mask = None
        # The all-valid check skips masking (fast SDPA kernels); meta tensors have no values.
        if text_mask is not None and (text_mask.device.type == "meta" or not bool(text_mask.bool().all())):
            ones = torch.ones(b, img_len, dtype=torch.bool, device=x.device)
            key_mask = torch.cat([ones, text_mask.to(x.device).bool()], dim=1)
        rope = rope_3d(grid, c.rope_dims, c.rope_theta, device=x.device)
        return DiTTokens(img, txt, vec, rope, key_mask, grid)

    def run_blocks(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        vec: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        key_mask: torch.Tensor | None,
        attention_fn: AttentionFn | None = None,
    ) -> torch.Tensor:
        """Double-stream then single-stream blocks; returns the video tokens (B, Li, D)."""
        attention_fn = attention_fn or self.attention_fn
        img_len = img.shape[1]
        for block in self.double_blocks:
            img, txt = self._run(block, img, txt, vec, rope, key_mask, attention_fn)
        joint = torch.cat([img, txt], dim=1)
        for block in self.single_blocks:
            joint = self._run(block, joint, vec, img_len, rope, key_mask, attention_fn)
        return joint[:, :img_len]

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        text_states: torch.Tensor,
        text_mask: torch.Tensor | None,
        pooled: torch.Tensor,
        guidance: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity.

        Args:
            x: latents (B, C_in, T, H, W); T, H, W divisible by the patch size.
            t: diffusion time in [0, 1000], scalar or (B,).
            text_states: LLM hidden states (B, L, text_dim).
            text_mask: (B, L), nonzero for real tokens, zero for padding; None = all real.
            pooled: pooled CLIP text embedding (B, pooled_dim).
            guidance: embedded guidance scale (e.g. 6.0), scalar or (B,); required by
                guidance-distilled configs, ignored otherwise.

        Returns:
            velocity (B, C_out, T, H, W) in the model's dtype.
        """
        if self.sequence_parallel is not None:
            return self.sequence_parallel(self, x, t, text_states, text_mask, pooled, guidance)
        e = self.embed(x, t, text_states, text_mask, pooled, guidance)
        img = self.run_blocks(e.img, e.txt, e.vec, e.rope, e.key_mask)
        c = self.config
        return unpatchify(self.final_layer(img, e.vec), e.grid, c.patch_size, c.out_channels)
