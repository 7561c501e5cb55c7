"""``sss-nnunet evaluate --dataset isic2016|isic2017|isic2018``: VM-UNet's pooled metrics and per-image means."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix

from sss_nnunet.cli import main
from sss_nnunet.evaluation import isic
from sss_nnunet.evaluation.published import published_entry
from sss_nnunet.evaluation.tasks import resolve_task
from sss_nnunet.io import OWNER_FILE


def evaluate(*args) -> int:
    return main(["evaluate", *map(str, args)])


def vmunet_reference(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """VM-UNet engine.py, step by step: flatten all, threshold at 0.5, sklearn confusion matrix, formulas."""
    y_pre = np.where(np.concatenate([p.reshape(-1) for p in preds]) >= 0.5, 1, 0)
    y_true = np.where(np.concatenate([g.reshape(-1) for g in gts]) >= 0.5, 1, 0)
    (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pre, labels=[0, 1])
    s = tn + fp + fn + tp
    return {
        "acc": (tn + tp) / s if s else 0, "sen": tp / (tp + fn) if tp + fn else 0,
        "spe": tn / (tn + fp) if tn + fp else 0, "dsc": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0,
        "miou": tp / (tp + fp + fn) if tp + fp + fn else 0,
    }


def brute_force_image(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per image, pixel by pixel in Python; 0/0 -> 1."""
    tp = fp = fn = tn = 0
    for p, g in zip(pred.reshape(-1).tolist(), gt.reshape(-1).tolist()):
        tp += p and g
        fp += p and not g
        fn += g and not p
        tn += not p and not g

    def r(a, b):
        return a / b if b else 1.0
    return {"miou": r(tp, tp + fp + fn), "dsc": r(2 * tp, 2 * tp + fp + fn), "acc": r(tp + tn, tp + tn + fp + fn),
            "spe": r(tn, tn + fp), "sen": r(tp, tp + fn)}


def random_pair(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    y, x = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.15, 0.4) * min(h, w)
    gt = ((y - cy) ** 2 + (x - cx) ** 2 <= r * r).astype(np.uint8)
    pred = ((y - cy - rng.normal(0, 2)) ** 2 + (x - cx - rng.normal(0, 2)) ** 2 <= (r * rng.uniform(0.7, 1.3)) ** 2)
    pred = pred.astype(np.uint8)
    flip = rng.random(shape) < 0.02
    return np.where(flip, 1 - pred, pred).astype(np.uint8), gt


SHAPES = [(13, 17), (21, 9), (16, 16), (7, 31), (19, 23)]


