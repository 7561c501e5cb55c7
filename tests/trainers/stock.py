"""Running the stock ``nnUNetv2_*`` console scripts of this environment in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def stock_env(root: Path) -> dict:
    """The caller's environment with nnU-Net's three folders under ``root`` and our hook active."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") and k != "SSS_NNUNET_NO_EXT_TRAINER"}
    env.update(
        nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
        nnUNet_results=str(root / "results"), nnUNet_def_n_proc="2", nnUNet_n_proc_DA="1",
        SSS_TINY_EPOCHS="1", PYTHONWARNINGS="ignore",
    )
    return env


def run_stock(cmd: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """``cmd[0]`` from this environment's bin folder, with ``cmd[1:]``; output captured as text."""
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], env=env, capture_output=True, text=True, timeout=timeout)
