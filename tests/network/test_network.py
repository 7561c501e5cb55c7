"""RWKV-SSS end to end: shapes, deep supervision, ablations, 2D/3D, determinism, compile, budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sss_nnunet.network import RWKVSSS, SCAN_MODES, SHIFT_MODES, UPSAMPLERS


def small_net(dims=3, n_stages=4, strides=None, deep_supervision=True, **kw):
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    strides = strides or [1] + [2] * (n_stages - 1)
    feats = [8 * 2**s for s in range(n_stages)]
    return RWKVSSS(2, 3, n_stages, feats, conv, 3, strides, deep_supervision=deep_supervision, **kw)


def check_outputs(net, x, n_stages, num_classes=3):
    out = net(x)
    assert isinstance(out, list) and len(out) == n_stages - 1
    assert out[0].shape == (x.shape[0], num_classes, *x.shape[2:])
    sizes = [o.shape[2:].numel() for o in out]
    assert sizes == sorted(sizes, reverse=True)  # highest resolution first
    sum(o.float().mean() for o in out).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return out


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("scan", SCAN_MODES)
@pytest.mark.parametrize("shift", SHIFT_MODES)
def test_every_scan_and_shift_trains(dims, scan, shift):
    net = small_net(dims, scan=scan, shift=shift)
    x = torch.randn(2, 2, *([16] * dims))
    check_outputs(net, x, 4)


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("pooled", [True, False])
def test_upsamplers_and_pooled_wkv(upsampler, pooled):
    net = small_net(3, upsampler=upsampler, pooled_wkv=pooled, first_rwkv_stage=1)
    assert net.config["wkv_pool"] == ([1, 2, 1, 1] if pooled else [1, 1, 1, 1])
    check_outputs(net, torch.randn(1, 2, 12, 16, 16), 4)


def test_deep_supervision_switch_as_nnunet_does_it():
    net = small_net(3)
    x = torch.randn(1, 2, 16, 16, 16)
    assert isinstance(net(x), list)
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 16, 16, 16)
    off = small_net(3, deep_supervision=False)
    assert isinstance(off(x), torch.Tensor)


@pytest.mark.parametrize(
    ("shape", "strides"),
    [
        ((80, 192, 160), [(1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)]),
        ((16, 160, 160), [(1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)]),
        ((256, 224), [(1, 1), (2, 2), (2, 2), (2, 2), (2, 2), (2, 2), (2, 2)]),
        ((20, 36, 28), [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]),  # not divisible: cropped back
    ],
)
def test_anisotropic_strides_and_non_power_of_two_patches(shape, strides):
    dims = len(shape)
    n = len(strides)
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    feats = [4, 8, 16, 16, 24, 24, 24][:n]
    net = RWKVSSS(1, 2, n, feats, conv, [[1, 3, 3] if dims == 3 else [3, 3]] + [3] * (n - 1), strides,
                  deep_supervision=True)
    check_outputs(net, torch.randn(1, 1, *shape), n, num_classes=2)


def test_eval_mode_is_deterministic_and_needs_no_cuda():
    torch.manual_seed(0)
    net = small_net(3, drop_path=0.3).eval()
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        a, b = net(x), net(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(not p.is_cuda for p in net.parameters())


def test_drop_path_and_layer_scale_change_training_behaviour():
    net = small_net(3, drop_path=0.5, layer_scale=0.1)
    blocks = [m for m in net.modules() if type(m).__name__ == "StageScanBlock"]
    assert blocks and all(b.gammas is not None for b in blocks)
    assert blocks[-1].drop.p == pytest.approx(0.5)
    check_outputs(net, torch.randn(2, 2, 16, 16, 16), 4)


@pytest.mark.slow
def test_runs_under_torch_compile_on_cpu():
    torch.manual_seed(0)
    net = small_net(3).eval()
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        eager = net(x)
        compiled = torch.compile(net)(x)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_learns_a_small_synthetic_volume():
    """A few hundred CPU steps fit two objects in one 32^3 volume to Dice > 0.9."""
    torch.manual_seed(0)
    z, y, x = torch.meshgrid(*(torch.arange(32.0),) * 3, indexing="ij")
    label = torch.zeros(32, 32, 32, dtype=torch.long)
    label[((z - 12) ** 2 + (y - 14) ** 2 + (x - 10) ** 2) < 49] = 1  # sphere
    label[(z > 18) & (z < 28) & (y > 4) & (y < 12) & (x > 16) & (x < 28)] = 2  # box
    image = (label.float() * 1.5 + 0.3 * torch.randn(32, 32, 32))[None, None]
    net = RWKVSSS(1, 3, 4, [8, 16, 32, 32], nn.Conv3d, 3, [1, 2, 2, 2], deep_supervision=False)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        logits = net(image)
        loss = nn.functional.cross_entropy(logits, label[None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    pred = net.eval()(image).argmax(1)[0]
    for c in (1, 2):
        inter = ((pred == c) & (label == c)).sum().item()
        dice = 2 * inter / ((pred == c).sum().item() + (label == c).sum().item())
        assert dice > 0.9, f"class {c}: Dice {dice:.3f}"


def test_budget_at_the_synapse_topology():
    """Parameters and multiply-accumulates at 1x1x64x128x128, 14 classes (counts, not timing)."""
    strides = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    net = RWKVSSS(1, 14, 6, [32, 64, 128, 256, 320, 320], nn.Conv3d, 3, strides, deep_supervision=True).eval()
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = net(torch.randn(1, 1, 64, 128, 128))
    assert len(out) == 5 and out[0].shape == (1, 14, 64, 128, 128)
    assert params <= 34.4e6
    assert fc.get_total_flops() / 2 <= 38e9
    assert fc.get_flop_counts()["Global"], "no operations counted"


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="scan"):
        small_net(3, scan="spiral")
    with pytest.raises(ValueError, match="Conv2d or nn.Conv3d"):
        RWKVSSS(1, 2, 3, [8, 16, 32], nn.Conv1d, 3, [1, 2, 2])
    with pytest.raises(ValueError, match="one value per stage"):
        small_net(3, depths=[1, 1])


def test_scan_weights_and_shift_directions_depend_on_the_stage():
    from sss_nnunet.network.rwkv import StageScanBlock

    net = RWKVSSS(1, 2, 5, [8, 16, 16, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2, 2])
    blocks = [b for b in net.modules() if isinstance(b, StageScanBlock)]
    first, last = blocks[0].global_mix, blocks[-1].global_mix
    assert first.orders[0] == (0, 1, 2) and last.orders[0] == (2, 1, 0)  # dominant order first
    assert torch.softmax(first.order_logits, 0)[0] > 0.5 and torch.softmax(last.order_logits, 0)[0] > 0.5
    assert {a for a, _ in first.shift} == {0, 1} and {a for a, _ in last.shift} == {1, 2}
