"""``sss-nnunet slurm``: the generated scripts run for real on a single-node SLURM started by the test
(tests/scale/slurm_cluster.py): an array of three tiny trainings (folds 0-2) and the dependent
``nnUNetv2_find_best_configuration`` job. Task 1 is requeued by ``scontrol requeue`` (SLURM sends
SIGTERM), task 2 gets the time-limit warning (SIGUSR1 to the batch shell, as ``--signal=B:USR1@...``
would send it); both checkpoint, are requeued and continue with ``--c`` from the interrupted epoch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sss_nnunet.cli import main as cli
from tests.scale.runs import EXT, env_for
from tests.scale.slurm_cluster import LocalSlurm, missing

RESULTS = Path("Dataset977_Tiny") / "ScaleTestTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture
def plans_only(tmp_path, monkeypatch) -> Path:
    """nnUNet_preprocessed with nothing but Dataset977_Tiny/nnUNetPlans.json (all that the generator reads)."""
    folder = tmp_path / "preprocessed" / "Dataset977_Tiny"
    folder.mkdir(parents=True)
    (folder / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}, "2d": {}}}))
    for var in ("nnUNet_raw", "nnUNet_results"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    monkeypatch.setenv("nnUNet_extTrainer", str(EXT))
    return tmp_path


def test_bad_input_is_one_line(plans_only, tmp_path, capsys):
    cases = [(["-d", "977", "-c", "3d_lowres"], "has no configuration 3d_lowres"),
             (["-d", "976", "-c", "3d_fullres"], "-d 976"),
             (["-d", "977", "-c", "3d_fullres", "-tr", "NoSuchTrainer"], "-tr NoSuchTrainer"),
             (["-d", "977", "-c", "3d_fullres", "--nodes", "0"], "--nodes 0"),
             (["-d", "977", "-c", "3d_fullres", "--folds", "0", "0"], "--folds 0 0"),
             (["-d", "977", "-c", "3d_fullres", "-p", "Missing"], "Missing.json does not exist")]
    for words, expected in cases:
        assert cli(["slurm", *words, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_generated_scripts(plans_only, tmp_path):
    assert cli(["slurm", "-d", "977", "-c", "3d_fullres", "2d", "-tr", "ScaleTestTrainer", "-f", "1", "3",
                "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu", "--time", "2:00:00",
                "--sbatch=--constraint=a100", "--signal-lead", "600", "-o", str(tmp_path / "out")]) == 0
    train = (tmp_path / "out" / "train_folds.sbatch").read_text()
    for line in ("#SBATCH --array=0-3", "CONFIGS=(3d_fullres 2d)",
                 "#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --requeue",
                 "#SBATCH --signal=B:USR1@600", "#SBATCH --partition=gpu", "#SBATCH --time=2:00:00",
                 "#SBATCH --constraint=a100", "FOLDS=(1 3)", "--nproc-per-node 4", "-device cuda --c --npz"):
        assert line in train, line
    best = (tmp_path / "out" / "find_best.sbatch").read_text()
    assert "nnUNetv2_find_best_configuration Dataset977_Tiny -c 3d_fullres 2d -tr ScaleTestTrainer" in best
    assert "-f 1 3" in best
    for script in ("train_folds.sbatch", "find_best.sbatch", "submit.sh"):
        assert subprocess.run(["bash", "-n", str(tmp_path / "out" / script)]).returncode == 0


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def training_log(results: Path, fold: int) -> str:
    return "".join(p.read_text() for p in sorted((results / RESULTS / f"fold_{fold}").glob("training_log_*")))


def requeue_and_release(slurm: LocalSlurm, task: str, interrupt) -> None:
    """``interrupt()`` the running ``task``, then make its requeued run eligible at once (SLURM delays it)."""
    before = int(slurm.job(task).get("Restarts", "0"))
    interrupt()
    slurm.wait(lambda: int(slurm.job(task).get("Restarts", "0")) > before
               and slurm.job(task).get("JobState") == "PENDING", 300, f"requeue of {task}")
    slurm.wait(lambda: slurm.run("scontrol", "update", f"JobId={task}", "StartTime=now").returncode == 0,
               60, f"release of {task}")


@pytest.mark.slow
@pytest.mark.e2e
def test_array_with_requeues_then_find_best(planned, slurm, tmp_path):
    results, out = tmp_path / "results", tmp_path / "jobs"
    env = {**env_for(planned, results, tmp_path / "dump", SCALE_TEST_EPOCHS="3", SCALE_TEST_STEP_SECONDS="0.5"),
           **{k: slurm.env[k] for k in ("SLURM_CONF", "PATH")}}
    res = subprocess.run([sys.executable, "-m", "sss_nnunet.cli", "slurm", "-d", "977", "-c", "3d_fullres",
                          "-tr", "ScaleTestTrainer", "--folds", "0", "1", "2", "-device", "cpu", "--time", "30:00",
                          "--cpus-per-task", "1", "--out", str(out), "--submit"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    train, best = re.search(r"training array job (\d+), find_best_configuration job (\d+)", res.stdout).groups()
    assert slurm.job(best).get("Dependency", "").startswith(f"afterok:{train}")

    def in_epoch_1(fold: int):
        return lambda: "Epoch 1" in training_log(results, fold)

    slurm.wait(in_epoch_1(1), 600, "fold 1 in epoch 1")
    requeue_and_release(slurm, f"{train}_1", lambda: slurm.run("scontrol", "requeue", f"{train}_1"))
    slurm.wait(in_epoch_1(2), 600, "fold 2 in epoch 1")
    requeue_and_release(slurm, f"{train}_2",
                        lambda: slurm.run("scancel", "--batch", "--signal=USR1", f"{train}_2"))
    slurm.wait(lambda: slurm.job(best).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 1200,
               "the find_best_configuration job")
    logs = {p.name: p.read_text() for p in (out / "logs").iterdir()}
    if slurm.job(best)["JobState"] != "COMPLETED":  # what SLURM itself says: the jobs and its controller's log
        ctld = [line for line in (slurm.dir / "slurmctld.log").read_text().splitlines() if "debug" not in line]
        pytest.fail("\n".join([f"--- {k}\n{v[-2500:]}" for k, v in logs.items()]
                              + ["--- scontrol show job", slurm.run("scontrol", "show", "job").stdout,
                                 "--- slurmctld.log", *ctld[-80:]]))

    for fold, signal in ((1, "SIGTERM"), (2, "SIGUSR1")):
        text = training_log(results, fold)
        assert f"preempted ({signal}) in epoch 1" in text
        assert "continuing from checkpoint_latest.pth" in text
        resumed = text.split("continuing from checkpoint_latest.pth")[1]
        assert "Epoch 1" in resumed and "Epoch 0" not in resumed
    task2 = next(v for k, v in logs.items() if k.endswith(f"_{train}_2.out"))
    assert "SIGUSR1, asking the training to checkpoint" in task2 and "requeued" in task2
    assert "preempted" not in training_log(results, 0)  # a signal for task 2 reaches task 2 only
    for fold in (0, 1, 2):
        assert (results / RESULTS / f"fold_{fold}" / "checkpoint_final.pth").is_file()
        assert (results / RESULTS / f"fold_{fold}" / "validation" / "summary.json").is_file()
    assert (results / "Dataset977_Tiny" / "inference_instructions.txt").is_file()
    assert "nnUNetv2_predict" in next(v for k, v in logs.items() if "-best_" in k)  # its instructions, printed
