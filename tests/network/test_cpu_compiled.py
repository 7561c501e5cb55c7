"""The compiled depthwise weight gradient (``network.cpu_compiled``) equals PyTorch's, and falls back
to it where it cannot compile."""

from __future__ import annotations

import pytest
import torch

from sss_nnunet.network import cpu_compiled
from sss_nnunet.network.fastconv import DepthwiseConv2d, DepthwiseConv3d

CASES = [(3, 3, (2, 5, 6, 7, 9)), pytest.param(2, 5, (2, 5, 11, 13), marks=pytest.mark.slow),
         pytest.param(3, 5, (1, 4, 7, 6, 8), marks=pytest.mark.slow)]


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(cpu_compiled, "_STATE", {})
    monkeypatch.setattr(cpu_compiled, "MIN_ELEMENTS", 0)


def _aten_weight_grad(x, g, k):
    dims = x.dim() - 2
    w = torch.zeros(x.shape[1], 1, *[k] * dims, dtype=x.dtype)
    return torch.ops.aten.convolution_backward(g, x, w, None, [1] * dims, [k // 2] * dims, [1] * dims, False,
                                               [0] * dims, x.shape[1], [False, True, False])[1]


@pytest.mark.parametrize(("dims", "k", "shape"), CASES)
def test_compiled_weight_gradient_equals_pytorch(fresh_state, monkeypatch, dims, k, shape):
    monkeypatch.delenv("SSS_CPU_COMPILE", raising=False)
    if cpu_compiled._compiler_missing():
        pytest.skip(cpu_compiled._compiler_missing())
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if dims == 3 else torch.channels_last
    x = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=fmt)
    g = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=fmt)
    gw = cpu_compiled.depthwise_weight_grad(x, g, (k,) * dims, (k // 2,) * dims)
    assert gw is not None and cpu_compiled._STATE["fn"] is not None
    torch.testing.assert_close(gw, _aten_weight_grad(x, g, k), rtol=1e-10, atol=1e-10)
    # and through the layer's backward
    conv = (DepthwiseConv3d if dims == 3 else DepthwiseConv2d)(shape[1], shape[1], k, padding=k // 2,
                                                               groups=shape[1], bias=False).double()
    (via_layer,) = torch.autograd.grad(conv(x), [conv.weight], g)
    torch.testing.assert_close(via_layer, gw, rtol=1e-10, atol=1e-10)


def test_small_maps_and_half_precision_take_pytorchs_kernel(monkeypatch):
    monkeypatch.setattr(cpu_compiled, "_STATE", {})
    x = torch.randn(1, 4, 6, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    assert cpu_compiled.depthwise_weight_grad(x, x, (3, 3, 3), (1, 1, 1)) is None  # below MIN_ELEMENTS
    monkeypatch.setattr(cpu_compiled, "MIN_ELEMENTS", 0)
    assert cpu_compiled.depthwise_weight_grad(x.bfloat16(), x.bfloat16(), (3, 3, 3), (1, 1, 1)) is None
    assert "fn" not in cpu_compiled._STATE  # nothing was compiled


def test_switched_off_by_environment(fresh_state, monkeypatch):
    monkeypatch.setenv("SSS_CPU_COMPILE", "0")
    x = torch.randn(1, 4, 6, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    assert cpu_compiled.depthwise_weight_grad(x, x, (3, 3, 3), (1, 1, 1)) is None
    assert cpu_compiled._STATE["reason"] == "SSS_CPU_COMPILE=0"


def test_no_compiler_found(fresh_state, monkeypatch):
    monkeypatch.delenv("SSS_CPU_COMPILE", raising=False)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert "no C++ compiler" in cpu_compiled._compiler_missing()
    x = torch.randn(1, 4, 6, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    assert cpu_compiled.depthwise_weight_grad(x, x, (3, 3, 3), (1, 1, 1)) is None


def test_a_failing_compile_warns_once_and_falls_back_for_good(fresh_state, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("C++ compile error: cannot find omp.h\nmore lines")
    monkeypatch.setattr(cpu_compiled, "_compiled", lambda: cpu_compiled._STATE.get("fn", broken))
    torch.manual_seed(0)
    conv = DepthwiseConv3d(4, 4, 3, padding=1, groups=4, bias=False)
    x = torch.randn(1, 4, 6, 6, 6)
    with pytest.warns(RuntimeWarning, match=r"cannot find omp.h\); using PyTorch.s kernel"):
        (gw,) = torch.autograd.grad(conv(x).square().sum(), [conv.weight])
    ref = torch.nn.Conv3d(4, 4, 3, padding=1, groups=4, bias=False)
    ref.load_state_dict(conv.state_dict())
    (gw_ref,) = torch.autograd.grad(ref(x).square().sum(), [ref.weight])
    torch.testing.assert_close(gw, gw_ref)
    torch.autograd.grad(conv(x).square().sum(), [conv.weight])  # no second try, no second warning
    assert len(calls) == 1
