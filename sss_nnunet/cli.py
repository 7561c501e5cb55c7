"""``sss-nnunet`` console script: one subcommand per module, imported only when used.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, nnU-Net) stay inside those modules, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from sss_nnunet.errors import SSSError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sss_nnunet.demo", "run the end-to-end demo on a built-in synthetic dataset"),
    "plan": ("sss_nnunet.plans.cli", "plan and preprocess a dataset with the SSSPlans planner"),
    "convert": ("sss_nnunet.datasets.cli", "convert a raw dataset (synapse, acdc, brats, isic) to nnU-Net layout"),
    "evaluate": ("sss_nnunet.evaluation.cli", "Dice / HD95 tables for a prediction folder"),
    "compare": ("sss_nnunet.compare.cli", "train trainers with one budget, score them on the test cases, tabulate"),
    "attention": ("sss_nnunet.attention.cli", "Bi-WKV attention maps of a query voxel for every Stage-Scan block"),
    "export": ("sss_nnunet.deploy.export", "export a trained model to ONNX (+ plans, dataset.json, manifest)"),
    "predict": ("sss_nnunet.deploy.onnx_predict", "predict a folder with an exported ONNX model (nnU-Net's predictor)"),
}


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _available() -> dict[str, tuple[str, str]]:
    return {n: v for n, v in COMMANDS.items() if _exists(v[0])}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sss-nnunet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(_available()[args.command][0])
    try:
        return int(module.run(args) or 0)
    except SSSError as e:
        print(f"sss-nnunet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
