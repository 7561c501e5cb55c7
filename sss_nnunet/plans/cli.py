"""``sss-nnunet plan``: fingerprint, plan (``SSSPlans``) and preprocess a dataset with nnU-Net's API.

    sss-nnunet plan -d ID [-c CONFIGS...] [--gpu-memory-target GB] [-np N] [--verify] [--no-preprocess]

Needs ``nnUNet_raw`` (with ``DatasetNNN_Name/dataset.json``) and ``nnUNet_preprocessed``. Every
input is checked before anything is written. Then, as ``nnUNetv2_plan_and_preprocess -pl
SSSPlanner`` would if nnU-Net could find planners outside its package:

1. dataset fingerprint (only if missing; ``--verify`` first checks the raw dataset's integrity);
2. ``SSSPlans.json`` from ``SSSPlanner`` (patch and batch sizes fitted to the memory target);
3. nnU-Net's preprocessing of the chosen configurations for ``SSSPlans``.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from sss_nnunet.errors import SSSError

DEFAULT_CONFIGS = ("2d", "3d_fullres", "3d_lowres")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, metavar="ID",
                        help="dataset ID: the folder nnUNet_raw/DatasetID_Name (e.g. 27 for Dataset027_ACDC)")
    parser.add_argument("-c", dest="configurations", nargs="+", default=list(DEFAULT_CONFIGS),
                        choices=DEFAULT_CONFIGS, metavar="CONFIG",
                        help=f"configurations to preprocess (default: {' '.join(DEFAULT_CONFIGS)}; all are planned; "
                             "3d_cascade_fullres uses the 3d_fullres data)")
    parser.add_argument("--gpu-memory-target", type=float, default=8.0, metavar="GB",
                        help="GPU memory (GiB) one training must fit (default: %(default)g, as nnU-Net)")
    parser.add_argument("-np", dest="num_processes", type=int, default=None, metavar="N",
                        help="processes for fingerprint extraction and preprocessing "
                             "(default: nnUNet_def_n_proc or 8)")
    parser.add_argument("--verify", action="store_true",
                        help="check the raw dataset's integrity first (nnU-Net's verify_dataset_integrity)")
    parser.add_argument("--no-preprocess", action="store_true", help="plan only")


def _env_folder(name: str, must_exist: bool) -> Path:
    value = os.environ.get(name)
    if not value:
        raise SSSError(f"the environment variable {name} is not set; point it at nnU-Net's {name} folder "
                       f"(see nnU-Net's documentation/setting_up_paths.md)")
    path = Path(value)
    if must_exist and not path.is_dir():
        raise SSSError(f"{name}={value} is not a folder")
    return path


def find_raw_dataset(raw: Path, dataset_id: int) -> Path:
    """The folder ``raw/DatasetNNN_*`` of ``dataset_id``, with a dataset.json."""
    if not 0 <= dataset_id <= 999:
        raise SSSError(f"dataset ID must be in 0..999, got {dataset_id}")
    matches = sorted(p for p in raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
    if not matches:
        raise SSSError(f"no dataset with ID {dataset_id} in nnUNet_raw ({raw}): expected a folder "
                       f"Dataset{dataset_id:03d}_<name> (convert one with `sss-nnunet convert`)")
    if len(matches) > 1:
        raise SSSError(f"several datasets with ID {dataset_id} in nnUNet_raw: {', '.join(p.name for p in matches)}")
    if not (matches[0] / "dataset.json").is_file():
        raise SSSError(f"{matches[0]} has no dataset.json")
    return matches[0]


def _header(text: str) -> None:
    print(f"\n===== sss-nnunet plan: {text} =====", flush=True)


def summary_lines(plans: dict) -> list[str]:
    """One line per configuration: patch size, batch size and the memory estimate."""
    from sss_nnunet.plans.planner import MEMORY_KEY

    gib = 2**30
    lines = []
    for name, config in plans["configurations"].items():
        if "inherits_from" in config:
            lines.append(f"  {name:<20} as {config['inherits_from']} (previous stage: {config.get('previous_stage')})")
            continue
        memory = config.get(MEMORY_KEY, {})
        estimate = memory.get("training_bytes", math.nan) / gib
        usable = memory.get("usable_bytes", math.nan) / gib
        note = "" if memory.get("fits", True) else "  (does NOT fit the target)"
        lines.append(f"  {name:<20} patch {str(list(config['patch_size'])):<16} batch {config['batch_size']:<3} "
                     f"stages {config['architecture']['arch_kwargs']['n_stages']}  "
                     f"estimated {estimate:.2f} GiB of {usable:.2f} GiB usable{note}")
    return lines


def run(args: argparse.Namespace) -> int:
    if not args.gpu_memory_target > 0:
        raise SSSError(f"--gpu-memory-target must be > 0 GiB, got {args.gpu_memory_target}")
    if args.num_processes is not None and args.num_processes < 1:
        raise SSSError(f"-np must be >= 1, got {args.num_processes}")
    raw = _env_folder("nnUNet_raw", must_exist=True)
    preprocessed = _env_folder("nnUNet_preprocessed", must_exist=False)
    folder = find_raw_dataset(raw, args.dataset_id)

    from nnunetv2.configuration import default_num_processes
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from sss_nnunet.plans.planner import PLANS_NAME, SSSPlanner

    n_proc = args.num_processes or default_num_processes
    name = folder.name
    if args.verify:
        _header(f"verifying {name}")
        try:
            verify_dataset_integrity(str(folder), n_proc)
        except (AssertionError, RuntimeError, FileNotFoundError) as e:
            raise SSSError(f"{name} failed nnU-Net's integrity check: {e}") from e
    from sss_nnunet.io import nnunet_folder

    nnunet_folder("nnUNet_preprocessed")  # created here, with a notice, when only it is missing (a typo is an error)
    fingerprint = preprocessed / name / "dataset_fingerprint.json"
    if fingerprint.is_file():
        _header(f"dataset fingerprint: using {fingerprint}")
    else:
        _header(f"dataset fingerprint of {name}")
        extract_fingerprint_dataset(args.dataset_id, num_processes=n_proc, clean=True)

    _header(f"planning {PLANS_NAME} (SSSPlanner, GPU memory target {args.gpu_memory_target:g} GiB)")
    plans, identifier = plan_experiment_dataset(args.dataset_id, SSSPlanner,
                                                gpu_memory_target_in_gb=args.gpu_memory_target)
    plans_file = preprocessed / name / f"{identifier}.json"
    _header(f"{identifier} for {name}: {plans_file}")
    print("\n".join(summary_lines(plans)), flush=True)

    if not args.no_preprocess:
        configs = [c for c in dict.fromkeys(args.configurations) if c in plans["configurations"]]
        skipped = sorted(set(args.configurations) - set(configs))
        _header(f"preprocessing {', '.join(configs)} with {n_proc} processes"
                + (f" (not planned for this dataset: {', '.join(skipped)})" if skipped else ""))
        if configs:
            preprocess_dataset(args.dataset_id, identifier, configs, [n_proc])
    trained = "3d_fullres" if "3d_fullres" in plans["configurations"] else "2d"
    _header("done")
    print(f"Train with: nnUNetv2_train {args.dataset_id} {trained} FOLD -tr SSSTrainer -p {identifier}", flush=True)
    return 0
