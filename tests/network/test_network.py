"""RWKV-SSS end to end: shapes, deep supervision, ablations, 2D/3D, determinism, compile, budget."""

from __future__ import annotations

import zlib

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sss_nnunet.fastpaths import reference_paths
from sss_nnunet.network import MIXES, RWKVSSS, SCAN_MODES, SCAN_WEIGHTS, SHIFT_MODES, SKIPS, UPSAMPLERS
from sss_nnunet.network.rwkv import SpatialMix, StageScanBlock
from sss_nnunet.network.windows import CACHE_STATS, DEVICE_CACHE


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
    assert (net.config["scan"], net.config["shift"]) == (scan, shift)
    if dims == 2 and (scan, shift) != ("stage", "stage"):  # the switch acts: the default's weights, other outputs
        assert _differs_from_default(net, small_net(dims), x)


def _differs_from_default(variant: nn.Module, default: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``variant``, given ``default``'s weights wherever names and shapes match (both moved by
    ``_perturbed``, as the output projections start at zero), computes another output."""
    mine = variant.state_dict()
    variant.load_state_dict({k: v for k, v in default.state_dict().items() if k in mine and mine[k].shape == v.shape},
                            strict=False)
    with torch.no_grad():
        a = _perturbed(variant).eval()(x)[0]
        b = _perturbed(default).eval()(x)[0]
    return not torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("skip", SKIPS)
def test_skip_join_add_or_concat(dims, skip):
    net = small_net(dims, skip=skip)
    x = torch.randn(2, 2, *([16] * dims))
    check_outputs(net, x, 4)
    fuse_params = sum(p.numel() for p in net.decoder.fuse.parameters())
    assert (fuse_params == 0) == (skip == "add")
    # the decoder's output depends on every skip: perturbing one encoder stage's output changes the logits
    net.eval()
    with torch.no_grad():
        base = net(x)[0]
        for stage in range(3):
            handle = net.encoder[stage].register_forward_hook(lambda m, i, o: o + 1.0)
            changed = net(x)[0]
            handle.remove()
            assert not torch.allclose(base, changed), f"stage {stage}'s skip does not reach the output"


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("pooled", [True, False])
def test_upsamplers_and_pooled_wkv(upsampler, pooled):
    net = small_net(3, upsampler=upsampler, pooled_wkv=pooled, first_rwkv_stage=1)
    assert net.config["wkv_pool"] == ([1, 4, 2, 1] if pooled else [1, 1, 1, 1])
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


def _perturbed(net):
    """The mixes' output projections start at zero, so drop path and layer scale act on nothing at
    init: every parameter moved a little, seeded."""
    with torch.no_grad():
        for name, q in net.named_parameters():
            if "gammas" not in name:  # the same draw per name with and without layer scale
                q.add_(0.05 * torch.randn(q.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()))))
    return net


def test_eval_mode_is_deterministic_and_train_mode_drops_paths():
    torch.manual_seed(0)
    net = _perturbed(small_net(3, drop_path=0.3))
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        net.eval()
        a, b = net(x), net(x)
        assert all(torch.equal(p, q) for p, q in zip(a, b))
        net.train()
        torch.manual_seed(1)
        c = net(x)
        torch.manual_seed(2)
        d = net(x)
    assert not torch.allclose(c[0], d[0])  # other seeds, other dropped paths


def test_drop_path_and_layer_scale_change_training_behaviour():
    net = small_net(3, drop_path=0.5, layer_scale=0.1)
    blocks = [m for m in net.modules() if type(m).__name__ == "StageScanBlock"]
    assert blocks and all(len(b.gammas) > 0 for b in blocks)
    assert all(torch.equal(g, torch.full_like(g, 0.1)) for b in blocks for g in b.gammas)
    assert blocks[-1].drop.p == pytest.approx(0.5)
    check_outputs(net, torch.randn(2, 2, 16, 16, 16), 4)
    torch.manual_seed(0)
    scaled = _perturbed(small_net(3, layer_scale=0.1)).eval()
    torch.manual_seed(0)
    plain = _perturbed(small_net(3)).eval()
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():  # the same weights but the scales: the branches enter at a tenth
        assert not torch.allclose(scaled(x)[0], plain(x)[0], atol=1e-4)


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


@pytest.mark.slow
def test_budget_at_the_synapse_topology():
    """Parameters and FLOPs (MAC=1 plus every other op, the benchmark's count) at 1x1x64x128x128, 14 classes."""
    from benchmarks.bench_network import count_flops

    strides = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    net = RWKVSSS(1, 14, 6, [32, 64, 128, 256, 320, 320], nn.Conv3d, 3, strides, deep_supervision=True).eval()
    params = sum(p.numel() for p in net.parameters())
    cost = count_flops(net, torch.randn(1, 1, 64, 128, 128))
    assert params <= 34.4e6
    assert cost.macs + cost.other <= 48e9
    assert cost.by_category["bi_wkv"] > 0 and cost.by_category["norm"] > 0 and cost.by_category["gather"] > 0


def test_flop_count_includes_more_than_matmuls():
    from benchmarks.bench_network import count_flops

    net = small_net(3, deep_supervision=False)
    x = torch.randn(1, 2, 16, 16, 16)
    cost = count_flops(net, x)
    with torch.no_grad(), reference_paths(), FlopCounterMode(display=False) as fc:  # as count_flops counts
        net(x)
    matmul_macs = (fc.get_total_flops() - fc.get_flop_counts()["Global"].get(torch.ops.sss_nnunet.bi_wkv_fwd, 0)) / 2
    assert cost.macs == pytest.approx(matmul_macs)
    assert cost.other > 0.05 * cost.macs  # norms, shifts, gathers, pooling, interpolation, Bi-WKV


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="scan"):
        small_net(3, scan="spiral")
    with pytest.raises(ValueError, match="Conv2d or nn.Conv3d"):
        RWKVSSS(1, 2, 3, [8, 16, 32], nn.Conv1d, 3, [1, 2, 2])
    with pytest.raises(ValueError, match="one value per stage"):
        small_net(3, depths=[1, 1])
    with pytest.raises(ValueError, match="skip must be one of"):
        small_net(3, skip="sum")


