"""A trained-model folder exactly as nnU-Net writes it (plans.json, dataset.json, fold_0/checkpoint_final.pth),
built in-process in a second: hand-written plans in nnU-Net's format, the trainer's own network with fresh
weights, and test images with an oblique, anisotropic geometry and a zero border (cropped by nnU-Net)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

DATASET = "Dataset991_AttnTiny"
LABELS = {"background": 0, "organ": 1, "lesion": 2}


def _configuration(dims: int, spacing: list[float], patch: list[int]) -> dict:
    conv = f"torch.nn.modules.conv.Conv{dims}d"
    norm = f"torch.nn.modules.instancenorm.InstanceNorm{dims}d"
    resampling = dict(is_seg=False, order=1, order_z=0, force_separate_z=None)
    return {
        "data_identifier": f"nnUNetPlans_{dims}d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": patch, "median_image_size_in_voxels": patch, "spacing": spacing,
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": dict(resampling, is_seg=True),
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": resampling,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 4, "features_per_stage": [8, 16, 32, 32], "conv_op": conv,
                "kernel_sizes": [[3] * dims] * 4, "strides": [[1] * dims] + [[2] * dims] * 3,
                "n_conv_per_stage": [1] * 4, "n_conv_per_stage_decoder": [1] * 3, "conv_bias": True,
                "norm_op": norm, "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": True,
    }


def plans(transpose: list[int]) -> dict:
    """3d_fullres at (2.0, 1.0, 1.0) mm with a 16 x 32 x 32 patch, 2d at (1.0, 1.0) mm with 32 x 32 (the
    spacings in transposed order)."""
    back = [int(i) for i in np.argsort(transpose)]
    return {
        "dataset_name": DATASET, "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.0, 1.0, 1.0], "original_median_shape_after_transp": [16, 32, 32],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": transpose, "transpose_backward": back,
        "configurations": {"3d_fullres": _configuration(3, [2.0, 1.0, 1.0], [16, 32, 32]),
                           "2d": _configuration(2, [1.0, 1.0], [32, 32])},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"max": 1.0, "mean": 0.0, "median": 0.0, "min": 0.0,
                                                              "percentile_00_5": 0.0, "percentile_99_5": 1.0,
                                                              "std": 1.0}},
    }


def write_model(results: Path, trainer: str = "SSSTrainer_tiny", configuration: str = "3d_fullres",
                transpose: tuple[int, ...] = (0, 1, 2), seed: int = 0) -> Path:
    """results/DATASET/TRAINER__nnUNetPlans__CONFIG with fold_0/checkpoint_final.pth; returns the folder."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    p = plans(list(transpose))
    folder = results / DATASET / f"{trainer}__nnUNetPlans__{configuration}"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(p, indent=2))
    dataset_json = {"channel_names": {"0": "MR"}, "labels": LABELS, "numTraining": 2, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    pm = PlansManager(p)
    cm = pm.get_configuration(configuration)
    if trainer.startswith("SSS"):
        from sss_nnunet.trainers import SSSTrainer_tiny as cls
    else:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as cls
    torch.manual_seed(seed)
    net = cls.build_network_architecture(pm, cm, 1, 3, enable_deep_supervision=True)
    with torch.no_grad():  # trained-looking: the output projections start at zero
        for name, w in net.named_parameters():
            if name.endswith("output.weight"):
                w.normal_(0, 0.2)
    torch.save({"network_weights": net.state_dict(), "trainer_name": trainer,
                "init_args": {"plans": p, "configuration": configuration, "fold": 0, "dataset_json": dataset_json},
                "inference_allowed_mirroring_axes": None, "current_epoch": 1},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def write_image(path: Path, shape_zyx: tuple[int, int, int] = (16, 30, 44), seed: int = 0) -> sitk.Image:
    """A CT-like case (Z, Y, X) with a zero border (nnU-Net crops it), oblique direction, anisotropic spacing
    unlike the plans' (so preprocessing resamples), a bright blob (label 1 for the model's prediction)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(100, 10, shape_zyx).astype(np.float32)
    a[:2] = 0
    a[:, :, -5:] = 0
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape_zyx), indexing="ij")
    a[((z - 7) / 3) ** 2 + ((y - 15) / 6) ** 2 + ((x - 14) / 6) ** 2 < 1] += 300
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.9, 1.2, 2.5))
    img.SetOrigin((-12.0, 30.5, 4.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return img


def attention(*args) -> int:
    """``sss-nnunet attention -d 991 -c 3d_fullres -f 0 -device cpu ARGS`` in this process; the exit code."""
    from sss_nnunet.cli import main

    return main(["attention", "-d", "991", "-c", "3d_fullres", "-f", "0", "-device", "cpu", *map(str, args)])
