"""Startup hook, run by ``sss_nnunet_ext_trainers.pth`` in site-packages at every interpreter
start: appends this package's trainer shim folder to ``nnUNet_extTrainer`` so the stock
``nnUNetv2_train`` / ``nnUNetv2_predict`` / ``nnUNetv2_find_best_configuration`` find
``SSSTrainer`` with no set-up. An existing value is kept (ours is appended once).

Switch it off with ``SSS_NNUNET_NO_EXT_TRAINER=1`` (then list the folder yourself:
``python -c "import sss_nnunet._ext_trainer_hook as h; print(h.SHIM_DIR)"``).
Imports only ``os``: it must cost nothing at start-up.
"""

import os

SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers", "nnunet_ext")
ENV = "nnUNet_extTrainer"
OFF = "SSS_NNUNET_NO_EXT_TRAINER"


def extended(value: str | None) -> str:
    """``value`` with SHIM_DIR appended (os.pathsep-separated), unless already listed."""
    parts = [p for p in (value or "").split(os.pathsep) if p]
    if SHIM_DIR not in parts:
        parts.append(SHIM_DIR)
    return os.pathsep.join(parts)


def install() -> None:
    if os.environ.get(OFF, "").lower() in ("1", "true", "yes"):
        return
    os.environ[ENV] = extended(os.environ.get(ENV))


install()