@pytest.fixture
def folders(tmp_path):
    """pred/ and gt/ folders of 0/1 PNGs with odd sizes; returns (pred, gt, [(pred, gt) arrays])."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(5)
    arrays = []
    for i, shape in enumerate(SHAPES):
        pred, gt = random_pair(rng, shape)
        if i == 2:
            pred[:] = 0  # a missed lesion
        Image.fromarray(pred).save(pred_dir / f"ISIC_{i:07d}.png")
        Image.fromarray(gt).save(gt_dir / f"ISIC_{i:07d}.png")
        arrays.append((pred, gt))
    (pred_dir / "plans.json").write_text("{}")  # nnUNetv2_predict leaves these beside the predictions
    return pred_dir, gt_dir, arrays


def test_metrics_against_the_vmunet_code_and_brute_force():
    rng = np.random.default_rng(0)
    pairs = [random_pair(rng, s) for s in SHAPES]
    rows = [(f"c{i}", isic.confusion(p, g)) for i, (p, g) in enumerate(pairs)]
    summary = isic.summarize_isic(rows, resolve_task("isic2017"))
    ref = vmunet_reference([p.astype(float) for p, _ in pairs], [g.astype(float) for _, g in pairs])
    for m in isic.METRICS:
        assert summary["pooled"][m] == pytest.approx(ref[m], abs=1e-12)
    per_image = [brute_force_image(p, g) for p, g in pairs]
    for m in isic.METRICS:
        assert summary["per_image_mean"][m] == pytest.approx(np.mean([v[m] for v in per_image]), abs=1e-12)
        assert summary["per_image_std"][m] == pytest.approx(np.std([v[m] for v in per_image]), abs=1e-12)
    # pooled is not the per-image mean: images of different sizes weigh differently
    assert abs(summary["pooled"]["dsc"] - summary["per_image_mean"]["dsc"]) > 1e-4


def test_empty_masks():
    empty = np.zeros((5, 7), np.uint8)
    c = isic.confusion(empty, empty)
    assert c == isic.Counts(tn=35, fp=0, fn=0, tp=0)
    assert isic.metrics(c) == {"miou": 0.0, "dsc": 0.0, "acc": 1.0, "spe": 1.0, "sen": 0.0}  # VM-UNet: 0/0 -> 0
    assert isic.metrics(c, empty=1.0) == {m: 1.0 for m in isic.METRICS}
    full = np.ones((5, 7), np.uint8)
    assert isic.metrics(isic.confusion(empty, full), empty=1.0) == {
        "miou": 0.0, "dsc": 0.0, "acc": 0.0, "spe": 1.0, "sen": 0.0}


def test_cli_outputs(folders, capsys):
    pred, gt, arrays = folders
    assert evaluate("--pred", pred, "--gt", gt, "-d", "isic2017", "--quiet") == 0
    out = pred / "evaluation_paper"
    assert sorted(p.name for p in out.iterdir()) == sorted((*isic.OUTPUT_FILES, OWNER_FILE))
    summary = json.loads((out / "summary.json").read_text())
    ref = vmunet_reference([p for p, _ in arrays], [g for _, g in arrays])
    assert summary["pooled"] == pytest.approx(ref)
    assert summary["n_cases"] == len(SHAPES)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == [f"ISIC_{i:07d}" for i in range(len(SHAPES))]
    for row, (p, g) in zip(rows, arrays):
        assert {m: float(row[m]) for m in isic.METRICS} == pytest.approx(brute_force_image(p, g))
    assert float(rows[2]["dsc"]) == 0.0 and float(rows[2]["sen"]) == 0.0
    table = (out / "table.md").read_text()
    assert "| VM-UNet (published, pooled) [R] | 80.23 | 89.03 | 96.29 | 97.58 | 89.90 |" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("| **Ours (pooled"))
    assert line.endswith(" | ".join(f"{100 * ref[m]:.2f}" for m in isic.METRICS) + " |")
    assert r"\begin{tabular}{lrrrrr}" in (out / "table.tex").read_text()
    assert (out / "dsc.png").read_bytes()[:4] == b"\x89PNG"


def test_raw_0_255_masks_and_nnunet_dataset_id(folders, tmp_path, monkeypatch):
    pred, gt, arrays = folders
    for i, (_, g) in enumerate(arrays):  # the ground truth as raw ISIC masks (0/255)
        Image.fromarray(g * 255).save(gt / f"ISIC_{i:07d}.png")
    raw = tmp_path / "raw" / "Dataset807_ISIC2017"
    raw.mkdir(parents=True)
    from sss_nnunet.datasets.specs import SPECS
    from sss_nnunet.datasets.writer import dataset_json
    (raw / "dataset.json").write_text(json.dumps(dataset_json(SPECS["isic2017"], 1, 1, "t")))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert evaluate("--pred", pred, "--gt", gt, "-d", "807", "--out", tmp_path / "o", "--quiet") == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["kind"] == "isic2017"
    assert summary["pooled"] == pytest.approx(vmunet_reference([p for p, _ in arrays], [g for _, g in arrays]))


def refused(capsys, out: Path, *args, words=()) -> str:
    assert evaluate(*args, "--out", out, "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    for w in words:
        assert w in err, err
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())
    return err


def test_refusals_write_nothing(folders, tmp_path, capsys):
    pred, gt, _ = folders
    out = tmp_path / "out"
    base = ("--pred", pred, "--gt", gt, "-d", "isic2018")
    refused(capsys, out, *base, "--protocol", "strict", words=["--protocol strict", "use --protocol paper"])
    bad = pred / "ISIC_0000003.png"
    Image.fromarray(np.full((7, 31), 2, np.uint8)).save(bad)
    refused(capsys, out, *base, words=[str(bad), "not a binary mask", "[2]"])
    Image.fromarray(np.zeros((9, 21), np.uint8)).save(bad)
    refused(capsys, out, *base, words=["ISIC_0000003", "(9, 21)", "(7, 31)"])
    Image.fromarray(np.zeros((7, 31, 3), np.uint8)).save(bad)
    refused(capsys, out, *base, words=[str(bad), "single-channel"])
    bad.unlink()
    refused(capsys, out, *base, words=["missing from the predictions", "ISIC_0000003"])


def test_published_isic_rows_match_markdown():
    md = resources.files("sss_nnunet.evaluation").joinpath("published_results.md").read_text()
    section = md.split("\n## ISIC", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section.splitlines()
            if ln.startswith("| isic")]
    assert sorted(r[0] for r in rows) == ["isic2016", "isic2017", "isic2018"]
    for kind, method, averaging, *values in rows:
        table = published_entry(kind)
        (row,) = table["rows"]
        name, tag = re.fullmatch(r"(.*?) \[(\w+)\]", method).groups()
        assert (row["method"], row["tag"], row["averaging"]) == (name, tag, averaging)
        expected = [row["metrics"].get(m) for m in isic.METRICS]
        assert expected == [None if v == "-" else float(v) for v in values]
        assert table["source"]


# ----------------------------------------------------------------------------- evaluation script
SCRIPT = Path(__file__).resolve().parents[2] / "evaluation_scripts" / "run_evaluation_isic.sh"


def run_script(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # an activated venv
    for var in ("raw", "preprocessed", "results"):
        env[f"nnUNet_{var}"] = str(tmp_path / var)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("key", ["isic2016", "isic2017", "isic2018"])
def test_evaluation_script_dry_run(tmp_path, key):
    from sss_nnunet.datasets.specs import SPECS

    spec = SPECS[key]
    raw = tmp_path / "raw" / spec.folder_name
    for sub in ("imagesTs", "labelsTs"):
        (raw / sub).mkdir(parents=True)
    result = run_script(tmp_path, key, "--dry-run", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    predict, evaluate_, show = [shlex.split(ln) for ln in result.stdout.splitlines() if not ln.startswith("#")]
    out = tmp_path / "results" / spec.folder_name / "SSSTrainer__nnUNetPlans__2d" / "predictions_imagesTs_fold_0"
    assert predict == ["nnUNetv2_predict", "-i", f"{raw}/imagesTs", "-o", str(out), "-d", str(spec.dataset_id),
                       "-c", "2d", "-tr", "SSSTrainer", "-p", "nnUNetPlans", "-f", "0", "-chk",
                       "checkpoint_final.pth", "-device", "cpu"]
    assert evaluate_[:9] == ["sss-nnunet", "evaluate", "--pred", str(out), "--gt", f"{raw}/labelsTs",
                             "-d", key, "--protocol"]
    assert show == ["cat", f"{out}/evaluation_paper/table.md"]


def test_evaluation_script_needs_the_dataset(tmp_path):
    result = run_script(tmp_path, "--dry-run")
    assert result.returncode == 2 and "give the dataset first" in result.stderr
    assert run_script(tmp_path, "--help").returncode == 0
    help_text = run_script(tmp_path, "isic2017", "--help").stdout
    assert "-c CONFIG         nnU-Net configuration (default: 2d)" in help_text
    assert "SSSPlans after 'sss-nnunet plan'" in help_text  # no command substitution in the help
