"""Fixtures for ``sss-nnunet plan``: a tiny raw dataset, nnU-Net environments, one planned run.

nnU-Net steps run in subprocesses through the console scripts, with ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` pointing into pytest's tmp folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

DATASET_ID = 961
DATASET_NAME = f"Dataset{DATASET_ID:03d}_PlanTiny"
BIN = Path(sys.executable).parent
SPACING_XYZ = (0.9, 0.9, 2.0)  # mm, SimpleITK order (x, y, z)


def _write_case(folder: Path, name: str, rng: np.random.Generator, shape: tuple[int, int, int]) -> None:
    """One case: a float image (D, H, W) and labels 1 (ellipsoid) and 2 (slab) in it."""
    import SimpleITK as sitk

    D, H, W = shape
    z, y, x = np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij")
    cz, cy, cx = rng.uniform(0.35, 0.55, 3) * np.array(shape)
    label = np.zeros(shape, np.uint8)
    label[((z - cz) / (D / 4)) ** 2 + ((y - cy) / (H / 4)) ** 2 + ((x - cx) / (W / 4)) ** 2 < 1] = 1
    label[D // 2: D // 2 + 3, H // 8: H // 3, W // 2:] = 2
    image = (60.0 * label + rng.normal(0, 15, shape)).astype(np.float32)
    for array, path in ((image, folder / "imagesTr" / f"{name}_0000.nii.gz"),
                        (label, folder / "labelsTr" / f"{name}.nii.gz")):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(SPACING_XYZ)
        sitk.WriteImage(itk, str(path))


def write_raw_dataset(raw: Path, n_cases: int = 6, seed: int = 0) -> Path:
    """``raw/Dataset961_PlanTiny`` in nnU-Net's raw layout (3D NIfTI, 1 channel, 3 labels)."""
    folder = raw / DATASET_NAME
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        shape = (16 + int(rng.integers(0, 3)), 32 + int(rng.integers(0, 5)), 32 + int(rng.integers(0, 5)))
        _write_case(folder, f"plantiny_{i:03d}", rng, shape)
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "slab": 2},
            "numTraining": n_cases, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(meta, indent=2))
    return folder


def nnunet_env(raw: Path | None, preprocessed: Path | None, results: Path | None, **extra: str) -> dict:
    """The current environment with nnU-Net's folders set (None: unset) and 2 processes."""
    env = dict(os.environ, nnUNet_def_n_proc="2", nnUNet_n_proc_DA="0", **extra)
    for name, value in (("nnUNet_raw", raw), ("nnUNet_preprocessed", preprocessed), ("nnUNet_results", results)):
        env.pop(name, None)
        if value is not None:
            env[name] = str(value)
    return env


def run_cli(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a console script of this venv (``sss-nnunet``, ``nnUNetv2_train``) and capture its output."""
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class Planned:
    raw: Path
    preprocessed: Path
    results: Path
    result: subprocess.CompletedProcess

    @property
    def folder(self) -> Path:
        return self.preprocessed / DATASET_NAME

    @property
    def plans(self) -> dict:
        return json.loads((self.folder / "SSSPlans.json").read_text())

    def env(self, **extra: str) -> dict:
        return nnunet_env(self.raw, self.preprocessed, self.results, **extra)


@pytest.fixture(scope="session")
def raw_root(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("nnUNet_raw")
    write_raw_dataset(raw)
    return raw


@pytest.fixture(scope="session")
def planned(raw_root, tmp_path_factory) -> Planned:
    """``sss-nnunet plan -d 961 -np 2`` (fingerprint, plan, preprocess 2d and 3d_fullres), once."""
    base = tmp_path_factory.mktemp("planned")
    pre, res = base / "nnUNet_preprocessed", base / "nnUNet_results"
    result = run_cli(["sss-nnunet", "plan", "-d", str(DATASET_ID), "-np", "2", "-npfp", "2"],
                     nnunet_env(raw_root, pre, res))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Planned(raw_root, pre, res, result)


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """Helpers for tests (fixtures work in any pytest import mode; conftest imports do not)."""
    return SimpleNamespace(run=run_cli, env=nnunet_env, write_raw=write_raw_dataset, dataset_id=DATASET_ID,
                           dataset_name=DATASET_NAME)


def pytest_collection_modifyitems(config, items):
    """Every test that needs the planned dataset (``planned``, directly or through another fixture) runs the
    whole ``sss-nnunet plan`` in a subprocess first: slow and e2e, out of the quick ``-m "not slow"`` loop."""
    here = Path(__file__).parent
    for item in items:
        if "planned" in getattr(item, "fixturenames", ()) and here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.e2e)
