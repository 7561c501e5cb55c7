"""``sss-nnunet predict --onnx DIR -i IN -o OUT``: an ``sss-nnunet export`` folder inside nnU-Net's predictor.

Nothing of nnU-Net's inference is re-implemented: ``nnUNetPredictor`` (the class behind
``nnUNetv2_predict``) gets the export's plans and dataset.json and, as its network, an
``OnnxNetwork``: a torch module whose forward runs the ONNX model in onnxruntime. So the
preprocessing (cropping, resampling, normalisation), the sliding window with Gaussian weighting
and ``-step_size``, test-time mirroring over the checkpoint's allowed axes, resampling back and
the export of the segmentations (and ``--save_probabilities``) are nnU-Net's own code. The
trainer class and PyTorch checkpoint are not needed. Flags follow ``nnUNetv2_predict``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sss_nnunet.deploy import require
from sss_nnunet.deploy.export import FORMAT, MANIFEST, onnx_session
from sss_nnunet.errors import SSSError


class OnnxNetwork(nn.Module):
    """(B, C, *patch) float tensor -> (B, heads, *patch) float32 logits from onnxruntime.

    The model was exported for batch 1: a batch runs sample by sample (nnU-Net's predictor
    always sends one tile). Inputs of another spatial size are an error, not a silent resize.
    """

    def __init__(self, model_path: Path, input_shape: list[int], threads: int = 0, providers: list[str] | None = None):
        super().__init__()
        self.session = onnx_session(model_path, threads, providers)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(int(s) for s in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"the ONNX model takes (B, {', '.join(map(str, self.input_shape[1:]))}), "
                             f"got {tuple(x.shape)}")
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = [self.session.run(None, {self.input_name: arr[b:b + 1]})[0] for b in range(arr.shape[0])]
        return torch.from_numpy(np.concatenate(outs, 0)).to(x.device)


def read_manifest(folder: Path) -> dict:
    """The export's manifest, checked: format, files present; SSSError naming the file otherwise."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SSSError(f"{path}: missing (is {folder} a folder written by `sss-nnunet export`?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SSSError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SSSError(f"{path}: not an sss-nnunet ONNX manifest (format must be {FORMAT!r})")
    for name in (manifest.get("model", "model.onnx"), "plans.json", "dataset.json"):
        if not (Path(folder) / name).is_file():
            raise SSSError(f"{Path(folder) / name}: missing from the export folder")
    return manifest


def onnx_predictor(folder: Path, use_mirroring: bool = True, tile_step_size: float = 0.5, threads: int = 0,
                   providers: list[str] | None = None, verbose: bool = False, allow_tqdm: bool = True):
    """An ``nnUNetPredictor`` whose network is the export in ``folder`` (CPU tensors, onnxruntime)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    require("onnxruntime")
    folder = Path(folder)
    manifest = read_manifest(folder)
    plans = PlansManager(json.loads((folder / "plans.json").read_text()))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    configuration = plans.get_configuration(manifest["configuration"])
    if [int(s) for s in configuration.patch_size] != list(manifest["input"]["shape"][2:]):
        raise SSSError(f"{folder / MANIFEST}: input shape {manifest['input']['shape']} does not match the plans' "
                       f"patch size {list(configuration.patch_size)}")
    network = OnnxNetwork(folder / manifest["model"], manifest["input"]["shape"], threads, providers)
    predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=verbose,
                                allow_tqdm=allow_tqdm)
    axes = manifest.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(network, plans, configuration, [{}], dataset_json, manifest["trainer"],
                                    None if axes is None else tuple(axes))
    return predictor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", type=Path, required=True, help="folder written by `sss-nnunet export`")
    parser.add_argument("-i", dest="input", required=True,
                        help="input folder (nnU-Net file naming: CASE_0000.nii.gz, ...)")
    parser.add_argument("-o", dest="output", required=True, help="output folder for the segmentations")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding-window step as a fraction of the patch")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring (faster)")
    parser.add_argument("--save_probabilities", action="store_true", help="also write the class probabilities")
    parser.add_argument("--continue_prediction", action="store_true", help="skip cases already predicted")
    parser.add_argument("-npp", type=int, default=2, help="processes for preprocessing (default 2)")
    parser.add_argument("-nps", type=int, default=2, help="processes for the segmentation export (default 2)")
    parser.add_argument("-threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("-device", default="cpu", choices=("cpu", "cuda"),
                        help="onnxruntime execution provider (cuda needs onnxruntime-gpu)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--disable_progress_bar", action="store_true")


def check_arguments(args: argparse.Namespace) -> None:
    """One-line errors before any model is loaded: the input folder, its cases, -o, the numbers."""
    source, out = Path(args.input), Path(args.output)
    if not source.is_dir():
        raise SSSError(f"{args.input}: no such input folder")
    if not any(source.glob("*_0000.*")):
        raise SSSError(f"{args.input}: no input case (nnU-Net naming: CASE_0000.nii.gz, one file per channel)")
    if out.resolve() == source.resolve():
        raise SSSError(f"-o {args.output}: is the input folder; the segmentations need a folder of their own")
    if not 0 < args.step_size <= 1:
        raise SSSError(f"-step_size {args.step_size}: must be > 0 and <= 1 (a fraction of the patch)")
    for flag in ("npp", "nps"):
        if getattr(args, flag) < 1:
            raise SSSError(f"-{flag} {getattr(args, flag)}: must be at least 1")
    if args.threads < 0:
        raise SSSError(f"-threads {args.threads}: must be 0 (onnxruntime's default) or more")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    providers = ["CPUExecutionProvider"]
    if args.device == "cuda":
        available = require("onnxruntime").get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise SSSError(f"-device cuda: onnxruntime has no CUDAExecutionProvider (available: {available}); "
                           "install onnxruntime-gpu")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    predictor = onnx_predictor(args.onnx, not args.disable_tta, args.step_size, args.threads, providers,
                               args.verbose, not args.disable_progress_bar)
    predictor.predict_from_files(str(args.input), str(args.output), save_probabilities=args.save_probabilities,
                                 overwrite=not args.continue_prediction, num_processes_preprocessing=args.npp,
                                 num_processes_segmentation_export=args.nps)
    return 0
