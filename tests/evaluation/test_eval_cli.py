"""``sss-nnunet evaluate`` on small folders: outputs per dataset kind, and refusals that write nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from medpy.metric import binary

from sss_nnunet.cli import main
from sss_nnunet.datasets.specs import SPECS
from sss_nnunet.datasets.writer import dataset_json
from sss_nnunet.evaluation.cli import OUTPUT_FILES
from sss_nnunet.evaluation.tasks import resolve_task
from sss_nnunet.io import OWNER_FILE, atomic_write_json


def evaluate(*args: str | Path) -> int:
    return main(["evaluate", *map(str, args)])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_synapse_paper_outputs(make_folders, capsys):
    pred, gt, arrays = make_folders(n_cases=3, n_labels=8)
    (pred / "plans.json").write_text("{}")  # nnUNetv2_predict leaves these beside the predictions
    (pred / "predict_from_raw_data_args.json").write_text("{}")
    assert evaluate("--pred", pred, "--gt", gt, "-d", "synapse", "-np", "1", "--quiet") == 0
    out = pred / "evaluation_paper"
    assert sorted(p.name for p in out.iterdir()) == sorted((*OUTPUT_FILES, OWNER_FILE))

    rows = read_csv(out / "metrics.csv")
    assert list(rows[0]) == ["case", "class", "dice", "hd95"]
    assert len(rows) == 3 * 8
    assert [r["class"] for r in rows[:8]] == [str(v) for v in range(1, 9)]
    for r in rows:
        p, g = (a == int(r["class"]) for a in arrays[r["case"]])
        if p.any() and g.any():
            assert float(r["dice"]) == pytest.approx(binary.dc(p, g), abs=1e-6)
            assert float(r["hd95"]) == pytest.approx(binary.hd95(p, g), abs=1e-6)  # paper: voxel units

    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "paper" and summary["hd95_unit"] == "voxels"
    class_means = [summary["classes"][str(v)]["dice_mean"] for v in range(1, 9)]
    assert summary["mean"]["dice"] == pytest.approx(np.mean(class_means))
    assert summary["classes"]["1"]["dice_mean"] == pytest.approx(
        np.mean([float(r["dice"]) for r in rows if r["class"] == "1"])
    )

    table = (out / "table.md").read_text()
    assert "protocol: paper" in table
    assert "| Method | Spl | RKid | LKid | Gal | Liv | Sto | Aor | Pan | HD95 | DSC |" in table
    assert "| UNETR++ (published) | 95.77 |" in table
    assert "nnU-Net (published) [R]" in table and "- [R] " in table
    assert "**Ours (paper protocol)**" in table
    tex = (out / "table.tex").read_text()
    assert r"\begin{tabular}" in tex and "UNETR++ (published)" in tex and "protocol: paper" in tex
    assert (out / "dice.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_strict_protocol_counts_a_missed_organ(make_folders, helpers, tmp_path, capsys):
    pred, gt, arrays = make_folders(n_cases=2, n_labels=8, spacing=(2.0, 0.5, 0.75))
    case = "case_001"
    p, g = arrays[case]
    p = p.copy()
    p[p == 4] = 0
    assert (g == 4).any()
    helpers.write_label_map(pred / f"{case}.nii.gz", p, (2.0, 0.5, 0.75))
    out = tmp_path / "strict"
    assert (
        evaluate(
            "--pred",
            pred,
            "--gt",
            gt,
            "-d",
            "synapse",
            "--protocol",
            "strict",
            "--out",
            out,
            "-np",
            "1",
            "--method-name",
            "SSS",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "protocol: strict" in printed and "**SSS (strict protocol)**" in printed
    rows = {(r["case"], r["class"]): r for r in read_csv(out / "metrics.csv")}
    diagonal = np.sqrt((12 * 2.0) ** 2 + (24 * 0.5) ** 2 + (24 * 0.75) ** 2)
    assert float(rows[(case, "4")]["dice"]) == 0.0
    assert float(rows[(case, "4")]["hd95"]) == pytest.approx(diagonal)
    a, b = (x == 1 for x in arrays["case_000"])
    assert float(rows[("case_000", "1")]["hd95"]) == pytest.approx(
        binary.hd95(a, b, voxelspacing=(2.0, 0.5, 0.75)), abs=1e-6
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"]["4"]["n_missed"] == 1 and summary["classes"]["4"]["missed_cases"] == [case]
    assert summary["hd95_unit"] == "mm"
    table = (out / "table.md").read_text()
    assert f"Missed (ground truth present, prediction empty): 1: {case}/Gal." in table
    assert "not comparable with the published HD95" in table


def test_acdc_layout(make_folders, capsys):
    pred, gt, _ = make_folders(n_cases=2, n_labels=3, shape=(6, 20, 20))
    assert evaluate("--pred", pred, "--gt", gt, "-d", "acdc", "-np", "1", "--quiet") == 0
    out = pred / "evaluation_paper"
    assert {r["class"] for r in read_csv(out / "metrics.csv")} == {"1", "2", "3"}
    table = (out / "table.md").read_text()
    assert "| Method | RV | Myo | LV | Avg | HD95 |" in table
    assert "nnU-Net (nnFormer paper) (published) [V2]" in table and "- [V2] " in table


def test_brats_regions_from_label_maps(make_folders, capsys):
    pred, gt, arrays = make_folders(n_cases=2, n_labels=3)
    assert evaluate("--pred", pred, "--gt", gt, "-d", "brats", "-np", "1", "--quiet") == 0
    out = pred / "evaluation_paper"
    rows = read_csv(out / "metrics.csv")
    assert [r["class"] for r in rows[:3]] == ["WT", "TC", "ET"]
    regions = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
    for r in rows:
        p, g = (np.isin(a, regions[r["class"]]) for a in arrays[r["case"]])
        assert float(r["dice"]) == pytest.approx(binary.dc(p, g), abs=1e-6)
        assert float(r["hd95"]) == pytest.approx(binary.hd95(p, g), abs=1e-6)
    table = (out / "table.md").read_text()
    assert "| Method | WT DSC | TC DSC | ET DSC | Avg DSC | WT HD95 | TC HD95 | ET HD95 | Avg HD95 |" in table
    assert "| nnFormer (published) [R] | 91.30 | 86.00 | 81.80 | 86.40 | - | - | - | ~4.05 |" in table


def _raw_dataset(root: Path, name: str, labels: dict, **extra) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    info = {
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": 1,
        "file_ending": ".nii.gz",
        **extra,
    }
    (folder / "dataset.json").write_text(json.dumps(info))
    return folder


def test_dataset_from_nnunet_raw(make_folders, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    _raw_dataset(raw, "Dataset123_Toy", {"background": 0, "liver": 1, "tumour": 2})
    monkeypatch.setenv("nnUNet_raw", str(raw))
    pred, gt, _ = make_folders(n_cases=2, n_labels=2)
    for dataset in ("123", "Dataset123", "Dataset123_Toy"):
        out = tmp_path / f"out_{dataset}"
        assert (
            evaluate(
                "--pred", pred, "--gt", gt, "-d", dataset, "--out", out, "-np", "1", "--quiet"
            )
            == 0
        )
        assert {r["class"] for r in read_csv(out / "metrics.csv")} == {"1", "2"}
        table = (out / "table.md").read_text()
        assert "Dataset123_Toy" in table and "| Method | liver | tumour | HD95 | DSC |" in table
        assert "(published)" not in table


def test_region_dataset_json_is_recognised_as_brats(make_folders, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    _raw_dataset(
        raw,
        "Dataset804_BraTSMSD",
        {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [2, 3], "enhancing_tumor": 3},
        regions_class_order=[1, 2, 3],
    )
    _raw_dataset(raw, "Dataset905_Other", {"background": 0, "a": [1, 2], "b": 2}, regions_class_order=[1, 2])
    monkeypatch.setenv("nnUNet_raw", str(raw))
    pred, gt, _ = make_folders(n_cases=1, n_labels=3)
    assert evaluate("--pred", pred, "--gt", gt, "-d", "804", "-np", "1", "--quiet") == 0
    rows = read_csv(pred / "evaluation_paper" / "metrics.csv")
    assert [r["class"] for r in rows] == ["WT", "TC", "ET"]
    assert "nnFormer (published)" in (pred / "evaluation_paper" / "table.md").read_text()
    # A region dataset that is not ours: classes named by their dataset.json keys; label 3 is unknown there.
    code = evaluate("--pred", pred, "--gt", gt, "-d", "905", "--out", tmp_path / "o", "-np", "1")
    assert code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("key", sorted(SPECS))
def test_converter_dataset_json_is_recognised(key, tmp_path, monkeypatch):
    """dataset.json as ``sss-nnunet convert`` writes it resolves to the same classes as ``--dataset KEY``."""
    spec = SPECS[key]
    folder = tmp_path / "raw" / spec.folder_name
    folder.mkdir(parents=True)
    atomic_write_json(folder / "dataset.json", dataset_json(spec, 1, 1, "test"))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    for name in (str(spec.dataset_id), spec.folder_name):
        assert resolve_task(name) == resolve_task(key)


def test_dataset_errors(make_folders, tmp_path, monkeypatch, capsys):
    pred, gt, _ = make_folders(n_cases=1, n_labels=2)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert evaluate("--pred", pred, "--gt", gt, "-d", "Dataset123") == 2
    assert "nnUNet_raw is not set" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert evaluate("--pred", pred, "--gt", gt, "-d", "123") == 2
    assert "no folder Dataset123_*" in capsys.readouterr().err
    assert evaluate("--pred", pred, "--gt", gt, "-d", "kidneys") == 2
    assert "unknown dataset 'kidneys'" in capsys.readouterr().err
    assert not (pred / "evaluation_paper").exists()


def test_missing_and_extra_cases_refused(make_folders, capsys):
    pred, gt, _ = make_folders(n_cases=4, n_labels=2)
    (pred / "case_001.nii.gz").rename(pred / "case_101.nii.gz")
    (pred / "case_002.nii.gz").unlink()
    assert evaluate("--pred", pred, "--gt", gt, "-d", "synapse") == 2
    err = capsys.readouterr().err
    assert "2 case(s) missing from the predictions" in err and "case_001, case_002" in err
    assert "1 prediction(s) without ground truth" in err and "case_101" in err
    assert not (pred / "evaluation_paper").exists()
    assert not any(p.name.startswith(".evaluation") for p in pred.iterdir())


def test_geometry_mismatch_refused(make_folders, helpers, capsys):
    pred, gt, arrays = make_folders(n_cases=3, n_labels=2, spacing=(2.0, 1.0, 1.0))
    p0, _ = arrays["case_000"]
    helpers.write_label_map(pred / "case_000.nii.gz", p0, (2.0, 1.0, 1.1))  # spacing
    helpers.write_label_map(pred / "case_001.nii.gz", np.zeros((12, 24, 23)), (2.0, 1.0, 1.0))  # shape
    p2, _ = arrays["case_002"]
    helpers.write_label_map(pred / "case_002.nii.gz", p2, (2.0, 1.0, 1.0), origin=(5.0, 0.0, 0.0))  # origin
    assert evaluate("--pred", pred, "--gt", gt, "-d", "synapse") == 2
    err = capsys.readouterr().err
    assert "geometry mismatch in 3 case(s)" in err
    assert "case_000: prediction vs ground truth: spacing (1.1, 1, 2) vs (1, 1, 2)" in err
    assert "case_001: prediction vs ground truth: shape (12, 24, 23) vs (12, 24, 24)" in err
    assert "case_002: prediction vs ground truth: origin (5, 0, 0) vs (0, 0, 0)" in err
    assert not (pred / "evaluation_paper").exists()


def test_unknown_label_value_refused(make_folders, helpers, capsys):
    pred, gt, arrays = make_folders(n_cases=2, n_labels=3)
    g = arrays["case_001"][1].copy()
    g[0, 0, 0] = 9
    helpers.write_label_map(gt / "case_001.nii.gz", g, (2.5, 0.8, 0.8))
    assert evaluate("--pred", pred, "--gt", gt, "-d", "acdc", "-np", "1") == 2
    assert "case_001 ground truth: label values [9] are not labels of this dataset" in capsys.readouterr().err
    assert not (pred / "evaluation_paper").exists()


def test_existing_output_needs_overwrite(make_folders, tmp_path, capsys):
    """An output folder is replaced only with --overwrite, and only when evaluate wrote it (issue 24)."""
    pred, gt, _ = make_folders(n_cases=1, n_labels=2)
    out = tmp_path / "out"
    args = ["--pred", pred, "--gt", gt, "-d", "acdc", "--out", out, "-np", "1", "--quiet"]
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert evaluate(*args) == 2
    assert "already exists (use --overwrite" in capsys.readouterr().err
    assert evaluate(*args, "--overwrite") == 2  # not an evaluation: never deleted
    assert "not an output of sss-nnunet evaluate" in capsys.readouterr().err
    assert (out / "old.txt").read_text() == "old"
    (out / "old.txt").unlink()
    assert evaluate(*args, "--overwrite") == 0  # an empty folder
    assert evaluate(*args) == 2
    assert evaluate(*args, "--overwrite") == 0  # its own output
    assert sorted(p.name for p in out.iterdir()) == sorted((*OUTPUT_FILES, OWNER_FILE))


def test_process_pool_gives_the_same_rows(make_folders, tmp_path):
    pred, gt, _ = make_folders(n_cases=3, n_labels=8)
    for workers in ("1", "2"):
        assert (
            evaluate(
                "--pred",
                pred,
                "--gt",
                gt,
                "-d",
                "synapse",
                "--protocol",
                "strict",
                "--out",
                tmp_path / workers,
                "-np",
                workers,
                "--quiet",
            )
            == 0
        )
    assert (tmp_path / "1" / "metrics.csv").read_text() == (tmp_path / "2" / "metrics.csv").read_text()
