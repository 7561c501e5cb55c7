"""evaluation_scripts/run_evaluation_*.sh: dry runs print the expected commands; checks fail clearly."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from sss_nnunet.datasets.specs import SPECS
from tests.conftest import nnunet_subprocess_env

SCRIPTS = Path(__file__).resolve().parents[2] / "evaluation_scripts"
DATASETS = {k: (SPECS[k].dataset_id, SPECS[k].folder_name) for k in ("synapse", "acdc", "brats")}


def nnunet_env(tmp_path: Path, folders=None) -> dict[str, str]:
    for var in ("raw", "preprocessed", "results"):
        (tmp_path / var).mkdir(exist_ok=True)
    env = nnunet_subprocess_env(tmp_path / "raw", tmp_path / "preprocessed", tmp_path / "results")
    for _, name in DATASETS.values() if folders is None else folders:
        for sub in ("imagesTs", "labelsTs"):
            (tmp_path / "raw" / name / sub).mkdir(parents=True, exist_ok=True)
    return env


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / f"run_evaluation_{script}.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("key", sorted(DATASETS))
def test_dry_run_defaults(key, tmp_path):
    env = nnunet_env(tmp_path)
    result = run(key, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    dataset_id, name = DATASETS[key]
    raw = tmp_path / "raw" / name
    out = tmp_path / "results" / name / "SSSTrainer__nnUNetPlans__3d_fullres" / "predictions_imagesTs_fold_0"
    predict, evaluate, show = commands(result.stdout)
    assert predict == [
        "nnUNetv2_predict",
        "-i",
        f"{raw}/imagesTs",
        "-o",
        str(out),
        "-d",
        str(dataset_id),
        "-c",
        "3d_fullres",
        "-tr",
        "SSSTrainer",
        "-p",
        "nnUNetPlans",
        "-f",
        "0",
        "-chk",
        "checkpoint_final.pth",
    ]
    assert evaluate == [
        "sss-nnunet",
        "evaluate",
        "--pred",
        str(out),
        "--gt",
        f"{raw}/labelsTs",
        "--dataset",
        key,
        "--protocol",
        "paper",
        "--method-name",
        "SSSTrainer fold_0",
        "--overwrite",
        "--quiet",
    ]
    assert show == ["cat", f"{out}/evaluation_paper/table.md"]
    assert "no trained model" in result.stderr  # a warning only in a dry run


def test_dry_run_options(tmp_path):
    env = nnunet_env(tmp_path) | {"nnUNet_extTrainer": "/somewhere"}
    result = run(
        "synapse",
        "--dry-run",
        "--ensemble",
        "--trainer",
        "MyTrainer",
        "--config",
        "2d",
        "--plans",
        "nnUNetPlans",
        "--protocol",
        "strict",
        "--device",
        "cpu",
        "--workers",
        "3",
        "--",
        "-npp",
        "1",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    predict, evaluate, show = commands(result.stdout)
    assert predict[predict.index("-f") + 1 : predict.index("-chk")] == ["0", "1", "2", "3", "4"]
    assert predict[predict.index("-tr") + 1] == "MyTrainer" and predict[predict.index("-c") + 1] == "2d"
    assert predict[predict.index("-p") + 1] == "nnUNetPlans" and predict[-4:] == [
        "-device",
        "cpu",
        "-npp",
        "1",
    ]
    assert predict[predict.index("-o") + 1].endswith(
        "MyTrainer__nnUNetPlans__2d/predictions_imagesTs_ensemble"
    )
    assert evaluate[evaluate.index("--protocol") + 1] == "strict" and evaluate[-2:] == ["--workers", "3"]
    assert evaluate[evaluate.index("--method-name") + 1] == "MyTrainer ensemble"
    assert show[1].endswith("predictions_imagesTs_ensemble/evaluation_strict/table.md")
    assert "nnUNet_extTrainer" not in result.stderr

    result = run("acdc", "--dry-run", "--fold", "3", "--output", str(tmp_path / "p"), env=env)
    predict, evaluate, _ = commands(result.stdout)
    assert predict[predict.index("-f") + 1 : predict.index("-chk")] == ["3"]
    assert predict[predict.index("-o") + 1] == str(tmp_path / "p")


def test_help_and_errors(tmp_path):
    env = nnunet_env(tmp_path, folders=[])
    result = run("brats", "-h", env=env)
    assert result.returncode == 0 and "Usage: run_evaluation_brats.sh" in result.stdout
    assert "--ensemble" in result.stdout and "--dry-run" in result.stdout

    bare = {k: v for k, v in env.items() if not k.startswith("nnUNet_")}
    result = run("synapse", "--dry-run", env=bare)
    assert result.returncode == 2
    assert "nnUNet_raw nnUNet_preprocessed nnUNet_results not set" in result.stderr
    assert not result.stdout

    result = run("synapse", "--dry-run", env=env)
    assert result.returncode == 2 and "no Dataset801_* folder in nnUNet_raw" in result.stderr

    env = nnunet_env(tmp_path)
    result = run("synapse", env=env)  # not a dry run: the model must exist
    assert result.returncode == 2 and "no trained model" in result.stderr and not result.stdout
    result = run("synapse", "--protocol", "loose", env=env)
    assert result.returncode == 2 and "--protocol must be paper or strict" in result.stderr
    result = run("synapse", "--bogus", env=env)
    assert result.returncode == 2 and "unknown argument: --bogus" in result.stderr