def _blocks(net) -> list[StageScanBlock]:
    return [b for b in net.modules() if isinstance(b, StageScanBlock)]


def test_scan_weights_and_shift_directions_depend_on_the_stage():
    net = RWKVSSS(1, 2, 5, [8, 16, 16, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2, 2])
    blocks = _blocks(net)
    h = torch.zeros(1, 8, 16)  # no input signal: the gate gives its per-stage bias
    first, last = blocks[0].gate(h)[0], blocks[-1].gate(h)[0]
    assert first.argmax() == 0 and last.argmax() == 2  # D-H-W early, W-D-H deepest
    assert not torch.allclose(first, last)
    # the shift follows the weighted scan: every axis both ways, the first order's slowest axis most
    w_first = blocks[0].shift_weights((8, 8, 8), blocks[0].gate(h), "cpu").sum(-1)[0]  # channels per direction
    w_last = blocks[-1].shift_weights((8, 8, 8), blocks[-1].gate(h), "cpu").sum(-1)[0]
    assert (w_first > 0).all() and (w_last > 0).all() and len(w_first) == 6
    assert w_first[0] > w_first[4] and w_last[4] > w_last[0]  # +D vs +W channel shares
    uniform = _blocks(RWKVSSS(1, 2, 5, [8, 16, 16, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2, 2], scan_weights="uniform"))
    assert all(torch.allclose(b.gate(h), torch.full((1, 3), 1 / 3)) for b in uniform)
    assert not any(p.requires_grad for b in uniform for p in b.gate.parameters())


