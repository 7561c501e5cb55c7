"""The paper's window schedule on the topologies nnU-Net plans for Synapse-, ACDC- and BraTS-sized inputs."""

from __future__ import annotations

import math

import pytest
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from torch import nn

from sss_nnunet.network import RWKVSSS
from sss_nnunet.network.windows import stage_windows

# (name, spacing (z, y, x) mm or (y, x), patch) as nnU-Net's planner sees typical cases of each set
CASES = [
    ("Synapse-3d", (3.0, 0.76, 0.76), (64, 128, 128)),
    ("ACDC-3d", (5.0, 1.56, 1.56), (20, 256, 224)),
    ("BraTS-3d", (1.0, 1.0, 1.0), (128, 128, 128)),
    ("Synapse-2d", (0.76, 0.76), (512, 512)),
    ("ACDC-2d", (1.56, 1.56), (256, 224)),
    ("BraTS-2d", (1.0, 1.0), (192, 160)),
]


def planned_stages(spacing, patch):
    """(network, [(stage index, block, map size at that stage)]) for nnU-Net's planned topology."""
    _, pool, kernels, patch, _ = get_pool_and_conv_props(spacing, patch, 4, 999999)
    strides = [list(p) for p in pool]  # the first entry is stage 0 (all 1)
    n = len(strides)
    conv = nn.Conv3d if len(patch) == 3 else nn.Conv2d
    net = RWKVSSS(1, 3, n, [min(32 * 2 ** s, 320) for s in range(n)], conv, kernels, strides)
    size, out = list(patch), []
    for s, stage in enumerate(net.encoder):
        size = [math.ceil(a / b) for a, b in zip(size, strides[s])]
        out += [(s, m, tuple(size)) for m in stage if type(m).__name__ == "StageScanBlock"]
    return net, out


@pytest.mark.parametrize(("name", "spacing", "patch"), CASES, ids=[c[0] for c in CASES])
def test_global_windows_fall_stage_by_stage_and_local_windows_are_finer(name, spacing, patch):
    net, blocks = planned_stages(spacing, patch)
    per_stage = {}
    for s, block, size in blocks:
        pooled, glob, local, _ = block.partition(size)
        assert local.n_windows > glob.n_windows, (name, s, glob, local)  # finer at every stage
        assert all(lz <= gz for lz, gz in zip(local.sizes, glob.sizes))
        assert local.window_volume <= block.local_tokens or max(local.sizes) == 1
        per_stage[s] = (pooled, glob, local)
    stages = sorted(per_stage)
    assert len(stages) >= 2, name
    counts = [per_stage[s][1].n_windows for s in stages]
    assert counts[-1] == 1, (name, counts)  # the deepest stage is one window
    assert all(a > b for a, b in zip(counts, counts[1:])), (name, counts)  # strictly falling
    partitions = [(g.counts, g.sizes, lo.counts, lo.sizes) for _, g, lo in per_stage.values()]
    assert len(set(partitions)) == len(partitions), name  # no two RWKV stages share a partition
    # local windows keep a constant token count wherever the map holds two such windows
    for pooled, glob, local in per_stage.values():
        if math.prod(pooled) >= 2 * 64 and glob.window_volume > 64:
            assert 32 < local.window_volume <= 64, (name, pooled, local)


def test_schedule_on_the_benchmark_layout():
    """64 x 128 x 128, strides (1,1,1), (1,2,2), (2,2,2) x 4: pooled RWKV maps 16^3, 16^3, 8^3, 4^3."""
    sizes = [((16,) * 3, 3), ((16,) * 3, 2), ((8,) * 3, 1), ((4,) * 3, 0)]
    grids = [stage_windows(s, g, 64) for s, g in sizes]
    assert [g.n_windows for g, _ in grids] == [8, 4, 2, 1]
    assert [lo.sizes for _, lo in grids] == [(4, 4, 4), (4, 4, 4), (4, 4, 4), (2, 4, 4)]
    assert [lo.n_windows for _, lo in grids] == [64, 64, 8, 2]


def test_legacy_window_counts_still_build_the_old_partition():
    net = RWKVSSS(1, 2, 3, [4, 8, 16], nn.Conv3d, 3, [1, 2, 2], first_rwkv_stage=1, global_windows=[0, 3, 2],
                  local_windows=[0, 3, 2])
    block = next(m for m in net.modules() if type(m).__name__ == "StageScanBlock")
    _, glob, local, _ = block.partition((6, 8, 8))
    assert block.global_windows == 3 and local.n_windows > glob.n_windows
    with pytest.raises(ValueError, match="together"):
        RWKVSSS(1, 2, 3, [4, 8, 16], nn.Conv3d, 3, [1, 2, 2], global_windows=1)
