"""benchmarks/budget_check.py: each network at a longer budget against itself at the shorter one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import budget_check  # noqa: E402

BASE = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]


def _report(path: Path, iterations: int, runs: dict[str, list[list[float]]], dataset: str = "Dataset991_X") -> Path:
    """A compare.json at ``path`` whose row ``trainer`` has one run per list of per-case Dice (seed = index)."""
    rows = []
    for trainer, seeds in runs.items():
        records = [{"trainer": trainer, "plans": "nnUNetPlans", "recipe": "sss", "seed": s, "status": "ok",
                    "summary": {"cases": {f"c{i}": {"1": {"dice": d, "hd95": 10 * (1 - d)}}
                                          for i, d in enumerate(dice)}}} for s, dice in enumerate(seeds)]
        rows.append({"trainer": trainer, "runs": records})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": {"dataset": dataset, "budget": {"iterations": iterations}},
                                "rows": rows}))
    return path


def test_a_network_that_gains_from_the_longer_budget_and_one_that_does_not(tmp_path, capsys):
    short = _report(tmp_path / "short" / "compare.json", 500, {
        "nnUNetTrainer": [BASE] * 3, "SSSTrainer": [BASE] * 3})
    long = _report(tmp_path / "long" / "compare.json", 1000, {
        "nnUNetTrainer": [[d + 0.1 + 0.01 * s for d in BASE] for s in range(3)],  # still learning at 500
        "SSSTrainer": [[d + (0.01 if i % 2 else -0.01) for i, d in enumerate(BASE)]] * 3})  # noise only
    assert budget_check.main([str(short.parent), str(long)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()[2:]}
    assert "dice at 500 it." in out and "dice at 1000 it." in out
    assert "+0.110 [+0.110, +0.110]" in rows["nnUNetTrainer"] and "**gains**" in rows["nnUNetTrainer"]
    assert "**no gain**" in rows["SSSTrainer"] and "0.597 ± 0.000 (3)" in rows["SSSTrainer"]


def test_too_few_seeds_and_a_network_in_one_budget_only(tmp_path, capsys):
    short = _report(tmp_path / "a.json", 250, {"nnUNetTrainer": [BASE], "SSSTrainer_L0": [BASE] * 3})
    long = _report(tmp_path / "b.json", 500, {"nnUNetTrainer": [[d + 0.2 for d in BASE]] * 3})
    assert budget_check.main([str(short), str(long)]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    assert len(lines) == 1 and "nnUNetTrainer" in lines[0] and "**too few runs**" in lines[0]


def test_other_datasets_the_same_budget_or_nothing_shared_are_errors(tmp_path, capsys):
    a = _report(tmp_path / "a.json", 500, {"nnUNetTrainer": [BASE] * 3})
    other_set = _report(tmp_path / "b.json", 1000, {"nnUNetTrainer": [BASE] * 3}, dataset="Dataset990_Y")
    same_budget = _report(tmp_path / "c.json", 500, {"nnUNetTrainer": [BASE] * 3})
    nothing_shared = _report(tmp_path / "d.json", 1000, {"SSSTrainer": [BASE] * 3})
    other_batch = _report(tmp_path / "e.json", 1000, {"nnUNetTrainer": [BASE] * 3})
    data = json.loads(other_batch.read_text())
    for run in data["rows"][0]["runs"]:
        run["stats"] = {"budget": {"batch_size": 12}, "device": "cuda"}
    other_batch.write_text(json.dumps(data))
    for other, words in ((other_set, "differ in more than the budget (dataset Dataset991_X vs Dataset990_Y)"),
                         (other_batch, "(batch size None vs 12, device None vs cuda)"),
                         (same_budget, "the same budget"),
                         (nothing_shared, "no network"), (tmp_path / "gone", "does not exist")):
        assert budget_check.main([str(a), str(other)]) == 2
        assert words in capsys.readouterr().err


def test_the_longer_budget_first_two_budgets_in_one_source_and_unreadable_sources_are_errors(tmp_path, capsys):
    short = _report(tmp_path / "short" / "compare.json", 500, {"nnUNetTrainer": [BASE] * 3})
    long = _report(tmp_path / "long" / "compare.json", 1000, {"nnUNetTrainer": [[d + 0.1 for d in BASE]] * 3})
    assert budget_check.main([str(long), str(short)]) == 2  # swapped: the table would read backwards
    err = capsys.readouterr().err
    assert "holds the longer budget (1000 against 500 iterations): give the shorter one first" in err
    # a folder holding the long report and a copy of the short one (as a ladder's rungs/): two budgets
    (tmp_path / "long" / "rungs").mkdir()
    (tmp_path / "long" / "rungs" / "x.json").write_text(short.read_text())
    assert budget_check.main([str(short), str(tmp_path / "long")]) == 2
    err = capsys.readouterr().err
    assert "runs of several datasets, batch sizes, devices or budgets" in err and "1000 / 500 iterations" in err
    empty = _report(tmp_path / "empty.json", 1000, {})
    truncated = tmp_path / "truncated.json"
    truncated.write_text(long.read_text()[:100])
    no_summary = tmp_path / "no_summary.json"
    data = json.loads(long.read_text())
    del data["rows"][0]["runs"][1]["summary"]
    no_summary.write_text(json.dumps(data))
    for source, words in ((empty, f"{empty}: no finished runs"), (truncated, f"{truncated}: cannot read it as JSON"),
                          (no_summary, f"{no_summary}: a finished run (seed 1, nnUNetTrainer) without its evaluation")):
        assert budget_check.main([str(short), str(source)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