@pytest.mark.parametrize("dims", [2, 3])
def test_dynamic_gate_changes_with_the_input_and_learns(dims):
    torch.manual_seed(0)
    net = small_net(dims)
    block = _blocks(net)[0]
    seen = []
    block.gate.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    x = torch.randn(2, 2, *([16] * dims))
    net(x)
    assert seen[0].shape == (2, dims)
    assert not torch.allclose(seen[0][0], seen[0][1])  # per sample
    net(x * 3 + 1)
    assert not torch.allclose(seen[0], seen[1])  # another input, other weights
    # the mixes' output projections start at zero (identity blocks): after one step the gate gets gradients
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        sum(o.float().square().mean() for o in net(x)).backward()
        opt.step()
    assert block.gate.proj.weight.grad.abs().sum() > 0 and block.gate.proj.bias.grad.abs().sum() > 0
    static = _blocks(small_net(dims, scan_weights="static"))[0]
    a, b = static.gate(torch.randn(2, 5, 16)), static.gate(torch.randn(2, 5, 16) * 4)
    assert torch.equal(a, b)  # static: no input dependence


@pytest.mark.parametrize(("shape", "strides"), [((16, 16, 16), [1, 2, 2, 2]), ((24, 20), [1, 2, 2, 2]),
                                                ((6, 24, 20), [(1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2)])])
@pytest.mark.parametrize("option", [dict(scan_weights=w) for w in SCAN_WEIGHTS] + [dict(mixes=m) for m in MIXES]
                         + [dict(pos_embed=True), dict(first_rwkv_stage=1), dict(conv_block="plain")])
def test_every_new_switch_in_2d_3d_and_anisotropic(shape, strides, option):
    dims = len(shape)
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    net = RWKVSSS(1, 2, 4, [4, 8, 16, 16], conv, 3, strides, deep_supervision=True, **option)
    x = torch.randn(1, 1, *shape)
    out = check_outputs(net, x, 4, num_classes=2)
    assert out[0].shape[2:] == shape
    assert all(net.config[k] == v for k, v in option.items())
    if shape == (16, 16, 16):  # the switch acts (one shape suffices; the others test shapes)
        default = RWKVSSS(1, 2, 4, [4, 8, 16, 16], conv, 3, strides, deep_supervision=True)
        is_default = all(default.config[k] == v for k, v in option.items())
        assert _differs_from_default(net, default, x) != is_default, option
    blocks = _blocks(net)
    if option.get("mixes") == "global":
        assert all(b.local_mix is None and b.global_mix is not None for b in blocks)
    if option.get("mixes") == "local":
        assert all(b.global_mix is None and b.local_mix is not None for b in blocks)


def test_deepest_local_partition_differs_from_the_global_one():
    net = RWKVSSS(1, 2, 5, [8, 16, 16, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2, 2], mixes="both")
    deepest = _blocks(net)[-1]
    _, glob, local, shift_window = deepest.partition((4, 4, 4))
    assert glob.n_windows == 1 and local.n_windows > 1 and glob.counts != local.counts
    assert shift_window != (4, 4, 4)  # the shift stops at the local borders
    first = _blocks(net)[0]  # stage 2 of a 64^3 patch: 16^3 tokens, k/v pooled to 8^3
    pooled, glob, local, shift_window = first.partition((16, 16, 16))
    assert pooled == (8, 8, 8) and local.window_volume >= 32 and local.n_windows > glob.n_windows
    assert shift_window == tuple(2 * z for z in local.sizes)  # local windows measured in stage voxels


def test_set_scan_switches_every_spatial_mix_in_place():
    torch.manual_seed(0)
    net = small_net(3, deep_supervision=False).eval()
    for m in net.modules():  # as after training: output projections away from their zero init
        if isinstance(m, SpatialMix):
            torch.nn.init.normal_(m.output.weight, std=0.5)
    x = torch.randn(1, 2, 16, 16, 16)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        stage = net(x)
        net.set_scan("raster")
        mixes = [m for m in net.modules() if isinstance(m, SpatialMix)]
        assert mixes and all(m.orders == [(0, 1, 2)] and not m.snake for m in mixes)
        assert all(b.scan_weights(torch.randn(1, 4, b.norms[0].normalized_shape[0])) is None for b in _blocks(net))
        raster = net(x)
        net.set_scan("zigzag")
        assert all(m.orders == [(0, 1, 2)] and m.snake for m in mixes)
        net.set_scan("stage")
        assert all(len(m.orders) == 3 and m.snake for m in mixes)
        again = net(x)
    assert not torch.allclose(stage, raster)
    torch.testing.assert_close(stage, again)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ValueError, match="spiral"):
        net.set_scan("spiral")


