"""Ulysses sequence parallelism for the DiT: P ranks share one sample's video tokens.

Layout (docs/parallelism.md has the diagram): each rank of a sequence-parallel (SP) group holds
1/P of the video tokens (zero-padded to a multiple of P) and a full copy of the text tokens, the
condition vector and all weights. Everything token-wise (norms, modulation, linears, MLPs, RoPE)
runs on the local shard. Attention needs every token, so around it:

    before: all-to-all  video (B, H, Li/P, Dh) -> (B, H/P, Li, Dh)   [sequence shard -> head shard]
            text        (B, H, Lt, Dh)   -> (B, H/P, Lt, Dh)         [local head slice, no traffic]
    after:  all-to-all  (B, H/P, Li + Lt, Dh) -> (B, H, Li/P + Lt, Dh) [back; text heads gathered]

q, k and v travel in one collective, the output in another; backward runs the same exchanges in
reverse. P must divide the number of heads. Padding tokens are masked as keys and dropped at the end.

Gradient convention: every rank of the group computes the same loss on the gathered output
(`gather_sequence`), and each parameter's full-sample gradient is the AVERAGE of its gradients
over the SP group, which is what data-parallel engines (DDP, DeepSpeed) compute anyway when
they average over all dp × sp ranks: the training loop needs no change beyond the groups.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vidloom.models.dit.attention import AttentionFn, sdpa_attention
from vidloom.models.dit.final_layer import unpatchify

HEADS_DIM, SEQ_DIM = -3, -2  # of (..., heads, tokens, head_dim) attention tensors


# ------------------------------------------------------------------------------ process groups


@dataclass(frozen=True)
class ParallelGroups:
    """This rank's place in a data-parallel × sequence-parallel layout."""

    sp_group: dist.ProcessGroup | None  # the ranks sharing this rank's samples
    sp_size: int
    sp_rank: int
    dp_size: int  # number of distinct batches per step
    dp_rank: int  # which batch this rank reads (same for the whole SP group)


def parallel_groups(sequence_parallel: int) -> ParallelGroups:
    """Split the default process group into consecutive SP groups of `sequence_parallel` ranks.

    Ranks [0, P) form SP group 0 (data shard 0), [P, 2P) group 1, and so on. Every rank must call
    this collectively (torch creates each group on all ranks).
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    if sequence_parallel < 1 or world % sequence_parallel:
        raise ValueError(f"sequence_parallel={sequence_parallel} must be >= 1 and divide the world size {world}")
    mine = None
    for first in range(0, world, sequence_parallel):
        ranks = list(range(first, first + sequence_parallel))
        group = dist.new_group(ranks)
        if rank in ranks:
            mine = group
    return ParallelGroups(mine, sequence_parallel, rank % sequence_parallel, world // sequence_parallel,
                          rank // sequence_parallel)


def _size_rank(group: dist.ProcessGroup | None) -> tuple[int, int]:
    return dist.get_world_size(group), dist.get_rank(group)


def _all_to_all(chunks: list[torch.Tensor], group: dist.ProcessGroup | None) -> list[torch.Tensor]:
    """chunks[j] goes to rank j; returns what each rank i sent here. gloo (CPU, torch >= 2.x)
    and NCCL both implement all_to_all, so CI runs the same collective as a GPU cluster."""
    send = [c.contiguous() for c in chunks]
    recv = [torch.empty_like(c) for c in send]
    dist.all_to_all(recv, send, group=group)
    return recv


# ------------------------------------------------------------------------------ autograd collectives


class _SequenceToHeads(torch.autograd.Function):
    """(..., H, s + Lt, Dh) local layout [own video shard; text] -> (..., H/P, P*s + Lt, Dh)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, text_len: int, group) -> torch.Tensor:
        p, rank = _size_rank(group)
        ctx.text_len, ctx.group = text_len, group
        s = x.shape[SEQ_DIM] - text_len
        img, txt = x.split([s, text_len], dim=SEQ_DIM)
        video = torch.cat(_all_to_all(list(img.chunk(p, dim=HEADS_DIM)), group), dim=SEQ_DIM)
        # Text is replicated: this rank just keeps its heads, no traffic.
        return torch.cat([video, txt.chunk(p, dim=HEADS_DIM)[rank]], dim=SEQ_DIM)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        p, rank = _size_rank(ctx.group)
        video, txt = grad.split([grad.shape[SEQ_DIM] - ctx.text_len, ctx.text_len], dim=SEQ_DIM)
        img = torch.cat(_all_to_all(list(video.chunk(p, dim=SEQ_DIM)), ctx.group), dim=HEADS_DIM)
        # This rank's text copy fed only its own heads: the others get no gradient from it.
        txt_full = txt.new_zeros(*txt.shape[:HEADS_DIM], txt.shape[HEADS_DIM] * p, *txt.shape[SEQ_DIM:])
        txt_full.narrow(HEADS_DIM, rank * txt.shape[HEADS_DIM], txt.shape[HEADS_DIM]).copy_(txt)
        return torch.cat([img, txt_full], dim=SEQ_DIM), None, None


