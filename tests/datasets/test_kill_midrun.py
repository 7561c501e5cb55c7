"""SIGKILL in the middle of `sss-nnunet convert` and `sss-nnunet evaluate`: nothing half-written is left
where a reader (nnU-Net, the user) would take it for complete, and the previous output survives.

The commands run in a subprocess; the step being interrupted is slowed down (a sleep after each call of
one function) so that the kill lands inside it every time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dataset_trees import load_json

from tests.trainers.stock import kill_when, python_with_delay

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
NAME = "Dataset801_Synapse8"


def _cli(*args) -> list[str]:
    return [str(Path(sys.executable).parent / "sss-nnunet"), *map(str, args)]


def _partials(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.partial")) if folder.exists() else []


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _convert_killed(raw: Path, env: dict, *extra: str) -> None:
    raw_base = Path(env["nnUNet_raw"])

    def half_converted() -> bool:
        return any(len(list((p / "imagesTr").glob("*.nii.gz"))) >= 3 for p in _partials(raw_base, NAME))

    argv = python_with_delay("sss_nnunet.datasets.writer", "convert_case", 0.3)
    argv += ["convert", "synapse", "--raw", str(raw), "-np", "1", *extra]
    assert kill_when(argv, env, half_converted, timeout=600), "convert ended before the kill point"


def test_convert_killed_mid_run(raw_tree, nnunet_env):
    raw, env = raw_tree("synapse"), dict(os.environ)
    _convert_killed(raw, env)
    raw_base, pre_base = nnunet_env["nnUNet_raw"], nnunet_env["nnUNet_preprocessed"]
    # only a hidden, temporary folder: nnU-Net and `convert` do not see a dataset
    assert [p.name for p in raw_base.iterdir() if not p.name.startswith(".")] == []
    assert not (pre_base / NAME / "splits_final.json").exists()
    from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets
    assert len(find_candidate_datasets(801)) == 0

    # the next run converts the whole dataset
    import subprocess
    res = subprocess.run(_cli("convert", "synapse", "--raw", raw, "-np", "1"), env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(list((raw_base / NAME / "imagesTr").glob("*.nii.gz"))) == 18
    assert load_json(pre_base / NAME / "splits_final.json") == load_json(raw_base / NAME / "splits_final.json")


def test_convert_overwrite_killed_mid_run_keeps_the_old_dataset_and_split(raw_tree, nnunet_env):
    raw, env = raw_tree("synapse"), dict(os.environ)
    import subprocess
    res = subprocess.run(_cli("convert", "synapse", "--raw", raw, "-np", "1"), env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    folder = nnunet_env["nnUNet_raw"] / NAME
    split = nnunet_env["nnUNet_preprocessed"] / NAME / "splits_final.json"
    before, split_before = _files(folder), split.read_bytes()
    for n in ("0005", "0006"):  # the new run would make another split
        (raw / "Training" / "img" / f"img{n}.nii.gz").unlink()
        (raw / "Training" / "label" / f"label{n}.nii.gz").unlink()
    _convert_killed(raw, env, "--overwrite", "--allow-missing")
    assert _files(folder) == before
    assert split.read_bytes() == split_before
    assert [p.name for p in split.parent.iterdir() if not p.name.startswith(".")] == ["splits_final.json"]


def _label_maps(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        array = np.zeros((24, 40, 40), np.uint8)
        for label in range(1, 9):
            z, y, x = rng.integers(0, [18, 32, 32])
            array[z:z + 5, y:y + 7, x:x + 7] = label
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 2.5))
        sitk.WriteImage(image, str(folder / f"case_{i:03d}.nii.gz"))


@pytest.mark.parametrize("phase", ["scoring", "writing"])
def test_evaluate_killed_mid_run(tmp_path, phase):
    """Killed while scoring the cases, or while writing the output files: no output folder appears, and an
    earlier evaluation that --overwrite was replacing is still there, complete."""
    pred, gt, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "evaluation"
    _label_maps(pred, 8, 0)
    _label_maps(gt, 8, 1)
    args = ["evaluate", "--pred", pred, "--gt", gt, "-d", "synapse", "--protocol", "strict",
            "--out", out, "-np", "1"]
    import subprocess
    res = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    earlier = _files(out)
    assert json.loads((out / "summary.json").read_text())["n_cases"] == 8
    log = tmp_path / "log.txt"
    if phase == "scoring":
        argv = python_with_delay("sss_nnunet.evaluation.evaluate", "evaluate_case", 0.5)

        def ready() -> bool:
            return "3/7" in log.read_text(errors="replace")  # the progress bar: 3 of the 7 cases scored
    else:
        argv = python_with_delay("sss_nnunet.evaluation.cli", "atomic_write_text", 0.5)

        def ready() -> bool:
            return any((p / "metrics.csv").exists() for p in _partials(tmp_path, "evaluation"))
    (gt / "case_000.nii.gz").unlink()  # the new run would differ
    (pred / "case_000.nii.gz").unlink()
    assert kill_when(argv + [str(a) for a in args] + ["--overwrite"], dict(os.environ), ready, timeout=600, log=log)
    assert _files(out) == earlier
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["evaluation", "gt", "log.txt",
                                                                                      "pred"]
    # and without an earlier evaluation, nothing at all appears under the output name
    other = tmp_path / "evaluation_new"
    args[args.index(out)] = other
    log.write_text("")
    assert kill_when(argv + [str(a) for a in args], dict(os.environ), ready if phase == "scoring" else
                     (lambda: any((p / "metrics.csv").exists() for p in _partials(tmp_path, "evaluation_new"))),
                     timeout=600, log=log)
    assert not other.exists()


# ----------------------------------------------------------------------------- issue 24, row 8
def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def test_next_convert_removes_what_a_killed_run_left(raw_tree, nnunet_env):
    """The hidden .partial folder and the staged split of a killed convert are removed by the next run, which
    says so."""
    import subprocess
    raw, env = raw_tree("synapse"), dict(os.environ)
    _convert_killed(raw, env)
    raw_base, pre_base = nnunet_env["nnUNet_raw"], nnunet_env["nnUNet_preprocessed"]
    assert any(n.endswith(".partial") for n in _hidden(raw_base))  # what the kill left
    assert any(n.endswith(".staged") for n in _hidden(pre_base))
    res = subprocess.run(_cli("convert", "synapse", "--raw", raw, "--workers", "1"), env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "left by an interrupted earlier run" in res.stderr
    assert [n for n in _hidden(raw_base) if n != ".sss-nnunet-output.json"] == []
    assert _hidden(pre_base) == []


def test_next_evaluate_removes_what_a_killed_run_left(tmp_path):
    import subprocess
    pred, gt, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "evaluation"
    _label_maps(pred, 8, 0)
    _label_maps(gt, 8, 1)
    args = [str(a) for a in ("evaluate", "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", out,
                             "--workers", "1")]
    argv = python_with_delay("sss_nnunet.evaluation.cli", "atomic_write_text", 0.5)
    assert kill_when(argv + args, dict(os.environ),
                     lambda: any((p / "metrics.csv").exists() for p in _partials(tmp_path, "evaluation")), timeout=600)
    assert _partials(tmp_path, "evaluation")
    res = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "left by an interrupted earlier run" in res.stderr
    assert _hidden(tmp_path) == [] and (out / "summary.json").is_file()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_evaluate(tmp_path):
    """SIGKILL of the parent alone (as the out-of-memory killer does): its pool workers end too."""
    import signal
    import subprocess
    import time
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    _label_maps(pred, 16, 0)
    _label_maps(gt, 16, 1)
    log = tmp_path / "log.txt"
    code = ("import sys, time, tqdm\n"
            "f = tqdm.tqdm.update\n"
            "def slow(self, n=1):\n    time.sleep(1.0)\n    return f(self, n)\n"
            "tqdm.tqdm.update = slow\n"  # the parent lingers in the pool while the workers keep working
            "from sss_nnunet.cli import main\nsys.exit(main(sys.argv[1:]))")
    args = ["evaluate", "--pred", pred, "--gt", gt, "--dataset", "synapse", "--protocol", "strict", "--workers", "2",
            "--out", tmp_path / "e"]
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if "1/16" in log.read_text(errors="replace"):  # the workers are up and scoring
                workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
                break
            time.sleep(0.05)
        assert len(workers) == 2, log.read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "orphaned pool workers keep running"
    finally:
        for pid in [proc.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
