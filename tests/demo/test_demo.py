"""`sss-nnunet demo`: isolated nnU-Net folders, refusal to clobber, and a tiny run end to end."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from sss_nnunet import demo
from sss_nnunet.errors import SSSError
from tests.conftest import SSS_NNUNET


def test_child_environment_points_into_the_workdir(tmp_path):
    parent = {"nnUNet_raw": "/real/raw", "PATH": "/bin"}
    env = demo.demo_env(tmp_path, use_env=False, base=parent)
    for var in demo.NNUNET_VARS:
        assert Path(env[var]).parent == tmp_path.resolve()
    assert parent == {"nnUNet_raw": "/real/raw", "PATH": "/bin"}  # the user's environment is untouched
    assert env["PATH"] == "/bin" and env["nnUNet_def_n_proc"] == "2"


def test_use_env_keeps_the_users_folders_and_needs_them():
    mine = {v: f"/data/{v}" for v in demo.NNUNET_VARS}
    assert {v: demo.demo_env(Path("w"), True, base=mine)[v] for v in demo.NNUNET_VARS} == mine
    with pytest.raises(SSSError, match="nnUNet_results is not set"):
        demo.demo_env(Path("w"), True, base={"nnUNet_raw": "/a", "nnUNet_preprocessed": "/b"})


def _args(tmp_path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--workdir", str(tmp_path)])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_an_earlier_run_is_not_overwritten(tmp_path):
    earlier = tmp_path / "nnUNet_results" / "Dataset990_SSSDemo"
    earlier.mkdir(parents=True)
    (earlier / "model.pth").write_text("keep me")
    with pytest.raises(SSSError, match="--overwrite"):
        demo.run(_args(tmp_path))
    assert (earlier / "model.pth").read_text() == "keep me"
    assert not (tmp_path / "nnUNet_raw").exists()


def test_earlier_demo_output_is_not_deleted_without_overwrite(tmp_path, monkeypatch):
    """Only demo_output of an earlier run is left (nnU-Net folders elsewhere, e.g. --use-env): still refused."""
    earlier = tmp_path / "demo_output" / "evaluation"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text("keep me")

    def no_generation(*a, **k):
        raise AssertionError("the demo started although an earlier run is in the workdir")

    monkeypatch.setattr(demo.synthetic, "write_synthetic_dataset", no_generation)
    with pytest.raises(SSSError, match="--overwrite") as err:
        demo.run(_args(tmp_path))
    assert "demo_output" in str(err.value)
    assert (earlier / "summary.json").read_text() == "keep me"


def test_dice_table():
    summary = {"classes": {"1": {"name": "liver", "dice_mean": 0.95, "dice_std": 0.01, "n_cases": 6, "n_missed": 0},
                           "5": {"name": "gallbladder", "dice_mean": 0.7, "dice_std": 0.2, "n_cases": 6,
                                 "n_missed": 1}},
               "mean": {"dice": 0.825}}
    lines = demo.dice_table(summary).splitlines()
    assert lines[1].split() == ["liver", "0.950", "0.010", "6", "0"]
    assert lines[-1].split() == ["mean", "0.825"]


@pytest.mark.slow
@pytest.mark.e2e
def test_tiny_demo_runs_every_step(tmp_path):
    """The whole demo with 4 training / 2 test cases and the test trainer for 10 epochs of 2 iterations, which
    must learn the liver (the largest organ): measured 0.838 +- 0.025 over the 2 test cases on 2 busy cores, and
    0.807-0.844 in 4 more runs of this command (2026-12-07, idle cores; the run is unseeded); spleen and
    gallbladder are not learned yet after 20 iterations; all-background would give 0."""
    cmd = [SSS_NNUNET, "demo", "--workdir", str(tmp_path), "--train-cases", "4",
           "--test-cases", "2", "-tr", "SSSTrainer_tiny"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "SSS_TINY_EPOCHS": "10"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for step in ("[1/6] generate", "[2/6] plan", "[3/6] train", "[4/6] predict", "[5/6] evaluate", "[6/6] results"):
        assert step in res.stdout
    out = tmp_path / "demo_output"
    for f in ("evaluation/summary.json", "evaluation/dice.png", "evaluation/table.md", "slices.png",
              "logs/train.log"):
        assert (out / f).stat().st_size > 0, f
    assert len(list((out / "predictions").glob("*.nii.gz"))) == 2
    assert "liver" in res.stdout and "mean" in res.stdout
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    liver = next(c for c in summary["classes"].values() if c["name"] == "liver")
    assert liver["n_cases"] == 2 and liver["dice_mean"] > 0.5, summary["classes"]
