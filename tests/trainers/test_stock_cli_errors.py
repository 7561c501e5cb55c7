"""Stock ``nnUNetv2_*`` commands on a dataset that was never planned or trained: one clear message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sss_nnunet._stock_cli_errors import explain
from tests.trainers.stock import run_stock, stock_env


@pytest.fixture
def folders(tmp_path, monkeypatch):
    for name in ("raw", "preprocessed", "results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))
    (tmp_path / "preprocessed" / "Dataset042_Liver").mkdir()
    return tmp_path


def missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(2, "No such file or directory", str(path))


def test_missing_plans_names_the_file_and_the_command(folders):
    msg = explain(missing(folders / "preprocessed" / "Dataset042_Liver" / "nnUNetPlans.json"))
    assert "Dataset042_Liver/nnUNetPlans.json does not exist" in msg
    assert msg.endswith("nnUNetv2_plan_and_preprocess -d 42")
    msg = explain(missing(folders / "preprocessed" / "Dataset042_Liver" / "SSSPlans.json"))
    assert msg.endswith("sss-nnunet plan -d 42")
    msg = explain(missing(folders / "preprocessed" / "Dataset042_Liver" / "nnUNetResEncUNetMPlans.json"))
    assert "-overwrite_plans_name nnUNetResEncUNetMPlans" in msg


def test_missing_model_points_to_training(folders):
    msg = explain(missing(folders / "results" / "Dataset042_Liver" / "SSSTrainer__nnUNetPlans__3d_fullres"
                          / "dataset.json"))
    assert "no trained model" in msg and "nnUNetv2_train 42 " in msg


def test_unknown_dataset_id_is_nnunets_message_alone(folders):
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    with pytest.raises(RuntimeError) as err:
        maybe_convert_to_dataset_name(43)  # nnU-Net's own lookup, with nnU-Net's own wording
    msg = explain(err.value)
    assert msg is not None and msg.startswith("Could not find a dataset with the ID 43")
    assert f"nnUNet_preprocessed={folders / 'preprocessed'}" in msg
    assert explain(RuntimeError("Could not find a GPU")) is None  # other RuntimeErrors are left alone


def test_other_errors_are_left_alone(folders, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "Dataset042_Liver" / "nnUNetPlans.json"
    assert explain(missing(elsewhere)) is None  # not under nnU-Net's folders
    assert explain(ValueError("invalid literal for int()")) is None
    assert explain(FileNotFoundError("no filename")) is None


def run(cmd: list[str], folders: Path, **extra: str) -> subprocess.CompletedProcess:
    return run_stock(cmd, dict(stock_env(folders), **extra), timeout=300)


@pytest.mark.slow
@pytest.mark.e2e
def test_stock_train_without_plans_prints_one_message(folders):
    res = run(["nnUNetv2_train", "42", "3d_fullres", "0", "-tr", "SSSTrainer", "-device", "cpu"], folders)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "nnUNetv2_train: error:" in res.stderr and "nnUNetv2_plan_and_preprocess -d 42" in res.stderr
    off = run(["nnUNetv2_train", "42", "3d_fullres", "0", "-tr", "SSSTrainer", "-device", "cpu"], folders,
              SSS_NNUNET_NO_EXT_TRAINER="1")
    assert off.returncode != 0 and "Traceback" in off.stderr  # switched off: nnU-Net's own behaviour


@pytest.mark.slow
@pytest.mark.e2e
def test_stock_predict_without_a_model_prints_one_message(folders):
    res = run(["nnUNetv2_predict", "-i", str(folders / "raw"), "-o", str(folders / "out"), "-d", "42",
               "-c", "3d_fullres", "-tr", "SSSTrainer", "-f", "0", "-device", "cpu"], folders)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "no trained model" in res.stderr and "SSSTrainer__nnUNetPlans__3d_fullres" in res.stderr
    assert not (folders / "out").exists() or not any((folders / "out").iterdir())


@pytest.mark.slow
@pytest.mark.e2e
def test_stock_commands_with_an_unknown_dataset_id_print_one_message(folders):
    for cmd in (["nnUNetv2_train", "43", "3d_fullres", "0", "-tr", "SSSTrainer", "-device", "cpu"],
                ["nnUNetv2_predict", "-i", str(folders / "raw"), "-o", str(folders / "out"), "-d", "43", "-c",
                 "3d_fullres", "-tr", "SSSTrainer", "-f", "0", "-device", "cpu"]):
        res = run(cmd, folders)
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert f"{cmd[0]}: error: Could not find a dataset with the ID 43" in res.stderr
