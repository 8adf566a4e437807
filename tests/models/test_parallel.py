"""Ulysses sequence parallelism: 2 CPU processes (gloo) reproduce the single-process DiT."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidloom.models.dit import HunyuanVideoDiT, get_config, load_dit
from vidloom.models.dit.parallel import enable_sequence_parallel, parallel_groups, shard_sequence

sys.path.insert(0, os.path.dirname(__file__))
from dit_inputs import make_inputs, randomize  # noqa: E402

# 3x6x10 latent -> 3*3*5 = 45 video tokens: odd, so 2 ranks need one padding token.
LATENT = (3, 6, 10)
MODES = ("plain", "ckpt", "fast")  # reference kernels; activation checkpointing; fast path


def _reference(checkpointing: bool):
    """Single-process forward and gradients of the tiny DiT (with padded text in sample 1)."""
    model = load_dit("tiny")
    randomize(model)
    model.set_gradient_checkpointing(checkpointing)
    x, t, text, mask, pooled = make_inputs(model.config, latent=LATENT)
    x.requires_grad_(True)
    out = model(x, t, text, mask, pooled)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return model, (x, t, text, mask, pooled), out.detach(), grads, x.grad


def _sp_worker(rank: int, world: int, store: str, result: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        report = {}
        for mode in MODES:
            model, inputs, ref_out, ref_grads, ref_xgrad = _reference(mode == "ckpt")
            model.set_fast_path(mode == "fast")  # the fast path composes with SP too
            model.zero_grad(set_to_none=True)
            x = inputs[0].detach().requires_grad_(True)
            enable_sequence_parallel(model, dist.group.WORLD)
            out = model(x, *inputs[1:])
            out.square().mean().backward()
            # The full-sample gradient is the average over the SP group (module docstring).
            worst_grad, worst_name = 0.0, ""
            for name, p in model.named_parameters():
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                dist.all_reduce(g)
                g /= world
                d = (g - ref_grads[name]).abs().max().item()
                if d > worst_grad:
                    worst_grad, worst_name = d, name
            xg = x.grad.clone()
            dist.all_reduce(xg)
            xg /= world
            report[mode] = {
                "out": (out.detach() - ref_out).abs().max().item(),
                "out_scale": ref_out.abs().max().item(),
                "grad": worst_grad, "grad_name": worst_name,
                "grad_scale": max(g.abs().max().item() for g in ref_grads.values()),
                "x_grad": (xg - ref_xgrad).abs().max().item(),
            }
        groups = parallel_groups(world)
        report["groups"] = [groups.sp_size, groups.sp_rank, groups.dp_size, groups.dp_rank]
        report["shard"] = shard_sequence(torch.arange(1.0, 6.0).reshape(1, 5), groups.sp_group).tolist()
        with torch.device("meta"):
            three_heads = HunyuanVideoDiT(get_config("tiny", hidden_size=48, heads=3))
        try:
            enable_sequence_parallel(three_heads, groups.sp_group)
        except ValueError as e:
            report["heads_error"] = str(e)
        with open(f"{result}.{rank}", "w") as f:
            json.dump(report, f)
    finally:
        dist.destroy_process_group()


def test_sequence_parallel_forward_and_backward_match_single_process(tmp_path):
    world = 2
    mp.spawn(_sp_worker, args=(world, str(tmp_path / "store"), str(tmp_path / "result")), nprocs=world)
    for rank in range(world):
        report = json.loads((tmp_path / f"result.{rank}").read_text())
        assert report["groups"] == [2, rank, 1, 0]
        assert report["shard"] == [[[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]][rank]]  # zero-padded to 6
        assert "must divide the DiT's heads (3)" in report["heads_error"]
        for mode in MODES:
            r = report[mode]
            assert r["out_scale"] > 0.1 and r["grad_scale"] > 1e-3  # a real signal, not zeros
            assert r["out"] <= 1e-5, (rank, mode, r)
            assert r["grad"] <= 1e-5 * r["grad_scale"], (rank, mode, r)
            assert r["x_grad"] <= 1e-5, (rank, mode, r)

