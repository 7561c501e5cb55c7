"""evaluation_scripts/run_evaluation_*.sh: dry runs print the expected commands; checks fail clearly."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sss_nnunet.datasets.specs import SPECS

SCRIPTS = Path(__file__).resolve().parents[2] / "evaluation_scripts"
DATASETS = {k: (SPECS[k].dataset_id, SPECS[k].folder_name) for k in ("synapse", "acdc", "brats")}


def nnunet_env(tmp_path: Path, folders=None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # an activated venv
    for var in ("raw", "preprocessed", "results"):
        env[f"nnUNet_{var}"] = str(tmp_path / var)
        (tmp_path / var).mkdir(exist_ok=True)
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
        "-d",
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
    ext = tmp_path / "ext"  # the user's own trainer, found through nnUNet_extTrainer
    ext.mkdir()
    (ext / "my_trainer.py").write_text("from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n\n\n"
                                       "class MyTrainer(nnUNetTrainer):\n    pass\n")
    env = nnunet_env(tmp_path) | {"nnUNet_extTrainer": str(ext)}
    result = run(
        "synapse",
        "--dry-run",
        "--ensemble",
        "-tr",
        "MyTrainer",
        "-c",
        "2d",
        "-p",
        "nnUNetPlans",
        "--protocol",
        "strict",
        "-device",
        "cpu",
        "-np",
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
    assert evaluate[evaluate.index("--protocol") + 1] == "strict" and evaluate[-2:] == ["-np", "3"]
    assert evaluate[evaluate.index("--method-name") + 1] == "MyTrainer ensemble"
    assert show[1].endswith("predictions_imagesTs_ensemble/evaluation_strict/table.md")
    assert "nnUNet_extTrainer" not in result.stderr

    for args in (["-f", "3", "-o", str(tmp_path / "p")], ["--fold", "3", "--output", str(tmp_path / "p")]):
        result = run("acdc", "--dry-run", *args, env=env)
        predict, evaluate, _ = commands(result.stdout)
        assert predict[predict.index("-f") + 1 : predict.index("-chk")] == ["3"]
        assert predict[predict.index("-o") + 1] == str(tmp_path / "p")
        notices = [line for line in result.stderr.splitlines() if "deprecated" in line]
        assert notices == ([] if args[0] == "-f" else [
            "run_evaluation_acdc.sh: warning: --fold is deprecated, use -f",
            "run_evaluation_acdc.sh: warning: --output is deprecated, use -o"])


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


def test_bad_fold_and_trainer_are_refused_first(tmp_path):
    """Checked before the dataset and the model, and before nnUNetv2_predict runs (issue 24)."""
    env = nnunet_env(tmp_path)
    for fold in ("7", "5", "-1"):
        result = run("synapse", "-f", fold, env=env)
        assert result.returncode == 2 and not result.stdout
        assert "-f must be 0, 1, 2, 3, 4 or 'all'" in result.stderr
    result = run("synapse", "-tr", "SSSTrainr", "--dry-run", env=env)
    assert result.returncode == 2 and not result.stdout
    assert "trainer 'SSSTrainr' not found" in result.stderr and "SSSTrainer" in result.stderr


def test_help_gives_no_stale_ext_trainer_advice(tmp_path):
    env = nnunet_env(tmp_path)
    result = run("synapse", "-h", env=env)
    assert result.returncode == 0 and "nnUNet_extTrainer" not in result.stdout
    result = run("synapse", "--dry-run", env={k: v for k, v in env.items() if k != "nnUNet_extTrainer"})
    assert result.returncode == 0 and "nnUNet_extTrainer" not in result.stderr
