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
