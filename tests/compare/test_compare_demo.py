"""`sss-nnunet demo --compare`: nnUNetTrainer beside the demo trainer at the demo trainer's budget."""

from __future__ import annotations

import json
import subprocess

import pytest

from sss_nnunet.compare.budget import Budget
from sss_nnunet.compare.demo import DEFAULT_BUDGET, trainer_budget
from tests.conftest import SSS_NNUNET


def test_budget_comes_from_the_demo_trainer(monkeypatch):
    assert trainer_budget("SSSTrainer_demo") == Budget(22, 25, 2)
    monkeypatch.setenv("SSS_TINY_EPOCHS", "3")
    assert trainer_budget("SSSTrainer_tiny") == Budget(3, 2, 1)
    assert trainer_budget("nnUNetTrainer") == DEFAULT_BUDGET  # sets no budget of its own


@pytest.mark.slow
@pytest.mark.e2e
def test_demo_compare_runs_both_trainers(tmp_path):
    cmd = [SSS_NNUNET, "demo", "--workdir", str(tmp_path), "--train-cases", "4",
           "--test-cases", "1", "--trainer", "SSSTrainer_tiny", "--compare"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                         env={**__import__("os").environ, "SSS_TINY_EPOCHS": "1", "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "[3/6] compare SSSTrainer_tiny and nnUNetTrainer at the same budget" in res.stdout
    data = json.loads((tmp_path / "demo_output" / "compare" / "compare.json").read_text())
    assert [r["trainer"] for r in data["rows"]] == ["SSSTrainer_tiny", "nnUNetTrainer"]
    assert all(r["status"] == "ok" for r in data["rows"])
    assert data["settings"]["budget"]["iterations"] == 2  # SSSTrainer_tiny: 1 epoch x 2 iterations
    assert "| nnUNetTrainer | ok |" in res.stdout
