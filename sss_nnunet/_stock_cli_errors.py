"""Readable errors for the stock ``nnUNetv2_*`` commands when a dataset was never planned or trained.

nnU-Net loads the plans and dataset.json (and, for prediction, the trained model folder) before any
trainer code runs, so a dataset without plans ends in a ``FileNotFoundError`` traceback from deep
inside nnU-Net. The startup hook (``sss_nnunet._ext_trainer_hook``) wraps ``sys.excepthook`` in
``nnUNetv2_*`` processes; on an uncaught exception it calls :func:`explain` here, and a file missing
under nnUNet_preprocessed / nnUNet_results, or an unknown dataset ID, is printed as one message that
names the file and the command that creates it. Every other exception goes to the previous hook
unchanged. Switched off together with the hook (``SSS_NNUNET_NO_EXT_TRAINER=1``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_DATASET = re.compile(r"Dataset(\d{3})_\w+")


def _inside(path: Path, env_var: str) -> bool:
    """Whether ``path`` lies inside the folder named by ``$env_var`` (False when it is unset)."""
    base = os.environ.get(env_var)
    return bool(base) and path.resolve().is_relative_to(Path(base).resolve())


def _planning_command(plans: str, dataset_id: str) -> str:
    """The command that writes the plans file ``<plans>.json`` of a dataset."""
    if plans == "SSSPlans":
        return f"sss-nnunet plan -d {dataset_id}"
    rename = "" if plans == "nnUNetPlans" else f" -overwrite_plans_name {plans}"
    return f"nnUNetv2_plan_and_preprocess -d {dataset_id}{rename}"


def explain(exc: BaseException) -> str | None:
    """The message for a missing-plans / missing-model / unknown-dataset error, or None for any other."""
    if isinstance(exc, RuntimeError) and str(exc).startswith("Could not find a dataset with the ID"):
        return str(exc)
    if not isinstance(exc, FileNotFoundError) or not exc.filename:
        return None
    path = Path(exc.filename)
    match = _DATASET.search(str(path))
    dataset_id = str(int(match.group(1))) if match else "ID"
    if _inside(path, "nnUNet_preprocessed"):
        plans = path.stem if path.suffix == ".json" and path.name != "dataset.json" else "nnUNetPlans"
        return (f"{path} does not exist: the dataset has not been planned and preprocessed "
                f"with the plans '{plans}' (nnUNet_preprocessed={os.environ['nnUNet_preprocessed']}). "
                f"Create them with: {_planning_command(plans, dataset_id)}")
    if _inside(path, "nnUNet_results"):
        return (f"{path} does not exist: no trained model for this dataset / trainer / plans / configuration / fold "
                f"(nnUNet_results={os.environ['nnUNet_results']}). Train it first with: "
                f"nnUNetv2_train {dataset_id} CONFIGURATION FOLD -tr TRAINER")
    return None
