"""Full-volume inference time on this CPU: ``nnUNetv2_predict`` with SSSTrainer and nnUNetTrainer, same plans.

    python benchmarks/bench_predict.py [--shape 128 256 256] [--patch 64 128 128] [--tta both|on|off]
                                       [--trainers SSSTrainer nnUNetTrainer] [--onnx] [--floor]
                                       [--repeats N] [--workdir DIR]

Builds a throw-away nnU-Net workspace: one CT-like volume (``--shape`` voxels, 1 mm spacing, so
preprocessing does not resample), a plans file whose 3d_fullres configuration is the paper's
topology (patch ``--patch``, 6 stages, strides (1,1,1), (1,2,2), (2,2,2) x4, features 32..320,
PlainConvUNet as nnU-Net plans it; SSSTrainer builds RWKV-SSS from the same plans) and, per
trainer, a results folder whose fold 0 checkpoint holds UNTRAINED weights (the network as the
trainer builds it, seeded): inference time does not depend on the weights. Then it times the
stock console script, wall clock of the whole command (start-up, preprocessing, sliding window
with Gaussian weighting, resampling back, writing the segmentation), with and without test-time
mirroring (``--disable_tta``). With ``--onnx`` every model is also exported
(``sss-nnunet export``) and timed with ``sss-nnunet predict --onnx`` (onnxruntime, CPU).
Runs of the trainers are interleaved per setting. Prints each time and the ratio to
nnUNetTrainer's PyTorch time of the same setting. ``--floor`` also times a trainer whose network is
one 1x1x1 conv (written to a temporary folder on ``nnUNet_extTrainer``): the command's time outside
the network (start-up, preprocessing, the sliding window's bookkeeping and Gaussian weighting,
export), and prints each trainer's network share (its time minus the floor) and the ratio of shares.
``--repeats N``: each command N times (interleaved rounds), the fastest counts. Threads:
``--threads`` (default 2) for PyTorch (``nnUNet_def_n_proc``/``OMP_NUM_THREADS``) and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATASET = 999
NAME = f"Dataset{DATASET:03d}_BenchCT"
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
FEATURES = [32, 64, 128, 256, 320, 320]
BIN = Path(sys.executable).parent


def plans(patch: list[int], shape: list[int]) -> dict:
    """nnU-Net plans with one 3d_fullres configuration: PlainConvUNet on the paper's topology."""
    n = len(STRIDES)
    arch = {"n_stages": n, "features_per_stage": FEATURES, "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * n, "strides": STRIDES, "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}}
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": patch, "median_image_size_in_voxels": shape, "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": arch, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": False,
    }
    return {"dataset_name": NAME, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1.0] * 3,
            "original_median_shape_after_transp": shape, "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": config},
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {
                "max": 400.0, "mean": 100.0, "median": 100.0, "min": -200.0, "percentile_00_5": -100.0,
                "percentile_99_5": 300.0, "std": 50.0}}}


def dataset_json(classes: int) -> dict:
    labels = {"background": 0, **{f"organ{c}": c for c in range(1, classes)}}
    return {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 0, "file_ending": ".nii.gz", "name": NAME}


def write_volume(path: Path, shape: list[int], seed: int = 0) -> None:
    """A CT-like volume: air, a body ellipsoid of soft tissue with brighter blobs, noise (int16 HU)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, s, dtype=np.float32) for s in shape), indexing="ij")
    body = (y / 0.7) ** 2 + (x / 0.9) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0).astype(np.float32)
    for _ in range(6):
        c, r = rng.uniform(-0.5, 0.5, 3), rng.uniform(0.1, 0.25)
        hu[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r**2] = rng.uniform(80, 200)
    hu += rng.normal(0, 15, shape).astype(np.float32)
    img = sitk.GetImageFromArray(hu.astype(np.int16))
    img.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(img, str(path))


def write_untrained_model(results: Path, trainer: str, plans_dict: dict, ds: dict, seed: int = 0) -> None:
    """results/NAME/TRAINER__nnUNetPlans__3d_fullres with fold_0/checkpoint_final.pth of untrained weights."""
    import torch
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cls = recursive_find_trainer_class_by_name(trainer)  # as nnUNetv2_predict finds it
    pm = PlansManager(plans_dict)
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(seed)
    net = cls.build_network_architecture(pm, cm, 1, len(ds["labels"]), enable_deep_supervision=False)
    folder = results / NAME / f"{trainer}__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans_dict, indent=2))
    (folder / "dataset.json").write_text(json.dumps(ds, indent=2))
    torch.save({"network_weights": net.state_dict(), "trainer_name": trainer,
                "init_args": {"configuration": "3d_fullres", "fold": 0}, "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")


FLOOR = "BenchFloorTrainer"
FLOOR_SOURCE = f'''"""bench_predict's floor: nnUNetv2_predict with a network of one 1x1x1 conv."""
import torch.nn as nn
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class {FLOOR}(nnUNetTrainer):
    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        return nn.Conv3d(num_input_channels, num_output_channels, 1)
