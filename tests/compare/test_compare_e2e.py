"""`sss-nnunet compare` end to end through the console scripts on a tiny dataset.

Stock nnUNetTrainer (under the budget), the SSSTrainer_tiny variant and a user's trainer that
crashes in its first training step: the two good rows have finite numbers, the crash is reported
with its log and does not stop the others; a second run skips what is done.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SSS_NNUNET
from tests.trainers.stock import stock_env
from tests.trainers.tiny_dataset import write_tiny_dataset

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SSS = SSS_NNUNET
BUDGET = ["--iterations", "3", "--iterations-per-epoch", "2", "--val-iterations", "1", "--disable-tta",
          "--device", "cpu"]


def compare(env: dict, out: Path, *trainers: str) -> subprocess.CompletedProcess:
    cmd = [SSS, "compare", "-d", "977", "-tr", *trainers, *BUDGET, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    env = stock_env(root)
    write_tiny_dataset(root / "raw", 977, n_train=6, n_test=2)
    user = root / "user_trainers"
    user.mkdir()
    (user / "my_trainers.py").write_text(textwrap.dedent("""
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        class CrashingTrainer(nnUNetTrainer):
            def train_step(self, batch):
                raise RuntimeError("boom: this trainer always fails")
    """))
    env["nnUNet_extTrainer"] = str(user)
    out = root / "out"
    res = compare(env, out, "nnUNetTrainer", "CrashingTrainer", "SSSTrainer_tiny")
    return env, out, res


def test_both_rows_have_finite_numbers_and_the_crash_is_reported(first_run):
    _, out, res = first_run
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]  # one trainer failed
    data = json.loads((out / "compare.json").read_text())
    rows = {r["trainer"]: r for r in data["rows"]}
    assert list(rows) == ["nnUNetTrainer", "CrashingTrainer", "SSSTrainer_tiny"]
    assert data["settings"]["budget"] == {"epochs": 2, "iterations_per_epoch": 2, "val_iterations_per_epoch": 1,
                                          "iterations": 4}
    for name in ("nnUNetTrainer", "SSSTrainer_tiny"):
        row = rows[name]
        assert row["status"] == "ok", row["status"]
        a = row["aggregate"]
        assert a["parameters"]["mean"] > 1000 and a["seconds_per_iteration"]["mean"] > 0
        assert a["peak_memory_bytes"]["mean"] > 50e6 and a["seconds_per_case"]["mean"] > 0
        values = [a["mean_dice"]["mean"], a["mean_hd95"]["mean"]] + [a["dice"][k]["mean"] for k in ("1", "2")]
        assert all(math.isfinite(v) for v in values) and 0 <= a["mean_dice"]["mean"] <= 1
        stats = row["runs"][0]["stats"]  # the budget applied to stock and our trainer alike
        assert stats["budget"]["epochs"] == 2 and stats["seed"] == 0 and stats["base_trainer"] == name
        assert len(stats["curves"]["train_losses"]) == 2 and len(stats["train_seconds_per_epoch"]) == 2
        assert len(list((out / "runs" / "seed0" / name / "predictions").glob("*.nii.gz"))) == 2
    crash = rows["CrashingTrainer"]
    assert crash["aggregate"] == {} and "FAILED at train" in crash["status"]
    log = Path(crash["runs"][0]["log"])
    assert "boom: this trainer always fails" in log.read_text()
    md = (out / "compare.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 4 and table[0].startswith(
        "| trainer | status | recipe | converged | Δ Dice vs nnUNetTrainer [95 % CI] | Δ HD95 (mm) [95 % CI] | "
        "params (M) | train s/it")
    cells = {line.split(" | ")[0][2:]: line.split(" | ") for line in table[1:]}  # table[0]: the header
    assert cells["nnUNetTrainer"][2].startswith("own: SGD lr 0.01")  # each trainer its own recipe (--recipe own)
    assert cells["SSSTrainer_tiny"][2].startswith("own: AdamW lr 0.001")
    assert "too few runs" in cells["SSSTrainer_tiny"][4]  # one seed: a difference, but no verdict
    verdicts = {(v["row"], v["metric"]): v for v in data["verdicts"]}
    assert set(verdicts) == {(r, m) for r in ("CrashingTrainer", "SSSTrainer_tiny") for m in ("dice", "hd95")}
    assert verdicts[("CrashingTrainer", "dice")]["mean_diff"] is None  # no finished run to pair
    tiny = verdicts[("SSSTrainer_tiny", "dice")]
    assert tiny["n_cases"] == 2 and tiny["n_seeds"] == 1
    assert str(log) in md and "RuntimeError: boom" in crash["status"]  # the error itself, not the follow-ups
    assert "[compare 2/3] CrashingTrainer seed 0: FAILED at train" in res.stdout
    assert "ETA" in res.stdout and "elapsed" in res.stdout
    for png in ("compare.png", "curves.png"):
        assert (out / png).stat().st_size > 1000


def test_second_run_skips_what_is_done(first_run):
    env, out, _ = first_run
    log = out / "runs" / "seed0" / "nnUNetTrainer" / "train.log"
    before = log.stat().st_mtime_ns
    res = compare(env, out, "nnUNetTrainer", "SSSTrainer_tiny")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("already done, skipped") == 2
    assert "train (" not in res.stdout and log.stat().st_mtime_ns == before
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["trainer"] for r in rows] == ["nnUNetTrainer", "SSSTrainer_tiny"]
    assert all(r["status"] == "ok" for r in rows)


def test_other_budget_in_the_same_folder_is_refused(first_run):
    env, out, _ = first_run
    cmd = [SSS, "compare", "-d", "977", "-tr", "nnUNetTrainer", "--iterations", "5", "--device", "cpu",
           "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "other settings" in res.stderr and "--overwrite" in res.stderr
    assert os.path.exists(out / "runs" / "seed0" / "nnUNetTrainer" / "result.json")


def test_restore_from_the_reports_json_trains_nothing(first_run, tmp_path):
    """The run folders lost (another machine, a new session): compare.json alone brings back the
    finished runs, with the same numbers, the data digest checked."""
    env, out, _ = first_run
    archive = tmp_path / "compare.json"
    archive.write_text((out / "compare.json").read_text())
    fresh = tmp_path / "fresh"
    cmd = [SSS, "compare", "-d", "977", "-tr", "nnUNetTrainer", "SSSTrainer_tiny", *BUDGET, "--out", str(fresh),
           "--restore", str(archive)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"restored 2 finished run(s) from {archive}" in res.stdout
    assert res.stdout.count("already done, skipped") == 2 and "train (" not in res.stdout
    data = json.loads((fresh / "compare.json").read_text())
    old = {r["trainer"]: r for r in json.loads(archive.read_text())["rows"]}
    for row in data["rows"]:
        assert row["aggregate"]["mean_dice"] == old[row["trainer"]]["aggregate"]["mean_dice"]
    assert data["settings"]["data"] == json.loads(archive.read_text())["settings"]["data"]
    assert "code of the runs: 0." in (fresh / "compare.md").read_text()