def test_repeated_forwards_build_no_new_index_tensors():
    net = small_net(3)
    x = torch.randn(1, 2, 16, 16, 16)
    net(x)
    before = CACHE_STATS["misses"]
    cached = {k: v for k, v in DEVICE_CACHE.items()}
    sum(o.mean() for o in net(x)).backward()
    net(x)
    assert CACHE_STATS["misses"] == before
    assert all(DEVICE_CACHE[k] is v for k, v in cached.items())


def test_nnunet_architecture_keys_are_accepted_and_typos_rejected():
    nnunet = dict(n_conv_per_stage=[2] * 4, n_conv_per_stage_decoder=[2] * 3, conv_bias=True, dropout_op=None,
                  dropout_op_kwargs=None, n_blocks_per_stage=[1, 3, 4, 6], nonlin_first=False,
                  bottleneck_channels=None, stem_channels=None)
    small_net(3, **nnunet)
    with pytest.raises(TypeError, match="'local_window'"):
        small_net(3, local_window=[0, 0, 4, 2])  # typo of local_windows
    with pytest.raises(TypeError, match="'scna'"):
        small_net(3, n_conv_per_stage=[2] * 4, scna="raster")


def _compiled_fwd_bwd(net, x):
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    for _ in range(2):  # the first step fills the device cache, the second reads it
        out = compiled(x)
        sum(o.float().mean() for o in out).backward()
    assert not counters["graph_break"]
    return out


@pytest.mark.slow
def test_whole_network_forward_and_backward_compile_without_graph_breaks(monkeypatch):
    """fullgraph=True fails on any graph break (numpy calls, data-dependent Python, .item()). The
    Bi-WKV op runs through its naive autograd backend here, so the test sees only the network's code."""
    monkeypatch.setenv("SSS_BI_WKV_BACKEND", "naive")
    torch.manual_seed(0)
    net = small_net(3)
    x = torch.randn(1, 2, 16, 16, 16)
    out = _compiled_fwd_bwd(net, x)
    eager = net(x)
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_whole_network_compiles_with_the_default_bi_wkv_backend():
    torch.manual_seed(0)
    _compiled_fwd_bwd(small_net(3), torch.randn(1, 2, 16, 16, 16))


@pytest.mark.parametrize("dims", [2, 3])
def test_training_after_prediction_under_inference_mode(dims):
    """nnU-Net predicts under torch.inference_mode; scan indices cached there must still serve a
    later training step in the same process (no inference tensors in the device cache)."""
    DEVICE_CACHE.clear()
    net = small_net(dims)
    x = torch.randn(1, 2, *([16] * dims))
    with torch.inference_mode():
        net.eval()(x)
    assert DEVICE_CACHE and not any(t.is_inference() for v in DEVICE_CACHE.values()
                                    for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor))
    check_outputs(net.train(), x, 4)


def test_default_block_has_both_mixes_and_global_only_drops_the_local_one():
    """``mixes`` default is "both" (the paper's Stage-Scan block); "global" is the ablation."""
    default = _blocks(RWKVSSS(1, 2, 4, [4, 8, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2]))
    glob = _blocks(RWKVSSS(1, 2, 4, [4, 8, 16, 16], nn.Conv3d, 3, [1, 2, 2, 2], mixes="global"))
    assert default and all(b.global_mix is not None and b.local_mix is not None for b in default)
    assert glob and all(b.global_mix is not None and b.local_mix is None for b in glob)
