"""``sss-nnunet attention``: what each Stage-Scan block of a trained RWKV-SSS model attends to.

    sss-nnunet attention -d ID -tr TRAINER [-p PLANS] -c CONFIG -f FOLD -i IMAGE \\
        [--voxel Z Y X | --label L] [--stages S ...] [--compare-scans] [--out DIR]

Writes, in the input image's geometry, ``attention_<stage>_<mix>.nii.gz`` (the query's Bi-WKV weights,
mean over channels, as a density that sums to 1 over the image) and ``..._spread.nii.gz`` (their standard
deviation over channels), ``stage<S>.png`` (three orthogonal slices through the query per block and mix),
``summary.png`` (global and local side by side and the decay profile, one row per block) and
``summary.json``. ``--compare-scans`` adds the same maps with the scan switched (raster, zigzag, stage)
and ``compare_scans.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sss_nnunet import cli_args
from sss_nnunet.errors import SSSError

SCANS = ("raster", "zigzag", "stage")

DESCRIPTION = """\
What each Stage-Scan block of a trained RWKV-SSS model attends to, for one query voxel of a case:
the exact Bi-WKV weights of the query over all tokens, per block and mix (global, local), mapped
back to the voxels of the input image. Writes, in the image's geometry,
attention_stage<S>b<B>_<mix>.nii.gz (mean over channels, a density that sums to 1) and
..._spread.nii.gz (standard deviation over channels), stage<S>.png, summary.png and summary.json.
--compare-scans adds the maps with the scan switched to raster, zigzag and stage."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli_args.add_dataset(parser)
    cli_args.add_trainer(parser)
    cli_args.add_plans(parser)
    cli_args.add_configuration(parser)
    cli_args.add_fold(parser, default=None)
    parser.add_argument("-i", dest="image", required=True, nargs="+", type=Path,
                        help="the case's image file(s); a single CASE_0000 file finds its other channels")
    query = parser.add_mutually_exclusive_group()
    query.add_argument("--voxel", nargs="+", type=int, metavar="I",
                       help="query voxel Z Y X (NumPy index of the image array; Y X for 2D images); "
                            "default: centre of the image's non-zero region")
    query.add_argument("--label", type=int, help="query the voxel of label L in the model's prediction nearest "
                                                 "to the label's centre of mass")
    parser.add_argument("--stages", nargs="+", type=int, help="encoder stages to analyse (default: all RWKV stages)")
    parser.add_argument("--compare-scans", action="store_true",
                        help="also compute the maps with the scan switched to raster, zigzag and stage")
    parser.add_argument("-o", "--out", type=Path, help="output folder (default ./attention_<case>)")
    parser.add_argument("-chk", dest="checkpoint", default="checkpoint_final.pth",
                        help="checkpoint file name (default: checkpoint_final.pth)")
    cli_args.add_device(parser)
    cli_args.deprecate(parser, "--device", "-device")
    cli_args.deprecate(parser, "--checkpoint", "-chk")


def _device(name: str | None):
    import torch

    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SSSError("-device cuda: no CUDA device available")
    return torch.device(name)


def run(args: argparse.Namespace) -> int:
    from sss_nnunet.attention.report import compute_report

    device = _device(args.device)
    case_name = args.image[0].name.split(".")[0].removesuffix("_0000")
    out = args.out or Path(f"attention_{case_name}")
    written = compute_report(
        dataset=args.dataset, trainer=args.trainer, plans=args.plans, configuration=args.configuration,
        fold=args.fold, image=args.image, voxel=args.voxel, label=args.label, stages=args.stages,
        compare_scans=args.compare_scans, out=out, device=device, checkpoint=args.checkpoint,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {len(written)} files to {out}", file=sys.stdout)
    return 0
