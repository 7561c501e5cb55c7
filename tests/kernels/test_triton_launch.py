"""Launch sizes of the Triton Bi-WKV kernels (no kernel runs: launches are recorded)."""

from __future__ import annotations

import math

import pytest
import torch

from sss_nnunet.kernels.wkv import triton_kernels as tk


def _target() -> int:
    return tk.PROGRAMS_PER_SM * tk.DEFAULT_SMS


@pytest.mark.parametrize(
    ("B", "T", "C"),
    [(1, 1, 1), (2, 8, 64), (256, 64, 32), (2, 512, 128), (2, 2048, 64), (2, 4096, 32), (1, 16384, 64),
     (1, 131072, 32), (1, 1_000_000, 8), (4, 37, 5)],
)
def test_launch_config_fills_the_gpu_with_short_sequential_paths(B: int, T: int, C: int):
    cfg = tk.launch_config(B, T, C)
    assert cfg.block_c == min(32, 1 << (C - 1).bit_length())
    assert cfg.n_chunks == math.ceil(T / cfg.chunk) and (cfg.n_chunks - 1) * cfg.chunk < T
    programs = B * math.ceil(C / cfg.block_c) * cfg.n_chunks
    if T <= tk.SPLIT_MIN_T:
        assert cfg.n_chunks == 1
    if cfg.n_chunks == 1:
        assert cfg.chunk == T and not cfg.carry
    else:
        assert cfg.chunk % 16 == 0 and cfg.chunk >= tk.MIN_CHUNK and cfg.carry
        # two-level carry: the chunk walk is at most ~2 sqrt(T) steps
        assert cfg.n_chunks <= 2 * math.sqrt(T) + 1
    # enough programs whenever the sqrt(T) floor and the minimal chunk allow it
    floor_chunk = max(tk.MIN_CHUNK, math.isqrt(T) // 2)
    best_possible = B * math.ceil(C / cfg.block_c) * math.ceil(T / floor_chunk)
    if T > tk.SPLIT_MIN_T:
        assert programs >= min(_target(), best_possible) // 2


def _record(B: int, T: int, C: int, dtype=torch.float32):
    w, u = torch.randn(C), torch.randn(C)
    k, v, g = (torch.randn(B, T, C).to(dtype) for _ in range(3))
    with tk.record_launches() as fwd:
        y, logd, _ = tk.bi_wkv_forward(w, u, k, v)
    with tk.record_launches() as bwd:
        tk.bi_wkv_backward(w, u, k, v, y, logd, g)
    return fwd, bwd


def test_one_chunk_launches_only_the_output_kernels():
    fwd, bwd = _record(64, 32, 48)
    assert [x.kernel for x in fwd] == ["wkv_fwd_output"]
    assert [x.kernel for x in bwd] == ["wkv_bwd_output"]
    assert fwd[0].constexprs["CARRY"] is False and fwd[0].grid == (64 * 2,)


def test_many_chunks_launch_summary_carry_and_output():
    fwd, bwd = _record(1, 3000, 40)
    assert [x.kernel for x in fwd] == ["wkv_fwd_summary", "wkv_fwd_carry", "wkv_fwd_output"]
    assert [x.kernel for x in bwd] == ["wkv_bwd_summary", "wkv_bwd_carry", "wkv_bwd_output"]
    cfg = tk.launch_config(1, 3000, 40)
    assert fwd[0].grid == (cfg.n_chunks * 2,) and fwd[1].grid == (2,)
    assert fwd[2].constexprs["CARRY"] is True
    assert all(x.constexprs["NUM_STAGES"] == tk.DEFAULT_NUM_STAGES for x in fwd + bwd)


def test_explicit_chunk_and_block_override_the_heuristic():
    w, u = torch.randn(5), torch.randn(5)
    k = v = torch.randn(2, 17, 5)
    with tk.record_launches() as fwd:
        tk.bi_wkv_forward(w, u, k, v, chunk=4, block_c=2)
    assert fwd[0].grid == (5 * 3 * 2,) and fwd[0].constexprs["BLOCK_C"] == 2
