"""benchmarks/evidence.sh with a stand-in for sss-nnunet: which compare commands a piece runs, in
which order, and which finished runs a ladder piece reuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "evidence.sh"
STUB = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1" = convert ]; then mkdir -p "$nnUNet_raw/Dataset999_$2"; fi
if [ "$1" = compare ]; then  # a report naming its rows in --out ("tr"), with the runs of $RUNS_JSON if set
  all="$*"; out=${all##*--out }; out=${out%% *}; rows=${all#* -tr }; rows=${rows%% --recipe*}
  mkdir -p "$out"
  echo "{\\"settings\\": {}, \\"rows\\": ${RUNS_JSON:-[]}, \\"tr\\": \\"$rows\\"}" > "$out/compare.json"
  exit "${COMPARE_RC:-0}"
fi
"""


def _run(tmp_path: Path, *pieces: str, **extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    stub = tmp_path / "sss"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    env = {**os.environ, "SSS": str(stub), "PY": sys.executable, "WORK": str(tmp_path / "work"), "CALLS": str(calls),
           "ARCHIVE": str(tmp_path / "archive"), **extra}
    proc = subprocess.run(["bash", str(SCRIPT), *pieces], env=env, capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines()


def test_ladder_runs_rung_by_rung_then_the_whole_table_and_reuses_the_sss_piece(tmp_path):
    src = tmp_path / "work" / "c3d_sss" / "runs" / "seed1" / "SSSTrainer__sss"
    src.mkdir(parents=True)
    (src / "result.json").write_text(json.dumps({"status": "ok"}))
    unfinished = tmp_path / "work" / "c3d_sss" / "runs" / "seed1" / "nnUNetTrainer__sss"
    unfinished.mkdir(parents=True)  # no result.json: not copied
    proc, calls = _run(tmp_path, "ladder-c3d")
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "convert context"
    compares = [c for c in calls if c.startswith("compare")]
    rows = [c.split(" -tr ")[1].split(" --recipe")[0] for c in compares]
    assert rows[:8] == [f"nnUNetTrainer SSSTrainer_L{i}" for i in range(7)] + ["nnUNetTrainer SSSTrainer"]
    assert rows[8] == "nnUNetTrainer " + " ".join(f"SSSTrainer_L{i}" for i in range(7)) + " SSSTrainer"
    assert len(rows) == 9 and all("--out " + str(tmp_path / "work" / "ladder_c3d") in c for c in compares)
    assert all("--recipe sss" in c and "--iterations 500" in c and "--seeds 0 1 2" in c for c in compares)
    dst = tmp_path / "work" / "ladder_c3d" / "runs" / "seed1"
    assert (dst / "SSSTrainer__sss" / "result.json").exists()
    assert not (dst / "nnUNetTrainer__sss").exists()


@pytest.mark.parametrize(("piece", "dataset", "recipe"), [("c3d-nnunet", "991", "nnunet"), ("demo-sss", "990", "sss"),
                                                       ("mni-nnunet", "992", "nnunet")])
def test_four_row_pieces(tmp_path, piece, dataset, recipe):
    proc, calls = _run(tmp_path, piece)
    assert proc.returncode == 0, proc.stderr
    (compare,) = [c for c in calls if c.startswith("compare")]
    assert f"-d {dataset} " in compare and f"--recipe {recipe} " in compare
    assert " -tr nnUNetTrainer nnUNetTrainer:nnUNetResEncUNetMPlans SSSTrainer SSSTrainer_globalOnly " in compare


def test_unknown_piece(tmp_path):
    proc, calls = _run(tmp_path, "nope")
    assert proc.returncode == 2 and "unknown piece 'nope'" in proc.stderr and calls == []


def test_pieces_restore_from_the_archive_and_archive_their_reports(tmp_path):
    """The run folders of an earlier session are gone: the archived reports (a ladder's whole table
    and its rungs) are restored into every compare of the piece, and each report is archived again."""
    archive = tmp_path / "archive" / "ladder_c3d"
    (archive / "rungs").mkdir(parents=True)
    for f in (archive / "compare.json", archive / "rungs" / "SSSTrainer_L1.json"):
        f.write_text('{"settings": {}, "rows": []}')
    proc, calls = _run(tmp_path, "ladder-c3d")
    assert proc.returncode == 0, proc.stderr
    compares = [c for c in calls if c.startswith("compare")]
    assert compares[0].endswith(f"--restore {archive}/compare.json {archive}/rungs/SSSTrainer_L1.json")
    assert compares[1].endswith(f"--restore {archive}/compare.json {archive}/rungs/SSSTrainer_L0.json "
                                f"{archive}/rungs/SSSTrainer_L1.json")  # rung L0 archived meanwhile
    assert f"{archive}/rungs/SSSTrainer_L3.json" in compares[-1]  # archived by the rung before
    assert json.loads((archive / "rungs" / "SSSTrainer_L4.json").read_text())["tr"] == "nnUNetTrainer SSSTrainer_L4"
    whole = json.loads((archive / "compare.json").read_text())["tr"]
    assert whole == "nnUNetTrainer " + " ".join(f"SSSTrainer_L{i}" for i in range(7)) + " SSSTrainer"
    assert not list(archive.rglob("*.tmp"))
    proc, calls = _run(tmp_path, "demo-sss", ARCHIVE="none")  # no archive: nothing restored, nothing kept
    assert proc.returncode == 0 and "--restore" not in calls[-1] and not (tmp_path / "archive" / "demo_sss").exists()


def test_other_budgets_neither_restore_nor_overwrite_the_committed_evidence(tmp_path):
    committed = SCRIPT.parents[1] / "docs" / "evidence" / "demo_sss" / "compare.json"
    before = committed.read_bytes()
    proc, calls = _run(tmp_path, "demo-sss", SCALE="4", ARCHIVE="")  # ARCHIVE unset: the default applies
    assert proc.returncode == 0, proc.stderr
    assert "--iterations 2000" in calls[-1] and "--restore" not in calls[-1]
    assert (tmp_path / "work" / "demo_sss" / "compare.json").exists() and committed.read_bytes() == before


def test_rungs_picks_the_ladders_rungs_and_their_order(tmp_path):
    proc, calls = _run(tmp_path, "ladder-demo", RUNGS="SSSTrainer_L4 SSSTrainer_L1")
    assert proc.returncode == 0, proc.stderr
    rows = [c.split(" -tr ")[1].split(" --recipe")[0] for c in calls if c.startswith("compare")]
    # no whole-ladder table: it would train every rung not listed
    assert rows == ["nnUNetTrainer SSSTrainer_L4", "nnUNetTrainer SSSTrainer_L1"]
    assert "RUNGS given, no whole-ladder table" in proc.stdout  # without RUNGS: the test above


def test_the_2d_ladder_runs_below_the_ceiling_and_reuses_nothing_of_a_longer_piece(tmp_path):
    src = tmp_path / "work" / "c2d_sss" / "runs" / "seed0" / "SSSTrainer__sss"
    src.mkdir(parents=True)  # a 500-iteration run of the c2d-sss piece: another budget
    (src / "result.json").write_text(json.dumps({"status": "ok"}))
    proc, calls = _run(tmp_path, "ladder-c2d", RUNGS="SSSTrainer_L0")
    assert proc.returncode == 0, proc.stderr
    compares = [c for c in calls if c.startswith("compare")]
    assert len(compares) == 1 and all("-d 993 " in c and "--iterations 250 " in c for c in compares)
    assert not (tmp_path / "work" / "ladder_c2d" / "runs").exists()


def test_budget_checks_run_two_rows_at_twice_the_iterations_of_their_piece(tmp_path):
    proc, calls = _run(tmp_path, "c3d-sss-2x", "demo-sss-2x")
    assert proc.returncode == 0, proc.stderr
    c3d, demo = [c for c in calls if c.startswith("compare")]
    for call, dataset, out in ((c3d, "991", "c3d_sss_2x"), (demo, "990", "demo_sss_2x")):
        assert f"-d {dataset} " in call and "--recipe sss " in call and "--iterations 1000 " in call
        assert " -tr nnUNetTrainer SSSTrainer --recipe" in call and f"--out {tmp_path / 'work' / out}" in call
    proc, calls = _run(tmp_path, "c3d-sss-2x", BUDGET_ROWS="nnUNetTrainer:nnUNetResEncUNetMPlans")
    assert " -tr nnUNetTrainer:nnUNetResEncUNetMPlans --recipe" in [c for c in calls if c.startswith("compare")][-1]


def test_a_report_with_fewer_finished_runs_or_a_stopped_compare_leaves_the_archive_as_it_was(tmp_path):
    """ROWS=... over a four-row piece (or a stale report) lacks archived runs: the archive is kept and
    the reason printed; a compare that stopped (exit 2) archives nothing; one with failed runs (exit 1)
    and every archived run archives its report."""
    run = {"trainer": "nnUNetTrainer", "plans": "nnUNetPlans", "recipe": "sss", "seed": 0, "status": "ok",
           "summary": {"cases": {}}}
    archive = tmp_path / "archive" / "demo_sss" / "compare.json"
    archive.parent.mkdir(parents=True)
    archived = json.dumps({"settings": {}, "rows": [{"trainer": "nnUNetTrainer", "runs": [run]}]})
    archive.write_text(archived)
    proc, _ = _run(tmp_path, "demo-sss", ROWS="SSSTrainer")
    assert proc.returncode == 0, proc.stderr
    assert archive.read_text() == archived
    assert "lacks 1 finished run(s) of" in proc.stderr and "nnUNetTrainer sss seed 0" in proc.stderr
    same = json.dumps([{"trainer": "nnUNetTrainer", "runs": [run]}])
    proc, _ = _run(tmp_path, "demo-sss", RUNS_JSON=same, COMPARE_RC="2")
    assert proc.returncode == 0 and "compare stopped (exit 2); nothing archived" in proc.stderr
    assert archive.read_text() == archived
    proc, _ = _run(tmp_path, "demo-sss", RUNS_JSON=same, COMPARE_RC="1")
    assert proc.returncode == 0 and "finished with failed runs" in proc.stdout
    assert json.loads(archive.read_text())["rows"] == json.loads(same)
