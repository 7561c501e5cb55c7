"""The CPU fast paths (``sss_nnunet.fastpaths``) compute the network's reference function: float64
networks in 2D and 3D, every switch that changes which fast path runs, values and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sss_nnunet.fastpaths import reference_paths
from sss_nnunet.network import RWKVSSS

TOPOLOGIES = {
    3: dict(n_stages=4, features_per_stage=[8, 16, 24, 32], conv_op=nn.Conv3d, kernel_sizes=3,
            strides=[1, [1, 2, 2], 2, 2]),
    2: dict(n_stages=4, features_per_stage=[8, 16, 24, 32], conv_op=nn.Conv2d, kernel_sizes=3,
            strides=[1, 2, 2, 2]),
}
SHAPES = {3: (8, 32, 32), 2: (64, 64)}
SWITCHES = [
    {},  # the default: both mixes, stage shift, DySample, pooled WKV
    dict(shift="qshift4", mixes="global", upsampler="transposed"),
    dict(shift_input="block", scan="raster", skip="concat", conv_block="plain"),
    dict(first_rwkv_stage=1, pooled_wkv=True, decay_scale="window"),
]


def _net(dims: int, switches: dict) -> RWKVSSS:
    torch.manual_seed(0)
    net = RWKVSSS(1, 3, deep_supervision=True, **TOPOLOGIES[dims], **switches).double()
    with torch.no_grad():  # trained-looking: the zero-initialised projections moved
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.3)
    return net


def _run(net: RWKVSSS, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    outs = net(x)
    sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs).backward()
    return [o.detach() for o in outs], {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dims", [3, 2])
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_fast_paths_compute_the_reference_function(dims, switches):
    net = _net(dims, switches)
    x = torch.randn(2, 1, *SHAPES[dims], dtype=torch.float64)
    stem = []  # the stem's output: channels-last on the fast path, the classic layout in the reference
    net.encoder[0][0].register_forward_hook(lambda m, i, o: stem.append(o))
    outs, grads = _run(net, x)
    with reference_paths():
        ref_outs, ref_grads = _run(net, x)
    layout = torch.channels_last_3d if dims == 3 else torch.channels_last
    assert stem[0].is_contiguous(memory_format=layout) and not stem[0].is_contiguous()
    assert stem[1].is_contiguous() and not stem[1].is_contiguous(memory_format=layout)
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert grads.keys() == ref_grads.keys() and len(grads) > 20
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-8, atol=1e-10, msg=name)


def test_eval_mode_output_matches_too():
    net = _net(3, {}).eval()
    x = torch.randn(1, 1, *SHAPES[3], dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        with reference_paths():
            ref = net(x)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
