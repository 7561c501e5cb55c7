"""``sss-nnunet plan``: fingerprint, plan (``SSSPlans``) and preprocess datasets with nnU-Net's API.

Every input is checked before anything is written; see ``DESCRIPTION`` for the steps.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from sss_nnunet import cli_args
from sss_nnunet.errors import SSSError

DEFAULT_CONFIGS = ("2d", "3d_fullres", "3d_lowres")
NNUNET_DEFAULT_NP = {"2d": 8, "3d_fullres": 4, "3d_lowres": 8}  # nnUNetv2_plan_and_preprocess's -np defaults

DESCRIPTION = """\
Plan and preprocess datasets for RWKV-SSS, as 'nnUNetv2_plan_and_preprocess -pl SSSPlanner' would
if nnU-Net could find planners outside its package:

  1. dataset fingerprint (only if missing; --verify_dataset_integrity checks the raw dataset first)
  2. SSSPlans.json from SSSPlanner: nnU-Net's configurations, spacing and normalisation, with patch
     and batch sizes fitted to -gpu_memory_target by a memory model of RWKV-SSS
  3. nnU-Net's preprocessing of the chosen configurations for SSSPlans

Then train with: nnUNetv2_train DATASET 3d_fullres FOLD -tr SSSTrainer -p SSSPlans
Needs nnUNet_raw (with DatasetNNN_Name/dataset.json) and nnUNet_preprocessed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli_args.add_dataset(parser, several=True)
    cli_args.add_configuration(parser, default=list(DEFAULT_CONFIGS), several=True, choices=DEFAULT_CONFIGS,
                               help=f"configurations to preprocess (default: {' '.join(DEFAULT_CONFIGS)}; all are "
                                    "planned; 3d_cascade_fullres uses the 3d_fullres data)")
    parser.add_argument("-gpu_memory_target", dest="gpu_memory_target", type=float, default=8.0, metavar="GB",
                        help="GPU memory (GiB) one training must fit (default: %(default)g, as nnU-Net)")
    cli_args.add_num_processes(parser, "-npfp", dest="npfp", help="processes for the fingerprint and the check")
    parser.add_argument("-np", dest="num_processes", type=cli_args.positive_int, nargs="+", default=None,
                        metavar="N",
                        help="preprocessing processes: one number, or one per -c configuration (default: nnU-Net's "
                             "2d 8, 3d_fullres 4, 3d_lowres 8, at most the CPU count)")
    parser.add_argument("--verify_dataset_integrity", action="store_true",
                        help="check the raw dataset's integrity first (nnU-Net's check)")
    parser.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess")
    cli_args.deprecate(parser, "--verify", "--verify_dataset_integrity")
    cli_args.deprecate(parser, "--no-preprocess", "--no_pp")
    cli_args.deprecate(parser, "--gpu-memory-target", "-gpu_memory_target")


def preprocessing_processes(configs: list[str], given: list[int] | None) -> list[int]:
    """Processes per configuration: nnU-Net's defaults capped by the CPU count, or ``-np`` (one value for
    all, or one per configuration)."""
    if given is None:
        cpus = os.cpu_count() or 1
        return [max(1, min(NNUNET_DEFAULT_NP.get(c, 4), cpus)) for c in configs]
    if len(given) == 1:
        return given * len(configs)
    if len(given) != len(configs):
        raise SSSError(f"-np: give one number or one per configuration ({len(configs)}: {' '.join(configs)}), "
                       f"got {len(given)}")
    return list(given)


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
        raise SSSError(f"-gpu_memory_target must be > 0 GiB, got {args.gpu_memory_target}")
    raw = _env_folder("nnUNet_raw", must_exist=True)
    preprocessed = _env_folder("nnUNet_preprocessed", must_exist=False)
    ids = [cli_args.resolve_dataset_id(d, raw) for d in args.dataset]
    folders = [find_raw_dataset(raw, i) for i in ids]  # all checked before anything is written
    configs = list(dict.fromkeys(args.configuration))
    n_proc = preprocessing_processes(configs, args.num_processes)
    for dataset_id, folder in zip(ids, folders):
        plan_one(args, dataset_id, folder, preprocessed, configs, n_proc)
    return 0


def plan_one(args: argparse.Namespace, dataset_id: int, folder: Path, preprocessed: Path, configurations: list[str],
             n_proc: list[int]) -> None:
    """Fingerprint (if missing), SSSPlans and preprocessing of one dataset."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from sss_nnunet.plans.planner import PLANS_NAME, SSSPlanner

    name = folder.name
    if args.verify_dataset_integrity:
        _header(f"verifying {name}")
        try:
            verify_dataset_integrity(str(folder), args.npfp)
        except (AssertionError, RuntimeError, FileNotFoundError) as e:
            raise SSSError(f"{name} failed nnU-Net's integrity check: {e}") from e
    from sss_nnunet.io import nnunet_folder

    nnunet_folder("nnUNet_preprocessed")  # created here, with a notice, when only it is missing (a typo is an error)
    fingerprint = preprocessed / name / "dataset_fingerprint.json"
    if fingerprint.is_file():
        _header(f"dataset fingerprint: using {fingerprint}")
    else:
        _header(f"dataset fingerprint of {name}")
        extract_fingerprint_dataset(dataset_id, num_processes=args.npfp, clean=True)

    _header(f"planning {PLANS_NAME} (SSSPlanner, GPU memory target {args.gpu_memory_target:g} GiB)")
    plans, identifier = plan_experiment_dataset(dataset_id, SSSPlanner,
                                                gpu_memory_target_in_gb=args.gpu_memory_target)
    plans_file = preprocessed / name / f"{identifier}.json"
    _header(f"{identifier} for {name}: {plans_file}")
    print("\n".join(summary_lines(plans)), flush=True)

    if not args.no_pp:
        planned = [(c, n) for c, n in zip(configurations, n_proc) if c in plans["configurations"]]
        skipped = [c for c in configurations if c not in plans["configurations"]]
        _header(f"preprocessing {', '.join(f'{c} ({n} processes)' for c, n in planned)}"
                + (f" (not planned for this dataset: {', '.join(skipped)})" if skipped else ""))
        if planned:
            preprocess_dataset(dataset_id, identifier, [c for c, _ in planned], [n for _, n in planned])
    trained = "3d_fullres" if "3d_fullres" in plans["configurations"] else "2d"
    _header("done")
    print(f"Train with: nnUNetv2_train {dataset_id} {trained} FOLD -tr SSSTrainer -p {identifier}", flush=True)
