"""Conv pieces: the channels-last depthwise conv and the group-computed instance norm compute
what nn.ConvNd and nn.InstanceNormNd compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sss_nnunet.network import RWKVSSS
from sss_nnunet.network.conv import ResidualConvBlock
from sss_nnunet.network.fastconv import DepthwiseConv2d, DepthwiseConv3d, depthwise_op
from sss_nnunet.network.ops import InstanceNormByGroups, fast_norm, instance_norm


@pytest.mark.parametrize(("ours", "stock", "shape"), [(DepthwiseConv3d, nn.Conv3d, (2, 8, 6, 7, 9)),
                                                      (DepthwiseConv2d, nn.Conv2d, (2, 8, 7, 9))])
def test_depthwise_conv_matches_stock_conv_forward_and_backward(ours, stock, shape):
    torch.manual_seed(0)
    a = ours(8, 8, 3, padding=1, groups=8, bias=True)
    b = stock(8, 8, 3, padding=1, groups=8, bias=True)
    b.load_state_dict(a.state_dict())  # same keys, same shapes
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    a, b = a.double(), b.double()
    ya, yb = a(x), b(x)
    assert ya.shape == yb.shape  # any memory layout (channels-last on the CPU)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ya)
    grads_a = torch.autograd.grad(ya, (x, a.weight, a.bias), g)
    grads_b = torch.autograd.grad(yb, (x, b.weight, b.bias), g)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-10)


def test_separable_block_uses_the_depthwise_variant_and_plain_does_not():
    ops = dict(conv_op=nn.Conv3d, norm_op=instance_norm(3), nonlin=nn.LeakyReLU)
    sep = ResidualConvBlock(8, (3, 3, 3), ops, "separable")
    plain = ResidualConvBlock(8, (3, 3, 3), ops, "plain")
    assert isinstance(sep.body[0][0], DepthwiseConv3d) and sep.body[0][0].groups == 8
    assert not any(isinstance(m, DepthwiseConv3d) for m in plain.modules())
    assert depthwise_op(nn.Conv1d) is nn.Conv1d


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_instance_norm_by_groups_is_instance_norm(dims, channels_last):
    torch.manual_seed(0)
    stock = (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(6, eps=1e-5, affine=True).double()
    ours = InstanceNormByGroups(6, eps=1e-5, affine=True).double()
    with torch.no_grad():
        stock.weight.normal_()
        stock.bias.normal_()
    ours.load_state_dict(stock.state_dict())  # same keys: checkpoints load either way
    x = torch.randn(2, 6, *([5, 7, 4][:dims]), dtype=torch.float64) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last if dims == 2 else torch.channels_last_3d)
    x.requires_grad_()
    ya, yb = ours(x), stock(x)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(yb)
    for ga, gb in zip(torch.autograd.grad(ya, (x, ours.weight, ours.bias), g),
                      torch.autograd.grad(yb, (x, stock.weight, stock.bias), g)):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("mean", "std"), [(5.0, 3.0), (60.0, 0.5)])
def test_channels_last_instance_norm_keeps_float32_accuracy(affine, mean, std):
    """At 131k voxels per channel (mean 5, std 3) PyTorch's channels-last group norm is off by ~5e-4
    (its float32 sums run element after element); ``network.norm`` must stay near the classic
    layout's ~1e-6, values and gradients, and give channels-last output. Mean 60, std 0.5: the
    norm centres the map first (E[x^2] - mean^2 and x * b - mean * b would cancel)."""
    torch.manual_seed(0)
    norm = InstanceNormByGroups(8, affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.normal_()
            norm.bias.normal_()
    x = (torch.randn(2, 8, 32, 64, 64) * std + mean).contiguous(memory_format=torch.channels_last_3d)
    ref_norm = InstanceNormByGroups(8, affine=affine).double()
    ref_norm.load_state_dict(norm.state_dict())
    x64 = x.double().contiguous().requires_grad_()
    ref = ref_norm(x64)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, [x64, *ref_norm.parameters()], g)
    xr = x.clone().requires_grad_()
    y = norm(xr)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    grads = torch.autograd.grad(y, [xr, *norm.parameters()], g.float())
    assert (y.double() - ref).abs().max() < 2e-5
    for a, b in zip(grads, ref_grads):
        assert ((a.double() - b).abs().max() / b.abs().max()) < 2e-5
    with torch.autocast("cpu", dtype=torch.bfloat16):  # norms run in float32 under autocast
        assert norm(x.bfloat16()).dtype == torch.float32


def test_fast_norm_replaces_only_instance_norm_without_running_stats():
    assert fast_norm(nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}) is InstanceNormByGroups
    assert fast_norm(nn.InstanceNorm2d, None) is InstanceNormByGroups
    assert fast_norm(nn.InstanceNorm3d, {"track_running_stats": True}) is nn.InstanceNorm3d
    assert fast_norm(nn.BatchNorm3d, {}) is nn.BatchNorm3d
    net = RWKVSSS(1, 2, 3, [4, 8, 16], nn.Conv3d, 3, [1, 2, 2], norm_op=nn.InstanceNorm3d,
                  norm_op_kwargs={"eps": 1e-5, "affine": True})
    norms = [m for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.InstanceNorm3d))]
    assert norms and all(type(m) is InstanceNormByGroups and m.num_groups == m.num_channels for m in norms)
