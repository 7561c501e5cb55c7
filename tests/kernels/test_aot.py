"""Ahead-of-time compilation of the Triton kernels as the runtime specialises them (no GPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import triton
import triton.language as tl

from sss_nnunet.kernels import aot
from sss_nnunet.kernels.wkv import triton_kernels
from sss_nnunet.kernels.wkv.triton_kernels import KERNELS


@pytest.fixture
def fresh_triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return tmp_path


def _variants(call: aot.Call, dtype: str = "fp32") -> dict[str, list[aot.Variant]]:
    out: dict[str, list[aot.Variant]] = {}
    for var in aot.runtime_variants([call], [dtype]):
        out.setdefault(var.kernel, []).append(var)
    return out


def test_integer_one_becomes_a_constant_and_one_chunk_skips_the_carry_kernels():
    v = _variants(aot.Call(1, 1, 1))
    assert set(v) == {"wkv_fwd_output", "wkv_bwd_output"}  # one chunk: no summary/carry launch
    consts = dict(v["wkv_fwd_output"][0].constexprs)
    sig = dict(v["wkv_fwd_output"][0].signature)
    assert consts["T"] == 1 and consts["C"] == 1 and consts["n_chunks"] == 1 and consts["CARRY"] is False
    assert sig["T"] == sig["C"] == "constexpr" and sig["k_ptr"] == "*fp32"


def test_divisibility_and_wide_integers_follow_the_arguments():
    (many,) = _variants(aot.Call(2, 2048, 64))["wkv_fwd_summary"]
    names = [p.name for p in KERNELS["wkv_fwd_summary"].params]
    divisible = {names[i] for i in many.divisible}
    assert {"k_ptr", "v_ptr", "T", "C", "s_kb", "s_kt"} <= divisible
    assert dict(many.constexprs)["s_kc"] == 1  # unit channel stride: a constant
    (odd,) = _variants(aot.Call(64, 27, 37))["wkv_fwd_output"]
    out_names = [p.name for p in KERNELS["wkv_fwd_output"].params]
    assert not {"T", "C", "s_kt"} & {out_names[i] for i in odd.divisible}
    assert dict(odd.signature)["s_kb"] == "i32"
    (huge,) = _variants(aot.Call(1, 2**25, 96, device="meta"))["wkv_fwd_output"]
    assert dict(huge.signature)["s_kb"] == "i64" and dict(huge.signature)["T"] == "i32"
    half = _variants(aot.Call(2, 2048, 64), "bf16")["wkv_fwd_output"][0]
    assert dict(half.signature)["k_ptr"] == "*bf16" and dict(half.signature)["logd_ptr"] == "*fp32"


def test_launch_records_match_the_launch_config():
    w, u = torch.randn(64), torch.randn(64)
    k = v = torch.randn(2, 2048, 64)
    cfg = triton_kernels.launch_config(2, 2048, 64)
    with triton_kernels.record_launches() as launches:
        triton_kernels.bi_wkv_forward(w, u, k, v)
    assert [x.grid[0] for x in launches] == [cfg.n_chunks * 2 * 2, 2 * 2, cfg.n_chunks * 2 * 2]


@pytest.mark.slow
def test_every_runtime_variant_compiles_for_sm80_and_sm90_without_spills(fresh_triton_cache):
    out_dir = fresh_triton_cache / "out"
    dtypes = ["fp32", "fp16", "bf16"]
    reports, failures = aot.compile_all([80, 90], dtypes, out_dir=out_dir)
    assert not failures
    n_variants = len(aot.runtime_variants(aot.CALLS, dtypes))
    assert len(reports) == 2 * n_variants and n_variants >= 6 * len(dtypes)
    assert {r.kernel for r in reports} == set(KERNELS)
    for r in reports:
        assert 0 < r.registers <= 255, r
        assert not r.spilled, f"{r.kernel} [{r.variant}] sm_{r.arch} spills: {r}"
    # 4-byte token loads of the multi-token loops are software-pipelined (cp.async)
    assert all(r.pipelined for r in reports if r.variant.startswith("fp32") and "T=1" not in r.variant)
    assert len(list(out_dir.glob("*.cubin"))) == len(reports)


def test_command_prints_the_table_and_exits_zero(fresh_triton_cache):
    out = fresh_triton_cache / "out"
    res = subprocess.run(
        [sys.executable, "-m", "sss_nnunet.kernels.aot", "--quick", "--arch", "90", "--dtype", "fp32",
         "--out", str(out)],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )
    assert res.returncode == 0, res.stderr
    n = len(aot.runtime_variants(aot.QUICK_CALLS, ["fp32"]))
    assert f"{n} compiled, 0 failed, 0 with register spills" in res.stdout
    for name in KERNELS:
        assert name in res.stdout
    assert "CARRY=False" in res.stdout and "T=1 C=1" in res.stdout
    assert (out / "aot.json").stat().st_size > 0


@triton.jit
def _broken_carry(summ_ptr, carry_ptr, w_ptr, T, C, n_chunks, chunk, BLOCK_C: tl.constexpr,
                  NUM_STAGES: tl.constexpr):
    tl.store(carry_ptr + tl.arange(0, BLOCK_C), undefined_name)  # noqa: F821


def test_command_exits_nonzero_when_a_kernel_fails(fresh_triton_cache, monkeypatch, capsys):
    monkeypatch.setitem(KERNELS, "wkv_fwd_carry", _broken_carry)
    monkeypatch.setattr(aot, "QUICK_CALLS", [aot.Call(1, 300, 8)])
    assert aot.main(["--quick", "--arch", "80", "--dtype", "fp32"]) == 1
    out = capsys.readouterr()
    assert "FAILED wkv_fwd_carry [fp32" in out.err and "sm_80" in out.err
    assert "0 with register spills" in out.out
