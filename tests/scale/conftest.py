"""The tiny dataset of tests/trainers, planned once (3d_fullres) for every tests/scale module."""

from __future__ import annotations

import pytest

from tests.trainers.stock import run_stock, stock_env
from tests.trainers.tiny_dataset import write_tiny_dataset


@pytest.fixture(scope="session")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    write_tiny_dataset(root / "raw")
    res = run_stock(["nnUNetv2_plan_and_preprocess", "-d", "977", "-c", "3d_fullres", "-np", "1", "-npfp", "1"],
                    stock_env(root))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return root
