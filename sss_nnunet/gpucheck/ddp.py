"""DistributedDataParallel check: the gradients of a DDP step over N processes equal those of
one process on the same global batch (what nnU-Net's ``-num_gpus N`` relies on).

Each rank builds the same small RWKVSSS (same seed), takes its shard of a fixed global batch,
and runs two training steps under DDP with ``find_unused_parameters=False`` (the second
forward raises if a parameter got no gradient in the first). Rank 0 saves its averaged
gradients after the first step and every rank its state_dict after the second; the caller
compares them with a single-process run: gradients equal to rounding, every rank's state
identical (no per-rank state outside parameters and buffers).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sss_nnunet.network import RWKVSSS


def small_network(dims: int = 3, unused_parameter: bool = False) -> RWKVSSS:
    """A 4-stage RWKVSSS (two RWKV stages); ``unused_parameter`` adds a layer no forward uses
    (to show that the check catches it)."""
    torch.manual_seed(0)
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    net = RWKVSSS(1, 3, 4, [8, 16, 16, 32], conv, 3, [1, 2, 2, 2], deep_supervision=True)
    if unused_parameter:
        net.unused = nn.Linear(2, 2)
    return net


def global_batch(n: int, dims: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    shape = (n, 1) + (size,) * dims
    return torch.randn(*shape, generator=g), torch.randint(0, 3, (n,) + (size,) * dims, generator=g)


def loss_fn(outs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Deep-supervision cross-entropy, mean over the (local) batch; targets nearest-downsampled."""
    total = 0.0
    for i, o in enumerate(outs):
        t = target[(slice(None),) + tuple(slice(None, None, target.shape[d + 1] // o.shape[d + 2])
                                          for d in range(o.dim() - 2))]
        total = total + 0.5**i * nn.functional.cross_entropy(o.float(), t)
    return total


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()


def single_process(world: int, per_rank: int, dims: int = 3, device: str = "cpu") -> tuple[dict, dict]:
    """Gradients after step 1 and state_dict after step 2 on the whole global batch, one process."""
    net = small_network(dims).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, nesterov=True)
    x, y = (t.to(device) for t in global_batch(world * per_rank, dims))
    _step(net, opt, x, y)
    grads = {n: p.grad.detach().cpu().clone() for n, p in net.named_parameters()}
    opt.step()
    _step(net, opt, x, y)
    opt.step()
    return grads, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _worker(rank: int, world: int, per_rank: int, dims: int, out_dir: str, backend: str, port: int,
            unused_parameter: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        net = small_network(dims, unused_parameter).to(device)
        model = DistributedDataParallel(net, device_ids=[rank] if device.type == "cuda" else None,
                                        find_unused_parameters=False)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, nesterov=True)
        x, y = global_batch(world * per_rank, dims)
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        x, y = x[shard].to(device), y[shard].to(device)
        _step(model, opt, x, y)
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        if missing:  # DDP itself would only raise at the next step
            raise RuntimeError(f"rank {rank}: parameters that did not receive gradients: {missing[:5]}")
        if rank == 0:
            torch.save({n: p.grad.detach().cpu() for n, p in net.named_parameters()}, Path(out_dir) / "grads.pt")
        opt.step()
        _step(model, opt, x, y)  # raises here if a parameter had no gradient in step 1
        opt.step()
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, Path(out_dir) / f"state{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_run(
    world: int = 2, per_rank: int = 2, dims: int = 3, backend: str = "gloo", unused_parameter: bool = False
) -> tuple[dict, list[dict]]:
    """Rank 0's gradients after step 1 and every rank's state_dict after step 2."""
    with tempfile.TemporaryDirectory(prefix="sss_ddp_") as tmp:
        args = (world, per_rank, dims, tmp, backend, _free_port(), unused_parameter)
        mp.spawn(_worker, args=args, nprocs=world, join=True)
        grads = torch.load(Path(tmp) / "grads.pt")
        states = [torch.load(Path(tmp) / f"state{r}.pt") for r in range(world)]
    return grads, states


def max_rel_diff(a: dict, b: dict) -> float:
    """max over entries of max|a - b| / scale, scale = max(max|b_entry|, 1e-3 max over all |b|)
    (the floor keeps a gradient that is zero up to rounding, e.g. a conv bias before an
    instance norm, from turning rounding into a huge relative error); inf if keys or shapes differ."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    floor = 1e-3 * max((v.double().abs().max().item() for v in b.values() if v.numel()), default=0.0)
    worst = 0.0
    for k in a:
        x, y = a[k].double(), b[k].double()
        if x.numel():
            scale = max(y.abs().max().item(), floor, 1e-30)
            worst = max(worst, (x - y).abs().max().item() / scale)
    return worst


def compare(world: int = 2, per_rank: int = 2, dims: int = 3, backend: str = "gloo") -> dict:
    """DDP vs one process: {"grad_rel_diff", "state_rel_diff", "rank_state_diff", "n_params"}."""
    device = "cuda" if backend == "nccl" else "cpu"
    grads_ddp, states = ddp_run(world, per_rank, dims, backend)
    grads_one, state_one = single_process(world, per_rank, dims, device)
    return {
        "grad_rel_diff": max_rel_diff(grads_ddp, grads_one),
        "state_rel_diff": max_rel_diff(states[0], state_one),
        "rank_state_diff": max(max_rel_diff(s, states[0]) for s in states[1:]),
        "n_params": len(grads_one),
    }