class _HeadsToSequence(torch.autograd.Function):
    """(..., H/P, P*s + Lt, Dh) -> (..., H, s + Lt, Dh): video back to its shard, text heads gathered.

    Rank j receives from every rank i [video shard j; text] for heads of i, so one all-to-all
    both returns the video and gathers the text over heads. Backward: the text gradient of my
    heads is summed over the ranks (each used the gathered text in its own copy of the stream).
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor, text_len: int, group) -> torch.Tensor:
        p, _ = _size_rank(group)
        ctx.text_len, ctx.group = text_len, group
        video, txt = y.split([y.shape[SEQ_DIM] - text_len, text_len], dim=SEQ_DIM)
        send = [torch.cat([chunk, txt], dim=SEQ_DIM) for chunk in video.chunk(p, dim=SEQ_DIM)]
        return torch.cat(_all_to_all(send, group), dim=HEADS_DIM)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        p, _ = _size_rank(ctx.group)
        recv = _all_to_all(list(grad.chunk(p, dim=HEADS_DIM)), ctx.group)
        s = grad.shape[SEQ_DIM] - ctx.text_len
        video = torch.cat([r.narrow(SEQ_DIM, 0, s) for r in recv], dim=SEQ_DIM)
        txt = torch.stack([r.narrow(SEQ_DIM, s, ctx.text_len) for r in recv]).sum(0)
        return torch.cat([video, txt], dim=SEQ_DIM), None, None


class _GatherSequence(torch.autograd.Function):
    """All-gather along dim 1. Every rank then computes the same function of the full tensor,
    so the gradient of this rank's shard is its own slice of the incoming gradient; it is
    scaled by P so that averaging parameter gradients over the group (as DDP and DeepSpeed do)
    gives the full-sample gradient, the contributions of the P ranks being summed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        p, rank = _size_rank(group)
        ctx.size, ctx.rank, ctx.shard = p, rank, x.shape[1]
        parts = [torch.empty_like(x) for _ in range(p)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.narrow(1, ctx.rank * ctx.shard, ctx.shard) * ctx.size, None


# ------------------------------------------------------------------------------ public helpers


def shard_sequence(x: torch.Tensor, group: dist.ProcessGroup | None, dim: int = 1) -> torch.Tensor:
    """This rank's 1/P of `x` along `dim`, zero-padded first to a multiple of P (rank-major order)."""
    p, rank = _size_rank(group)
    n = x.shape[dim]
    shard = math.ceil(n / p)
    if shard * p != n:
        pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [0, shard * p - n]
        x = F.pad(x, pad)
    return x.narrow(dim, rank * shard, shard)


def gather_sequence(x: torch.Tensor, length: int, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Inverse of `shard_sequence` along dim 1: the full (B, length, ...) tensor on every rank."""
    return _GatherSequence.apply(x, group).narrow(1, 0, length)


def ulysses_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None,
    *,
    group: dist.ProcessGroup | None,
    text_len: int,
    inner: AttentionFn = sdpa_attention,
) -> torch.Tensor:
    """`AttentionFn` over a sequence-sharded joint sequence [video shard; text].

    q, k, v: (B, H, s + text_len, Dh) with this rank's s video tokens first. key_mask: None or
    (B, P*s + text_len) in the gathered layout (padding video tokens False). `inner` runs the
    attention itself on H/P heads over the full sequence.
    """
    p, _ = _size_rank(group)
    if q.shape[1] % p:
        raise ValueError(f"sequence parallel size {p} must divide the number of heads {q.shape[1]}")
    q, k, v = _SequenceToHeads.apply(torch.stack([q, k, v]), text_len, group).unbind(0)
    return _HeadsToSequence.apply(inner(q, k, v, key_mask), text_len, group)


class UlyssesSequenceParallel:
    """The `HunyuanVideoDiT.set_sequence_parallel` hook: runs the model's forward with its video
    tokens split over the ranks of `group`. Install with `enable_sequence_parallel`."""

    def __init__(self, group: dist.ProcessGroup | None, heads: int):
        self.group = group
        self.size, self.rank = _size_rank(group)
        if heads % self.size:
            raise ValueError(f"sequence parallel size {self.size} must divide the DiT's heads ({heads}); "
                             f"choose one of {[d for d in range(1, heads + 1) if heads % d == 0]}")

    def __deepcopy__(self, memo):  # a process group cannot be copied; a copied model shares it
        return self

    def __call__(self, model, x, t, text_states, text_mask, pooled, guidance=None) -> torch.Tensor:
        group = self.group
        e = model.embed(x, t, text_states, text_mask, pooled, guidance)
        b, video_len = e.img.shape[:2]
        text_len = e.txt.shape[1]
        padded = math.ceil(video_len / self.size) * self.size
        key_mask = None
        if padded != video_len or e.key_mask is not None:
            video = torch.arange(padded, device=x.device).expand(b, padded) < video_len
            text = (e.key_mask[:, video_len:] if e.key_mask is not None
                    else torch.ones(b, text_len, dtype=torch.bool, device=x.device))
            key_mask = torch.cat([video, text], dim=1)
        attention = functools.partial(ulysses_attention, group=group, text_len=text_len, inner=model.attention_fn)
        rope = tuple(shard_sequence(table, group, dim=0) for table in e.rope)
        img = model.run_blocks(shard_sequence(e.img, group), e.txt, e.vec, rope, key_mask, attention)
        out = gather_sequence(model.final_layer(img, e.vec), video_len, group)
        c = model.config
        return unpatchify(out, e.grid, c.patch_size, c.out_channels)


def enable_sequence_parallel(model, group: dist.ProcessGroup | None) -> None:
    """Split `model`'s video tokens over `group` from now on (None: back to one rank).

    Every rank of the group passes the same full inputs (same batch, timesteps, noise) and gets
    the same full velocity back, so the training loss and the sampler do not change, nor do the
    model's parameters and state dict (wrap it in DeepSpeed as before). Activation checkpointing,
    the fast path and a custom `attention_fn` (run per head shard) carry over. Gradients: each
    rank holds P × its share, so averaging over the group (what DDP / DeepSpeed do over all
    dp × sp ranks) gives the full-sample gradient.
    """
    model.set_sequence_parallel(None if group is None else UlyssesSequenceParallel(group, model.config.heads))
