"""training_scripts/run_training_{synapse,acdc,brats}.sh: dry runs print the stock nnU-Net commands."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sss_nnunet.datasets.specs import SPECS

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"
CASES = [  # script, variant flag, dataset key
    ("run_training_synapse.sh", None, "synapse"),
    ("run_training_synapse.sh", "--btcv13", "btcv"),
    ("run_training_acdc.sh", None, "acdc"),
    ("run_training_brats.sh", None, "brats"),
    ("run_training_brats.sh", "--brats2021", "brats2021"),
]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(tmp_path / var)
    env["nnUNet_extTrainer"] = str(tmp_path / "ext")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # an activated venv
    return env


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # a guard against hangs, not a speed check: the real planning run took ~50 s on a busy 2-core machine
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize(("script", "flag", "key"), CASES)
def test_dry_run_prints_convert_plan_train(script, flag, key, env):
    spec = SPECS[key]
    args = ["--dry-run", "--raw", "/data/raw download"] + ([flag] if flag else [])
    result = run(script, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"sss-nnunet convert {key} --raw /data/raw\\ download -d {spec.dataset_id}",
        f"nnUNetv2_plan_and_preprocess -d {spec.dataset_id} -c 3d_fullres --verify_dataset_integrity --clean",
        f"nnUNetv2_train {spec.dataset_id} 3d_fullres 0 -tr SSSTrainer",
    ]
    assert not (Path(env["nnUNet_raw"])).exists()  # a dry run runs nothing


def test_all_folds_options_and_passthrough(env):
    result = run("run_training_acdc.sh", "-f", "all", "--dry-run", "--raw", "/r", "-tr", "nnUNetTrainer",
                 "-c", "2d", "-d", "42", "-np", "3", "-npfp", "1", "-device", "cpu", "--", "--npz", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sss-nnunet convert acdc --raw /r -d 42 -np 3",
        "nnUNetv2_plan_and_preprocess -d 42 -c 2d --verify_dataset_integrity --clean -np 3 -npfp 1",
    ] + [f"nnUNetv2_train 42 2d {f} -tr nnUNetTrainer -device cpu --npz" for f in range(5)]
    assert "deprecated" not in result.stderr


def test_old_spellings_still_work_with_one_line_each(env):
    result = run("run_training_acdc.sh", "all", "--dry-run", "--raw", "/r", "--trainer", "nnUNetTrainer",
                 "--config", "2d", "--id", "42", "--np", "3", "--", "-device", "cpu", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sss-nnunet convert acdc --raw /r -d 42 -np 3",
        "nnUNetv2_plan_and_preprocess -d 42 -c 2d --verify_dataset_integrity --clean -np 3 -npfp 3",
    ] + [f"nnUNetv2_train 42 2d {f} -tr nnUNetTrainer -device cpu" for f in range(5)]
    notices = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert notices == [
        "run_training_acdc.sh: warning: FOLD as a plain argument is deprecated, use -f all",
        "run_training_acdc.sh: warning: --trainer is deprecated, use -tr",
        "run_training_acdc.sh: warning: --config is deprecated, use -c",
        "run_training_acdc.sh: warning: --id is deprecated, use -d",
        "run_training_acdc.sh: warning: --np is deprecated, use -np N -npfp N",
    ]


def test_existing_dataset_is_not_converted_or_replanned(env):
    folder = SPECS["synapse"].folder_name
    raw = Path(env["nnUNet_raw"]) / folder
    raw.mkdir(parents=True)
    (raw / "dataset.json").write_text("{}")
    result = run("run_training_synapse.sh", "-f", "2", "--dry-run", env=env)  # no --raw needed
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "nnUNetv2_plan_and_preprocess", "nnUNetv2_train"]
    assert "not converting" in result.stderr

    pre = Path(env["nnUNet_preprocessed"]) / folder
    (pre / "nnUNetPlans_3d_fullres").mkdir(parents=True)
    (pre / "nnUNetPlans.json").write_text("{}")
    later = time.time() + 5
    os.utime(pre / "nnUNetPlans.json", (later, later))
    result = run("run_training_synapse.sh", "-f", "2", "--dry-run", env=env)
    assert result.stdout.splitlines() == ["nnUNetv2_train 801 3d_fullres 2 -tr SSSTrainer"]


def test_missing_environment_variables(env):
    del env["nnUNet_raw"], env["nnUNet_results"]
    result = run("run_training_brats.sh", "--dry-run", "--raw", "/r", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nnUNet_raw nnUNet_results not set" in result.stderr
    assert "export nnUNet_preprocessed=" in result.stderr


def test_missing_raw_and_bad_arguments(env):
    result = run("run_training_acdc.sh", "--dry-run", env=env)
    assert result.returncode == 2 and "--raw PATH" in result.stderr and "Dataset803_ACDC" in result.stderr
    for bad in (["-f", "five"], ["five"], ["--bogus"], ["--btcv13"], ["-d", "1000"], ["--id", "1000"], ["--raw"],
                ["-np", "0"], ["-npfp", "x"], ["-tr"]):
        result = run("run_training_acdc.sh", "--dry-run", "--raw", "/r", *bad, env=env)
        assert result.returncode == 2, bad
        assert result.stdout == "", bad


def test_help_and_no_stale_ext_trainer_advice(env):
    """The .pth startup hook makes nnUNet_extTrainer unnecessary: no warning, no advice to set it (issue 24)."""
    for script in {c[0] for c in CASES}:
        result = run(script, "-h", env=env)
        assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}")
        assert "nnUNet_extTrainer" not in result.stdout
    del env["nnUNet_extTrainer"]
    result = run("run_training_synapse.sh", "--dry-run", "--raw", "/r", env=env)
    assert result.returncode == 0, result.stderr
    assert "nnUNet_extTrainer" not in result.stderr


@pytest.mark.parametrize("fold", ["7", "5", "01", "all5"])
def test_fold_outside_0_to_4_is_refused_before_anything(fold, env):
    result = run("run_training_acdc.sh", "-f", fold, "--raw", "/r", env=env)  # not a dry run: nothing may start
    assert result.returncode == 2 and result.stdout == ""
    assert "FOLD must be 0, 1, 2, 3, 4 or 'all'" in result.stderr and "+ " not in result.stderr


def test_misspelt_trainer_is_refused_before_converting(env, raw_tree):
    result = run("run_training_synapse.sh", "--raw", str(raw_tree("synapse")), "-tr", "SSSTrainr", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "trainer 'SSSTrainr' not found" in result.stderr and "did you mean SSSTrainer" in result.stderr
    assert "+ sss-nnunet convert" not in result.stderr
    assert not Path(env["nnUNet_raw"]).exists()


def test_trainer_of_the_user_through_ext_trainer_is_accepted(env, tmp_path):
    ext = Path(env["nnUNet_extTrainer"])
    ext.mkdir()
    (ext / "mine.py").write_text("from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n\n\n"
                                 "class MyOwnTrainer(nnUNetTrainer):\n    pass\n")
    result = run("run_training_acdc.sh", "--dry-run", "--raw", "/r", "-tr", "MyOwnTrainer", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("-tr MyOwnTrainer")


def test_nnunet_folder_with_a_missing_parent_is_refused(env, tmp_path):
    env["nnUNet_preprocessed"] = str(tmp_path / "dtaa" / "nnUNet_preprocessed")
    result = run("run_training_acdc.sh", "--dry-run", "--raw", "/r", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "nnUNet_preprocessed=" in result.stderr and "does not exist" in result.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_real_run_convert_plan_then_train(raw_tree, env, tmp_path):
    """The script for real with the stock nnUNetv2_plan_and_preprocess; nnUNetv2_train is a stub.

    Checks that planning keeps the converter's splits_final.json and never sees a test case.
    """
    import json
    import sys

    from dataset_trees import nnunet_splits

    from sss_nnunet.datasets.specs import paper_splits

    stub_bin, log = tmp_path / "stub_bin", tmp_path / "train_calls.txt"
    stub_bin.mkdir()
    (stub_bin / "nnUNetv2_train").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    (stub_bin / "nnUNetv2_train").chmod(0o755)
    env["PATH"] = os.pathsep.join([str(stub_bin), str(Path(sys.executable).parent), env["PATH"]])
    env["nnUNet_def_n_proc"] = "1"
    raw = raw_tree("synapse")

    result = run("run_training_synapse.sh", "--raw", str(raw), "-np", "1", "-npfp", "1", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert log.read_text().splitlines() == ["801 3d_fullres 0 -tr SSSTrainer"]
    train = sorted(paper_splits()["synapse"]["train_18"])
    pre = Path(env["nnUNet_preprocessed"]) / "Dataset801_Synapse8"
    assert json.loads((pre / "splits_final.json").read_text()) == nnunet_splits(train)
    assert sorted(p.stem for p in (pre / "nnUNetPlans_3d_fullres").glob("*.pkl")) == train
    assert sorted(p.name.removesuffix(".nii.gz") for p in (pre / "gt_segmentations").iterdir()) == train

    again = run("run_training_synapse.sh", "1", "--np", "1", env=env)  # converted and planned: train only
    assert again.returncode == 0, again.stderr[-3000:]
    assert "not converting" in again.stderr and "not planning" in again.stderr
    assert log.read_text().splitlines()[-1] == "801 3d_fullres 1 -tr SSSTrainer"