'''


def add_floor_trainer(folder: Path, env: dict) -> None:
    """Write the floor trainer's module into ``folder`` and put it on nnUNet_extTrainer (``env`` and ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_floor_trainer.py").write_text(FLOOR_SOURCE)
    paths = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p] + [str(folder)]
    env["nnUNet_extTrainer"] = os.environ["nnUNet_extTrainer"] = os.pathsep.join(paths)


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[128, 256, 256], help="volume (D, H, W) voxels")
    p.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--classes", type=int, default=14, help="output channels incl. background (Synapse: 14)")
    p.add_argument("--trainers", nargs="+", default=["SSSTrainer", "nnUNetTrainer"])
    p.add_argument("--tta", choices=("both", "on", "off"), default="both", help="test-time mirroring settings")
    p.add_argument("--onnx", action="store_true", help="also export each model and time sss-nnunet predict --onnx")
    p.add_argument("--floor", action="store_true",
                   help="also time a one-conv network: the time outside the network, and each network's share")
    p.add_argument("--repeats", type=int, default=1, help="runs of each command (interleaved); the fastest counts")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        root = args.workdir or Path(tmp)
        env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
               "nnUNet_results": str(root / "results"), "nnUNet_def_n_proc": str(args.threads),
               "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
        os.environ.update({k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        images = root / "images"
        images.mkdir(parents=True, exist_ok=True)
        write_volume(images / "ct_000_0000.nii.gz", args.shape)
        pl, ds = plans(args.patch, args.shape), dataset_json(args.classes)
        (root / "raw" / NAME).mkdir(parents=True, exist_ok=True)
        (root / "raw" / NAME / "dataset.json").write_text(json.dumps(ds))
        trainers = list(args.trainers)
        if args.floor:
            add_floor_trainer(root / "floor_trainer", env)
            trainers.append(FLOOR)
        for trainer in trainers:
            write_untrained_model(root / "results", trainer, pl, ds)
            exported = (root / f"onnx_{trainer}" / "manifest.json").is_file()  # kept in --workdir
            if args.onnx and trainer != FLOOR and not exported:
                timed([str(BIN / "sss-nnunet"), "export", "-d", str(DATASET), "-c", "3d_fullres", "-f", "0", "-tr",
                       trainer, "--out", str(root / f"onnx_{trainer}")], env)
        settings = {"both": [True, False], "on": [True], "off": [False]}[args.tta]
        shape, patch = ("x".join(map(str, v)) for v in (args.shape, args.patch))
        print(f"nnUNetv2_predict of one {shape} volume, patch {patch}, {args.classes} classes, "
              f"{args.threads} threads, UNTRAINED weights (time does not depend on them)")
        rows = []
        for tta in settings:
            flags, label = ([], "mirroring") if tta else (["--disable_tta"], "no mirroring")
            times: dict[tuple[str, str], float] = {}
            for trainer in [t for _ in range(max(1, args.repeats)) for t in trainers]:
                cmd = [str(BIN / "nnUNetv2_predict"), "-i", str(images), "-o", str(root / "out"), "-d", str(DATASET),
                       "-c", "3d_fullres", "-tr", trainer, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
                       "--disable_progress_bar", *flags]
                t = timed(cmd, env)
                times[(trainer, "PyTorch")] = min(t, times.get((trainer, "PyTorch"), t))
                if args.onnx and trainer != FLOOR:
                    cmd = [str(BIN / "sss-nnunet"), "predict", "--onnx", str(root / f"onnx_{trainer}"), "-i",
                           str(images), "-o", str(root / "out_onnx"), "-npp", "1", "-nps", "1",
                           "-threads", str(args.threads), "--disable_progress_bar", *flags]
                    t = timed(cmd, env)
                    times[(trainer, "onnxruntime")] = min(t, times.get((trainer, "onnxruntime"), t))
            base = times.get(("nnUNetTrainer", "PyTorch"))
            for (trainer, runtime), t in times.items():
                ratio = f"{t / base:.2f}x" if base else "-"
                rows.append(f"{label:13s} {trainer:17s} {runtime:12s} {t:8.1f} s  "
                            f"{ratio} nnUNetTrainer/PyTorch")
                print(rows[-1], flush=True)
            floor = times.get((FLOOR, "PyTorch"))
            if floor is not None:
                shares = {t: times[(t, "PyTorch")] - floor for t in args.trainers}
                base_share = shares.get("nnUNetTrainer")
                for trainer, share in shares.items():
                    ratio = f"{share / base_share:.2f}x" if base_share and base_share > 0 else "-"
                    print(f"{label:13s} {trainer:17s} network share "
                          f"{share:8.1f} s  {ratio} nnUNetTrainer's (time minus the one-conv floor, {floor:.1f} s)",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
