"""Triton backend under TRITON_INTERPRET=1 (CPU). Run by test_bi_wkv_triton.py in its own
process: the variable must be set before triton is imported. Not collected on its own."""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":  # pragma: no cover - guard for direct runs
    pytest.skip("needs TRITON_INTERPRET=1 (run through test_bi_wkv_triton.py)", allow_module_level=True)

from sss_nnunet.kernels import ENV_BACKEND, bi_wkv  # noqa: E402
from sss_nnunet.kernels.wkv import torch_scan, triton_kernels  # noqa: E402
from tests.kernels.wkv_cases import (  # noqa: E402
    SHAPES_T,
    Case,
    assert_backend_matches_reference,
    assert_matches,
    errors,
    make_inputs,
    reference,
    run_op,
)

# The interpreter runs each program's token loop in Python: keep B small at large T.
CASES = (
    [Case(2 if T < 256 else 1, T, 37) for T in SHAPES_T]
    + [Case(1, 1000, 7, w_max=50.0, k_max=100.0), Case(2, 64, 5, w_max=50.0, k_max=100.0)]
    + [Case(1, 256, 37, k_max=5.0, dtype=torch.float16), Case(1, 256, 37, k_max=5.0, dtype=torch.bfloat16)]
    + [Case(3, 9, 1, w_max=3.0), Case(2, 40, 1, w_max=3.0), Case(1, 1, 1)]  # C = 1 (one lane), T = 1
)


def run(w, u, k, v, gy, backend="triton"):
    return run_op(w, u, k, v, gy, backend)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_triton_matches_reference(case: Case):
    assert_backend_matches_reference(case, "triton")


