"""``sss-nnunet`` console script: one subcommand per module, imported only when used.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``, and may define
``DESCRIPTION`` (plain text shown by ``sss-nnunet COMMAND --help``). Heavy imports (torch, nnU-Net)
stay inside those modules, so ``--help`` is fast. Parsers are ``sss_nnunet.cli_args.ArgumentParser``:
old option spellings registered with ``cli_args.deprecate`` keep working, help is plain text.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from sss_nnunet.cli_args import ArgumentParser
from sss_nnunet.errors import SSSError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sss_nnunet.demo", "run the end-to-end demo on a built-in synthetic dataset"),
    "plan": ("sss_nnunet.plans.cli", "plan and preprocess a dataset with the SSSPlans planner"),
    "convert": ("sss_nnunet.datasets.cli", "write a dataset in nnU-Net's layout: synapse, btcv, acdc, brats, "
                                           "brats2021, isic2016/2017/2018 from their downloads; demo, context, "
                                           "mni152 built in"),
    "evaluate": ("sss_nnunet.evaluation.cli", "Dice / HD95 tables for a prediction folder"),
    "compare": ("sss_nnunet.compare.cli", "train trainers with one budget, score them on the test cases, tabulate"),
    "attention": ("sss_nnunet.attention.cli", "Bi-WKV attention maps of a query voxel for every Stage-Scan block"),
    "slurm": ("sss_nnunet.scale.cli", "sbatch scripts: folds as a torchrun array job, then find_best_configuration"),
    "export": ("sss_nnunet.deploy.export", "export a trained model to ONNX (+ plans, dataset.json, manifest)"),
    "predict": ("sss_nnunet.deploy.onnx_predict", "predict a folder with an exported ONNX model (nnU-Net's predictor)"),
}

DESCRIPTION = """\
RWKV-SSS (Stage Scan Segmentation) for stock nnU-Net v2: dataset converters, planning for
RWKV-SSS, evaluation tables, trainer comparisons, attention maps and the demo.

Training and prediction use nnU-Net's own commands with our trainers, e.g.
  nnUNetv2_plan_and_preprocess -d 801 --verify_dataset_integrity
  nnUNetv2_train 801 3d_fullres 0 -tr SSSTrainer
  nnUNetv2_predict -i imagesTs -o pred -d 801 -c 3d_fullres -tr SSSTrainer -f 0"""

EPILOG = "Run 'sss-nnunet COMMAND --help' for the options of a command."


def version() -> str:
    """The installed distribution's version (package metadata), else the package's own."""
    from importlib import metadata

    try:
        return metadata.version("sss-nnunet")
    except metadata.PackageNotFoundError:
        from sss_nnunet import __version__

        return __version__


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _available() -> dict[str, tuple[str, str]]:
    return {n: v for n, v in COMMANDS.items() if _exists(v[0])}


def build_parser(command: str | None = None) -> ArgumentParser:
    """The top-level parser; the subcommand ``command`` (if any) gets its arguments. The subcommand
    parsers are in ``parser.subcommands`` (name -> parser)."""
    parser = ArgumentParser(prog="sss-nnunet", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.subcommands = {}
    for name, (module_name, help_) in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            module = importlib.import_module(module_name)
            p.description = getattr(module, "DESCRIPTION", help_)
            module.add_arguments(p)
        parser.subcommands[name] = p
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args, extras = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extras:  # argparse would print the top-level usage; the subcommand's is the useful one
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    module = importlib.import_module(_available()[args.command][0])
    try:
        return int(module.run(args) or 0)
    except SSSError as e:
        print(f"sss-nnunet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only folder, a file where a folder belongs, a full disk: one line, no traceback
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"sss-nnunet {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
