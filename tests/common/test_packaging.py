"""The built wheel carries what a fresh `pip install` needs: the startup hook, the trainer
shim and the package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "deprecated" not in res.stderr.lower()
    (wheel,) = tmp_path.glob("sss_nnunet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pth = zipfile.ZipFile(wheel).read("sss_nnunet_ext_trainers.pth").decode()
    assert pth.strip() == "import sss_nnunet._ext_trainer_hook"
    for needed in ("sss_nnunet/_ext_trainer_hook.py", "sss_nnunet/trainers/nnunet_ext/sss_nnunet_trainers.py",
                   "sss_nnunet/datasets/paper_splits.json", "sss_nnunet/evaluation/published.json",
                   "sss_nnunet/kernels/wkv/triton_kernels.py", "sss_nnunet/network/unet.py"):
        assert needed in names, needed
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "sss-nnunet = sss_nnunet.cli:main" in entry
