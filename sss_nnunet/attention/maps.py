"""Exact Bi-WKV attention maps of one query voxel, per Stage-Scan block and mix, on the input patch.

Bi-WKV is linear in the values: with the keys fixed, channel c of a mix's WKV result at token q is
``y_qc = sum_i a_qic v_ic`` with weights ``a_qic >= 0`` that sum to 1 over i. So the weights are the
Jacobian of ``y_q`` with respect to the v tokens, and ONE backward pass of ``sum_c y_qc`` gives all
channels at once (channels never mix inside Bi-WKV). The Jacobian automatically contains every
scan permutation, window split, padding token (weight ~0), softmax/gated mixture of scan orders
and the interpolation from a pooled WKV grid back to the stage grid: no scan internal is re-derived.

Contract with the network (``sss_nnunet.network.rwkv``): every ``StageScanBlock`` has ``global_mix``
and ``local_mix``; each mix has an ``nn.Linear`` ``value`` whose output is the v tokens (B, N_v, C)
(on a grid average-pooled by the mix's ``pool``, ceil mode) and an ``nn.LayerNorm`` ``out_norm``
whose input is the WKV result (B, N, C) on the stage grid (channels-last order).

Mapping back to the input patch: a pooled token's weight is shared equally by the stage tokens it
averages; a stage token's weight is shared equally by the prod(strides up to the stage) patch voxels
it was made from. Every map therefore sums to ~1 over the patch (a probability over voxels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sss_nnunet.errors import SSSError
from sss_nnunet.network.rwkv import StageScanBlock

MIXES = ("global", "local")


@dataclass
class MixMap:
    """Attention of the query over one mix's tokens.

    stage, block: encoder stage index and block index within the stage; mix: global | local.
    token_weights: (N_v, C) float64, weight of each v token per channel (each column sums to ~1).
    v_grid: spatial size of the v-token grid; stage_grid: the stage's token grid;
    factor: patch voxels per stage token along each axis; query_token: the query on the stage grid.
    weights / spread: patch-shaped maps (voxel grid of the network input), mean over channels and
    standard deviation over channels, both as density per voxel (``weights`` sums to ~1).
    """

    stage: int
    block: int
    mix: str
    token_weights: np.ndarray
    v_grid: tuple[int, ...]
    stage_grid: tuple[int, ...]
    factor: tuple[int, ...]
    query_token: tuple[int, ...]
    weights: np.ndarray
    spread: np.ndarray

    @property
    def name(self) -> str:
        return f"stage{self.stage}b{self.block}_{self.mix}"


def stage_blocks(network: nn.Module) -> list[tuple[int, int, StageScanBlock]]:
    """(stage, block-in-stage, block) of every Stage-Scan block, encoder order."""
    encoder = getattr(network, "encoder", None)
    found = []
    if isinstance(encoder, nn.ModuleList):
        for s, stage in enumerate(encoder):
            blocks = [m for m in stage.modules() if isinstance(m, StageScanBlock)]
            found += [(s, j, b) for j, b in enumerate(blocks)]
    if not found:
        raise SSSError(f"the network ({type(network).__name__}) has no Stage-Scan blocks: attention maps need an "
                       f"RWKV-SSS model (a trainer such as SSSTrainer)")
    return found


def stage_factors(network: nn.Module, dims: int) -> list[tuple[int, ...]]:
    """Cumulative downsampling factor (input voxels per token, per axis) after each encoder stage."""
    factors, f = [], np.ones(dims, dtype=np.int64)
    for stage in network.encoder:
        for m in stage.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                f = f * np.asarray(m.stride, dtype=np.int64)
        factors.append(tuple(int(x) for x in f))
    return factors


def _pool_kernel(pool, grid: Sequence[int]) -> tuple[int, ...]:
    p = pool if isinstance(pool, (tuple, list)) else [pool] * len(grid)
    return tuple(min(int(k), s) for k, s in zip(p, grid))


def v_grid_of(mix: nn.Module, stage_grid: tuple[int, ...], n_v: int) -> tuple[int, ...]:
    """Spatial size of the v tokens: the stage grid average-pooled by ``mix.pool`` (ceil mode)."""
    if n_v == math.prod(stage_grid):
        return stage_grid
    k = _pool_kernel(getattr(mix, "pool", 1), stage_grid)
    grid = tuple(math.ceil(s / kk) for s, kk in zip(stage_grid, k))
    if math.prod(grid) != n_v:
        raise RuntimeError(f"cannot place {n_v} v tokens on the stage grid {stage_grid} (pool {mix.pool})")
    return grid


def _spread_axis(values: np.ndarray, axis: int, index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """values[..., index[j], ...] / counts[index[j]] along ``axis``: share a cell among its members."""
    out = np.take(values, index, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = -1
    return out / counts[index].reshape(shape)


def v_to_stage(a: np.ndarray, v_grid: tuple[int, ...], stage_grid: tuple[int, ...], mix: nn.Module) -> np.ndarray:
    """(N_v, ...) weights on the v grid -> (*stage_grid, ...) weights of the stage tokens averaged into them."""
    out = a.reshape(*v_grid, *a.shape[1:])
    if v_grid == stage_grid:
        return out
    k = _pool_kernel(getattr(mix, "pool", 1), stage_grid)
    for axis, (s, kk) in enumerate(zip(stage_grid, k)):
        cell = np.arange(s) // kk
        out = _spread_axis(out, axis, cell, np.bincount(cell).astype(np.float64))
    return out


def stage_to_patch(m: np.ndarray, factor: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """(*stage_grid) per-token weights -> (*patch) per-voxel weights (each token's weight shared by its
    factor-sized voxel block; voxels no token was made from get 0)."""
    out = m
    for axis, (f, p) in enumerate(zip(factor, patch)):
        s = m.shape[axis]
        token = np.arange(p) // f
        inside = token < s
        counts = np.full(s, float(f))
        spread = _spread_axis(out, axis, np.minimum(token, s - 1), counts)
        mask = inside.reshape([-1 if i == axis else 1 for i in range(out.ndim)])
        out = spread * mask
    return out


class _Recorder:
    """Forward hooks on one mix: v tokens become a leaf; at ``out_norm`` the query row is differentiated."""

    def __init__(self, mix: nn.Module, query: Callable[[], int]):
        self.mix, self.query, self.leaves, self.grad = mix, query, [], None
        self.handles = [mix.value.register_forward_hook(self._on_value),
                        mix.out_norm.register_forward_pre_hook(self._on_out_norm)]

    def _on_value(self, _module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        self.leaves.append(leaf)
        return leaf

    def _on_out_norm(self, _module, inputs):
        (y,) = inputs
        if y.requires_grad and self.leaves:
            grads = torch.autograd.grad(y[:, self.query()].sum(), self.leaves, allow_unused=True)
            grads = [g for g in grads if g is not None]
            self.grad = sum(grads[1:], grads[0]) if grads else None
        self.leaves = []
        return (y.detach(),)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class _Stop(Exception):
    pass


def _is_inference(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_inference()
    if isinstance(value, (tuple, list)):
        return any(_is_inference(v) for v in value)
    return False


def drop_inference_tensors() -> int:
    """Forget network-cached tensors (scan indices, masks, grids) built under ``torch.inference_mode``
    (e.g. by nnU-Net's predictor): autograd may not save them. They are rebuilt on the next forward."""
    from sss_nnunet.network import windows

    cache = getattr(windows, "DEVICE_CACHE", None)
    if not isinstance(cache, dict):
        return 0
    stale = [k for k, v in cache.items() if _is_inference(v)]
    for k in stale:
        del cache[k]
    return len(stale)


def attention_maps(network: nn.Module, patch: torch.Tensor, query: Sequence[int],
                   stages: Sequence[int] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[MixMap]:
    """Attention of the patch voxel ``query`` in every Stage-Scan block and mix.

    Args:
        network: an RWKV-SSS network (eval mode is set and restored).
        patch: (1, C_in, *S) network input in the network's dtype and device.
        query: voxel index in the patch (len(S) ints).
        stages: encoder stages to analyse (default: every stage with Stage-Scan blocks).
        progress: called with one line per finished stage.
    Returns:
        one MixMap per (block, mix), encoder order, global before local.
    """
    dims = patch.dim() - 2
    patch_shape = tuple(patch.shape[2:])
    query = tuple(int(q) for q in query)
    if len(query) != dims or any(not 0 <= q < s for q, s in zip(query, patch_shape)):
        raise SSSError(f"query voxel {query} is outside the patch {patch_shape}")
    blocks = stage_blocks(network)
    available = sorted({s for s, _, _ in blocks})
    if stages is not None:
        unknown = sorted(set(stages) - set(available))
        if unknown:
            raise SSSError(f"--stages {unknown}: not a Stage-Scan stage of this model (it has {available})")
        blocks = [b for b in blocks if b[0] in set(stages)]
    factors = stage_factors(network, dims)
    drop_inference_tensors()
    last = blocks[-1][2]
    grids: dict[int, tuple[int, ...]] = {}
    recorders: list[tuple[int, int, str, _Recorder, StageScanBlock]] = []
    handles = []

    def query_token(block_id: int) -> int:
        s = blocks[block_id][0]
        grid = grids[block_id]
        token = [min(q // f, g - 1) for q, f, g in zip(query, factors[s], grid)]
        return int(np.ravel_multi_index(token, grid))

    for i, (s, j, block) in enumerate(blocks):
        def pre(_m, inputs, i=i):
            grids[i] = tuple(inputs[0].shape[2:])

        def post(_m, _inputs, _output, b=block, i=i, s=s):
            if progress is not None and (i == len(blocks) - 1 or blocks[i + 1][0] != s):
                n = sum(1 for x in blocks if x[0] == s)
                progress(f"stage {s}: {n} Stage-Scan block(s) on a {'x'.join(map(str, grids[i]))} token grid "
                         f"({'x'.join(map(str, factors[s]))} voxels per token): "
                         f"{' + '.join(n for n in MIXES if getattr(b, f'{n}_mix', None) is not None)} attention done")
            if b is last:
                raise _Stop

        handles += [block.register_forward_pre_hook(pre), block.register_forward_hook(post)]
        for name in MIXES:
            mix = getattr(block, f"{name}_mix", None)
            if mix is None:  # an ablation without this mix
                continue
            recorders.append((i, j, name, _Recorder(mix, lambda i=i: query_token(i)), block))

    was_training = network.training
    flags = [p.requires_grad for p in network.parameters()]
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            try:
                network(patch.detach())
            except _Stop:
                pass
    finally:
        for h in handles:
            h.remove()
        for *_, rec, _ in recorders:
            rec.remove()
        for p, f in zip(network.parameters(), flags):
            p.requires_grad_(f)
        network.train(was_training)

    maps: list[MixMap] = []
    for i, j, name, rec, _ in recorders:
        s = blocks[i][0]
        if rec.grad is None:
            raise RuntimeError(f"stage {s} block {j} {name} mix: no attention weights were recorded")
        a = rec.grad[0].double().cpu().numpy()  # (N_v, C)
        grid = grids[i]
        vg = v_grid_of(rec.mix, grid, a.shape[0])
        per_token = v_to_stage(a, vg, grid, rec.mix)  # (*grid, C)
        mean, spread = per_token.mean(-1), per_token.std(-1)
        qt = tuple(int(x) for x in np.unravel_index(query_token(i), grid))
        maps.append(MixMap(s, j, name, a, vg, grid, factors[s], qt, stage_to_patch(mean, factors[s], patch_shape),
                           stage_to_patch(spread, factors[s], patch_shape)))
    return maps
