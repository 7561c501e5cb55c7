"""Fixtures of the attention tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def results(tmp_path, monkeypatch):
    """nnU-Net's three folders for this test (nnunetv2 reads them from the environment when used)."""
    for name in ("raw", "preprocessed", "results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))
    return tmp_path / "results"
