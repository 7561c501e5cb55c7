"""Attention maps of Stage-Scan blocks: exact against the naive Bi-WKV formula, spikes land where planted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sss_nnunet.attention.maps import attention_maps, stage_blocks
from sss_nnunet.errors import SSSError
from tests.attention.wkv_reference import PATCH, QUERY, mixes, naive_weights, recorded_wkv_calls, tiny_net

SLOW = pytest.mark.slow


def cases(names: str, rows: list[tuple], fast: set[tuple]):
    """Parametrize over ``rows``; rows not in ``fast`` are marked slow (``-m "not slow"`` keeps a few)."""
    return pytest.mark.parametrize(names, [pytest.param(*r, marks=() if r in fast else SLOW) for r in rows])


@cases("dims, scan", [(d, s) for d in (3, 2) for s in ("raster", "zigzag")], {(3, "zigzag"), (2, "raster")})
def test_maps_equal_the_naive_bi_wkv_formula(dims, scan):
    net = tiny_net(dims, scan)
    x = torch.randn(1, 1, *PATCH[dims], dtype=torch.float64)
    maps = attention_maps(net, x, QUERY[dims])
    assert len(maps) == 2 * len(stage_blocks(net))
    for mm, (s, j, name, mix) in zip(maps, mixes(net)):
        assert (mm.stage, mm.block, mm.mix) == (s, j, name)
        calls = recorded_wkv_calls(net, x, mix)
        q = int(np.ravel_multi_index(mm.query_token, mm.stage_grid))
        expected = naive_weights(calls, q, int(np.prod(mm.stage_grid)))
        np.testing.assert_allclose(mm.token_weights, expected, atol=1e-10, err_msg=mm.name)
        if name == "local":  # one window, not the whole map
            assert (expected.sum(1) == 0).any()


ALL = [(d, s, p) for d in (3, 2) for s in ("raster", "zigzag", "stage") for p in (False, True)]


@cases("dims, scan, pooled", ALL, {(3, "stage", True), (2, "zigzag", False), (3, "raster", False)})
def test_every_map_is_a_distribution_over_the_patch(dims, scan, pooled):
    net = tiny_net(dims, scan, pooled).float()
    x = torch.randn(1, 1, *PATCH[dims])
    lines = []
    maps = attention_maps(net, x, QUERY[dims], progress=lines.append)
    assert [line.split(":")[0] for line in lines] == ["stage 1", "stage 2"]
    for mm in maps:
        np.testing.assert_allclose(mm.token_weights.sum(0), 1, atol=1e-5, err_msg=mm.name)
        assert mm.weights.shape == PATCH[dims] and mm.weights.min() >= 0
        assert mm.weights.sum() == pytest.approx(1, abs=1e-5)
        assert mm.spread.shape == PATCH[dims] and mm.spread.max() > 0


def voxel_block(token: tuple[int, ...], pool: int, stage_grid, factor, patch) -> tuple[slice, ...]:
    """Patch voxels made from v token ``token`` (pooled cell -> stage tokens -> strided voxels)."""
    out = []
    for t, g, f, p in zip(token, stage_grid, factor, patch):
        k = min(pool, g)
        lo, hi = t * k, min((t + 1) * k, g)
        out.append(slice(lo * f, min(hi * f, p)))
    return tuple(out)


@cases("dims, scan, pooled", ALL, {(3, "stage", True), (2, "zigzag", False)})
def test_a_key_spike_shows_up_at_its_voxels(dims, scan, pooled):
    net = tiny_net(dims, scan, pooled).float()
    x = torch.randn(1, 1, *PATCH[dims])
    base = attention_maps(net, x, QUERY[dims])
    checked = 0
    for mm, (s, _, _, mix) in zip(base, mixes(net)):
        w = mm.token_weights.mean(1).reshape(mm.v_grid)
        q = np.asarray(mm.query_token) * np.asarray(mm.v_grid) // np.asarray(mm.stage_grid)
        cand = np.argwhere(w > 1e-6)  # tokens in the query's sequence(s)
        far = cand[np.argmax(np.abs(cand - q).sum(1))]
        token = tuple(int(t) for t in far)
        flat = int(np.ravel_multi_index(token, mm.v_grid))

        def spike(_m, _i, out, flat=flat):
            out = out.clone()
            out[:, flat] += 40.0
            return out

        h = mix.key.register_forward_hook(spike)
        try:
            spiked = {m.name: m for m in attention_maps(net, x, QUERY[dims], stages=[s])}[mm.name]
        finally:
            h.remove()
        block = voxel_block(token, mix.pool, mm.stage_grid, mm.factor, PATCH[dims])
        region = np.zeros(PATCH[dims], bool)
        region[block] = True
        peak = np.unravel_index(np.argmax(spiked.weights), PATCH[dims])
        assert region[peak], f"{mm.name}: peak {peak} not in {block}"
        mass = spiked.weights[region].sum()
        before = mm.weights[region].sum()
        assert mass > max(0.9 if mm.v_grid == mm.stage_grid else 0.2, before + 0.5 * (1 - before)), mm.name
        checked += 1
    assert checked == len(base)


def test_query_outside_the_patch_and_unknown_stage_are_clear_errors():
    net = tiny_net(3).float()
    x = torch.randn(1, 1, *PATCH[3])
    with pytest.raises(SSSError, match="outside the patch"):
        attention_maps(net, x, (10, 0, 0))
    with pytest.raises(SSSError, match="--stages \\[0\\]"):
        attention_maps(net, x, QUERY[3], stages=[0])
    only = attention_maps(net, x, QUERY[3], stages=[2])
    assert {m.stage for m in only} == {2}


def test_a_network_without_stage_scan_blocks_is_refused():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    net = PlainConvUNet(1, 3, [4, 8, 16], nn.Conv3d, 3, [1, 2, 2], 2, 2, [2, 2], conv_bias=True)
    with pytest.raises(SSSError, match="no Stage-Scan blocks"):
        attention_maps(net, torch.randn(1, 1, 8, 8, 8), (1, 1, 1))


def test_a_single_mix_ablation_gets_maps_for_the_mix_it_has():
    net = tiny_net(2, "stage", mixes="local").float()
    lines = []
    maps = attention_maps(net, torch.randn(1, 1, *PATCH[2]), QUERY[2], progress=lines.append)
    assert [m.mix for m in maps] == ["local"] * len(stage_blocks(net))
    assert all(line.endswith(": local attention done") for line in lines)
    assert all(m.weights.sum() == pytest.approx(1, abs=1e-5) for m in maps)


def test_maps_after_an_inference_mode_forward():
    """nnU-Net's predictor (--label) runs the network under torch.inference_mode; tensors the network caches
    there must not break the attention forward that follows."""
    net = tiny_net(3, "stage", pooled=True).float()
    x = torch.randn(1, 1, 9, 13, 11)  # a shape no other test uses: its cached scan tensors are new
    with torch.inference_mode():
        net(x)
    maps = attention_maps(net, x, (4, 6, 5))
    assert len(maps) == 2 * len(stage_blocks(net))  # a global and a local map per Stage-Scan block
    assert all(m.weights.sum() == pytest.approx(1, abs=1e-5) for m in maps)
