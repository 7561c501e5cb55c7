"""The conv variants of ``network.fastconv`` compute what nn.Conv2d / nn.Conv3d compute (float64,
values and every gradient), take their fast path on the CPU, and are chosen where they apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sss_nnunet.fastpaths import reference_paths
from sss_nnunet.network import fastconv
from sss_nnunet.network.fastconv import (
    DepthwiseConv2d,
    DepthwiseConv3d,
    PointwiseConv2d,
    PointwiseConv3d,
    StemConv2d,
    StemConv3d,
    conv_variant,
)

STOCK = {2: nn.Conv2d, 3: nn.Conv3d}
SHAPES = {2: (2, 6, 11, 13), 3: (2, 6, 5, 7, 9)}
# (variant, c_in, c_out, kernel, groups, bias, the function its fast path runs through)
CASES = {
    "pointwise": ({2: PointwiseConv2d, 3: PointwiseConv3d}, 6, 5, 1, 1, True, "pointwise_conv"),
    "pointwise_nobias": ({2: PointwiseConv2d, 3: PointwiseConv3d}, 6, 5, 1, 1, False, "pointwise_conv"),
    "depthwise": ({2: DepthwiseConv2d, 3: DepthwiseConv3d}, 6, 6, 3, 6, False, "_DepthwiseConv"),
    "depthwise5": ({2: DepthwiseConv2d, 3: DepthwiseConv3d}, 6, 6, 5, 6, False, "_DepthwiseConv"),
    "stem": ({2: StemConv2d, 3: StemConv3d}, 2, 7, 3, 1, False, "_StemConv"),
}


def _count_fast_calls(monkeypatch, name: str) -> list[int]:
    calls = [0]
    target = getattr(fastconv, name)
    if isinstance(target, type):  # an autograd Function: count its apply
        original = target.apply

        def apply(*args):
            calls[0] += 1
            return original(*args)
        monkeypatch.setattr(target, "apply", apply)
    else:
        def wrapped(*args):
            calls[0] += 1
            return target(*args)
        monkeypatch.setattr(fastconv, name, wrapped)
    return calls


def _grads(conv: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    y = conv(x)
    params = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
    return y, list(torch.autograd.grad(y, [x, *params], g))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_variant_matches_stock_conv(monkeypatch, dims, channels_last, case):
    variants, c_in, c_out, k, groups, bias, fast = CASES[case]
    torch.manual_seed(0)
    ours = variants[dims](c_in, c_out, k, padding=k // 2, groups=groups, bias=bias).double()
    stock = STOCK[dims](c_in, c_out, k, padding=k // 2, groups=groups, bias=bias).double()
    stock.load_state_dict(ours.state_dict())  # same keys and shapes
    x = torch.randn(SHAPES[dims][0], c_in, *SHAPES[dims][2:], dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last)
    x.requires_grad_(True)
    calls = _count_fast_calls(monkeypatch, fast)
    y, grads = _grads(ours, x, g := torch.randn(*y_shape(stock, x), dtype=torch.float64))
    # pointwise needs a channels-last input; depthwise converts to it; the stem takes any layout
    assert calls[0] == (1 if channels_last or case.startswith(("depthwise", "stem")) else 0)
    y_ref, grads_ref = _grads(stock, x, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    with reference_paths():  # the stock conv then runs
        calls[0] = 0
        torch.testing.assert_close(ours(x), y_ref, rtol=1e-12, atol=1e-12)
        assert calls[0] == 0


def y_shape(conv: nn.Module, x: torch.Tensor) -> torch.Size:
    with torch.no_grad():
        return conv(x).shape


def test_stem_over_several_slabs_and_samples(monkeypatch):
    """The im2col matrix is built in slabs of the first spatial axis: tiny slabs, odd sizes; the
    forward writes each slab's rows of a channels-last output."""
    monkeypatch.setattr(fastconv, "_IM2COL_ELEMENTS", 200)  # 81 rows x 30 voxels per slice: one slice a slab
    monkeypatch.setattr(fastconv, "_IM2COL_FORWARD_ELEMENTS", 5000)  # 2 planes a slab, 4 per sample
    calls = _count_fast_calls(monkeypatch, "_im2col_weight_grad")
    torch.manual_seed(1)
    ours, stock = StemConv3d(3, 4, 3, padding=1, bias=False).double(), nn.Conv3d(3, 4, 3, padding=1, bias=False)
    stock = stock.double()
    stock.load_state_dict(ours.state_dict())
    x = torch.randn(3, 3, 7, 5, 6, dtype=torch.float64)
    g = torch.randn(3, 4, 7, 5, 6, dtype=torch.float64)
    y = ours(x)
    assert y.is_contiguous(memory_format=torch.channels_last_3d) and not y.is_contiguous()
    torch.testing.assert_close(y, stock(x), rtol=1e-12, atol=1e-12)
    (gw,) = torch.autograd.grad(y, [ours.weight], g)
    (gw_ref,) = torch.autograd.grad(stock(x), [stock.weight], g)
    assert calls[0] == 1  # the im2col path ran, not PyTorch's conv backward
    torch.testing.assert_close(gw, gw_ref, rtol=1e-10, atol=1e-10)


