"""``sss-nnunet demo --compare``: after planning, the demo trains nnU-Net's own ``nnUNetTrainer``
beside the demo trainer with the demo trainer's budget (its epochs x iterations per epoch), through
``sss-nnunet compare``, and prints the comparison table."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from sss_nnunet.compare.budget import Budget, find_trainer

DEFAULT_BUDGET = Budget(epochs=22, iterations_per_epoch=25, val_iterations_per_epoch=2)  # SSSTrainer_demo's


def trainer_budget(name: str) -> Budget:
    """The budget a trainer class sets for itself (``epochs``/``epochs_env``, ``iterations_per_epoch``,
    ``val_iterations_per_epoch`` class attributes, as the SSSTrainer variants have), else the demo's."""
    cls = find_trainer(name)
    epochs = getattr(cls, "epochs", None)
    env_name = getattr(cls, "epochs_env", None)
    if env_name and os.environ.get(env_name):
        epochs = int(os.environ[env_name])
    per_epoch = getattr(cls, "iterations_per_epoch", None)
    if not epochs or not per_epoch:
        return DEFAULT_BUDGET
    return Budget(int(epochs), int(per_epoch), int(getattr(cls, "val_iterations_per_epoch", None) or 2))


def run_demo_compare(args: argparse.Namespace, env: dict, raw: Path, out: Path, config: str, steps) -> int:
    """Steps after planning for ``demo --compare``; ``steps`` is the demo's step printer."""
    from sss_nnunet.compare.cli import compare
    from sss_nnunet.compare.runner import CompareSpec

    trainers = list(dict.fromkeys([args.trainer, "nnUNetTrainer"]))
    budget = trainer_budget(args.trainer)
    spec = CompareSpec(dataset_id=args.id, raw=raw, trainers=trainers, configuration=config, fold=args.fold,
                       plans="nnUNetPlans", budget=budget, seeds=[args.seed], device="cpu", out=out / "compare",
                       overwrite=True, env=env)
    steps.start(f"compare {' and '.join(trainers)} at the same budget ({budget.describe()})")
    compare(spec, shlex.join(["sss-nnunet", *sys.argv[1:]]))
    steps.start("results")
    print((spec.out / "compare.md").read_text())
    print(f"plots:   {spec.out / 'compare.png'}\n         {spec.out / 'curves.png'}")
    print(f"tables:  {spec.out / 'compare.md'}, {spec.out / 'compare.json'}")
    print(f"total time {steps.elapsed() / 60:.1f} min")
    return 0
