"""Every ablation trainer builds its network from nnU-Net plans and trains one tiny epoch in-process.

The epoch is nnU-Net's own loop body (``on_train_epoch_start``, ``train_step`` with deep-supervision
targets and its loss, ``on_train_epoch_end``) on synthetic batches, so no dataset is preprocessed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sss_nnunet.network import RWKVSSS
from sss_nnunet.trainers import ABLATION_TRAINERS, SSSTrainer, SSSTrainer_demo, SSSTrainer_VRWKV

PATCH = [16, 32, 32]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]


def _plans() -> dict:
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 4, "features_per_stage": [8, 16, 32, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[1, 3, 3]] + [[3, 3, 3]] * 3, "strides": STRIDES, "n_conv_per_stage": [2] * 4,
            "n_conv_per_stage_decoder": [2] * 3, "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    config = {
        "data_identifier": "nnUNetPlans_3d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": PATCH, "median_image_size_in_voxels": PATCH, "spacing": [2.0, 1.0, 1.0],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
        "batch_dice": False, "architecture": arch,
    }
    return {
        "dataset_name": "Dataset998_Ablation", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp":
        [2.0, 1, 1], "original_median_shape_after_transp": PATCH, "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
        "configurations": {"3d_fullres": config},
    }


def _trainer(cls, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    data = tmp_path / "Dataset998_Ablation" / "nnUNetPlans_3d"
    data.mkdir(parents=True, exist_ok=True)
    (data / "case.b2nd").touch()  # initialize() infers the dataset format from file endings only
    plans = copy.deepcopy(_plans())
    plans["continue_training"] = False
    dataset_json = {"labels": {"background": 0, "a": 1, "b": 2}, "channel_names": {"0": "CT"}, "numTraining": 2,
                    "file_ending": ".nii.gz"}
    trainer = cls(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    trainer.num_iterations_per_epoch = 2
    return trainer


def _batch(generator: torch.Generator) -> dict:
    label = torch.zeros(2, 1, *PATCH)
    label[:, :, 4:12, 8:24, 8:20] = 1
    label[:, :, 2:6, 20:28, 22:30] = 2
    data = label * 2 + 0.3 * torch.randn(label.shape, generator=generator)
    targets, scale = [], [1, 1, 1]
    for stride in STRIDES[1:]:
        targets.append(label[(..., *(slice(None, None, f) for f in scale))])
        scale = [a * b for a, b in zip(scale, stride)]
    return {"data": data, "target": targets}


def _tiny_epoch(trainer) -> list[float]:
    generator = torch.Generator().manual_seed(0)
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(_batch(generator)) for _ in range(trainer.num_iterations_per_epoch)]
    trainer.on_train_epoch_end(outputs)
    return [float(o["loss"]) for o in outputs]


def test_every_ablation_switch_has_a_trainer():
    names = {t.__name__ for t in ABLATION_TRAINERS}
    for name in ("SSSTrainer_globalOnly", "SSSTrainer_localOnly", "SSSTrainer_scanWeightsUniform",
                 "SSSTrainer_scanWeightsStatic", "SSSTrainer_firstRWKV1", "SSSTrainer_VRWKV", "SSSTrainer_scanRaster",
                 "SSSTrainer_scanZigzag", "SSSTrainer_shiftNone", "SSSTrainer_shiftQShift4", "SSSTrainer_noPooledWKV",
                 "SSSTrainer_transposedUp", "SSSTrainer_posEmbed", "SSSTrainer_skipConcat", "SSSTrainer_bothMixes"):
        assert name in names
    assert not any("__" in n for n in names)


@pytest.mark.parametrize("cls", ABLATION_TRAINERS + [SSSTrainer_demo], ids=lambda c: c.__name__)
def test_trainer_builds_from_plans_and_trains_one_tiny_epoch(cls, tmp_path, monkeypatch):
    torch.manual_seed(0)
    trainer = _trainer(cls, tmp_path, monkeypatch)
    trainer.initialize()
    net = trainer.network
    assert isinstance(net, RWKVSSS)
    for key, value in cls.network_overrides.items():
        config = net.config.get(key, value)
        assert config == value or (isinstance(config, list) and all(v in (value, 0) for v in config)), key
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = _tiny_epoch(trainer)
    assert all(np.isfinite(losses))
    assert trainer.logger.get_value("train_losses", step=0) == pytest.approx(np.mean(losses))
    changed = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(changed) > 0.5 * len(before)


def test_vision_rwkv_baseline_is_a_plain_global_raster_network(tmp_path, monkeypatch):
    trainer = _trainer(SSSTrainer_VRWKV, tmp_path, monkeypatch)
    trainer.initialize()
    net = trainer.network
    blocks = [m for m in net.modules() if type(m).__name__ == "StageScanBlock"]
    assert blocks and all(b.local_mix is None and b.gate is None for b in blocks)
    assert all(b.global_mix.orders == [(0, 1, 2)] and not b.global_mix.snake for b in blocks)
    assert all(b.partition(PATCH)[1].n_windows == 1 for b in blocks)  # one window: a plain raster scan
    assert not any(type(m).__name__ == "DySample" for m in net.modules())
    assert set(net.config["wkv_pool"]) == {1}
    default = _trainer(SSSTrainer, tmp_path, monkeypatch)
    default.initialize()
    assert sum(p.numel() for p in default.network.parameters()) != sum(p.numel() for p in net.parameters())
