"""Fixtures: private copies of the miniature raw trees, an nnU-Net environment, the CLI.

Trees are built once per session (dataset_trees.py) and copied into each test's tmp_path.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_trees import BUILDERS

from sss_nnunet.cli import main


@pytest.fixture(scope="session")
def _pristine(tmp_path_factory) -> Callable[[str], tuple[Path, Path]]:
    built: dict[str, tuple[Path, Path]] = {}

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in built:
            base = tmp_path_factory.mktemp(f"pristine_{kind}")
            built[kind] = (base, BUILDERS[kind](base))
        return built[kind]
    return get


@pytest.fixture
def raw_tree(_pristine, tmp_path) -> Callable[[str], Path]:
    """``raw_tree(kind)``: a private copy of a pristine raw tree; returns the ``--raw`` path."""
    def copy(kind: str) -> Path:
        base, raw = _pristine(kind)
        shutil.copytree(base, tmp_path / f"raw_{kind}")
        return tmp_path / f"raw_{kind}" / raw.relative_to(base)
    return copy


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results pointing into tmp_path."""
    env = {v: tmp_path / v for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for var, path in env.items():
        monkeypatch.setenv(var, str(path))
    return env


@pytest.fixture
def convert(capsys) -> Callable[..., tuple[int, str, str]]:
    """``convert("synapse", "--raw", path, ...)`` through the CLI -> (exit code, stdout, stderr).

    Runs with ``-np 1`` unless the arguments say otherwise.
    """
    def run(*args) -> tuple[int, str, str]:
        argv = ["convert", *map(str, args)]
        if "-np" not in argv and "--workers" not in argv:
            argv += ["-np", "1"]
        capsys.readouterr()
        rc = main(argv)
        out, err = capsys.readouterr()
        return rc, out, err
    return run
