"""The ablation ladder: one network switch per rung, the last rung + DySample is SSSTrainer's network."""

from __future__ import annotations

import torch
from torch import nn

from sss_nnunet.network import RWKVSSS
from sss_nnunet.trainers import LADDER, SSSTrainer, SSSTrainer_L0, SSSTrainer_VRWKV

TOPOLOGY = dict(input_channels=1, num_classes=2, n_stages=4, features_per_stage=[4, 8, 16, 16], conv_op=nn.Conv3d,
                kernel_sizes=3, strides=[1, 2, 2, 2])
# the one switch each rung adds, in ladder order (L1 .. L6, then SSSTrainer = L6 + DySample)
SWITCHES = ["scan", "global_splits", "mixes", "shift", "scan_weights", "wkv_pool", "upsampler"]


def config(trainer) -> dict:
    return RWKVSSS(**TOPOLOGY, **trainer.network_overrides).config


def test_rung_names_and_order():
    assert [t.__name__ for t in LADDER] == [f"SSSTrainer_L{i}" for i in range(7)] + ["SSSTrainer"]


def test_each_rung_differs_from_the_previous_by_exactly_one_switch():
    configs = [config(t) for t in LADDER]
    for i, (before, after) in enumerate(zip(configs, configs[1:])):
        changed = sorted(k for k in after if after[k] != before[k])
        assert changed == [SWITCHES[i]], (LADDER[i + 1].__name__, changed)
        # and the trainer declares exactly one override less than its parent
        assert len(LADDER[i].network_overrides) - len(LADDER[i + 1].network_overrides) == 1
        doc = LADDER[i + 1].__doc__ or ""  # each rung's docstring names its switch
        assert (SWITCHES[i] if SWITCHES[i] != "wkv_pool" else "pooled_wkv") in doc, LADDER[i + 1].__name__


def test_last_rung_plus_dysample_is_the_default_network():
    last = dict(LADDER[-2].network_overrides)
    assert last == {"upsampler": "transposed"}
    last["upsampler"] = "dysample"
    assert RWKVSSS(**TOPOLOGY, **last).config == RWKVSSS(**TOPOLOGY).config == config(SSSTrainer)
    a, b = RWKVSSS(**TOPOLOGY, **last), RWKVSSS(**TOPOLOGY)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


def test_rung0_is_plain_vision_rwkv_with_a_shift_over_every_axis():
    net = RWKVSSS(**TOPOLOGY, **SSSTrainer_L0.network_overrides)
    blocks = [m for m in net.modules() if type(m).__name__ == "StageScanBlock"]
    assert blocks and all(b.local_mix is None and b.gate is None and b.pool == 1 for b in blocks)
    for b in blocks:
        _, glob, _, _ = b.partition((8, 8, 8))
        assert glob.n_windows == 1  # one raster sequence over the whole map
        dw = b.shift_weights((8, 8, 8), None, torch.device("cpu"))
        per_direction = dw.sum(-1)[0]  # channels per direction +D, -D, +H, -H, +W, -W
        assert (per_direction > 0).all(), per_direction  # the D axis is shifted too
        torch.testing.assert_close(per_direction[0::2].sum() / per_direction.sum(), torch.tensor(0.5))
    assert SSSTrainer_VRWKV.network_overrides == SSSTrainer_L0.network_overrides
