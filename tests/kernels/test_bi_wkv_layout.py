"""The Bi-WKV custom ops' layout contract: real and fake outputs agree for every input stride.

``torch.compile`` (inductor) asserts that each custom op's real outputs have the sizes and
strides its fake implementation announced; a mismatch stops a compiled training step.
"""

from __future__ import annotations

import pytest
import torch

from sss_nnunet.kernels import bi_wkv, dispatch
from sss_nnunet.kernels.wkv import torch_scan
from tests.kernels.wkv_cases import Case, make_inputs


def layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same (B, T, C) values in several memory layouts."""
    return {
        "contiguous": x,
        "batch-inner": x.transpose(0, 1).contiguous().transpose(0, 1),  # (B, T, C) with stride C on B
        "channel-outer": x.permute(2, 0, 1).contiguous().permute(1, 2, 0),  # stride 1 on T, B*T on C
        "every-other": torch.stack([x, -x], -1)[..., 0],  # last-dim stride 2
        "sliced": torch.cat([x, x], 1)[:, 1::2],  # T stride 2C
    }


FAKE = ("test_faketensor",)  # fake vs real output metadata (sizes, strides, dtypes)
# T <= 16 (one chunk: the scan layout is a view), T = N*L exactly, T < N*L (padded last chunk)
SHAPES = [(2, 1, 3), (3, 8, 5), (2, 16, 4), (2, 17, 3), (2, 40, 6), (1, 49, 2)]


@pytest.mark.parametrize(("B", "T", "C"), SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_fake_and_real_outputs_agree_for_every_input_layout(B, T, C, dtype):
    w, u, k, v, gy = make_inputs(Case(B, T, C))
    if dtype == torch.float64:
        w, u = w.double(), u.double()
    for name, kk in layouts(k.to(dtype)).items():
        vv = layouts(v.to(dtype))["every-other" if name == "contiguous" else name]
        g = layouts(gy.to(dtype))["sliced"]
        args = [w.clone().requires_grad_(), u.clone().requires_grad_(), kk.requires_grad_(), vv.requires_grad_()]
        torch.library.opcheck(dispatch.bi_wkv_fwd, (*args, "torch"), test_utils=FAKE)
        y, logd, y_hi = dispatch.bi_wkv_fwd(*args, "torch")
        assert y.is_contiguous() and logd.is_contiguous() and y_hi.is_contiguous(), name
        saved_y = y_hi if dtype == torch.float16 else y
        bwd_args = (*(a.detach() for a in args), saved_y.detach(), logd.detach(), g, "torch")
        torch.library.opcheck(dispatch.bi_wkv_bwd, bwd_args, test_utils=FAKE)
        assert all(t.is_contiguous() for t in dispatch.bi_wkv_bwd(*bwd_args)), name


def test_opcheck_all_utils_on_strided_inputs():
    """Schema, autograd registration, fake tensors and AOT dispatch of both ops."""
    w, u, k, v, gy = make_inputs(Case(2, 40, 6))
    args = [w.requires_grad_(), u.requires_grad_(), layouts(k)["batch-inner"].requires_grad_(),
            layouts(v)["channel-outer"].requires_grad_()]
    torch.library.opcheck(dispatch.bi_wkv_fwd, (*args, "torch"))
    y, logd, _ = dispatch.bi_wkv_fwd(*args, "torch")
    bwd_args = (*(a.detach() for a in args), y.detach(), logd.detach(), layouts(gy)["sliced"], "torch")
    torch.library.opcheck(dispatch.bi_wkv_bwd, bwd_args)  # no double backward: inputs without grad


@pytest.mark.parametrize("T", [1, 5, 16, 17, 40, 256, 257])
def test_scan_layout_round_trip_is_contiguous(T: int):
    lay = torch_scan.Layout(T)
    z = torch.randn(2, T, 3, 2)
    back = lay.from_scan(lay.to_scan(z, 0.0, torch.float32))
    assert back.is_contiguous() and torch.equal(back, z)


@pytest.mark.slow
def test_inductor_compiles_the_op_on_strided_inputs_forward_and_backward():
    """fullgraph inductor around the op with permuted/strided inputs (the stride assertions
    inductor inserts after every custom op are what failed before) matches eager."""
    w, u, k, v, _ = make_inputs(Case(2, 40, 6, w_max=2.0))

    def f(w, u, k, v):
        kt = k.transpose(1, 2).contiguous().transpose(1, 2) * 2  # a permuted layout inside the graph
        return bi_wkv(w, u, kt, v * 1.5).sum(-1)

    compiled = torch.compile(f, fullgraph=True, backend="inductor")
    for kk, vv in (("batch-inner", "sliced"), ("every-other", "channel-outer")):
        xs = [w.clone(), u.clone(), layouts(k)[kk].clone(), layouts(v)[vv].clone()]
        xs_c = [t.detach().requires_grad_() for t in xs]
        xs_e = [t.detach().requires_grad_() for t in xs]
        out = compiled(*xs_c)
        (out * torch.arange(out.shape[1])).sum().backward()
        ref = f(*xs_e)
        (ref * torch.arange(ref.shape[1])).sum().backward()
        torch.testing.assert_close(out, ref)
        for a, b in zip(xs_c, xs_e):
            torch.testing.assert_close(a.grad, b.grad)
