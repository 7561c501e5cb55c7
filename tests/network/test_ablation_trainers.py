"""Every ablation trainer builds its network from nnU-Net plans and trains one tiny epoch in-process.

The epoch is nnU-Net's own loop body (``on_train_epoch_start``, ``train_step`` with deep-supervision
targets and its loss, ``on_train_epoch_end``) on synthetic batches, so no dataset is preprocessed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sss_nnunet.network import RWKVSSS
from sss_nnunet.network.block import StageScanBlock
from sss_nnunet.trainers import ABLATION_TRAINERS, SSSTrainer, SSSTrainer_demo, SSSTrainer_VRWKV

PATCH = [16, 32, 32]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]


@pytest.fixture
def ablation_trainer(nnunet_plans, make_trainer, ds_batch):
    """``ablation_trainer(cls)``: a 4-stage 3D trainer (16 x 32 x 32 patch, 2 iterations per epoch) on the CPU;
    ``.tiny_epoch()`` runs nnU-Net's epoch body on synthetic batches and returns the losses."""
    conf = nnunet_plans.configuration(3, PATCH, STRIDES, [8, 16, 32, 32], [[1, 3, 3]] + [[3, 3, 3]] * 3,
                                      spacing=[2.0, 1.0, 1.0])
    p = nnunet_plans.plans("Dataset998_Ablation", {"3d_fullres": conf}, spacing=[2.0, 1, 1], shape=PATCH)

    def make(cls):
        trainer = make_trainer(cls, p, labels={"background": 0, "a": 1, "b": 2})
        trainer.num_iterations_per_epoch = 2

        def tiny_epoch() -> list[float]:
            generator = torch.Generator().manual_seed(0)
            trainer.on_train_epoch_start()
            outputs = [trainer.train_step(ds_batch(PATCH, STRIDES, generator))
                       for _ in range(trainer.num_iterations_per_epoch)]
            trainer.on_train_epoch_end(outputs)
            return [float(o["loss"]) for o in outputs]

        trainer.tiny_epoch = tiny_epoch
        return trainer

    return make


def _config_value(net: RWKVSSS, key: str):
    """The network's value of an override: its config entry; ``pooled_wkv`` shows as the per-stage pooling."""
    if key == "pooled_wkv":
        return set(net.config["wkv_pool"]) != {1}
    assert key in net.config, f"override {key!r} is not recorded in RWKVSSS.config"
    return net.config[key]


def test_every_ablation_switch_has_a_trainer():
    names = {t.__name__ for t in ABLATION_TRAINERS}
    for name in ("SSSTrainer_globalOnly", "SSSTrainer_localOnly", "SSSTrainer_scanWeightsUniform",
                 "SSSTrainer_scanWeightsStatic", "SSSTrainer_firstRWKV1", "SSSTrainer_VRWKV", "SSSTrainer_scanRaster",
                 "SSSTrainer_scanZigzag", "SSSTrainer_shiftNone", "SSSTrainer_shiftQShift4", "SSSTrainer_noPooledWKV",
                 "SSSTrainer_transposedUp", "SSSTrainer_posEmbed", "SSSTrainer_skipConcat", "SSSTrainer_bothMixes"):
        assert name in names
    assert not any("__" in n for n in names)


@pytest.mark.parametrize("cls", ABLATION_TRAINERS + [SSSTrainer_demo], ids=lambda c: c.__name__)
def test_trainer_builds_from_plans_and_trains_one_tiny_epoch(cls, ablation_trainer):
    torch.manual_seed(0)
    trainer = ablation_trainer(cls)
    trainer.initialize()
    net = trainer.network
    assert isinstance(net, RWKVSSS)
    for key, value in cls.network_overrides.items():
        config = _config_value(net, key)
        # a per-stage list holds the value at the stages it applies to (0 at the others), at least one
        assert config == value or (isinstance(config, list) and value in config
                                   and all(v in (value, 0) for v in config)), key
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = trainer.tiny_epoch()
    assert all(np.isfinite(losses))
    assert trainer.logger.get_value("train_losses", step=0) == pytest.approx(np.mean(losses))
    changed = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(changed) > 0.5 * len(before)


def test_vision_rwkv_baseline_is_a_plain_global_raster_network(ablation_trainer):
    trainer = ablation_trainer(SSSTrainer_VRWKV)
    trainer.initialize()
    net = trainer.network
    blocks = [m for m in net.modules() if isinstance(m, StageScanBlock)]  # checkpointed ones too
    assert blocks and all(b.local_mix is None and b.gate is None for b in blocks)
    assert all(b.global_mix.orders == [(0, 1, 2)] and not b.global_mix.snake for b in blocks)
    assert all(b.partition(PATCH)[1].n_windows == 1 for b in blocks)  # one window: a plain raster scan
    assert not any(type(m).__name__ == "DySample" for m in net.modules())
    assert set(net.config["wkv_pool"]) == {1}
    default = ablation_trainer(SSSTrainer)
    default.initialize()
    assert sum(p.numel() for p in default.network.parameters()) != sum(p.numel() for p in net.parameters())
