"""benchmarks/ladder_summary.py: each rung against the previous finished rung, from run records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import ladder_summary  # noqa: E402


def _write(out: Path, trainer: str, seed: int, dice: list[float]) -> None:
    cases = {f"c{i}": {"1": {"dice": d, "hd95": 10 * (1 - d)}} for i, d in enumerate(dice)}
    run = out / "runs" / f"seed{seed}" / f"{trainer}__sss"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"trainer": trainer, "plans": "nnUNetPlans", "recipe": "sss",
                                                 "seed": seed, "status": "ok", "summary": {"cases": cases}}))


def test_rungs_against_the_previous_finished_rung(tmp_path, capsys):
    base = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]
    for seed in range(3):
        _write(tmp_path, "nnUNetTrainer", seed, base)
        _write(tmp_path, "SSSTrainer_L0", seed, [d + 0.10 + 0.01 * seed for d in base])  # clearly better
        _write(tmp_path, "SSSTrainer_L2", seed, [d + 0.10 + 0.01 * seed + (0.01 if i % 2 else -0.01)
                                                 for i, d in enumerate(base)])  # same as L0 up to noise
    _write(tmp_path, "SSSTrainer", 0, base)  # one seed only
    assert ladder_summary.main([str(tmp_path)]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "+0.110 [+0.110, +0.110] **ahead**" in rows["SSSTrainer_L0"]  # vs nnUNetTrainer; no previous rung
    assert "not run" in rows["SSSTrainer_L1"]
    l2 = rows["SSSTrainer_L2"].split("|")
    assert "**tie**" in l2[5] and "**ahead**" in l2[6]  # vs L0 (the previous finished rung), vs nnUNetTrainer
    assert "too few runs" in rows["SSSTrainer"]  # 1 seed


def test_no_runs_is_an_error(tmp_path, capsys):
    assert ladder_summary.main([str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_compare_json_files_give_the_same_table_and_a_plot(tmp_path, capsys):
    """The committed evidence (compare.json rows hold the run records) without any run folder; a run
    present in two files counts once."""
    base = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]
    for seed in range(3):
        _write(tmp_path, "nnUNetTrainer", seed, base)
        _write(tmp_path, "SSSTrainer_L0", seed, [d + 0.05 * (seed + 1) for d in base])
        _write(tmp_path, "SSSTrainer_L3", seed, [d - 0.02 for d in base])
    assert ladder_summary.main([str(tmp_path)]) == 0
    from_folder = capsys.readouterr().out
    records = {t: [json.loads(p.read_text()) for p in sorted(tmp_path.glob(f"runs/seed*/{t}__sss/result.json"))]
               for t in ("nnUNetTrainer", "SSSTrainer_L0", "SSSTrainer_L3")}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text(json.dumps({"rows": [{"trainer": "nnUNetTrainer", "runs": records["nnUNetTrainer"]},
                                        {"trainer": "SSSTrainer_L0", "runs": records["SSSTrainer_L0"]}]}))
    two.write_text(json.dumps({"rows": [{"trainer": "nnUNetTrainer", "runs": records["nnUNetTrainer"]},
                                        {"trainer": "SSSTrainer_L3", "runs": records["SSSTrainer_L3"]}]}))
    png = tmp_path / "ladder.png"
    assert ladder_summary.main([str(one), str(two), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.replace(f"wrote {png}\n", "") == from_folder
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()[2:] if line.startswith("|")}
    assert "| 3 | 0.697 ± 0.050 |" in rows["SSSTrainer_L0"]  # three seeds, not six
    assert "-0.120 [-0.120, -0.120] **behind**" in rows["SSSTrainer_L3"]  # L3 against L0
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    assert ladder_summary.main([str(tmp_path / "gone.json")]) == 2
    assert "gone.json: no such folder or file" in capsys.readouterr().err


def test_rule_for_defaults_needs_a_better_removal_on_two_sets(tmp_path, capsys):
    """L3 behind L2 on both sets -> its mechanism off; L4 behind L3 on one set only -> on; L6 against L4
    across the gap of the unrun L5 -> shown but not counted."""
    base = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]
    wobble = [0.01 if i % 2 else -0.01 for i in range(len(base))]
    sets = {"one": tmp_path / "one", "two": tmp_path / "two"}
    for name, folder in sets.items():
        for seed in range(3):
            _write(folder, "SSSTrainer_L2", seed, [d + 0.2 for d in base])
            _write(folder, "SSSTrainer_L3", seed, [d + 0.1 for d in base])  # clearly worse than L2: on both sets
            l4 = [d + 0.1 - 0.05 for d in base] if name == "one" else [d + 0.1 + w for d, w in zip(base, wobble)]
            _write(folder, "SSSTrainer_L4", seed, l4)  # worse than L3 on set one only
            _write(folder, "SSSTrainer_L6", seed, [d - 0.3 for d in base])  # far worse, but vs L4 across L5
    assert ladder_summary.main(["--rule", str(sets["one"]), str(sets["two"])]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["SSSTrainer_L3"][1:] == ["-0.100 [-0.100, -0.100] behind"] * 2 + ["one, two", "**off**"]
    assert rows["SSSTrainer_L4"][3:] == ["one", "on"]
    assert "spans SSSTrainer_L5, not counted" in rows["SSSTrainer_L6"][1]
    assert rows["SSSTrainer_L6"][3:] == ["–", "on (measured on 0 set(s))"]
    assert rows["SSSTrainer_L5"][1:3] == ["not run", "not run"]
    table, decision = ladder_summary.rule({n: ladder_summary.load(f) for n, f in sets.items()})
    assert decision["SSSTrainer_L3"] is False and decision["SSSTrainer_L4"] is True
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ladder_summary.main(["--rule", str(sets["one"]), str(empty)]) == 2
    assert "empty: no finished runs" in capsys.readouterr().err


def test_an_archive_folder_reads_its_compare_json_and_rungs(tmp_path, capsys):
    base = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]
    runs = tmp_path / "runs_out"
    for seed in range(3):
        _write(runs, "nnUNetTrainer", seed, base)
        _write(runs, "SSSTrainer_L0", seed, [d + 0.05 for d in base])
    records = {t: [json.loads(p.read_text()) for p in sorted(runs.glob(f"runs/seed*/{t}__sss/result.json"))]
               for t in ("nnUNetTrainer", "SSSTrainer_L0")}
    archive = tmp_path / "archive"
    (archive / "rungs").mkdir(parents=True)
    (archive / "compare.json").write_text(json.dumps({"rows": [{"runs": records["nnUNetTrainer"]}]}))
    (archive / "rungs" / "SSSTrainer_L0.json").write_text(json.dumps({"rows": [{"runs": records["SSSTrainer_L0"]}]}))
    assert ladder_summary.main([str(runs)]) == 0
    from_runs = capsys.readouterr().out
    assert ladder_summary.main([str(archive)]) == 0
    assert capsys.readouterr().out == from_runs
    assert "+0.050 [+0.050, +0.050] **ahead**" in from_runs


def test_other_plans_stay_apart_and_sets_of_two_datasets_are_refused(tmp_path, capsys):
    """nnUNetTrainer with ResEnc plans is its own row, not more seeds of the baseline; two ladders of
    other datasets (or budgets) in one table are an error, not a silent merge."""
    base = [0.50, 0.60, 0.55, 0.70, 0.65, 0.58]
    for seed in range(3):
        _write(tmp_path / "a", "nnUNetTrainer", seed, base)
        _write(tmp_path / "a", "SSSTrainer_L0", seed, [d + 0.1 for d in base])
        resenc = tmp_path / "a" / "runs" / f"seed{seed}" / "nnUNetTrainer__nnUNetResEncUNetMPlans__sss"
        resenc.mkdir(parents=True)
        cases = {f"c{i}": {"1": {"dice": 0.0, "hd95": 10.0}} for i in range(len(base))}
        (resenc / "result.json").write_text(json.dumps({
            "trainer": "nnUNetTrainer", "plans": "nnUNetResEncUNetMPlans", "recipe": "sss", "seed": seed,
            "status": "ok", "summary": {"cases": cases}}))
    assert ladder_summary.main([str(tmp_path / "a")]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "+0.100 [+0.100, +0.100] **ahead**" in rows["SSSTrainer_L0"]  # the ResEnc runs (Dice 0) not in the base
    for seed in range(3):
        _write(tmp_path / "b", "SSSTrainer_L2", seed, base)
    for name, dataset in (("a", "Dataset991_X"), ("b", "Dataset993_Y")):
        (tmp_path / name / "compare_settings.json").write_text(json.dumps(
            {"dataset": dataset, "budget": {"iterations": 500}}))
    assert ladder_summary.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "runs of several datasets, budgets or recipes (Dataset991_X 500 it. sss; Dataset993_Y 500 it. sss)" in err
