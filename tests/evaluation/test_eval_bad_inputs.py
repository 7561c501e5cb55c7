"""Issue 24 for `sss-nnunet evaluate`: --overwrite never deletes an input or a folder evaluate did not write;
truncated / non-finite predictions, files and non-UTF-8 paths, read-only folders and dead workers end in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sss_nnunet.cli import main
from sss_nnunet.errors import SSSError
from sss_nnunet.evaluation.cases import pair_cases
from sss_nnunet.evaluation.evaluate import evaluate_pairs
from sss_nnunet.evaluation.protocols import PROTOCOLS
from sss_nnunet.evaluation.tasks import resolve_task
from sss_nnunet.io import OWNER_FILE


def evaluate(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["evaluate", *map(str, args), "--workers", "1", "--quiet"])
    return rc, capsys.readouterr().err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# ----------------------------------------------------------------------------- row 1: --overwrite
def test_out_is_the_ground_truth_folder(make_folders, capsys):
    pred, gt, _ = make_folders(n_cases=2)
    before = files(gt)
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", gt, "--overwrite")
    one_error(rc, err, str(gt), "holds the input")
    assert files(gt) == before


def test_out_is_a_folder_above_the_inputs(make_folders, tmp_path, capsys, monkeypatch):
    """``--out $PWD`` where PWD holds pred/ and gt/: nothing deleted."""
    pred, gt, _ = make_folders(n_cases=2)
    (tmp_path / "notes.txt").write_text("mine")
    before = files(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, err = evaluate(capsys, "--pred", "pred", "--gt", "gt", "--dataset", "synapse", "--out", ".", "--overwrite")
    one_error(rc, err, "holds the input")
    assert files(tmp_path) == before


def test_overwrite_refuses_an_unrelated_folder_and_replaces_its_own(make_folders, tmp_path, capsys):
    pred, gt, _ = make_folders(n_cases=2)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("months of work")
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", mine, "--overwrite")
    one_error(rc, err, str(mine), "not an output of sss-nnunet evaluate", "chapter1.tex")
    assert (mine / "chapter1.tex").read_text() == "months of work"

    out = tmp_path / "evaluation"
    args = ["--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", out]
    assert evaluate(capsys, *args)[0] == 0
    assert (out / OWNER_FILE).is_file()
    assert evaluate(capsys, *args, "--overwrite")[0] == 0  # its own output: replaced
    (out / "my_plot.py").write_text("keep me")  # the user added a file since
    rc, err = evaluate(capsys, *args, "--overwrite")
    one_error(rc, err, "my_plot.py")
    assert (out / "my_plot.py").read_text() == "keep me"


def test_output_of_an_earlier_version_without_manifest_is_replaced(make_folders, tmp_path, capsys):
    pred, gt, _ = make_folders(n_cases=2)
    out = tmp_path / "old_evaluation"
    out.mkdir()
    for name in ("metrics.csv", "summary.json", "table.md", "table.tex", "dice.png"):
        (out / name).write_text("old")
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", out, "--overwrite")
    assert rc == 0, err
    assert (out / "metrics.csv").read_text() != "old"


# ----------------------------------------------------------------------------- row 4: truncated predictions
def test_truncated_prediction_is_refused(make_folders, capsys):
    pred, gt, _ = make_folders(n_cases=2, shape=(24, 64, 64))
    case = pred / "case_001.nii.gz"
    data = case.read_bytes()
    case.write_bytes(data[: 2 * len(data) // 3])  # an interrupted nnUNetv2_predict / copy
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse")
    one_error(rc, err, str(case), "truncated")
    assert not (pred / "evaluation_paper").exists()


def test_nan_in_a_prediction_is_refused(make_folders, tmp_path, capsys):
    import SimpleITK as sitk

    pred, gt, arrays = make_folders(n_cases=2)
    bad = arrays["case_000"][0].astype(np.float32)
    bad[0, 0, 0] = np.nan
    image = sitk.GetImageFromArray(bad)
    image.SetSpacing(sitk.ReadImage(str(gt / "case_000.nii.gz")).GetSpacing())
    sitk.WriteImage(image, str(pred / "case_000.nii.gz"))
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse")
    one_error(rc, err, str(pred / "case_000.nii.gz"), "NaN")


# ----------------------------------------------------------------------------- row 7: one line, exit 2
def test_out_naming_a_file(make_folders, tmp_path, capsys):
    pred, gt, _ = make_folders(n_cases=2)
    report = tmp_path / "report.md"
    report.write_text("mine")
    for extra in ((), ("--overwrite",)):
        rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", report, *extra)
        one_error(rc, err, str(report))
    assert report.read_text() == "mine"


def test_unwritable_output_folder_is_one_line(make_folders, tmp_path, capsys, refuse_writes_under):
    """As root a read-only folder is still writable, so the refusal of the operating system is injected."""
    pred, gt, _ = make_folders(n_cases=2)
    refuse_writes_under(tmp_path)
    rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", tmp_path / "e")
    one_error(rc, err, "Permission denied", str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(make_folders, tmp_path, capsys):
    pred, gt, _ = make_folders(n_cases=2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        rc, err = evaluate(capsys, "--pred", pred, "--gt", gt, "--dataset", "synapse", "--out", locked / "e")
        one_error(rc, err, "Permission denied")
    finally:
        locked.chmod(0o755)


def test_non_utf8_path_is_one_line(make_folders, tmp_path):
    """SimpleITK aborts the process (C++ exception, exit 134) on such a name; run the CLI in a subprocess."""
    pred, gt, _ = make_folders(n_cases=2)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/pr\xe9d"))
    pred.rename(odd)
    cli = Path(sys.executable).parent / "sss-nnunet"
    res = subprocess.run([str(cli), "evaluate", "--pred", os.fsencode(odd), "--gt", str(gt), "--dataset", "synapse",
                          "--workers", "1", "--quiet", "--out", str(tmp_path / "e")],
                         capture_output=True, text=True, timeout=300)
    one_error(res.returncode, res.stderr, "not valid UTF-8")


class DyingProtocol:
    """A protocol whose scoring kills the worker process (as the out-of-memory killer would)."""

    name = "paper"

    def score(self, *args, **kwargs):
        os._exit(3)


def test_dead_worker_is_an_sss_error(make_folders):
    pred, gt, _ = make_folders(n_cases=3)
    pairs = pair_cases(pred, gt, ".nii.gz")
    with pytest.raises(SSSError, match="worker process died"):
        evaluate_pairs(pairs, resolve_task("synapse"), DyingProtocol(), workers=2, progress=False)
    assert PROTOCOLS  # the real protocols are untouched
