"""DOVER's technical backbone: a Video Swin Transformer (tiny) with fragment-aware biases.

This is FAST-VQA's "swin_tiny_grpb" as DOVER ships it: Video Swin-T (patches 2×4×4, embed 96,
depths 2-2-6-2, heads 3-6-12-24, windows 8×7×7 shifted by half a window every other block)
fed with *fragments*, a mosaic of 7×7 small patches cut from the frames. In the first three
stages each attention block carries a second relative-position table
(``fragment_position_bias_table``) used for token pairs in the same fragment, because
neighbouring tokens across a fragment seam are not neighbours in the video. How the two
tables mix follows DOVER exactly: with ``g`` the L1 distance between the fragment cells of two
tokens (0 inside one fragment), the bias is ``g * relative + (1 - g) * fragment``.

Parameter and buffer names are those of DOVER's ``technical_backbone`` so its checkpoint loads
strictly. Written from the Video Swin paper and DOVER's published model description; the
numerics (padding after the first norm, -100 shift mask, nearest-neighbour fragment map) were
checked against the reference implementation on random weights (docs/quality.md).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

Size3 = tuple[int, int, int]


def _fit_window(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """A window no larger than the feature map; no shift along an axis the window covers."""
    win = tuple(s if s <= w else w for s, w in zip(size, window))
    sh = tuple(0 if s <= w else h for s, w, h in zip(size, window, shift))
    return win, sh  # type: ignore[return-value]


def _partition(x: torch.Tensor, window: Size3) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, tokens per window, C), windows in D-H-W order."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def _merge(windows: torch.Tensor, window: Size3, b: int, d: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `_partition`."""
    wd, wh, ww = window
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def _relative_index(window: Size3) -> torch.Tensor:
    """Index into a (2Wd-1)(2Wh-1)(2Ww-1) table for every ordered token pair of a window."""
    # always on the CPU, also inside a meta-device build: it is data, not a parameter
    grid = torch.stack(torch.meshgrid(*[torch.arange(n, device="cpu") for n in window], indexing="ij")).flatten(1)
    rel = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0)  # N, N, 3
    rel = rel + torch.tensor([n - 1 for n in window], device="cpu")
    return rel[..., 0] * (2 * window[1] - 1) * (2 * window[2] - 1) + rel[..., 1] * (2 * window[2] - 1) + rel[..., 2]


@lru_cache(maxsize=64)
def _shift_mask(padded: Size3, window: Size3, shift: Size3, device: str) -> torch.Tensor:
    """-100 between tokens of a shifted window that come from different regions, else 0."""
    labels = torch.zeros(padded, dtype=torch.long)
    for axis, (length, win, sh) in enumerate(zip(padded, window, shift)):
        if sh == 0:  # an unshifted axis does not split windows
            continue
        region = torch.zeros(length, dtype=torch.long)
        region[length - win: length - sh] = 1
        region[length - sh:] = 2
        shape = [1, 1, 1]
        shape[axis] = length
        labels = labels * 3 + region.view(shape)
    win_labels = _partition(labels[None, ..., None].float(), window).squeeze(-1)  # nW, N
    diff = win_labels[:, None, :] - win_labels[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0).to(device)


@lru_cache(maxsize=64)
def _fragment_gate(padded: Size3, window: Size3, shift: Size3, device: str) -> torch.Tensor:
    """L1 distance between the fragment cells of every token pair of every window.

    The feature map is split into window_h × window_w fragment cells by nearest-neighbour
    resizing of the cell grid (as DOVER does), rolled like the tokens, then windowed.
    """
    cells = torch.stack(
        torch.meshgrid(torch.arange(1), torch.arange(window[1]), torch.arange(window[2]), indexing="ij")
    ).float()
    coords = F.interpolate(cells[None], size=padded).long().permute(0, 2, 3, 4, 1)  # 1, D, H, W, 3
    coords = torch.roll(coords, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    win = _partition(coords, window)  # nW, N, 3
    return (win[:, None, :, :] - win[:, :, None, :]).abs().sum(-1).to(device)  # nW, N, N


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows with relative (and fragment) position bias."""

    def __init__(self, dim: int, window: Size3, num_heads: int, fragment_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        table = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        if fragment_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        # persistent: DOVER's checkpoint carries it, so a strict load expects it
        self.register_buffer("relative_position_index", _relative_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, gate: torch.Tensor) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)  # B*nW, heads, N, N
        # The window is d-major, so when only the temporal extent shrinks the leading N×N
        # block of the full-window index is exactly the smaller window's index.
        index = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)  # heads, N, N
        n_win = gate.shape[0]
        if hasattr(self, "fragment_position_bias_table"):
            frag = self.fragment_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)
            g = gate[:, None].to(bias.dtype)  # nW, 1, N, N
            bias = bias[None] * g + frag[None] * (1 - g)  # nW, heads, N, N
        else:
            bias = bias[None]
        attn = attn.view(bw // n_win, n_win, self.num_heads, n, n) + bias[None]
        if mask is not None:
            attn = attn + mask[None, :, None]
        attn = attn.view(-1, self.num_heads, n, n).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock3D(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both residual."""

    def __init__(self, dim: int, num_heads: int, window: Size3, shift: Size3, fragment_bias: bool):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads, fragment_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, d, h, w, c = x.shape
        window, shift = _fit_window((d, h, w), self.window, self.shift)
        y = self.norm1(x)
        # zero tokens are padded after the norm and take part in attention, as in Video Swin
        pad = [(win - s % win) % win for s, win in zip((d, h, w), window)]
        y = F.pad(y, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        padded = tuple(y.shape[1:4])
        shifted = any(s > 0 for s in shift)
        if shifted:
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        gate = _fragment_gate(padded, window, shift, str(x.device))
        y = self.attn(_partition(y, window), mask if shifted else None, gate)
        y = _merge(y, window, b, *padded)
        if shifted:
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w].contiguous()
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2×2 spatial token merge: concatenate neighbours, norm, project 4C -> 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, -1)))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then an optional patch merge."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: Size3, fragment_bias: bool, merge: bool):
        super().__init__()
        self.window = window
        self.shift = tuple(n // 2 for n in window)
        self.blocks = nn.ModuleList(
            SwinBlock3D(dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else self.shift, fragment_bias)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        window, shift = _fit_window((d, h, w), self.window, self.shift)
        padded = tuple(math.ceil(s / win) * win for s, win in zip((d, h, w), window))
        mask = _shift_mask(padded, window, shift, str(x.device)) if any(shift) else None
        x = x.permute(0, 2, 3, 4, 1)
        for block in self.blocks:
            x = block(x, mask)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):
    def __init__(self, patch: Size3, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2:]
        pd, ph, pw = [(p - s % p) % p for s, p in zip((d, h, w), self.patch)]
        if pd or ph or pw:
            x = F.pad(x, (0, pw, 0, ph, 0, pd))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class FragmentSwin3D(nn.Module):
    """Video Swin-T over fragments: (B, 3, T, H, W) normalised RGB -> (B, 768, T/2, H/32, W/32)."""

    def __init__(
        self,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window: Size3 = (8, 7, 7),
        patch: Size3 = (2, 4, 4),
        fragment_biases: tuple[bool, ...] = (True, True, True, False),
    ):
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch, embed_dim)
        self.layers = nn.ModuleList(
            SwinStage(embed_dim * 2**i, depths[i], num_heads[i], window, fragment_biases[i], i < len(depths) - 1)
            for i in range(len(depths))
        )
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x.contiguous())
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
