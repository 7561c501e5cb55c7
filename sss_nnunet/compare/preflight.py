"""Child process of ``sss-nnunet compare``: build one budget trainer and check its recipe, no training.

    python -m sss_nnunet.compare.preflight DATASET_ID CONFIGURATION FOLD BUDGET_TRAINER PLANS

Runs in the environment the training will run in (``nnUNet_extTrainer`` holding the generated budget
module). Instantiates the trainer nnU-Net would use on the CPU, calls ``initialize()`` (network, loss,
optimiser; no data is read) and checks that the optimiser is the one the recipe built. Exit 0 and a
line ``preflight ok: ...``; otherwise the last line is the reason.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from sss_nnunet.compare.budget import check_optimizer, describe_recipe

    dataset_id, configuration, fold, trainer_name, plans_name = argv
    trainer = get_trainer_from_args(dataset_id, configuration, fold if fold == "all" else int(fold), trainer_name,
                                    plans_name, device=torch.device("cpu"))  # nnUNetv2_train's own lookup
    trainer.initialize()
    try:
        check_optimizer(trainer)
    except RuntimeError as e:
        print(f"RuntimeError: {e}", flush=True)
        return 1
    print("preflight ok: " + json.dumps(describe_recipe(trainer)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
