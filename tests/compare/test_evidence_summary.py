"""benchmarks/evidence_summary.py: the pieces' verdicts as sentences and their measured hours."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import evidence_summary  # noqa: E402


def _run(trainer: str, seed: int, train_s: float, predict_s: float) -> dict:
    return {"trainer": trainer, "plans": "nnUNetPlans", "recipe": "sss", "seed": seed, "status": "ok",
            "train_wall_seconds": train_s, "predict": {"wall_seconds": predict_s}, "summary": {"cases": {}}}


def _report(path: Path, dataset: str, iterations: int, runs: dict[str, list[dict]], verdicts=()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "settings": {"dataset": dataset, "configuration": "3d_fullres", "budget": {"iterations": iterations}},
        "rows": [{"trainer": t, "runs": r} for t, r in runs.items()], "verdicts": list(verdicts)}))


def test_hours_per_piece_count_a_reused_run_once(tmp_path, capsys):
    base = [_run("nnUNetTrainer", s, 3600.0, 360.0) for s in range(3)]
    _report(tmp_path / "a_sss" / "compare.json", "D1", 500, {"nnUNetTrainer": base})
    failed = dict(_run("SSSTrainer_L0", 2, 9e9, 0.0), status="failed")
    # the ladder reuses the baseline runs of a_sss (same data and budget) and adds one rung in rungs/
    _report(tmp_path / "b_ladder" / "compare.json", "D1", 500, {"nnUNetTrainer": base})
    _report(tmp_path / "b_ladder" / "rungs" / "SSSTrainer_L0.json", "D1", 500,
            {"nnUNetTrainer": base, "SSSTrainer_L0": [_run("SSSTrainer_L0", 0, 1800.0, 0.0), failed]})
    # the same trainer and seeds on another budget are other runs
    _report(tmp_path / "c_short" / "compare.json", "D1", 250, {"nnUNetTrainer": base[:1]})
    assert evidence_summary.main([str(tmp_path), "--time"]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["a_sss"] == ["3", "0", "3.00", "0.30", "3.30"]
    assert rows["b_ladder"] == ["4", "3", "0.50", "0.00", "0.50"]
    assert rows["c_short"] == ["1", "0", "1.00", "0.10", "1.10"]
    assert rows["all"] == ["5", "–", "4.50", "0.40", "4.90"]


def test_plain_sentences_state_ties_and_losses(tmp_path, capsys):
    verdicts = [{"row": "SSSTrainer", "baseline": "nnUNetTrainer", "metric": "dice", "mean_diff": -0.002,
                 "ci95": [-0.003, -0.001], "n_cases": 5, "n_seeds": 3, "verdict": "behind"},
                {"row": "SSSTrainer_globalOnly", "baseline": "nnUNetTrainer", "metric": "dice", "mean_diff": 0.01,
                 "ci95": [-0.02, 0.03], "n_cases": 5, "n_seeds": 3, "verdict": "tie"},
                {"row": "SSSTrainer", "baseline": "nnUNetTrainer", "metric": "hd95", "mean_diff": 1.0,
                 "ci95": [0.5, 1.5], "n_cases": 5, "n_seeds": 3, "verdict": "behind"}]
    _report(tmp_path / "mni" / "compare.json", "D992", 250, {}, verdicts)
    assert evidence_summary.main([str(tmp_path), "--plain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "- D992 (mni, 250 iterations, 3 seed(s)): SSSTrainer is behind nnUNetTrainer: mean Dice difference -0.002, "
        "95 % interval [-0.003, -0.001] over 5 test cases.",
        "- D992 (mni, 250 iterations, 3 seed(s)): SSSTrainer_globalOnly is tied with nnUNetTrainer: mean Dice "
        "difference +0.010, 95 % interval [-0.020, +0.030] over 5 test cases."]


def test_no_pieces_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        evidence_summary.main([str(tmp_path), "--time"])
    assert exc.value.code == 2 and f"no */compare.json under {tmp_path}" in capsys.readouterr().err