@pytest.mark.parametrize(("T", "chunk", "block_c"), [(17, 4, 4), (33, 8, 16), (9, 16, 2)])
def test_many_chunks_and_channel_blocks(T: int, chunk: int, block_c: int):
    """Carries across chunks (incl. a short last chunk) and masked channel blocks."""
    case = Case(2, T, 5, w_max=3.0, k_max=3.0)
    w, u, k, v, gy = make_inputs(case)
    y_ref, g_ref = reference(w, u, k, v, gy)
    y, logd, _ = triton_kernels.bi_wkv_forward(w, u, k, v, chunk=chunk, block_c=block_c)
    grads = triton_kernels.bi_wkv_backward(w, u, k, v, y, logd, gy, chunk=chunk, block_c=block_c)
    assert_matches(errors(y, grads, y_ref, g_ref), case)
    # the normalised log-denominator is backend-independent
    _, logd_torch, _ = torch_scan.bi_wkv_forward(w, u, k, v)
    torch.testing.assert_close(logd, logd_torch, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize(("B", "T", "C"), [(2, 16, 5), (1, 40, 3), (2, 1, 1)])
def test_one_chunk_variant_equals_the_carried_variant(B: int, T: int, C: int):
    """chunk >= T runs the output kernels alone (CARRY=False, empty start states); forcing
    chunks of 4 runs summary, carry and output: both must give the same result."""
    w, u, k, v, gy = make_inputs(Case(B, T, C, w_max=3.0, k_max=3.0))
    with triton_kernels.record_launches() as one:
        triton_kernels.bi_wkv_forward(w, u, k, v, chunk=T)
    assert [x.kernel for x in one] == ["wkv_fwd_output"] and one[0].constexprs["CARRY"] is False
    y1, l1, _ = triton_kernels.bi_wkv_forward(w, u, k, v, chunk=T)
    g1 = triton_kernels.bi_wkv_backward(w, u, k, v, y1, l1, gy, chunk=T)
    y4, l4, _ = triton_kernels.bi_wkv_forward(w, u, k, v, chunk=4, block_c=2)
    g4 = triton_kernels.bi_wkv_backward(w, u, k, v, y4, l4, gy, chunk=4, block_c=2)
    torch.testing.assert_close(y1, y4, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(l1, l4, atol=1e-5, rtol=1e-6)
    for a, b in zip(g1, g4):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_non_contiguous_inputs():
    w, u, k, v, gy = make_inputs(Case(2, 20, 6))
    y_ref, g_ref = run(w, u, k, v, gy)
    k_t = k.transpose(0, 1).contiguous().transpose(0, 1)
    v_s = torch.stack([v, -v], -1)[..., 0]
    g_p = gy.permute(2, 0, 1).contiguous().permute(1, 2, 0)  # T stride 1
    y, grads = run(w, u, k_t, v_s, g_p)
    torch.testing.assert_close(y, y_ref)
    for a, b in zip(grads, g_ref):
        torch.testing.assert_close(a, b)


def _strided(w, u, k, v, gy, stride0_gy: bool):
    """The same values laid out as autograd and the network hand them over: k with B-T strides swapped, v a
    strided slice, gy with T stride 1 (or a stride-0 expand, what ``y.sum().backward()`` gives)."""
    k_t = k.transpose(0, 1).contiguous().transpose(0, 1)
    v_s = torch.stack([v, -v], -1)[..., 0]
    g = torch.ones(()).expand(gy.shape) if stride0_gy else gy.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    assert not (k_t.is_contiguous() or v_s.is_contiguous() or g.is_contiguous())
    return k_t, v_s, g


@pytest.mark.parametrize("stride0_gy", [False, True], ids=["strided-gy", "stride0-gy"])
@pytest.mark.parametrize(("T", "chunk", "block_c"), [(17, 4, 2), (33, 8, 4)])
def test_many_chunks_with_strided_inputs(T: int, chunk: int, block_c: int, stride0_gy: bool):
    """Summary, carry and output kernels (several chunks, masked channel blocks) on strided k, v, gy."""
    w, u, k, v, gy = make_inputs(Case(2, T, 5, w_max=3.0, k_max=3.0))
    k_t, v_s, g = _strided(w, u, k, v, gy, stride0_gy)
    gy = g.contiguous()
    y_ref, l_ref, _ = triton_kernels.bi_wkv_forward(w, u, k, v, chunk=chunk, block_c=block_c)
    g_ref = triton_kernels.bi_wkv_backward(w, u, k, v, y_ref, l_ref, gy, chunk=chunk, block_c=block_c)
    with triton_kernels.record_launches() as launches:  # records instead of running
        triton_kernels.bi_wkv_forward(w, u, k_t, v_s, chunk=chunk, block_c=block_c)
        triton_kernels.bi_wkv_backward(w, u, k_t, v_s, y_ref, l_ref, g, chunk=chunk, block_c=block_c)
    kernels = {x.kernel for x in launches}
    assert len(kernels) > 2, f"one-chunk path only: {kernels}"
    y, logd, _ = triton_kernels.bi_wkv_forward(w, u, k_t, v_s, chunk=chunk, block_c=block_c)
    grads = triton_kernels.bi_wkv_backward(w, u, k_t, v_s, y, logd, g, chunk=chunk, block_c=block_c)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-5)
    for a, b in zip(grads, g_ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    # and through the op (autograd's own stride-0 gradient) against the float64 reference
    y_ref64, g_ref64 = reference(w, u, k, v, gy)
    y2, grads2 = run(w, u, k_t, v_s, g)
    assert_matches(errors(y2, grads2, y_ref64, g_ref64), Case(2, T, 5, w_max=3.0, k_max=3.0))


def test_environment_variable_selects_triton(monkeypatch):
    w, u, k, v, _ = make_inputs(Case(1, 10, 3))
    monkeypatch.setenv(ENV_BACKEND, "triton")
    calls = []
    real = triton_kernels.bi_wkv_forward
    monkeypatch.setattr(triton_kernels, "bi_wkv_forward", lambda *a: calls.append(1) or real(*a))
    y = bi_wkv(w, u, k, v)
    assert calls, "SSS_BI_WKV_BACKEND=triton did not reach the Triton kernels"
    torch.testing.assert_close(y, bi_wkv(w, u, k, v, backend="torch"))


def test_gradients_are_deterministic():
    w, u, k, v, gy = make_inputs(Case(2, 40, 6, w_max=3.0))
    _, g1 = run(w, u, k, v, gy)
    _, g2 = run(w, u, k, v, gy)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
