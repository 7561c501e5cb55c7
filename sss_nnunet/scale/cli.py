"""``sss-nnunet slurm``: sbatch scripts that train configurations x folds as one SLURM array job
(torchrun in every task, preemption-safe, requeued with ``--c``), then run
``nnUNetv2_find_best_configuration`` after all of them succeeded.

    sss-nnunet slurm -d 4 -c 2d 3d_fullres -tr SSSTrainer --nodes 2 --gpus-per-node 4 \\
        --partition gpu --time 24:00:00 --account proj --out slurm_jobs --submit

``-f`` / ``--folds`` and ``-o`` / ``--out`` are the same options (nnU-Net's short spellings).

Checks the dataset, plans, configurations and trainer first (needs nnUNet_preprocessed). Writes
OUT/train_folds.sbatch, OUT/find_best.sbatch, OUT/submit.sh; ``--submit`` runs sbatch for both
(the second with ``--dependency=afterok``) and prints the job ids.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

from sss_nnunet.errors import SSSError

SBATCH_OPTIONS = ("partition", "time", "account", "qos", "mem", "cpus-per-task")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", dest="dataset", required=True, help="dataset ID or DatasetXXX_Name")
    p.add_argument("-c", dest="configurations", nargs="+", required=True, help="configurations to train")
    p.add_argument("-tr", dest="trainer", default="nnUNetTrainer", help="trainer class (default nnUNetTrainer)")
    p.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("-f", "--folds", dest="folds", nargs="+", type=int, default=[0, 1, 2, 3, 4],
                   help="folds (default 0 1 2 3 4)")
    p.add_argument("--nodes", type=int, default=1, help="nodes per training (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=1,
                   help="GPUs per node = training processes per node (default 1; with -device cpu: processes)")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu"], help="cuda (nccl) or cpu (gloo)")
    p.add_argument("--npz", action="store_true",
                   help="keep validation probabilities (always on with several configurations: ensembling)")
    for name in SBATCH_OPTIONS:
        p.add_argument(f"--{name}", help=f"sbatch --{name}")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="further sbatch option for every job, e.g. --sbatch=--constraint=a100 (repeatable)")
    p.add_argument("--signal-lead", type=int, default=300,
                   help="seconds before the time limit at which a task checkpoints and requeues (default 300)")
    p.add_argument("--port", type=int, default=29500, help="base rendezvous port for multi-node tasks")
    p.add_argument("-o", "--out", dest="out", required=True, help="folder for the scripts and logs/")
    p.add_argument("--submit", action="store_true", help="submit with sbatch and print the job ids")


def _check(args) -> str:
    """The dataset's folder name; SSSError for anything a submitted job would fail on."""
    import json

    if not os.environ.get("nnUNet_preprocessed"):
        raise SSSError("nnUNet_preprocessed is not set: the jobs need the planned and preprocessed dataset")
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        name = maybe_convert_to_dataset_name(args.dataset)
    except (RuntimeError, ValueError) as e:
        raise SSSError(f"-d {args.dataset}: {str(e).splitlines()[0]}") from None
    plans = Path(os.environ["nnUNet_preprocessed"]) / name / f"{args.plans}.json"
    if not plans.is_file():
        raise SSSError(f"{plans} does not exist: plan and preprocess the dataset first")
    available = json.loads(plans.read_text()).get("configurations", {})
    missing = [c for c in args.configurations if c not in available]
    if missing:
        raise SSSError(f"{plans} has no configuration {', '.join(missing)} (it has {', '.join(available)})")
    if any(f < 0 for f in args.folds) or len(set(args.folds)) != len(args.folds):
        raise SSSError(f"--folds {' '.join(map(str, args.folds))}: folds are distinct integers >= 0")
    for flag, value in (("--nodes", args.nodes), ("--gpus-per-node", args.gpus_per_node),
                        ("--signal-lead", args.signal_lead)):
        if value < 1:
            raise SSSError(f"{flag} {value}: must be at least 1")
    from sss_nnunet.compare.budget import find_trainer

    try:
        find_trainer(args.trainer)
    except LookupError as e:
        raise SSSError(f"-tr {args.trainer}: {e}") from None
    return name


def submit(out: Path) -> tuple[str, str]:
    """sbatch the array, then find_best with afterok on it; returns both job ids."""
    from sss_nnunet.scale.slurm import BEST, TRAIN

    if shutil.which("sbatch") is None:
        raise SSSError("--submit: sbatch is not on PATH (run OUT/submit.sh on the cluster's login node)")

    def sbatch(*words: str) -> str:
        res = subprocess.run(["sbatch", "--parsable", *words], cwd=out, capture_output=True, text=True)
        if res.returncode != 0:
            raise SSSError(f"sbatch {' '.join(words)} failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
        return res.stdout.strip().split(";")[0]

    train = sbatch(TRAIN)
    return train, sbatch(f"--dependency=afterok:{train}", "--kill-on-invalid-dep=yes", BEST)


def run(args) -> int:
    from sss_nnunet.scale.slurm import Farm, write

    name = _check(args)
    farm = Farm(dataset=name, configurations=args.configurations, trainer=args.trainer, folds=args.folds,
                plans=args.plans, device=args.device, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                signal_lead=args.signal_lead, port=args.port, npz=args.npz or len(args.configurations) > 1,
                sbatch={k: getattr(args, k.replace("-", "_")) for k in SBATCH_OPTIONS
                        if getattr(args, k.replace("-", "_"))},
                extra=args.sbatch)
    paths = write(farm, Path(args.out))
    print(f"{farm.tasks} training tasks ({' '.join(args.configurations)} x folds {' '.join(map(str, args.folds))})"
          f", {farm.nodes} node(s) x {farm.gpus_per_node} process(es) each:")
    for path in paths:
        print(f"  {path}")
    if args.submit:
        train, best = submit(paths[0].parent)
        print(f"submitted: training array job {train}, find_best_configuration job {best} (afterok:{train})")
    else:
        print(f"submit with: {paths[2]}")
    return 0
