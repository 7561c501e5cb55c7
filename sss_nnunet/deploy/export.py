"""``sss-nnunet export``: a trained nnU-Net model folder -> ONNX + plans + dataset.json + manifest.

The network is rebuilt exactly as ``nnUNetv2_predict`` does (``nnUNetPredictor``: the trainer's
``build_network_architecture`` on the plans, deep supervision off, the fold's checkpoint) and
traced by ``torch.onnx.export`` (the torch.export-based exporter) for ONE input shape:
(1, input channels, *patch size) float32, the tile nnU-Net's sliding window feeds it. While
the exporter traces, ``bi_wkv`` runs its ``onnx`` backend (``kernels/wkv/log_scan.py``), so
the graph holds only standard ONNX operators (checked: every node in the default domain).

Before the folder appears, the export is checked: onnxruntime's output on a random input must
equal PyTorch's logits to ``TOLERANCE`` (max abs); the measured difference goes into the manifest.
Output folder (written under a temporary name, renamed when complete)::

    DIR/model.onnx  DIR/plans.json  DIR/dataset.json  DIR/manifest.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sss_nnunet.deploy import require
from sss_nnunet.errors import SSSError
from sss_nnunet.io import atomic_directory, atomic_write_json

FORMAT = "sss-nnunet-onnx"
MODEL, MANIFEST = "model.onnx", "manifest.json"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
DEFAULT_OPSET = 20  # GridSample on 5D inputs (DySample in 3D) is standard from opset 20
TOLERANCE = 1e-3  # max abs difference of the logits, onnxruntime vs PyTorch


def model_folder(dataset: str, trainer: str, plans: str, configuration: str) -> Path:
    """``$nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIG`` for a dataset id or name."""
    results = os.environ.get("nnUNet_results")
    if not results:
        raise SSSError("nnUNet_results is not set: it must point to the folder holding the trained models")
    root = Path(results)
    if dataset.isdigit():
        found = sorted(root.glob(f"Dataset{int(dataset):03d}_*"))
        if not found:
            raise SSSError(f"{root}: no trained dataset with id {dataset} (no Dataset{int(dataset):03d}_* folder)")
        if len(found) > 1:
            raise SSSError(f"{root}: several datasets with id {dataset} ({', '.join(f.name for f in found)}): "
                           f"give -d the full name")
        name = found[0].name
    else:
        name = dataset
    folder = root / name / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        raise SSSError(f"{folder}: no such model folder (check -d, -tr, -p and -c)")
    return folder


def load_predictor(folder: Path, fold: str, checkpoint: str):
    """nnUNetPredictor (CPU) initialised from ``folder/fold_F/checkpoint`` as nnUNetv2_predict does."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    ckpt = folder / f"fold_{fold}" / checkpoint
    for path in (ckpt, folder / "plans.json", folder / "dataset.json"):
        if not path.is_file():
            raise SSSError(f"{path}: missing (is fold {fold} of this model trained? see --checkpoint)")
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (fold if fold == "all" else int(fold),), checkpoint)
    if predictor.configuration_manager.previous_stage_name is not None:
        raise SSSError(f"{folder}: cascade configurations (input includes the previous stage's segmentation) "
                       "cannot be exported")
    return predictor


def non_standard_nodes(model) -> list[str]:
    """``domain::op`` of every node outside the default ONNX domain (graph, subgraphs, functions)."""
    bad = []

    def visit(nodes):
        for n in nodes:
            if n.domain not in ("", "ai.onnx"):
                bad.append(f"{n.domain}::{n.op_type}")
            for attr in n.attribute:
                if attr.HasField("g"):
                    visit(attr.g.node)
                for g in attr.graphs:
                    visit(g.node)
    visit(model.graph.node)
    for f in model.functions:
        visit(f.node)
    return bad