def test_half_precision_stem_weight_gradient_accumulates_in_float32():
    torch.manual_seed(2)
    conv = StemConv3d(1, 8, 3, padding=1, bias=False)
    x = torch.randn(1, 1, 8, 16, 16)
    g = torch.randn(1, 8, 8, 16, 16)
    (ref,) = torch.autograd.grad(conv(x), [conv.weight], g)
    conv = conv.bfloat16()
    (gw,) = torch.autograd.grad(conv(x.bfloat16()), [conv.weight], g.bfloat16())
    assert gw.dtype == torch.bfloat16
    torch.testing.assert_close(gw.float(), ref, rtol=2e-2, atol=0.5)


def test_half_precision_im2col_sums_its_slabs_in_float32(monkeypatch):
    """The stem's weight gradient is a sum over slabs of the first axis; at the sizes above the whole
    input is one slab. Forced into one slab per plane, the running sum must be float32 (a bf16 running
    sum passes the loose check above) and match float64 to bf16 rounding of each slab's product."""
    from sss_nnunet.network import fastconv

    monkeypatch.setattr(fastconv, "_IM2COL_ELEMENTS", 1)  # one plane per slab: 8 slabs
    torch.manual_seed(3)
    x, g = torch.randn(1, 1, 8, 16, 16).bfloat16(), torch.randn(1, 8, 8, 16, 16).bfloat16()
    out = fastconv._im2col_weight_grad(x, g, (3, 3, 3), (1, 1, 1))
    assert out.dtype == torch.float32  # the accumulator
    ref = torch.nn.grad.conv3d_weight(x.double(), (8, 1, 3, 3, 3), g.double(), padding=1)
    slabs = [torch.nn.grad.conv3d_weight(x.double(), (8, 1, 3, 3, 3), g.double() * (torch.arange(8) == i).view(
        1, 1, 8, 1, 1), padding=1).abs() for i in range(8)]
    bound = sum(slabs) * 2.0 ** -8 + 1e-6  # each slab's product rounded to bf16 once, nothing more
    assert ((out.double() - ref).abs() <= bound).all(), float(((out.double() - ref).abs() / bound).max())


@pytest.mark.parametrize("dims", [2, 3])
def test_conv_variant_picks_the_fast_conv_where_it_applies(dims):
    conv = STOCK[dims]
    assert conv_variant(conv, 32, 14, [1] * dims, 1, 1).__name__ == f"PointwiseConv{dims}d"
    assert conv_variant(conv, 32, 32, [3] * dims, 1, 32).__name__ == f"DepthwiseConv{dims}d"
    assert conv_variant(conv, 1, 32, [3] * dims, 1, 1).__name__ == f"StemConv{dims}d"
    assert conv_variant(conv, 4, 32, [3] * dims, 1, 1).__name__ == f"StemConv{dims}d"
    assert conv_variant(conv, 32, 32, [3] * dims, 1, 1) is conv  # dense, many input channels
    assert conv_variant(conv, 32, 64, [2] * dims, 2, 1) is conv  # strided downsampling
    assert conv_variant(conv, 32, 32, [1] * dims, [1] * (dims - 1) + [2], 1) is conv
    assert conv_variant(nn.Conv1d, 32, 14, [1], 1, 1) is nn.Conv1d


def test_strided_or_biased_convs_fall_back_to_pytorch(monkeypatch):
    calls = _count_fast_calls(monkeypatch, "_DepthwiseConv")
    x = torch.randn(1, 4, 6, 6, 6)
    for conv in (DepthwiseConv3d(4, 4, 3, padding=1, groups=4, bias=True),
                 DepthwiseConv3d(4, 4, 3, stride=2, padding=1, groups=4, bias=False),
                 DepthwiseConv3d(4, 4, 3, padding=0, groups=4, bias=False)):
        ref = nn.Conv3d(4, 4, 3, stride=conv.stride, padding=conv.padding, groups=4, bias=conv.bias is not None)
        ref.load_state_dict(conv.state_dict())
        torch.testing.assert_close(conv(x), ref(x))
    assert calls[0] == 0


@pytest.mark.parametrize("case", ["pointwise", "depthwise", "stem"])
def test_variants_under_cpu_autocast_match_the_stock_conv(case):
    variants, c_in, c_out, k, groups, bias, _ = CASES[case]
    torch.manual_seed(0)
    ours = variants[3](c_in, c_out, k, padding=k // 2, groups=groups, bias=bias)
    stock = nn.Conv3d(c_in, c_out, k, padding=k // 2, groups=groups, bias=bias)
    stock.load_state_dict(ours.state_dict())
    x = torch.randn(2, c_in, 5, 6, 7).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    results = []
    for conv in (ours, stock):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        results.append((y, *torch.autograd.grad(y.float().square().sum(), [x, conv.weight])))
    for a, b in zip(*results):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
