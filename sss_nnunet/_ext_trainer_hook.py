"""Startup hook, run by ``sss_nnunet_ext_trainers.pth`` in site-packages at every interpreter
start: appends this package's trainer shim folder to ``nnUNet_extTrainer`` so the stock
``nnUNetv2_train`` / ``nnUNetv2_predict`` / ``nnUNetv2_find_best_configuration`` find
``SSSTrainer`` with no set-up. An existing value is kept (ours is appended once). In
``nnUNetv2_*`` processes it also makes "dataset not planned / model not trained" errors one clear
message instead of a traceback (``sss_nnunet._stock_cli_errors``, imported only on such an error).

Switch it off with ``SSS_NNUNET_NO_EXT_TRAINER=1`` (then list the folder yourself:
``python -c "import sss_nnunet._ext_trainer_hook as h; print(h.SHIM_DIR)"``).
Imports only ``os`` and ``sys``: it must cost nothing at start-up.
"""

import os
import sys

SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers", "nnunet_ext")
ENV = "nnUNet_extTrainer"
OFF = "SSS_NNUNET_NO_EXT_TRAINER"


def extended(value: str | None) -> str:
    """``value`` with SHIM_DIR appended (os.pathsep-separated), unless already listed."""
    parts = [p for p in (value or "").split(os.pathsep) if p]
    if SHIM_DIR not in parts:
        parts.append(SHIM_DIR)
    return os.pathsep.join(parts)


def explaining(previous):  # no annotations: typing would cost an import at every start-up
    """``sys.excepthook`` that prints ``_stock_cli_errors.explain``'s message when it has one, else defers."""

    def hook(kind, exc, tb):
        try:
            from sss_nnunet._stock_cli_errors import explain

            message = explain(exc)
        except Exception:  # never hide the original error
            message = None
        if message is None:
            previous(kind, exc, tb)
        else:
            print(f"\n{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)

    return hook


def install() -> None:
    if os.environ.get(OFF, "").lower() in ("1", "true", "yes"):
        return
    os.environ[ENV] = extended(os.environ.get(ENV))
    if os.path.basename(sys.argv[0] if getattr(sys, "argv", None) else "").startswith("nnUNetv2_"):
        sys.excepthook = explaining(sys.excepthook)


install()