def onnx_session(path: Path, threads: int = 0, providers: list[str] | None = None):
    """onnxruntime InferenceSession on ``path`` (``threads`` 0: onnxruntime's default)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


@contextlib.contextmanager
def _restored_tensor_cache() -> Iterator[None]:
    """The network caches index tensors per shape (``windows.DEVICE_CACHE``). Entries first built
    while the exporter traces are fake tensors: drop them afterwards, or every later eager
    forward in this process would return a tensor subclass."""
    from sss_nnunet.network.windows import DEVICE_CACHE

    saved = dict(DEVICE_CACHE)
    try:
        yield
    finally:
        DEVICE_CACHE.clear()
        DEVICE_CACHE.update(saved)


def export_network(network, example, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Trace ``network`` (eval mode, float32) on ``example`` (1, C, *patch) into ``path`` (one file)."""
    import torch

    from sss_nnunet.kernels import onnx_export_mode

    onnx = require("onnx")
    require("onnxscript")
    network.eval()
    with torch.no_grad(), _restored_tensor_cache(), onnx_export_mode():
        torch.onnx.export(network, (example,), str(path), dynamo=True, opset_version=opset, external_data=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    bad = non_standard_nodes(model)
    if bad:
        raise RuntimeError(f"{path}: the export holds non-standard ONNX operators: {sorted(set(bad))}")


def max_abs_difference(network, path: Path, example) -> float:
    """max |onnxruntime(example) - network(example)| (logits)."""
    import torch

    with torch.no_grad():
        ref = network(example).float().numpy()
    sess = onnx_session(path)
    out = sess.run(None, {sess.get_inputs()[0].name: example.numpy()})[0]
    if out.shape != ref.shape:
        raise RuntimeError(f"{path}: onnxruntime output {out.shape} != PyTorch {ref.shape}")
    return float(np.abs(out - ref).max())


EXPORT_FILES = {MODEL, MANIFEST, "plans.json", "dataset.json"}


def output_rules(folder: Path, overwrite: bool) -> dict:
    """What ``--out`` may be (``sss_nnunet.io.check_output_dir``): never the model folder or a folder
    above it, and ``--overwrite`` replaces only an export (one this command wrote, or an older export
    holding nothing but the export's files), never a folder with other files."""
    return {"overwrite": overwrite, "owner": "sss-nnunet export", "inputs": (folder,),
            "legacy": lambda path: set(os.listdir(path)) <= EXPORT_FILES}


def export_trained_model(folder: Path, fold: str, out: Path, checkpoint: str = "checkpoint_final.pth",
                         opset: int = DEFAULT_OPSET, overwrite: bool = False, seed: int = 0) -> dict:
    """Export fold ``fold`` of the model in ``folder`` to ``out``; returns the manifest."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    for name in ("onnx", "onnxscript", "onnxruntime"):
        require(name)
    predictor = load_predictor(folder, fold, checkpoint)
    cm, pm = predictor.configuration_manager, predictor.plans_manager
    channels = determine_num_input_channels(pm, cm, predictor.dataset_json)
    patch = [int(s) for s in cm.patch_size]
    network = predictor.network.float().eval()
    example = torch.randn((1, channels, *patch), generator=torch.Generator().manual_seed(seed))
    try:
        with atomic_directory(out, **output_rules(folder, overwrite)) as tmp:
            export_network(network, example, tmp / MODEL, opset)
            diff = max_abs_difference(network, tmp / MODEL, example)
            if not diff <= TOLERANCE:
                raise RuntimeError(f"onnxruntime differs from PyTorch by {diff:.3g} (max abs) > {TOLERANCE}")
            for name in ("plans.json", "dataset.json"):
                shutil.copyfile(folder / name, tmp / name)
            manifest = _manifest(folder, fold, checkpoint, predictor, channels, patch, opset, diff)
            atomic_write_json(tmp / MANIFEST, manifest)
    except FileExistsError as e:
        raise SSSError(str(e)) from e
    return manifest


def _manifest(folder, fold, checkpoint, predictor, channels, patch, opset, diff) -> dict:
    import onnxruntime
    import torch

    from sss_nnunet import __version__

    trainer, plans, configuration = folder.name.split("__")
    heads = predictor.label_manager.num_segmentation_heads
    axes = predictor.allowed_mirroring_axes
    return {
        "format": FORMAT, "format_version": 1, "model": MODEL,
        "input": {"name": INPUT_NAME, "shape": [1, channels, *patch], "dtype": "float32",
                  "layout": "(B, C, D, H, W)" if len(patch) == 3 else "(B, C, H, W)"},
        "output": {"name": OUTPUT_NAME, "shape": [1, heads, *patch], "dtype": "float32", "content": "logits"},
        "dataset": folder.parent.name, "trainer": trainer, "plans": plans, "configuration": configuration,
        "fold": fold, "checkpoint": checkpoint, "patch_size": patch,
        "inference_allowed_mirroring_axes": None if axes is None else [int(a) for a in axes],
        "opset": opset, "check": {"max_abs_difference": diff, "tolerance": TOLERANCE, "input": "randn, seed 0"},
        "versions": {"sss_nnunet": __version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", dest="dataset", required=True, help="dataset id or name (as nnUNetv2_predict)")
    parser.add_argument("-c", dest="configuration", required=True, help="configuration, e.g. 3d_fullres or 2d")
    parser.add_argument("-f", dest="fold", required=True, help="fold to export: 0-4 or all")
    parser.add_argument("-tr", dest="trainer", required=True, help="trainer class name, e.g. SSSTrainer")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint file in the fold folder (default: checkpoint_final.pth)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise SSSError(f"{args.out} already exists (use --overwrite to replace it)")
    folder = model_folder(str(args.dataset), args.trainer, args.plans, args.configuration)
    manifest = export_trained_model(folder, str(args.fold), args.out, args.checkpoint, args.opset, args.overwrite)
    check = manifest["check"]
    print(f"exported {folder.name} fold {args.fold} to {args.out / MODEL}: input {manifest['input']['shape']}, "
          f"onnxruntime vs PyTorch max abs difference {check['max_abs_difference']:.2e} (tolerance {TOLERANCE:g})")
    print(json.dumps({k: manifest[k] for k in ("dataset", "configuration", "trainer", "opset")}))
    return 0
