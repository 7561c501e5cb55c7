"""benchmarks/evidence.sh with a stand-in for sss-nnunet: which compare commands a piece runs, in
which order, and which finished runs a ladder piece reuses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "evidence.sh"
STUB = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1" = convert ]; then mkdir -p "$nnUNet_raw/Dataset999_$2"; fi
"""


def _run(tmp_path: Path, *pieces: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    stub = tmp_path / "sss"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    env = {**os.environ, "SSS": str(stub), "WORK": str(tmp_path / "work"), "CALLS": str(calls)}
    proc = subprocess.run(["bash", str(SCRIPT), *pieces], env=env, capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines()


def test_ladder_runs_rung_by_rung_then_the_whole_table_and_reuses_the_sss_piece(tmp_path):
    src = tmp_path / "work" / "c3d_sss" / "runs" / "seed1" / "SSSTrainer__sss"
    src.mkdir(parents=True)
    (src / "result.json").write_text(json.dumps({"status": "ok"}))
    unfinished = tmp_path / "work" / "c3d_sss" / "runs" / "seed1" / "nnUNetTrainer__sss"
    unfinished.mkdir(parents=True)  # no result.json: not copied
    proc, calls = _run(tmp_path, "ladder-c3d")
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "convert context"
    compares = [c for c in calls if c.startswith("compare")]
    rows = [c.split(" -tr ")[1].split(" --recipe")[0] for c in compares]
    assert rows[:8] == [f"nnUNetTrainer SSSTrainer_L{i}" for i in range(7)] + ["nnUNetTrainer SSSTrainer"]
    assert rows[8] == "nnUNetTrainer " + " ".join(f"SSSTrainer_L{i}" for i in range(7)) + " SSSTrainer"
    assert len(rows) == 9 and all("--out " + str(tmp_path / "work" / "ladder_c3d") in c for c in compares)
    assert all("--recipe sss" in c and "--iterations 500" in c and "--seeds 0 1 2" in c for c in compares)
    dst = tmp_path / "work" / "ladder_c3d" / "runs" / "seed1"
    assert (dst / "SSSTrainer__sss" / "result.json").exists()
    assert not (dst / "nnUNetTrainer__sss").exists()


@pytest.mark.parametrize(("piece", "dataset", "recipe"), [("c3d-nnunet", "991", "nnunet"), ("demo-sss", "990", "sss")])
def test_four_row_pieces(tmp_path, piece, dataset, recipe):
    proc, calls = _run(tmp_path, piece)
    assert proc.returncode == 0, proc.stderr
    (compare,) = [c for c in calls if c.startswith("compare")]
    assert f"-d {dataset} " in compare and f"--recipe {recipe} " in compare
    assert " -tr nnUNetTrainer nnUNetTrainer:nnUNetResEncUNetMPlans SSSTrainer SSSTrainer_globalOnly " in compare


def test_unknown_piece(tmp_path):
    proc, calls = _run(tmp_path, "nope")
    assert proc.returncode == 2 and "unknown piece 'nope'" in proc.stderr and calls == []
