"""Ahead-of-time compilation of every Triton kernel for sm_80 and sm_90 (no GPU needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import triton
import triton.language as tl

from sss_nnunet.kernels import aot
from sss_nnunet.kernels.wkv.triton_kernels import KERNELS


@pytest.fixture
def fresh_triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return tmp_path


@pytest.mark.slow
def test_every_kernel_compiles_for_sm80_and_sm90_without_spills(fresh_triton_cache):
    out_dir = fresh_triton_cache / "out"
    reports, failures = aot.compile_all([80, 90], ["fp32", "fp16", "bf16"], out_dir=out_dir)
    assert not failures
    assert {(r.kernel, r.dtype, r.arch) for r in reports} == {
        (k, d, a) for k in KERNELS for d in ("fp32", "fp16", "bf16") for a in (80, 90)
    }
    for r in reports:
        assert 0 < r.registers <= 255, r
        assert not r.spilled, f"{r.kernel} {r.dtype} sm_{r.arch} spills: {r}"
    assert all((out_dir / f"{r.kernel}_{r.dtype}_sm{r.arch}.cubin").stat().st_size > 0
               for r in reports)


def test_command_prints_the_table_and_exits_zero(fresh_triton_cache):
    env = dict(os.environ)
    res = subprocess.run(
        [sys.executable, "-m", "sss_nnunet.kernels.aot", "--arch", "90", "--dtype", "fp32"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert f"{len(KERNELS)} compiled, 0 failed, 0 with register spills" in res.stdout
    for name in KERNELS:
        assert name in res.stdout


@triton.jit
def _broken_kernel(x_ptr, BLOCK_C: tl.constexpr):
    tl.store(x_ptr + tl.arange(0, BLOCK_C), undefined_name)  # noqa: F821


def test_command_exits_nonzero_when_a_kernel_fails(fresh_triton_cache, monkeypatch, capsys):
    monkeypatch.setattr(aot, "KERNELS", {"broken": _broken_kernel, **KERNELS})
    assert aot.main(["--arch", "80", "--dtype", "fp32"]) == 1
    out = capsys.readouterr()
    assert "FAILED broken fp32 sm_80" in out.err
    assert "0 with register spills" in out.out
